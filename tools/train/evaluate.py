#!/usr/bin/python3
"""Evaluate a tiny DenseMLLM model directory in PyTorch on the held-out scenes (heldout.py), the
numbers the C library must reproduce (tests/test_tiny_model.c) and that the issue's thresholds
apply to. Writes MODEL_DIR/eval_pytorch.json.

    /usr/bin/python3 tools/train/evaluate.py MODEL_DIR HELDOUT_DIR

Metrics as metrics.md: mIoU over dataset-summed areas (mmseg), delta1 the mean of per-image values
over valid ground truth, cIoU = summed intersection / summed union, box IoU averaged per scene.
Readout as the C library's defaults for this model's readout profile (alignment "own", Eq. 6 mean
of sub-token logits, bilinear align_corners=False upsampling of the scores or, with "interpolation":
"probabilities", of their sigmoids, argmax; depth: scores upsampled depth_upsample times, argmax,
bins to metres, metres resized bilinearly to full size). Referring segmentation is the
two-stage pipeline: greedy grounding answer -> box -> 1.2x crop with the box drawn -> <FG>/<BG>
readout -> mask pasted back (nearest).
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch
from PIL import Image

import data
import scenes
import tiny_model as tm

ref = tm.ref
F = torch.nn.functional


def load_model(model_dir):
    cfg, W = ref.load_checkpoint(model_dir)
    W = {k: v.to(torch.float32) for k, v in W.items()}
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = tm.Tokenizer(json.load(f))
    return cfg, W, tok


def image_token_logits(W, cfg, vocab, image, prompt, ids_of_labels):
    """Label logits [hm, wm, K] at the image tokens (own alignment), K = len(ids_of_labels), each
    the mean of its ids' logits (Eq. 6)."""
    with torch.no_grad():
        embeds, grid = tm.encode_image(W, cfg, image)
        hm, wm = tm.merged_grid(grid)
        ids, pad0, _ = data.chat_ids(vocab, hm * wm, [(prompt, None)])
        hidden = tm.llm_hidden(W, cfg, ids, embeds)[pad0:pad0 + hm * wm]
        E = W["model.embed_tokens.weight"]
        scores = torch.stack([(hidden @ E[ids_k].T).mean(1) for ids_k in ids_of_labels], dim=1)
    return scores.view(hm, wm, -1)


