"""The tiny DenseMLLM of issue 6: its vocabulary and tokenizer, its dims in the real Youtu-VL
layout and tensor names, parameter initialisation, and the forward pass.

The forward pass IS the independent reference of tests/reference/youtu_vl_ref.py (written from
model-spec §2-§4), run in float32 with autograd, so the trained weights mean exactly what the spec
says; the C library is then checked against the same functions. Nothing here touches lib/.
"""
import json
import os
import re
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tools", "tokenizer"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import build_tokenizer  # noqa: E402
import make_checkpoint  # noqa: E402
import youtu_vl_ref as ref  # noqa: E402
import scenes  # noqa: E402

ref.DT = torch.float32          # the reference is dtype-generic; training runs it in float32

DEPTH_BINS = 100                # <custom_1> .. <custom_100>, log-spaced MIN_DEPTH_M .. MAX_DEPTH_M
COORDINATES = 2048              # <x_0>..<x_2047>, <y_0>..<y_2047>: pixels of the model input (§9.6)
TASK_TOKENS = ["<ref>", "</ref>", "<box>", "</box>", "<mask>", "</mask>", "<ins>", "</ins>",
               "<FG>", "<BG>", "<OTHERS>", "<depth>"]
BASE_VOCAB = 640                # byte-level BPE: 256 bytes + merges learnt from the prompt corpus

SYSTEM = "You are a helpful assistant."
PROMPT_SEMANTIC = "Segment: {classes}, without the background class."
PROMPT_FGBG = "Segment the core target."
PROMPT_DEPTH = "Estimate the depth."
PROMPT_GROUND = "Please provide the bounding box coordinate of the region this sentence describes: {phrase}"
PROMPT_DETECT = "Detect all objects in the provided image."


def extra_tokens():
    """Added tokens after the chat specials: task tags, depth bins, then the coordinate tokens
    interleaved x, y so that id = <x_0> + 2k + is_y as model-spec §4.9 computes them."""
    coords = []
    for k in range(COORDINATES):
        coords += ["<x_%d>" % k, "<y_%d>" % k]
    return TASK_TOKENS + ["<custom_%d>" % k for k in range(1, DEPTH_BINS + 1)] + coords


def corpus_text():
    """Text the BPE merges are learnt from: every prompt and answer shape the model sees."""
    names = scenes.CLASSES
    lines = [SYSTEM, PROMPT_FGBG, PROMPT_DEPTH, PROMPT_DETECT, "system", "user", "assistant"]
    for c in names:
        lines.append(PROMPT_SEMANTIC.format(classes=", ".join(names)))
        lines.append("The target categories include %s, numbered sequentially starting from 0, without the "
                     "background class." % c)
        for colour in scenes.COLOURS:
            phrase = "the %s %s" % (colour, c)
            lines += [PROMPT_GROUND.format(phrase=phrase), phrase + " on the left", phrase + " on the right"]
    lines.append("The results are 0 for and 1 for. This is the.")
    lines += ["How many objects are there? What colour is the %s? There are %d." % (c, k)
              for c in names for k in range(10)]
    return "\n".join(lines * 3)


