#!/usr/bin/env bash
# Reproduces the embedded tiny DenseMLLM (models/tiny) from its seed: trains it with NTP-M
# (tools/train/train.py), evaluates it in PyTorch on the held-out scenes (tools/train/evaluate.py)
# and compares the weights with the committed ones. One training thread and one data process;
# About 90 min on a 2-core machine (10,500 steps at 0.46-0.55 s), the same bits as committed.
#   bash scripts/train-tiny.sh [OUT_DIR]        default OUT_DIR: build/tiny-retrained
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DMLLM_SKIP_DEPS:-0}" != 1 ]; then bash scripts/install-deps.sh --torch; fi
# PyTorch's float32 matmuls go to OpenBLAS, whose kernels and thread split decide the last bits of
# every product. OpenBLAS picks its kernels by CPU (on a Xeon with AMX: SapphireRapids) and its
# threads by core count; the committed model's bits are those of the SkylakeX kernels on 2 threads
# (its logged losses come back with them, not with the Xeon's own), so those are pinned here.
# Without AVX-512 the SkylakeX kernels cannot run: training still works, to other weights.
export OPENBLAS_NUM_THREADS=2
if grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
else
    echo "train-tiny.sh: no AVX-512 on this CPU: OpenBLAS uses other kernels, the weights will differ" >&2
fi
out="${1:-build/tiny-retrained}"
settings=$(/usr/bin/python3 -c 'import json; l = json.load(open("models/tiny/training.json")); print(l["seed"], l["steps"])')
read -r seed steps <<<"$settings"
/usr/bin/python3 tools/train/train.py "$out" --seed "$seed" --steps "$steps"
/usr/bin/python3 tools/train/heldout.py "$out/heldout" --count 24
/usr/bin/python3 tools/train/evaluate.py "$out" "$out/heldout"
for f in model.safetensors tokenizer.json config.json readout_profile.json sample.png eval_pytorch.json; do
    if cmp -s "$out/$f" "models/tiny/$f"; then echo "$f: identical to models/tiny/$f"
    else echo "$f: DIFFERS from models/tiny/$f"; status=1; fi
done
exit "${status:-0}"
