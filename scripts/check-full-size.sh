#!/usr/bin/env bash
# Checks that a checkpoint at the FULL Youtu-VL-4B shapes (random bf16 weights, ~10.7 GB, written to
# a scratch directory and never committed) loads and runs one small image end to end, and prints the
# peak resident memory and wall time. Needs ~11 GB free disk and ~24 GB RAM.
# Usage: scripts/check-full-size.sh [SCRATCH_DIR]   (default /tmp/densemllm-full)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/densemllm-full}
[ -x build/densemllm ] || DMLLM_SKIP_DEPS=1 bash scripts/build.sh
if [ ! -f "$dir/model.safetensors.index.json" ]; then
    /usr/bin/time -f "generate: %e s wall" /usr/bin/python3 tools/make_checkpoint.py "$dir" --full
fi
./build/densemllm info "$dir"
# 64 image tokens (a 256x256 input), labels = a few ordinary ids; the point is the shapes, not the answer.
/usr/bin/time -f "run: %e s wall, peak RSS %M KiB" \
    ./build/densemllm readout --model "$dir" --max-patches 256 --labels 1000,2000,3000,4000 \
    examples/images/chelsea.png
