#!/bin/sh
# int8 against bf16 weights on a full-size checkpoint, each run alone under the full-size lock:
#  1. accuracy: `densemllm readout` of 16 label ids on the shared photos (1024 patches each), the
#     image-token argmax maps of both runs compared token by token;
#  2. speed and memory: `densemllm bench` (one dense query, then a second) at 448x448 and
#     1024x1024, with /usr/bin/time -v for the peak RSS.
# Usage: bench/int8_fullsize.sh MODEL_DIR OUT_DIR   (from the build directory; env DMLLM_LABELS
# overrides the label ids, DMLLM_PHOTOS the photo folder, DMLLM_FULLSIZE_LOCK the lock file)
set -eu
MODEL=$1
OUT=$2
LOCK=${DMLLM_FULLSIZE_LOCK:-${XDG_CACHE_HOME:-$HOME/.cache}/densemllm/fullsize.lock}
PHOTOS=${DMLLM_PHOTOS:-../../shared/testdata/images}
LABELS=${DMLLM_LABELS:-1000,5000,9000,13000,17000,21000,25000,29000,33000,37000,41000,45000,49000,53000,57000,61000}
mkdir -p "$OUT" "$(dirname "$LOCK")"
for w in bf16 int8; do
    flock "$LOCK" /usr/bin/time -v ./densemllm readout --model "$MODEL" --weights $w --max-patches 1024 --quiet \
        --out "$OUT" --labels $LABELS "$PHOTOS"/*.png "$PHOTOS"/*.jpg >"$OUT/readout_$w.txt" 2>"$OUT/readout_$w.time"
done
/usr/bin/python3 - "$OUT/readout_bf16.txt" "$OUT/readout_int8.txt" <<'PY'
import sys
def maps(path):
    """The argmax map rows of each image, in order."""
    out, rows = [], None
    for line in open(path):
        if line.startswith("argmax map"):
            rows = []
            out.append(rows)
        elif rows is not None and line.startswith("  ") and line.strip():
            rows.append(line.strip())
        else:
            rows = None
    return out
a, b = maps(sys.argv[1]), maps(sys.argv[2])
assert len(a) == len(b) and a, (len(a), len(b))
shares = []
for i, (x, y) in enumerate(zip(a, b)):
    tx, ty = "".join(x), "".join(y)
    same = sum(p == q for p, q in zip(tx, ty))
    shares.append(same / len(tx))
    print(f"image {i}: int8 argmax equal to bf16 on {same} of {len(tx)} image tokens")
print(f"mean over {len(shares)} images: {100 * sum(shares) / len(shares):.2f} %")
PY
for size in 448x448 1024x1024; do
    for w in bf16 int8; do
        flock "$LOCK" /usr/bin/time -v ./densemllm bench --model "$MODEL" --weights $w --size $size --repeat 1 \
            --label-ids $LABELS --quiet >"$OUT/bench_${w}_$size.txt" 2>"$OUT/bench_${w}_$size.time"
        echo "$w $size: $(grep -h 'first query' "$OUT/bench_${w}_$size.txt")" \
             "peak RSS $(grep -h 'Maximum resident' "$OUT/bench_${w}_$size.time" | awk '{print $NF}') kB"
    done
done
