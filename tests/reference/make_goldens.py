#!/usr/bin/python3
"""Create the golden fixture cases under tests/fixtures/golden/<case>/ (format: that README).

For each case: a random checkpoint (tools/make_checkpoint.py, real tensor names), a downscaled
real photo, chat prompts built from ids (model-spec §4.8), and the float64 PyTorch reference
outputs of youtu_vl_ref.py stored as golden.safetensors. Also asserts that the absorbed MLA
decode form reproduces the non-absorbed one. Writes only inside tests/fixtures/golden/.

    /usr/bin/python3 tests/reference/make_goldens.py [case ...]
"""
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_checkpoint as mc  # noqa: E402
import youtu_vl_ref as ref  # noqa: E402

GOLDEN_DIR = os.path.join(ROOT, "tests", "fixtures", "golden")
IMAGES = os.environ.get("DMLLM_SHARED_DIR", os.path.join(ROOT, "..", "shared")) + "/testdata/images"

LABEL_COUNT = 6
GREEDY_STEPS = 20
# The penalised greedy run: 2.5 breaks the single-token lock of these random models in all cases
# (20 distinct tokens each). Its near-ties are smaller than the greedy ones, down to ~2e-4
# relative; PENALTY_MIN_MARGIN is still 100x the C library's f32 logit error (~7e-7), and only the
# f32 paths compare these ids.
PENALTY = 2.5
PENALTY_STEPS = 20
PENALTY_MIN_MARGIN = 1e-4

# Each case: checkpoint dims (overrides of the "small" preset), dtype, shards, seed, and the
# source photo with the crop/downscale that yields the intended patch grid.
CASES = {
    "one_window": dict(
        about="grid 16x16 patches -> merged 8x8 = exactly one 8x8 window; upscale path of the "
              "size rule (245x250 -> 256x256); f32, single file",
        dims=dict(),
        dtype="f32", shards=1, seed=11, min_margin=2e-3,
        photo="skimage_chelsea.png", crop=None, original_hw=(245, 250), max_num_patches=256,
        expect_grid=(16, 16)),
    "ragged": dict(
        about="grid 20x18 patches -> merged 10x9 -> 2x2 ragged windows (8x8, 8x1, 2x8, 2x1); "
              "shrink path of the size rule (340x300, s=0.94); 4 vision layers, full attention "
              "at [1,3]; vision heads 2, text heads 3; f32, 2 shards + index",
        dims=dict(num_attention_heads=3, v_num_attention_heads=2, v_num_hidden_layers=4,
                  v_fullatt_block_indexes=[1, 3]),
        dtype="f32", shards=2, seed=22, min_margin=2e-3,
        photo="skimage_astronaut.png", crop=(40, 80, 380, 380), original_hw=(340, 300),
        max_num_patches=360, expect_grid=(20, 18)),
    "bf16": dict(
        about="BF16 weights; grid 12x20 patches -> merged 6x10 -> 1x2 windows (6x8, 6x2); "
              "vision hidden 48/heads 2 (head_dim 24), text hidden 64/heads 2, rope 8, "
              "kv_lora 24, v_head 16; single file",
        dims=dict(hidden_size=64, intermediate_size=128, num_attention_heads=2, q_lora_rank=32,
                  kv_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16,
                  vocab_size=520, v_hidden_size=48, v_intermediate_size=96,
                  v_num_hidden_layers=2, v_num_attention_heads=2, v_fullatt_block_indexes=[1]),
        dtype="bf16", shards=1, seed=34, min_margin=1e-2,
        photo="sklearn_china.jpg", crop=None, original_hw=(180, 300), max_num_patches=240,
        expect_grid=(12, 20)),
}


def load_photo(spec):
    img = Image.open(os.path.join(IMAGES, spec["photo"])).convert("RGB")
    if spec["crop"]:
        img = img.crop(spec["crop"])
    h, w = spec["original_hw"]
    return np.asarray(img.resize((w, h), Image.LANCZOS), dtype=np.uint8)


def build_prompts(cfg, n_image, rng):
    """§4.8 chat template from ids: image-first and text-first variants. Words and the
    "\\n"/role tokens are fixed random ids below bos_token_id."""
    text = lambda n: [int(v) for v in rng.integers(0, cfg["bos_token_id"], n)]  # noqa: E731
    nl, system, user, assistant = text(4)
    sys_words, user_words = text(6), text(5)
    bos, eos = cfg["bos_token_id"], cfg["eos_token_id"]
    image = [cfg["vision_start_token_id"]] + [cfg["image_token_id"]] * n_image + [cfg["vision_end_token_id"]]
    head = [bos, system, nl] + sys_words + [eos, nl, bos, user, nl]
    tail = [eos, nl, bos, assistant, nl]
    return head + image + user_words + tail, head + user_words + image + tail


def relative_margin(logits):
    """Smallest (top1 - top2) gap over rows, relative to max |logit|."""
    top = np.sort(logits, axis=1)
    return float((top[:, -1] - top[:, -2]).min() / np.abs(logits).max())


