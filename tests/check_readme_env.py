#!/usr/bin/python3
"""Checks that README.md's table of environment variables (the section "## Environment variables",
first column, one `NAME` per row) lists exactly the variables the sources read:
  - C:      getenv("NAME"), secure_getenv("NAME")
  - Python: os.environ["NAME"], os.environ.get("NAME"), os.getenv("NAME") (and .setdefault/.pop)
  - Rust:   env::var("NAME"), env::var_os("NAME"), env!/option_env!("NAME"),
            cargo:rerun-if-env-changed=NAME
  - shell:  ${NAME:-...}, ${NAME-...}, ${NAME:=...} (an upper-case name read with a default)
  - CMake:  $ENV{NAME}
in lib/, include/, tools/, bindings/, scripts/, tests/, bench/, examples/, cmake/ and the top-level
CMakeLists.txt (this script excepted). A variable read but not in the table fails (with the files reading it), and so does
a table row that no source reads any more, so the table cannot go stale either way.
Usage: check_readme_env.py SOURCE_DIR"""
import os
import re
import sys

SCANNED_DIRS = ["lib", "include", "tools", "bindings", "scripts", "tests", "bench", "examples", "cmake"]
SUFFIXES = (".c", ".h", ".py", ".rs", ".sh", ".cmake", "CMakeLists.txt")
NAME = r"([A-Za-z_][A-Za-z0-9_]*)"
PATTERNS = [
    re.compile(r"\b(?:secure_)?getenv\s*\(\s*[\"']" + NAME + r"[\"']"),
    re.compile(r"\benviron(?:\.get|\.setdefault|\.pop)?\s*[\[(]\s*[\"']" + NAME + r"[\"']"),
    re.compile(r"\benv::var(?:_os)?\s*\(\s*\"" + NAME + r"\""),
    re.compile(r"\b(?:option_)?env!\s*\(\s*\"" + NAME + r"\""),
    re.compile(r"rerun-if-env-changed=" + NAME),
    re.compile(r"\$ENV\{" + NAME + r"\}"),
]
SHELL_DEFAULT = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):?[-=]")
# Build output, caches and the fuzzers' corpora are not sources.
SKIPPED_DIRS = {"target", "__pycache__", "corpus", "regressions", "node_modules"}


def variables_read(source_dir):
    """{variable name: sorted list of the files reading it}."""
    found = {}
    paths = [os.path.join(source_dir, "CMakeLists.txt")]
    for top in SCANNED_DIRS:
        for root, dirs, files in os.walk(os.path.join(source_dir, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            paths += [os.path.join(root, f) for f in sorted(files) if f.endswith(SUFFIXES)]
    for path in paths:
        if os.path.samefile(path, __file__):
            continue  # this file's patterns and docstring name no variables
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        patterns = PATTERNS + ([SHELL_DEFAULT] if path.endswith(".sh") else [])
        for pattern in patterns:
            for name in pattern.findall(text):
                found.setdefault(name, set()).add(os.path.relpath(path, source_dir))
    return {name: sorted(files) for name, files in found.items()}


def readme_table(readme_path):
    """The variable names in the first column of the table under "## Environment variables"."""
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^## Environment variables\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    if not section:
        return None
    names = set()
    for line in section.group(1).splitlines():
        cell = re.match(r"\|\s*([^|]*)\|", line)
        if cell:
            names |= set(re.findall(r"`" + NAME + r"`", cell.group(1)))
    return names


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source_dir = sys.argv[1]
    read = variables_read(source_dir)
    table = readme_table(os.path.join(source_dir, "README.md"))
    if table is None:
        sys.exit("README.md has no section '## Environment variables'")
    problems = []
    for name in sorted(set(read) - table):
        problems.append(f"{name}: read by {', '.join(read[name])}, missing from README.md's table")
    for name in sorted(table - set(read)):
        problems.append(f"{name}: in README.md's table, but no source reads it")
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"README.md documents all {len(read)} environment variables the sources read")


if __name__ == "__main__":
    main()
