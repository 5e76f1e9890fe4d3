#!/usr/bin/python3
"""Write a held-out set of synthetic scenes (a seed never used in training) as files, so the
PyTorch evaluation and the C library's tests read the very same inputs. numpy + PIL only (CI has
no torch).

    /usr/bin/python3 tools/train/heldout.py OUT_DIR [--count N] [--seed S]

OUT_DIR/index.json lists the scenes; per scene NAME.png (RGB), NAME.labels.png (8-bit class
index, classes in index.json), NAME.depth.f32 (raw little-endian float32 metres, row-major, 0 =
invalid; no PNG because the library's image loader reduces to 8 bits),
NAME.target.png (8-bit 0/1 mask of the referred object) and, in index.json, the phrase and the
referred object's box (x0, y0, x1, y1; x1, y1 exclusive).
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

import scenes

HELDOUT_SEED = 424242


def write_heldout(out_dir, count, seed=HELDOUT_SEED):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    while len(entries) < count:
        s = scenes.make_scene(rng)
        if s.target < 0:
            continue
        name = "scene%03d" % len(entries)
        Image.fromarray(s.image).save(os.path.join(out_dir, name + ".png"))
        Image.fromarray(s.labels).save(os.path.join(out_dir, name + ".labels.png"))
        s.depth.astype("<f4").tofile(os.path.join(out_dir, name + ".depth.f32"))
        target = s.objects[s.target]
        Image.fromarray(target["mask"].astype(np.uint8)).save(os.path.join(out_dir, name + ".target.png"))
        entries.append(dict(name=name, width=int(s.image.shape[1]), height=int(s.image.shape[0]),
                            phrase=s.phrase, box=list(target["box"]),
                            objects=[dict(name=o["name"], colour=o["colour"], box=list(o["box"])) for o in s.objects]))
    index = dict(seed=seed, classes=scenes.CLASSES, min_depth_m=scenes.MIN_DEPTH_M,
                 max_depth_m=scenes.MAX_DEPTH_M, scenes=entries)
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    return index


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--seed", type=int, default=HELDOUT_SEED)
    args = ap.parse_args(argv)
    write_heldout(args.out_dir, args.count, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