class Tokenizer:
    """Encoder for the ASCII text of this model, following the tokenizer.json it was built into:
    added tokens first (longest match), the Youtu word regex (model-spec §5; its ASCII subset is
    exact here: \\p{L} = [A-Za-z], \\p{Lu} = [A-Z], \\p{Ll} = [a-z], \\p{N} = [0-9]), byte-level
    mapping, BPE with ignore_merges. The C tokenizer is checked against ids written by this one."""

    WORDS = re.compile(
        r"[^\r\nA-Za-z0-9]?[A-Z]*[a-z]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
        r"|[^\r\nA-Za-z0-9]?[A-Z]+[a-z]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
        r"|[0-9]| ?[^\sA-Za-z0-9]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

    def __init__(self, document):
        self.document = document
        model = document["model"]
        self.vocab = dict(model["vocab"])
        self.ranks = {tuple(m): i for i, m in enumerate(model["merges"])}
        self.added = {t["content"]: t["id"] for t in document["added_tokens"]}
        for content, i in self.added.items():
            self.vocab[content] = i
        self.byte_map = build_tokenizer.bytes_to_unicode()
        self.byte_of = {c: b for b, c in self.byte_map.items()}
        pattern = "|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True))
        self.added_re = re.compile("(%s)" % pattern)
        self.size = max(self.vocab.values()) + 1
        self.id_to_piece = {i: p for p, i in self.vocab.items()}

    def _bpe(self, piece):
        if piece in self.vocab:
            return [self.vocab[piece]]
        parts = list(piece)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        if not text.isascii():
            raise ValueError("the tiny model's Python encoder handles ASCII only: %r" % text)
        ids = []
        for chunk in self.added_re.split(text):
            if not chunk:
                continue
            if chunk in self.added:
                ids.append(self.added[chunk])
                continue
            for word in self.WORDS.findall(chunk):
                ids += self._bpe("".join(self.byte_map[b] for b in word.encode("utf-8")))
        return ids

    def decode(self, ids):
        """Text of ids: added tokens as their content, the rest through the byte-level alphabet."""
        added = set(self.added.values())
        out, pending = [], bytearray()
        for i in ids:
            piece = self.id_to_piece[i]
            if i in added:
                out.append(pending.decode("utf-8", "replace") + piece)
                pending.clear()
            else:
                pending += bytes(self.byte_of[c] for c in piece)
        return "".join(out) + pending.decode("utf-8", "replace")

    def id(self, content):
        return self.vocab[content]


def build_tokenizer_document():
    return build_tokenizer.build(corpus_text(), BASE_VOCAB, extra_tokens())


def dims_for(vocab_size, tokenizer):
    """Checkpoint dims (make_checkpoint preset keys) of the tiny model."""
    return dict(
        hidden_size=128, intermediate_size=320, num_hidden_layers=5, num_attention_heads=4,
        q_lora_rank=64, kv_lora_rank=48, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
        vocab_size=vocab_size, rope_theta=500000.0,
        bos_token_id=tokenizer.id("<|begin_of_text|>"), eos_token_id=tokenizer.id("<|end_of_text|>"),
        vision_start_token_id=tokenizer.id("<|vision_start|>"), vision_end_token_id=tokenizer.id("<|vision_end|>"),
        image_token_id=tokenizer.id("<|image_pad|>"), video_token_id=tokenizer.id("<|video_pad|>"),
        v_hidden_size=64, v_intermediate_size=128, v_num_hidden_layers=4, v_num_attention_heads=2,
        v_fullatt_block_indexes=[1, 3], v_num_patches=400)


WINDOW_SIZE = 128               # pixels: 4x4 merged tokens per window, so 256 px images have 4 windows


def config_for(dims):
    cfg = make_checkpoint.build_config(dims, "f32")
    cfg["vision_config"]["window_size"] = WINDOW_SIZE
    return cfg


def coordinate_embeddings(hidden, std):
    """[2 * COORDINATES, hidden] rows for <x_0>, <y_0>, <x_1>, ...: sinusoids of the coordinate
    (periods 8 .. 4096 px) plus a fixed x/y direction, so neighbouring coordinates start close
    and the head can learn a smooth mapping instead of 4096 unrelated classes."""
    k = np.arange(COORDINATES, dtype=np.float64)[:, None]
    periods = 8.0 * (4096.0 / 8.0) ** (np.arange(hidden // 2 - 1) / max(1, hidden // 2 - 2))
    waves = np.concatenate([np.sin(2 * np.pi * k / periods), np.cos(2 * np.pi * k / periods)], axis=1)
    rows = np.zeros((2 * COORDINATES, hidden))
    rows[0::2, :hidden - 2] = waves
    rows[1::2, :hidden - 2] = waves
    rows[0::2, hidden - 2] = rows[1::2, hidden - 1] = 2.0     # the axis: x or y
    return (rows * std / np.sqrt(np.mean(rows ** 2))).astype(np.float32)


def init_parameters(dims, seed, first_coordinate_id):
    """{name: float32 tensor requiring grad}: make_checkpoint's small-model initialisation, norms at
    identity, coordinate-token embeddings from coordinate_embeddings()."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape, kind, fan_in in make_checkpoint.tensor_specs(dims):
        values = make_checkpoint.init_values(kind, fan_in, shape, rng, full=False)
        if kind == "norm":
            values = np.ones(shape, np.float32)
        if name == "model.embed_tokens.weight":
            values[first_coordinate_id:first_coordinate_id + 2 * COORDINATES] = coordinate_embeddings(
                shape[1], make_checkpoint.EMBED_STD)
        params[name] = torch.tensor(values, requires_grad=True)
    return params


# ---------------------------------------------------------------------------------------- forward
def pixel_values(image):
    """uint8 [H,W,3] with H, W multiples of 32 -> ([Np, 768] float32, (gh, gw)), model-spec §2.4-2.5
    (at a size the target-size rule keeps, so the resize is the identity)."""
    pv, grid = ref.preprocess(image, max_num_patches=1 << 20)
    return pv.to(torch.float32), grid


def encode_image(W, cfg, image):
    pv, grid = pixel_values(image)
    vision = ref.vision_tower(W, cfg["vision_config"], pv, grid)
    return ref.merger(W, vision), grid


def llm_hidden(W, cfg, ids, image_embeds):
    return ref.llm_forward(W, cfg, ref.embed_inputs(W, cfg, ids, image_embeds))


def merged_grid(grid):
    """(hm, wm): the image-token grid of a (gh, gw) patch grid. Image pads follow the merger's row
    order, which is raster order over this grid (2x2 blocks row-major, model-spec §2.5/§3.6)."""
    return grid[0] // 2, grid[1] // 2


def save_checkpoint(out_dir, cfg, params):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    entries = []
    for name, shape, _, _ in make_checkpoint.tensor_specs(dims_from_config(cfg)):
        arr = params[name].detach().to(torch.float32).numpy()
        assert list(arr.shape) == list(shape), name
        entries.append((name, "F32", list(shape), (lambda a=np.ascontiguousarray(arr): [a.tobytes()])))
    make_checkpoint.write_safetensors(os.path.join(out_dir, "model.safetensors"), entries,
                                      metadata={"format": "pt"})


def dims_from_config(cfg):
    v = cfg["vision_config"]
    keys = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "q_lora_rank",
            "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "vocab_size", "rope_theta"]
    d = {k: cfg[k] for k in keys}
    d.update(v_hidden_size=v["hidden_size"], v_intermediate_size=v["intermediate_size"],
             v_num_hidden_layers=v["num_hidden_layers"], v_num_attention_heads=v["num_attention_heads"],
             v_fullatt_block_indexes=v["fullatt_block_indexes"], v_num_patches=v["num_patches"])
    return d
