#!/usr/bin/python3
"""The tiny model's figures (README.md, models/tiny/README.md) as mean and spread over fresh draws
of held-out scenes: tools/train/heldout.py with seeds that training never used (train.py draws its
samples from Generators seeded [seed, k] with seed 1, its sample picture from 10001; heldout.py's
own set is 424242, the validation sets 777 and 778), read through the C library (Python binding,
default compute path) as tests/test_tiny_model.c reads its 24 scenes.

    /usr/bin/python3 scripts/eval-tiny.py [--seeds 9001,9002,9003,9004] [--count 32]
        [--model models/tiny] [--work DIR] [--only depth] [--json FILE] [--jobs N]

Needs the built library: $DMLLM_LIB, else build/libdensemllm.so of this tree. Prints one row per
seed and the mean (min-max) per metric; --json writes the same numbers.
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("DMLLM_LIB", os.path.join(ROOT, "build", "libdensemllm.so"))

import heldout  # noqa: E402  (tools/train)
import densemllm as dm  # noqa: E402

TOKEN_PX = 32
MIN_COVERAGE = 0.08    # tools/train/data.py: a class is a token's positive from 8% of its area
DEPTH_VALID_MAX = 25.0  # above every depth of the scenes, as tools/train/evaluate.py

# (key, heading) in table order; "depth" keeps only the depth rows.
METRICS = [("token_accuracy", "token acc."), ("miou_crf", "mIoU CRF"), ("miou_plain", "mIoU plain"),
           ("delta1", "delta1"), ("abs_rel", "AbsRel"), ("refseg_ciou_plain", "ref. cIoU plain"),
           ("refseg_ciou_crf", "ref. cIoU CRF"), ("box_iou", "box IoU"), ("fgbg_true_box", "FG/BG true box")]
DEPTH_ONLY = ("delta1", "abs_rel")


def token_accuracy_hits(token_scores, labels, n_classes):
    """Tokens whose argmax class is a positive (>= MIN_COVERAGE of the token's area, or the most)."""
    th, tw, _ = token_scores.shape
    best = token_scores.argmax(axis=2)
    hits = 0
    for r in range(th):
        for c in range(tw):
            cell = labels[r * TOKEN_PX:(r + 1) * TOKEN_PX, c * TOKEN_PX:(c + 1) * TOKEN_PX]
            counts = np.bincount(cell.ravel(), minlength=n_classes)
            k = best[r, c]
            hits += int(k == counts.argmax() or counts[k] >= MIN_COVERAGE * TOKEN_PX * TOKEN_PX)
    return hits, th * tw


def evaluate_seed(session, scene_dir, index, only_depth):
    classes = index["classes"]
    n = len(classes)
    seg_crf, seg_plain = dm.SegMetrics(n), dm.SegMetrics(n)
    depth = dm.DepthMetrics(max_depth=DEPTH_VALID_MAX)
    refer_plain, refer_crf, true_box = dm.MaskMetrics(), dm.MaskMetrics(), dm.MaskMetrics()
    hits = tokens = 0
    box_ious = []
    for entry in index["scenes"]:
        base = os.path.join(scene_dir, entry["name"])
        image = dm.Image.open(base + ".png")
        labels = np.asarray(Image.open(base + ".labels.png"), dtype=np.uint16)
        gt_depth = np.fromfile(base + ".depth.f32", "<f4").reshape(labels.shape)
        d = session.depth(image)
        depth.add(d.depth_m, gt_depth)
        if only_depth:
            continue
        plain = session.segment(image, classes, evaluation=False, keep_token_scores=True,
                                readout=dm.SemanticReadout.ALL)
        seg_plain.add(plain.labels, labels)
        h, t = token_accuracy_hits(np.asarray(plain.token_scores), labels, n)
        hits, tokens = hits + h, tokens + t
        crf = session.segment(image, classes, evaluation=True, readout=dm.SemanticReadout.ALL)
        seg_crf.add(crf.labels, labels)
        target = np.asarray(Image.open(base + ".target.png"), dtype=np.uint8)
        r_plain = session.refer_segment(image, entry["phrase"], evaluation=False)
        r_crf = session.refer_segment(image, entry["phrase"], evaluation=True)
        refer_plain.add(r_plain.mask, target)
        refer_crf.add(r_crf.mask, target)
        box_ious.append(dm.box_iou(r_plain.box, entry["box"]) if r_plain.found else 0.0)
        true_box.add(session.segment_box(image, entry["box"], evaluation=False), target)
    scores = depth.result()
    out = dict(delta1=scores.delta1, abs_rel=scores.abs_rel)
    if not only_depth:
        out.update(token_accuracy=hits / tokens, miou_crf=seg_crf.result().miou,
                   miou_plain=seg_plain.result().miou, refseg_ciou_plain=refer_plain.result().ciou,
                   refseg_ciou_crf=refer_crf.result().ciou, box_iou=float(np.mean(box_ious)),
                   fgbg_true_box=true_box.result().ciou)
    return out


def run_seed(args, seed):
    """One draw: its scenes (written on first use, kept), then its metrics. Loads its own model, so
    that draws can run in parallel processes."""
    scene_dir = os.path.join(args.work, "seed%d-n%d" % (seed, args.count))
    index_path = os.path.join(scene_dir, "index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    else:
        index = heldout.write_heldout(scene_dir, args.count, seed)
    t0 = time.time()
    with dm.Model(args.model) as model, model.session() as session:
        row = evaluate_seed(session, scene_dir, index, args.only == "depth")
    return seed, row, time.time() - t0


def run_seed_star(args_seed):
    return run_seed(*args_seed)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="9001,9002,9003,9004")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "eval-tiny"),
                    help="where the scenes are written (kept: a second run reuses them)")
    ap.add_argument("--only", choices=["depth"], help="only the depth metrics")
    ap.add_argument("--json", help="write the per-seed numbers here")
    ap.add_argument("--jobs", type=int, default=1, help="draws evaluated at once, one process each")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    keys = [k for k, _ in METRICS if not args.only or k in DEPTH_ONLY]
    with dm.Model(args.model) as model:
        compute = model.info.compute
    print("%s, compute %s, %d scenes per seed" % (args.model, compute, args.count))
    print("%-8s" % "seed" + "".join("%16s" % h for k, h in METRICS if k in keys))
    rows = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for seed, row, seconds in pool.imap(run_seed_star, [(args, seed) for seed in seeds]):
            rows[seed] = row
            print("%-8d" % seed + "".join("%16.3f" % row[k] for k in keys) + "   (%.0f s)" % seconds, flush=True)
    values = {k: np.array([rows[s][k] for s in seeds]) for k in keys}
    print("%-8s" % "mean" + "".join("%16.3f" % values[k].mean() for k in keys))
    print("%-8s" % "min-max" + "".join("%16s" % ("%.3f-%.3f" % (values[k].min(), values[k].max())) for k in keys))
    print("%-8s" % "std" + "".join("%16.3f" % values[k].std(ddof=1 if len(seeds) > 1 else 0) for k in keys))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, count=args.count, compute=compute,
                           seeds={str(s): rows[s] for s in seeds}), f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
