"""Training and evaluation samples of the tiny DenseMLLM: a token sequence in the official chat
layout (model-spec §4.8, image before text), the NTP-M targets of the image tokens (model-spec
§9.1) and the supervised answer tokens.

Two kinds of sample:
  scene  the whole synthetic scene; image tokens carry class-name sub-tokens, depth bins (an
         object's own where it covers at least half of the token), their position and the box of
         the object covering at least half of them; the first answer is one of: segmentation reply,
         depth reply, grounding box, detection, VQA; then up to EXTRA_GROUNDING_TURNS more turns
         ground objects whose box no earlier answer gave (the image is encoded once for all).
  crop   the referred object's box, jittered as a grounding answer would be, padded 1.2x, cropped,
         drawn on, resized so the short side is CROP_SHORT_SIDE (the referring pipeline's second
         stage); image tokens carry <FG>/<BG> and their position; the answer is the FG/BG reply.
NTP-M per image token i: positives P_i = the ids above; valid ids M_i = the whole vocabulary minus
the ids of tasks this sample has no annotation for (depth ids where the token has no valid depth,
class and depth ids in crops, <FG>/<BG> in scenes) and minus the coordinates within
COORD_TOLERANCE_PX of a positive one (near misses are neither right nor wrong).

Position and boxes go beyond the report's NTP-M targets (classes, depth bins, FG/BG). Grounding
answers are absolute pixel coordinates, but nothing in the architecture is absolute: the ViT has
relative 2-D RoPE and no position embedding, the LLM 1-D RoPE (model-spec §3, §4.2). The tiny ViT
still learns where a patch is within a few hundred steps when told (what it goes by, borders or
content, was not pinned down), yet not from a few thousand grounding answers. So every image token
also has as positives its own centre <x_>, <y_> and the corners <x_x0>, <y_y0>, <x_x1>, <y_y1> of
the object covering at least half of it: the dense form of the grounding and detection answers,
which then only have to copy them. Must not import the C library.
"""
import math

import numpy as np
from PIL import Image

import scenes
import tiny_model as tm

TOKEN_PX = 32                 # one merged image token = 32 x 32 input pixels (model-spec §6.4)
MIN_COVERAGE = 0.08           # a class / depth bin is a positive of a token covering >= 8% of its area
CROP_SHORT_SIDE = 256
CROP_PAD = 1.2
CROP_BOX_PX = 2
CROP_JITTER = 0.08            # std of each crop box edge's shift, in units of the box's size
COORD_TOLERANCE_PX = 3
EXTRA_GROUNDING_TURNS = 2     # grounding questions on other objects after a scene's first turn


def depth_bin(depth_m):
    """Log-uniform bins 1..DEPTH_BINS over [MIN_DEPTH_M, MAX_DEPTH_M]; 0 where depth is invalid."""
    d = np.asarray(depth_m, np.float64)
    lo, hi, n = scenes.MIN_DEPTH_M, scenes.MAX_DEPTH_M, tm.DEPTH_BINS
    k = 1 + np.rint(np.log(np.clip(d, lo, hi) / lo) / math.log(hi / lo) * (n - 1))
    return np.where(d > 0, k, 0).astype(np.int64)


def bin_depth(k):
    lo, hi, n = scenes.MIN_DEPTH_M, scenes.MAX_DEPTH_M, tm.DEPTH_BINS
    return lo * (hi / lo) ** ((np.asarray(k, np.float64) - 1) / (n - 1))


class Vocabulary:
    """Token ids the samples need, from the tokenizer."""

    def __init__(self, tok):
        self.tok = tok
        self.class_ids = [tok.encode(c) for c in scenes.CLASSES]
        self.all_class_ids = sorted({i for ids in self.class_ids for i in ids})
        self.depth_ids = [tok.id("<custom_%d>" % k) for k in range(1, tm.DEPTH_BINS + 1)]
        self.fg, self.bg = tok.id("<FG>"), tok.id("<BG>")
        self.image_pad = tok.id("<|image_pad|>")
        self.first_coordinate = tok.id("<x_0>")

    def coord_id(self, axis, value):
        """Id of <x_value> (axis 0) or <y_value> (axis 1): interleaved, model-spec §4.9."""
        return self.first_coordinate + 2 * coordinate(value) + axis

    def coord(self, axis, value):
        return "<%s_%d>" % (axis, coordinate(value))


