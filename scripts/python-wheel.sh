#!/bin/sh
# python-wheel.sh LIBRARY OUT_DIR: builds the Python package's wheel into OUT_DIR with LIBRARY (a
# built libdensemllm.so) inside it under its SONAME, so the installed package needs neither
# DMLLM_LIB nor an installed C library. Offline, with Debian's pip, setuptools and wheel (no build
# isolation). A copy of bindings/python is built; the source tree gets no build files.
# `cmake --build build --target python-wheel` runs it into build/python-dist.
set -eu
lib=$1 out=$2
src=$(cd "$(dirname "$0")/../bindings/python" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$src/pyproject.toml" "$src/setup.py" "$src/README.md" "$src/densemllm" "$stage/"
rm -rf "$stage/densemllm/__pycache__" "$stage"/densemllm/libdensemllm.so*
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[ -n "$soname" ] || { echo "python-wheel.sh: $lib has no SONAME"; exit 1; }
cp "$lib" "$stage/densemllm/$soname" # cp follows the symlinks to the real file
mkdir -p "$out"
/usr/bin/python3 -m pip wheel --no-deps --no-build-isolation --no-index --disable-pip-version-check \
    --wheel-dir "$out" "$stage"
