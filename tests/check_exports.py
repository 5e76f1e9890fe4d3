#!/usr/bin/python3
"""Checks that libdensemllm.so exports exactly the functions include/densemllm.h declares with
DMLLM_API (no internal symbol leaks, no declared function missing) and that its SONAME carries the
ABI major version. Usage: check_exports.py HEADER LIBRARY ABI_VERSION"""
import re
import subprocess
import sys


def declared_functions(header_text):
    # Join declarations that span lines, then take the identifier before the first '('.
    text = re.sub(r"/\*.*?\*/", " ", header_text, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)  # macros, incl. the DMLLM_API definition
    names = set()
    for decl in re.findall(r"DMLLM_API\b([^;{]*?)\(", text):
        names.add(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", decl)[-1])
    return names


def exported_functions(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True, capture_output=True, text=True).stdout
    return {line.split()[2] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1] in "TW"}


def soname(library):
    out = subprocess.run(["objdump", "-p", library], check=True, capture_output=True, text=True).stdout
    match = re.search(r"SONAME\s+(\S+)", out)
    return match.group(1) if match else None


def main():
    header, library, abi = sys.argv[1], sys.argv[2], sys.argv[3]
    declared = declared_functions(open(header, encoding="utf-8").read())
    exported = exported_functions(library)
    failures = 0
    for name in sorted(declared - exported):
        print(f"declared in the header but not exported: {name}")
        failures += 1
    for name in sorted(exported - declared):
        print(f"exported but not declared with DMLLM_API: {name}")
        failures += 1
    expected_soname = f"libdensemllm.so.{abi}"
    if soname(library) != expected_soname:
        print(f"SONAME is {soname(library)!r}, expected {expected_soname!r}")
        failures += 1
    passed = len(declared & exported) + (soname(library) == expected_soname)
    print(f"{passed} passed, {failures} failed")
    return 1 if failures or not declared else 0


if __name__ == "__main__":
    sys.exit(main())