def coordinate(value):
    """A pixel coordinate as the model writes it: rounded, clamped to the coordinate tokens."""
    return int(min(max(round(value), 0), tm.COORDINATES - 1))


def chat_ids(vocab, n_image_tokens, turns):
    """(ids, first image pad index, answer spans) of a conversation in the chat layout of model-spec
    §4.8: turns = [(prompt, answer), ...], the image in the first user turn. ids[start:end] for
    (start, end) in answer spans are an answer and its <|end_of_text|>; a last answer of None leaves
    the ids open at the assistant's turn (for generation)."""
    tok = vocab.tok
    head = tok.encode("<|begin_of_text|>system\n%s<|end_of_text|>\n<|begin_of_text|>user\n<|vision_start|>" % tm.SYSTEM)
    ids = head + [vocab.image_pad] * n_image_tokens + tok.encode("<|vision_end|>")
    spans = []
    for i, (prompt, answer) in enumerate(turns):
        opening = "" if i == 0 else "\n<|begin_of_text|>user\n"     # the image opened the first
        ids += tok.encode("%s%s<|end_of_text|>\n<|begin_of_text|>assistant\n" % (opening, prompt))
        if answer is not None:
            start = len(ids)
            ids += tok.encode(answer + "<|end_of_text|>")
            spans.append((start, len(ids)))
    return ids, len(head), spans


def answer_positions(sample):
    """(positions, ids): every answer token of sample["answer_spans"] and the position predicting it
    (the one before it)."""
    positions = [p for start, end in sample["answer_spans"] for p in range(start - 1, end - 1)]
    return positions, [sample["ids"][p + 1] for p in positions]