def choose_labels(case_dir, image_rgb, max_num_patches, input_ids, cfg, rng, min_margin,
                  tries=4000):
    """Pick LABEL_COUNT text ids whose argmax over the image tokens varies (so the readout test
    is discriminative) and never nearly ties (min relative top1-top2 gap >= min_margin at both
    the own and the previous position, so an implementation within tolerance cannot flip an
    argmax)."""
    candidates = list(range(cfg["bos_token_id"]))
    out = ref.run_reference(case_dir, image_rgb, max_num_patches, input_ids, candidates, input_ids, 1)
    own, prev = f32(out["image_logits_own"]), f32(out["image_logits_prev"])
    best, best_score = None, None
    for _ in range(tries):
        pick = rng.choice(len(candidates), LABEL_COUNT, replace=False)
        margin = min(relative_margin(own[:, pick]), relative_margin(prev[:, pick]))
        if margin < min_margin:
            continue
        counts = np.bincount(own[:, pick].argmax(1), minlength=LABEL_COUNT)
        score = (int((counts > 0).sum()), -int(counts.max()), margin)
        if best_score is None or score > best_score:
            best, best_score = pick, score
    if best is None:
        raise RuntimeError("no label set without near-ties")
    return [candidates[i] for i in best]


def f32(t):
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float32)


def write_golden(path, tensors, metadata):
    dtype_name = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}
    entries = []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        entries.append((name, dtype_name[arr.dtype], list(arr.shape), (lambda a=arr: [a.tobytes()])))
    # I32 vectors of odd length make 8-byte alignment impossible without holes; every tensor is
    # 4-byte aligned (enough for F32/I32) because the U8 image (any size) goes last.
    entries.sort(key=lambda e: e[1] == "U8")
    mc.write_safetensors(path, entries, metadata, align=4)


def make_case(name, spec):
    t0 = time.time()
    case_dir = os.path.join(GOLDEN_DIR, name)
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    dims = dict(mc.PRESETS["small"])
    dims.update(spec["dims"])
    mc.make_checkpoint(case_dir, dims, spec["dtype"], spec["shards"], spec["seed"])
    cfg = mc.build_config(dims, spec["dtype"])

    image_rgb = load_photo(spec)
    grid = ref.target_size(*image_rgb.shape[:2], spec["max_num_patches"])
    grid = (grid[0] // 16, grid[1] // 16)
    assert grid == spec["expect_grid"], (name, grid)
    n_image = grid[0] * grid[1] // 4
    rng = np.random.default_rng(spec["seed"] + 1000)
    input_ids, input_ids_tf = build_prompts(cfg, n_image, rng)
    label_ids = choose_labels(case_dir, image_rgb, spec["max_num_patches"], input_ids, cfg, rng,
                              spec["min_margin"])

    out = ref.run_reference(case_dir, image_rgb, spec["max_num_patches"], input_ids, label_ids,
                            input_ids_tf, GREEDY_STEPS, PENALTY, PENALTY_STEPS)
    assert out["absorbed_max_rel_diff"] < 1e-12, out["absorbed_max_rel_diff"]
    tensors = {
        "image_rgb": image_rgb,
        "max_num_patches": np.array([spec["max_num_patches"]], np.int32),
        "resize_mode": np.array([1], np.int32),
        "grid": np.array(out["grid"], np.int32),
        "pixel_values": f32(out["pixel_values"]),
        "vision_out": f32(out["vision_out"]),
        "image_embeds": f32(out["image_embeds"]),
        "input_ids": np.array(input_ids, np.int32),
        "hidden": f32(out["hidden"]),
        "label_ids": np.array(label_ids, np.int32),
        "image_logits_own": f32(out["image_logits_own"]),
        "image_logits_prev": f32(out["image_logits_prev"]),
        "last_logits": f32(out["last_logits"]),
        "greedy_ids": np.array(out["greedy_ids"], np.int32),
        "greedy_logits": f32(out["greedy_logits"]),
        "repetition_penalty": np.array([PENALTY], np.float32),
        "penalty_ids": np.array(out["penalty_ids"], np.int32),
        "penalty_logits": f32(out["penalty_logits"]),
        "input_ids_text_first": np.array(input_ids_tf, np.int32),
        "hidden_text_first": f32(out["hidden_text_first"]),
    }
    write_golden(os.path.join(case_dir, "golden.safetensors"), tensors,
                 {"case": name, "about": spec["about"], "generator": "tests/reference/make_goldens.py",
                  "absorbed_max_rel_diff": "%.3e" % out["absorbed_max_rel_diff"]})
    greedy_margin = relative_margin(tensors["greedy_logits"])
    assert greedy_margin > spec["min_margin"], ("greedy near-tie", greedy_margin)
    penalised = np.stack([ref.repetition_penalty(out["penalty_logits"][i], input_ids + out["penalty_ids"][:i],
                                                 PENALTY).numpy() for i in range(PENALTY_STEPS)])
    penalty_margin = relative_margin(penalised)
    assert penalty_margin > PENALTY_MIN_MARGIN, ("penalised greedy near-tie", penalty_margin)
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    own = tensors["image_logits_own"]
    print("%s: grid %s, T=%d, N=%d, %.2f MB, absorbed-vs-plain max rel diff %.2e, %.1f s"
          % (name, grid, len(input_ids), n_image, size / 1e6, out["absorbed_max_rel_diff"],
             time.time() - t0))
    print("   std vision_out %.3f image_embeds %.3f hidden %.3f last_logits %.3f; "
          "label argmax histogram %s (min rel margin %.1e); greedy %s (min rel margin %.1e); "
          "penalised greedy %s (min rel margin %.1e)"
          % (tensors["vision_out"].std(), tensors["image_embeds"].std(), tensors["hidden"].std(),
             tensors["last_logits"].std(), np.bincount(own.argmax(1), minlength=LABEL_COUNT).tolist(),
             min(relative_margin(own), relative_margin(tensors["image_logits_prev"])),
             tensors["greedy_ids"].tolist(), greedy_margin, tensors["penalty_ids"].tolist(), penalty_margin))


def main(argv):
    names = argv or list(CASES)
    for name in names:
        make_case(name, CASES[name])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
