#!/usr/bin/env bash
# Installs the Debian dependencies (unless DMLLM_SKIP_DEPS=1) and builds into ./build (Release).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DMLLM_SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