def token_areas(h, w):
    """For the merged grid (h/32, w/32): yields (r, c, slice_y, slice_x) in raster order."""
    for r in range(h // TOKEN_PX):
        for c in range(w // TOKEN_PX):
            yield r, c, slice(r * TOKEN_PX, (r + 1) * TOKEN_PX), slice(c * TOKEN_PX, (c + 1) * TOKEN_PX)


def present(values, n, ignore=None):
    """Values covering at least MIN_COVERAGE of an area (always the most frequent one)."""
    counts = np.bincount(values.ravel(), minlength=n)
    if ignore is not None:
        counts[ignore] = 0
    if counts.sum() == 0:
        return []
    keep = set(np.nonzero(counts >= MIN_COVERAGE * values.size)[0].tolist())
    keep.add(int(counts.argmax()))
    return sorted(keep)


def coordinate_targets(vocab, points):
    """(the coordinate ids of (axis, value) points, the ids within COORD_TOLERANCE_PX of them)."""
    exact = [vocab.coord_id(axis, v) for axis, v in points]
    near = {vocab.coord_id(axis, v + d) for axis, v in points for d in range(-COORD_TOLERANCE_PX, COORD_TOLERANCE_PX + 1)}
    return exact, near


def box_targets(vocab, box):
    x0, y0, x1, y1 = box
    return coordinate_targets(vocab, [(0, x0), (1, y0), (0, x1), (1, y1)])


def own_position_targets(vocab, r, c):
    """<x_>, <y_> of the centre of token (r, c)'s 32x32 area, in model-input pixels."""
    return coordinate_targets(vocab, [(0, c * TOKEN_PX + TOKEN_PX // 2), (1, r * TOKEN_PX + TOKEN_PX // 2)])


def owning_object(owner_area):
    """1 + index of the object covering at least half of a token's area (owner values as in
    scene_targets), or 0. Only that object's box is the token's: a token shared by two objects, or
    mostly background, would otherwise have to name the corners of several boxes at once."""
    counts = np.bincount(owner_area.ravel())
    best = int(counts.argmax())
    return best if best > 0 and 2 * counts[best] >= owner_area.size else 0


def scene_targets(vocab, scene):
    """Per image token: (positive ids, excluded ids) of a whole scene."""
    h, w = scene.labels.shape
    bins = depth_bin(scene.depth)
    excluded_always = {vocab.fg, vocab.bg}
    owner = np.zeros((h, w), np.int64)                 # 0 = no object, else 1 + index in scene.objects
    for i, o in enumerate(scene.objects):
        owner[o["mask"]] = i + 1
    boxes = [box_targets(vocab, o["box"]) for o in scene.objects]
    targets = []
    for r, c, sy, sx in token_areas(h, w):
        own, excluded = own_position_targets(vocab, r, c)
        positives = set(own)
        for k in present(scene.labels[sy, sx], len(scenes.CLASSES)):
            positives.update(vocab.class_ids[k])
        excluded |= excluded_always
        i = owning_object(owner[sy, sx])
        if i:
            exact, near = boxes[i - 1]
            positives.update(exact)
            excluded.update(near)
        # A token owned by an object has that object's depth only: the ground behind it would be a
        # second, farther depth that the readout's argmax could pick for the object.
        depth_area = bins[sy, sx][owner[sy, sx] == i] if i else bins[sy, sx]
        depth_present = present(depth_area, tm.DEPTH_BINS + 1, ignore=0)
        if depth_present:
            positives.update(vocab.depth_ids[k - 1] for k in depth_present)
        else:
            excluded.update(vocab.depth_ids)
        targets.append((sorted(positives), sorted(excluded - positives)))
    return targets


def box_text(vocab, box):
    x0, y0, x1, y1 = box
    return "<box>%s%s%s%s</box>" % (vocab.coord("x", x0), vocab.coord("y", y0), vocab.coord("x", x1), vocab.coord("y", y1))


def grounding_turn(vocab, phrase, box):
    return tm.PROMPT_GROUND.format(phrase=phrase), "<ref>%s</ref>%s" % (phrase, box_text(vocab, box))


def extra_grounding_turns(rng, vocab, scene, revealed):
    """Up to EXTRA_GROUNDING_TURNS grounding questions, in random order, on objects that a phrase
    singles out and whose box no earlier answer gave (revealed: their indices), so that an answer
    has to come from the image."""
    turns = []
    for t in rng.permutation(len(scene.objects)).tolist():
        phrase = scenes.referring_phrase(scene.objects, t)
        if t not in revealed and phrase is not None and len(turns) < EXTRA_GROUNDING_TURNS:
            turns.append(grounding_turn(vocab, phrase, scene.objects[t]["box"]))
    return turns


def scene_answer(rng, vocab, scene):
    """(prompt, answer) of one text task on a whole scene, and the indices of the objects whose box
    the answer gives."""
    kind = rng.choice(["segment", "depth", "vqa", "ground", "ground", "ground", "ground", "detect", "detect"])
    objs = scene.objects
    if kind == "ground" and scene.target >= 0:
        return grounding_turn(vocab, scene.phrase, objs[scene.target]["box"]), {scene.target}
    if kind == "detect":
        parts = ["<ref>%s</ref>%s" % (o["name"], box_text(vocab, o["box"]))
                 for o in sorted(objs, key=lambda o: (o["box"][0], o["box"][1]))]
        return (tm.PROMPT_DETECT, "".join(parts)), set(range(len(objs)))
    if kind == "depth":
        return (tm.PROMPT_DEPTH, "This is the <depth>.<mask></mask>"), set()
    if kind == "vqa":
        return ("How many objects are there?", "There are %d." % len(objs)), set()
    present_classes = sorted(set(np.unique(scene.labels).tolist()))
    asked = set(present_classes) | set(rng.choice(len(scenes.CLASSES), 3, replace=False).tolist())
    order = rng.permutation(sorted(asked)).tolist()
    prompt = tm.PROMPT_SEMANTIC.format(classes=", ".join(scenes.CLASSES[c] for c in order))
    refs = "".join("<ref>%s</ref>" % scenes.CLASSES[c] for c in order if c in present_classes)
    return (prompt, ("The target categories include %s, numbered sequentially starting from 0, without the "
                     "background class.<mask></mask>" % refs)), set()


def crop_for_target(image, box, colour=(255, 0, 0)):
    """The referring pipeline's second-stage input (model-spec §6.1): box padded CROP_PAD times
    about its centre, clamped to the image, cropped, the box drawn (CROP_BOX_PX), resized (bilinear) so
    the short side is CROP_SHORT_SIDE and both sides are multiples of 32.
    Returns (crop uint8, (cx0, cy0, cx1, cy1) crop rectangle in the image)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * CROP_PAD / 2, (y1 - y0) * CROP_PAD / 2
    rect = (max(0, int(math.floor(cx - hw))), max(0, int(math.floor(cy - hh))),
            min(w, int(math.ceil(cx + hw))), min(h, int(math.ceil(cy + hh))))
    crop = image[rect[1]:rect[3], rect[0]:rect[2]].copy()
    bx0, by0, bx1, by1 = x0 - rect[0], y0 - rect[1], x1 - rect[0] - 1, y1 - rect[1] - 1
    t = CROP_BOX_PX
    crop[by0:by0 + t, bx0:bx1 + 1] = colour
    crop[by1 - t + 1:by1 + 1, bx0:bx1 + 1] = colour
    crop[by0:by1 + 1, bx0:bx0 + t] = colour
    crop[by0:by1 + 1, bx1 - t + 1:bx1 + 1] = colour
    return crop, rect


def crop_size(h, w):
    s = CROP_SHORT_SIDE / min(h, w)
    return max(32, int(round(h * s / 32)) * 32), max(32, int(round(w * s / 32)) * 32)


def jittered_box(rng, box, h, w):
    """The box with each edge shifted by CROP_JITTER of its size (std), kept inside the image and
    at least 8 px wide and high: the crop stage then learns to segment around imperfect boxes."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    dx0, dy0, dx1, dy1 = rng.normal(0.0, CROP_JITTER, 4) * (bw, bh, bw, bh)
    x0, x1 = int(np.clip(round(x0 + dx0), 0, w - 8)), int(np.clip(round(x1 + dx1), 0, w))
    y0, y1 = int(np.clip(round(y0 + dy0), 0, h - 8)), int(np.clip(round(y1 + dy1), 0, h))
    return x0, y0, max(x1, x0 + 8), max(y1, y0 + 8)


def crop_sample(rng, vocab, scene):
    o = scene.objects[scene.target]
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    box = jittered_box(rng, o["box"], *scene.image.shape[:2])
    crop, rect = crop_for_target(scene.image, box, colour)
    ch, cw = crop_size(*crop.shape[:2])
    crop = np.asarray(Image.fromarray(crop).resize((cw, ch), Image.BILINEAR))
    fg = o["mask"][rect[1]:rect[3], rect[0]:rect[2]].astype(np.uint8)
    fg = np.asarray(Image.fromarray(fg).resize((cw, ch), Image.NEAREST))
    unannotated = set(vocab.all_class_ids) | set(vocab.depth_ids)
    targets = []
    for r, c, sy, sx in token_areas(ch, cw):
        own, near = own_position_targets(vocab, r, c)
        positives = set(own) | {vocab.fg if v else vocab.bg for v in present(fg[sy, sx], 2)}
        targets.append((sorted(positives), sorted((unannotated | near) - positives)))
    answer = "The results are 0 for <ref><BG></ref> and 1 for <ref><FG></ref>.<mask></mask>"
    return dict(image=crop, targets=targets, turns=[(tm.PROMPT_FGBG, answer)], fg=fg)


def make_sample(rng, vocab, size=None, crop_fraction=0.3):
    """One training sample from a scene of `size` (height, width), or of a random one of scenes.SIZES."""
    scene = scenes.make_scene(rng, size)
    if scene.target >= 0 and rng.random() < crop_fraction:
        sample = crop_sample(rng, vocab, scene)
    else:
        first, revealed = scene_answer(rng, vocab, scene)
        turns = [first] + extra_grounding_turns(rng, vocab, scene, revealed)
        sample = dict(image=scene.image, targets=scene_targets(vocab, scene), turns=turns)
    h, w = sample["image"].shape[:2]
    ids, pad0, spans = chat_ids(vocab, (h // TOKEN_PX) * (w // TOKEN_PX), sample["turns"])
    sample.update(ids=ids, pad0=pad0, answer_spans=spans)
    return sample
