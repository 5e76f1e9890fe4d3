#!/usr/bin/env bash
# README command 1: set up a fresh machine, build, and run the main job on the embedded default
# model (models/tiny): semantic segmentation and depth of its sample image, written to build/demo/
# (segment/: overlay with legend, palette label map, mask text; depth/: 16-bit and colour depth
# maps, the bin-grid text; a JSON summary in each).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
out=build/demo
classes=$(/usr/bin/python3 -c 'import json; print(", ".join(json.load(open("models/tiny/training.json"))["classes"]))')
./build/densemllm segment --classes "$classes" --out "$out/segment" models/tiny/sample.png
./build/densemllm depth --out "$out/depth" models/tiny/sample.png
echo "densemllm demo: results in $out/"
ls -l "$out"/segment "$out"/depth