def upsample(scores, h, w, probability_space=False):
    """[K, h, w] bilinear upsampling of scores [hm, wm, K] for an argmax; in probability space (profile
    "interpolation": "probabilities") of their sigmoids, clamped to [2^-24, 1 - 2^-24] as the C
    library clamps them."""
    if probability_space:
        scores = torch.sigmoid(scores)
    up = F.interpolate(scores.permute(2, 0, 1)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return up.clamp(2.0 ** -24, 1.0 - 2.0 ** -24) if probability_space else up


REPETITION_PENALTY = 1.05    # the official decoding (model-spec 4.9), also the C library's default


def greedy(W, cfg, vocab, image, prompt, max_new=40):
    """Greedy decoding on repetition-penalised logits (over every id of the context, as HF)."""
    eos = vocab.tok.id("<|end_of_text|>")
    with torch.no_grad():
        embeds, grid = tm.encode_image(W, cfg, image)
        hm, wm = tm.merged_grid(grid)
        ids, _, _ = data.chat_ids(vocab, hm * wm, [(prompt, None)])
        start = len(ids)
        E = W["model.embed_tokens.weight"]
        for _ in range(max_new):
            logits = tm.llm_hidden(W, cfg, ids, embeds)[-1] @ E.T
            nxt = int(ref.repetition_penalty(logits, ids, REPETITION_PENALTY).argmax())
            if nxt == eos:
                break
            ids.append(nxt)
    return vocab.tok.decode(ids[start:])


SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"   # class index of a token's argmax, one character
DEPTH_VALID = (1e-3, 25.0)                          # metres, strict bounds (metrics.md depth validity)
BOX = re.compile(r"<box><x_(\d+)><y_(\d+)><x_(\d+)><y_(\d+)></box>")


def box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def refer(W, cfg, vocab, image, phrase, probability_space):
    """(predicted box or None, predicted mask [H,W] bool)."""
    h, w = image.shape[:2]
    text = greedy(W, cfg, vocab, image, tm.PROMPT_GROUND.format(phrase=phrase))
    m = BOX.search(text)
    mask = np.zeros((h, w), bool)
    if not m:
        return None, mask
    x0, y0, x1, y1 = (int(v) for v in m.groups())
    x1, y1 = min(x1, w), min(y1, h)                    # clamped as dmllm_refer_segment does
    if x0 >= x1 or y0 >= y1:
        return None, mask
    crop, rect = data.crop_for_target(image, (x0, y0, x1, y1))
    ch, cw = data.crop_size(*crop.shape[:2])
    resized = np.asarray(Image.fromarray(crop).resize((cw, ch), Image.BILINEAR))
    scores = image_token_logits(W, cfg, vocab, resized, tm.PROMPT_FGBG, [[vocab.bg], [vocab.fg]])
    fg = upsample(scores, ch, cw, probability_space).argmax(0).numpy().astype(np.uint8)
    back = np.asarray(Image.fromarray(fg).resize((rect[2] - rect[0], rect[3] - rect[1]), Image.NEAREST))
    mask[rect[1]:rect[3], rect[0]:rect[2]] = back.astype(bool)
    return (x0, y0, x1, y1), mask


def evaluate(model_dir, heldout_dir):
    cfg, W, tok = load_model(model_dir)
    vocab = data.Vocabulary(tok)
    with open(os.path.join(model_dir, "readout_profile.json")) as f:
        profile = json.load(f)
    depth_upsample = profile["depth_upsample"]
    probability_space = profile.get("interpolation", "logits") == "probabilities"
    with open(os.path.join(heldout_dir, "index.json")) as f:
        index = json.load(f)
    n_cls = len(scenes.CLASSES)
    inter, union = np.zeros(n_cls), np.zeros(n_cls)
    token_hits = token_total = 0
    delta1 = []
    per_scene = []
    ref_inter = ref_union = 0
    box_ious = []
    for entry in index["scenes"]:
        base = os.path.join(heldout_dir, entry["name"])
        image = np.asarray(Image.open(base + ".png").convert("RGB"))
        labels = np.asarray(Image.open(base + ".labels.png"))
        depth = np.fromfile(base + ".depth.f32", "<f4").astype(np.float64).reshape(image.shape[:2])
        target = np.asarray(Image.open(base + ".target.png")).astype(bool)
        h, w = labels.shape
        prompt = tm.PROMPT_SEMANTIC.format(classes=", ".join(scenes.CLASSES))
        scores = image_token_logits(W, cfg, vocab, image, prompt, vocab.class_ids)
        hm, wm = scores.shape[:2]
        token_pred = scores.argmax(2).numpy()
        for r, c, sy, sx in data.token_areas(h, w):
            token_hits += int(token_pred[r, c] in data.present(labels[sy, sx], n_cls))
            token_total += 1
        pred = upsample(scores, h, w, probability_space).argmax(0).numpy()
        for k in range(n_cls):
            inter[k] += np.sum((pred == k) & (labels == k))
            union[k] += np.sum((pred == k) | (labels == k))

        dscores = image_token_logits(W, cfg, vocab, image, tm.PROMPT_DEPTH, [[i] for i in vocab.depth_ids])
        bins = upsample(dscores, depth_upsample * hm, depth_upsample * wm, probability_space).argmax(0) + 1
        metres = torch.tensor(data.bin_depth(bins.numpy()), dtype=torch.float64)
        full = F.interpolate(metres[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        valid = (depth > DEPTH_VALID[0]) & (depth < DEPTH_VALID[1])
        ratio = np.maximum(full[valid] / depth[valid], depth[valid] / full[valid])
        delta1.append(float(np.mean(ratio < 1.25)))

        box, mask = refer(W, cfg, vocab, image, entry["phrase"], probability_space)
        per_scene.append(dict(name=entry["name"], token_argmax="".join(SYMBOLS[k] for k in token_pred.ravel()),
                              box=list(box) if box else None))
        box_ious.append(box_iou(box, entry["box"]) if box else 0.0)
        ref_inter += int(np.sum(mask & target))
        ref_union += int(np.sum(mask | target))
    present = union > 0
    result = dict(
        scenes=len(index["scenes"]), heldout_seed=index["seed"],
        token_accuracy=token_hits / token_total,
        miou=float(np.mean(inter[present] / union[present])),
        per_class_iou={scenes.CLASSES[k]: round(float(inter[k] / union[k]), 4) for k in range(n_cls) if present[k]},
        depth_delta1=float(np.mean(delta1)),
        refseg_ciou=ref_inter / max(ref_union, 1),
        grounding_box_iou=float(np.mean(box_ious)),
        per_scene=per_scene)
    return result


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    result = evaluate(argv[0], argv[1])
    print(json.dumps(result, indent=1))
    with open(os.path.join(argv[0], "eval_pytorch.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
