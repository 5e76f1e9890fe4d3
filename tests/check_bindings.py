#!/usr/bin/python3
"""Checks that the language bindings cover every function include/densemllm.h declares with
DMLLM_API:
  - Python (bindings/python/densemllm): a prototype in _capi.PROTOTYPES and a use outside that
    table (a wrapper calling it);
  - Rust (bindings/rust/densemllm-sys/src/lib.rs): an extern declaration `fn dmllm_...(`. The crate
    is checked only when bindings/rust/densemllm-sys exists; then a missing lib.rs fails.
Deliberate omissions go in tests/bindings_allowlist.txt, one `BINDING FUNCTION REASON` per line
(BINDING = python or rust); an entry without a reason, for a function the header does not declare,
or for a function the binding does cover fails, so the list stays true.
Usage: check_bindings.py SOURCE_DIR"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_exports import declared_functions  # noqa: E402 - the same header parser as the ABI check


def python_coverage(package_dir):
    """(prototyped names, names used by the wrappers) of the Python package."""
    prototyped, used = set(), set()
    for name in sorted(os.listdir(package_dir)):
        if not name.endswith(".py"):
            continue
        text = open(os.path.join(package_dir, name), encoding="utf-8").read()
        if name == "_capi.py":
            table = re.search(r"^PROTOTYPES = \{\n(.*?)^\}", text, flags=re.S | re.M)
            if table:
                prototyped |= set(re.findall(r'^\s*"(dmllm_\w+)":', table.group(1), flags=re.M))
                text = text[:table.start()] + text[table.end():]
        # A use is an attribute of the loaded library (`_lib.dmllm_x`) or a quoted name looked up on
        # it (the *_sizeof checks); a mention in a docstring is not.
        used |= set(re.findall(r"lib\.(dmllm_\w+)\b", text)) | set(re.findall(r'"(dmllm_\w+)"', text))
    return prototyped, used


def rust_coverage(lib_rs):
    return set(re.findall(r"\bfn\s+(dmllm_\w+)\s*\(", open(lib_rs, encoding="utf-8").read()))


def read_allowlist(path, declared, problems):
    allowed = {}
    for number, line in enumerate(open(path, encoding="utf-8") if os.path.exists(path) else [], 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[0] not in ("python", "rust"):
            problems.append(f"{os.path.basename(path)}:{number}: expected 'python|rust FUNCTION REASON'")
        elif parts[1] not in declared:
            problems.append(f"{os.path.basename(path)}:{number}: {parts[1]} is not declared in the header")
        else:
            allowed[(parts[0], parts[1])] = number
    return allowed


def main():
    source = sys.argv[1]
    declared = declared_functions(open(os.path.join(source, "include", "densemllm.h"), encoding="utf-8").read())
    problems = []
    allowed = read_allowlist(os.path.join(source, "tests", "bindings_allowlist.txt"), declared, problems)

    covered = {}
    prototyped, used = python_coverage(os.path.join(source, "bindings", "python", "densemllm"))
    covered["python"] = prototyped & used
    for name in sorted(declared - prototyped):
        if ("python", name) not in allowed:
            problems.append(f"python: {name} has no prototype in densemllm/_capi.py")
    for name in sorted((declared & prototyped) - used):
        if ("python", name) not in allowed:
            problems.append(f"python: {name} is declared but no wrapper calls it")
    for name in sorted(prototyped - declared):
        problems.append(f"python: _capi.py declares {name}, which the header does not")

    crate = os.path.join(source, "bindings", "rust", "densemllm-sys")
    if os.path.isdir(crate):
        lib_rs = os.path.join(crate, "src", "lib.rs")
        if not os.path.isfile(lib_rs):
            problems.append(f"rust: {lib_rs} is missing")
        else:
            covered["rust"] = rust_coverage(lib_rs)
            for name in sorted(declared - covered["rust"]):
                if ("rust", name) not in allowed:
                    problems.append(f"rust: densemllm-sys has no `fn {name}`")
    else:
        print("rust: bindings/rust/densemllm-sys does not exist; not checked")

    for (binding, name), number in sorted(allowed.items()):
        if binding in covered and name in covered[binding]:
            problems.append(f"bindings_allowlist.txt:{number}: {binding} covers {name}; remove the entry")

    for problem in problems:
        print(problem)
    for binding, names in covered.items():
        print(f"{binding}: {len(names & declared)} of {len(declared)} header functions covered")
    print(f"{len(problems)} problems")
    return 1 if problems or not declared else 0


if __name__ == "__main__":
    sys.exit(main())
