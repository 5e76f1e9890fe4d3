#!/usr/bin/python3
"""Runs README.md's tested blocks, in order, the way a reader copies them into a shell at the root
of a built checkout, so they cannot rot.

A tested block is a fenced block whose info string has the word `ci` after the language:
  ```sh ci                    run with `bash -e -o pipefail` in the work directory
  ```c ci file=hello.c        saved as that file (relative to the work directory); the paragraph
                              before the block must name the file in backquotes, so the reader
                              sees where it goes
Any other `ci` block (no file= and not sh/bash) is an error, as is a README without tested blocks.

The work directory is a new temporary directory holding a symbolic link to every top-level entry
of the source tree (so `models/tiny`, `include`, `bindings` ... are where the README says) except
build directories, and `build` linked to BUILD_DIR; the blocks' outputs stay in it. The blocks see
no DMLLM_* / DENSEMLLM_* variable of the caller (they must set what they need themselves), and
`python3` is /usr/bin/python3 (Debian's, as on the machine the README's commands are for).
Usage: readme_blocks.py SOURCE_DIR BUILD_DIR"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r"^```(\S*)(.*)$")
SHELLS = {"sh", "bash"}


def tested_blocks(readme_path):
    """[(line number, language, file or None, text)] of the README's `ci` blocks."""
    with open(readme_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, language, words = i + 1, fence.group(1), fence.group(2).split()
        end = start
        while end < len(lines) and lines[end] != "```":
            end += 1
        if end == len(lines):
            sys.exit(f"README.md:{start}: the block opened here is never closed")
        if "ci" in words:
            files = [w[len("file="):] for w in words if w.startswith("file=")]
            path = files[0] if files else None
            if path is None and language not in SHELLS:
                sys.exit(f"README.md:{start}: a tested {language} block needs file=NAME (only sh runs)")
            if path is not None:
                before = i - 1
                while before >= 0 and not lines[before].strip():
                    before -= 1
                if before < 0 or f"`{path}`" not in lines[before]:
                    sys.exit(f"README.md:{start}: the line before the block does not name `{path}`")
            blocks.append((start, language, path, "\n".join(lines[start:end]) + "\n"))
        i = end + 1
    return blocks


def work_directory(source_dir, build_dir):
    """A temporary directory that looks like the checkout's root with its build in `build`."""
    work = tempfile.mkdtemp(prefix="readme-blocks-")
    for name in sorted(os.listdir(source_dir)):
        if name.startswith("build") or name.startswith("."):
            continue
        os.symlink(os.path.join(source_dir, name), os.path.join(work, name))
    os.symlink(os.path.abspath(build_dir), os.path.join(work, "build"))
    return work


def block_environment(work):
    """The caller's environment without the project's variables; python3 is Debian's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMLLM_", "DENSEMLLM_"))}
    shims = os.path.join(work, ".readme-bin")
    os.mkdir(shims)
    os.symlink("/usr/bin/python3", os.path.join(shims, "python3"))
    env["PATH"] = shims + os.pathsep + env.get("PATH", "")
    return env


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source_dir, build_dir = (os.path.abspath(a) for a in sys.argv[1:])
    blocks = tested_blocks(os.path.join(source_dir, "README.md"))
    if not blocks:
        sys.exit("README.md has no tested (```LANG ci) blocks")
    work = work_directory(source_dir, build_dir)
    env = block_environment(work)
    failed = False
    try:
        for line, language, path, text in blocks:
            if path is not None:
                target = os.path.join(work, path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(text)
                print(f"README.md:{line}: wrote {path}")
                continue
            t0 = time.monotonic()
            run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=work, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            print(f"README.md:{line}: exit {run.returncode} after {time.monotonic() - t0:.1f} s")
            print("".join("    " + out for out in run.stdout.splitlines(keepends=True)), end="")
            if run.returncode != 0:
                print(f"README.md:{line}: this block failed:\n{text}")
                failed = True
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
