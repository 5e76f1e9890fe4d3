#!/usr/bin/env bash
# README command 2: set up a fresh machine, build, and run the whole test suite under CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd build
ctest --output-on-failure -j2 --timeout 1800
