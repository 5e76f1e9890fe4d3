#!/usr/bin/python3
"""PyTorch eager contender of bench/run_full.py: Youtu-VL written the way Hugging Face modeling code
is (nn.Modules calling F.linear on weights kept in the compute dtype, bf16 for the benchmark;
LayerNorm / RMSNorm / RoPE / softmax in float32 as HF does; a Python loop over the vision windows;
MLA in the non-absorbed form with a masked causal attention and a key/value cache of expanded
heads for decoding). Written from /work/shared/docs/model-spec.md §2-§4, not from lib/*.c; the
geometry (size rule, patch order, window partition, vision RoPE angles) and the shard list are
reused from the float64 reference tests/reference/youtu_vl_ref.py. The test
tests/python/test_bench_contender.py checks, on a small checkpoint in float32, that it computes
what the library computes.

As a worker it loads a checkpoint once, runs the dense query (image prefix, label logits at the
image tokens, upsampled argmax) on generated images of the given sizes and decodes, and prints
one JSON object of its timings:

    /usr/bin/python3 bench/contender.py --model DIR --text-ids 1,2,3 --label-ids 5,6 \
        --sizes 448x448,1024x1024 [--repeat N] [--decode N] [--dtype bf16|f32]
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from youtu_vl_ref import (checkpoint_files, patch_positions, preprocess,  # noqa: E402
                          vision_rope_angles, window_partition)

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32}
STORED = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}


# ----------------------------------------------------------------------------- checkpoint
def load_weights(model_dir, dtype):
    """{name: tensor in dtype} read straight from the safetensors files into process memory (as
    from_pretrained leaves them: one resident copy, no file mapping)."""
    weights = {}
    for fname in checkpoint_files(model_dir):
        with open(os.path.join(model_dir, fname), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            base = 8 + n
            entries = sorted((info["data_offsets"][0], name, info) for name, info in header.items()
                             if name != "__metadata__")
            for begin, name, info in entries:
                stored = torch.empty(info["shape"], dtype=STORED[info["dtype"]])
                f.seek(base + begin)
                # numpy has no bf16: read the raw bytes through an integer view of the same size
                raw = stored.view(torch.int16 if stored.element_size() == 2 else torch.int32)
                if f.readinto(memoryview(raw.numpy()).cast("B")) != info["data_offsets"][1] - begin:
                    raise ValueError("%s: tensor %s is truncated" % (fname, name))
                weights[name] = stored if stored.dtype == dtype else stored.to(dtype)
    return weights


# ----------------------------------------------------------------------------- common layers
class RMSNorm(nn.Module):
    """HF LlamaRMSNorm: statistics in float32, the weight applied in the input dtype."""

    def __init__(self, weight, eps):
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def attention(q, k, v, scale, mask=None):
    """Eager attention as HF writes it: q [H, T, d], k [H, S, d], v [H, S, dv] -> [T, H, dv];
    scores in the input dtype, softmax in float32."""
    scores = torch.matmul(q, k.transpose(1, 2)) * scale
    if mask is not None:
        scores = scores + mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v).transpose(0, 1)


# ----------------------------------------------------------------------------- vision §3
class VisionBlock(nn.Module):
    def __init__(self, W, prefix, heads, eps):
        super().__init__()
        self.W, self.p, self.heads, self.eps = W, prefix, heads, eps

    def linear(self, name, x):
        return F.linear(x, self.W[self.p + name + ".weight"], self.W[self.p + name + ".bias"])

    def norm(self, name, x):
        return F.layer_norm(x, (x.shape[-1],), self.W[self.p + name + ".weight"],
                            self.W[self.p + name + ".bias"], self.eps)

    def forward(self, x, cos, sin, bounds):
        n, hidden = x.shape
        head_dim = hidden // self.heads
        h = self.norm("layer_norm1", x)
        q = self.linear("self_attn.q_proj", h).view(n, self.heads, head_dim)
        k = self.linear("self_attn.k_proj", h).view(n, self.heads, head_dim)
        v = self.linear("self_attn.v_proj", h).view(n, self.heads, head_dim)
        # apply_rotary_pos_emb_vision: in float32, back to the compute dtype
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(x.dtype)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, n, head_dim]
        parts = [attention(q[:, s:e], k[:, s:e], v[:, s:e], head_dim ** -0.5)
                 for s, e in zip(bounds[:-1], bounds[1:])]
        x = x + self.linear("self_attn.out_proj", torch.cat(parts).reshape(n, hidden))
        h = self.norm("layer_norm2", x)
        h = F.gelu(self.linear("mlp.fc1", h), approximate="tanh")
        return x + self.linear("mlp.fc2", h)


class VisionTower(nn.Module):
    """§3.1-§3.6: pixel values [Np, 768] in merge-block order -> image embeddings [Np/4, D]."""

    def __init__(self, W, vcfg):
        super().__init__()
        self.W, self.vcfg = W, vcfg
        self.p = "siglip2.vision_model."
        self.blocks = nn.ModuleList(
            VisionBlock(W, self.p + "encoder.layers.%d." % i, vcfg["num_attention_heads"],
                        vcfg["layer_norm_eps"]) for i in range(vcfg["num_hidden_layers"]))
        self.merger_norm = RMSNorm(W["merger.ln_q.weight"], 1e-6)

    def forward(self, pixel_values, grid):
        gh, gw = grid
        vcfg, W, p = self.vcfg, self.W, self.p
        n = pixel_values.shape[0]
        head_dim = vcfg["hidden_size"] // vcfg["num_attention_heads"]
        merge = vcfg["spatial_merge_size"]
        x = F.linear(pixel_values, W[p + "embeddings.patch_embedding.weight"],
                     W[p + "embeddings.patch_embedding.bias"])
        ws = vcfg["window_size"] // merge // vcfg["patch_size"]   # window side, merged tokens
        window_index, window_cu = window_partition(gh // merge, gw // merge, ws)
        order = torch.tensor([4 * g + u for g in window_index for u in range(4)])
        angles = vision_rope_angles(patch_positions(gh, gw), head_dim).float()[order]
        cos = torch.cat([angles.cos(), angles.cos()], dim=-1)[:, None, :]   # [n, 1, head_dim]
        sin = torch.cat([angles.sin(), angles.sin()], dim=-1)[:, None, :]
        x = x[order]
        for i, block in enumerate(self.blocks):
            full = i in vcfg["fullatt_block_indexes"]
            x = block(x, cos, sin, [0, n] if full else window_cu)
        x = x[torch.argsort(order)]
        x = F.layer_norm(x, (x.shape[-1],), W[p + "post_layernorm.weight"],
                         W[p + "post_layernorm.bias"], vcfg["layer_norm_eps"])
        z = self.merger_norm(x).view(n // 4, -1)
        z = F.gelu(F.linear(z, W["merger.mlp.0.weight"], W["merger.mlp.0.bias"]))
        return F.linear(z, W["merger.mlp.2.weight"], W["merger.mlp.2.bias"])


# ----------------------------------------------------------------------------- LLM §4
class MLAttention(nn.Module):
    """DeepseekV3Attention, eager: q LoRA, latent kv with the shared roped k_pe, interleaved RoPE
    (de-interleaved, then rotate-half), causal mask, cache of the expanded keys and values."""

    def __init__(self, W, prefix, cfg):
        super().__init__()
        self.W, self.p = W, prefix
        self.heads = cfg["num_attention_heads"]
        self.nope, self.rope = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
        self.vdim, self.kvl = cfg["v_head_dim"], cfg["kv_lora_rank"]
        self.scale = (self.nope + self.rope) ** -0.5
        self.q_norm = RMSNorm(W[prefix + "q_a_layernorm.weight"], cfg["rms_norm_eps"])
        self.kv_norm = RMSNorm(W[prefix + "kv_a_layernorm.weight"], cfg["rms_norm_eps"])

    def linear(self, name, x):
        return F.linear(x, self.W[self.p + name + ".weight"])

    def rope_apply(self, x, cos, sin):
        """x [..., T, rope] with (2i, 2i+1) pairs; cos/sin [T, rope] in rotate-half layout."""
        shape = x.shape
        x = x.view(*shape[:-1], self.rope // 2, 2).transpose(-1, -2).reshape(shape)
        return (x.float() * cos + rotate_half(x.float()) * sin).to(x.dtype)

    def forward(self, x, cos, sin, mask, cache):
        t = x.shape[0]
        q = self.linear("q_b_proj", self.q_norm(self.linear("q_a_proj", x)))
        q = q.view(t, self.heads, self.nope + self.rope).transpose(0, 1)          # [H, t, 192]
        ckv = self.linear("kv_a_proj_with_mqa", x)
        c, k_pe = ckv[:, :self.kvl], ckv[:, self.kvl:]
        kv = self.linear("kv_b_proj", self.kv_norm(c))
        kv = kv.view(t, self.heads, self.nope + self.vdim).transpose(0, 1)        # [H, t, 256]
        q_pe = self.rope_apply(q[..., self.nope:], cos, sin)
        k_pe = self.rope_apply(k_pe[None], cos, sin).expand(self.heads, t, self.rope)
        query = torch.cat([q[..., :self.nope], q_pe], dim=-1)
        key = torch.cat([kv[..., :self.nope], k_pe], dim=-1)
        value = kv[..., self.nope:]
        if cache:
            key, value = torch.cat([cache[0], key], dim=1), torch.cat([cache[1], value], dim=1)
        cache[:] = [key, value]
        o = attention(query, key, value, self.scale, mask)
        return self.linear("o_proj", o.reshape(t, self.heads * self.vdim))


class DecoderLayer(nn.Module):
    def __init__(self, W, i, cfg):
        super().__init__()
        p = "model.layers.%d." % i
        self.W, self.p = W, p
        self.attn = MLAttention(W, p + "self_attn.", cfg)
        self.norm1 = RMSNorm(W[p + "input_layernorm.weight"], cfg["rms_norm_eps"])
        self.norm2 = RMSNorm(W[p + "post_attention_layernorm.weight"], cfg["rms_norm_eps"])

    def forward(self, x, cos, sin, mask, cache):
        x = x + self.attn(self.norm1(x), cos, sin, mask, cache)
        u = self.norm2(x)
        gate = F.linear(u, self.W[self.p + "mlp.gate_proj.weight"])
        up = F.linear(u, self.W[self.p + "mlp.up_proj.weight"])
        return x + F.linear(F.silu(gate) * up, self.W[self.p + "mlp.down_proj.weight"])


class YoutuVL(nn.Module):
    def __init__(self, cfg, W):
        super().__init__()
        self.cfg, self.W = cfg, W
        self.dtype = W["model.embed_tokens.weight"].dtype
        self.vision = VisionTower(W, cfg["vision_config"])
        self.layers = nn.ModuleList(DecoderLayer(W, i, cfg)
                                    for i in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(W["model.norm.weight"], cfg["rms_norm_eps"])
        rope = cfg["qk_rope_head_dim"]
        exponents = torch.arange(0, rope, 2).float() / rope
        self.inv_freq = 1.0 / (float(cfg["rope_theta"]) ** exponents)
        self.cache = []   # per layer [key [H, S, 192], value [H, S, 128]]

    def embed_image(self, pixel_values, grid):
        return self.vision(pixel_values.to(self.dtype), grid)

    def forward(self, ids, image_embeds=None):
        """Runs ids after what the cache holds; returns their final-normed hidden [T, D]."""
        past = self.cache[0][0].shape[1] if self.cache else 0
        if not self.cache:
            self.cache = [[] for _ in self.layers]
        ids = torch.as_tensor(ids, dtype=torch.long)
        x = F.embedding(ids, self.W["model.embed_tokens.weight"])
        if image_embeds is not None:
            x[ids == self.cfg["image_token_id"]] = image_embeds.to(x.dtype)
        t = x.shape[0]
        freqs = torch.arange(past, past + t).float()[:, None] * self.inv_freq    # [T, rope/2]
        cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
        mask = None
        if t > 1:   # causal over the new rows; every cached row is visible
            mask = torch.full((t, past + t), torch.finfo(x.dtype).min, dtype=x.dtype)
            mask = torch.triu(mask, diagonal=past + 1)
        for layer, cache in zip(self.layers, self.cache):
            x = layer(x, cos, sin, mask, cache)
        return self.norm(x)

    def reset(self):
        self.cache = []

    def lm_head(self, hidden, ids=None):
        """Tied head: logits of the given vocabulary ids (all when None), in float32."""
        embed = self.W["model.embed_tokens.weight"]
        return F.linear(hidden, embed if ids is None else embed[torch.as_tensor(ids)]).float()


# ----------------------------------------------------------------------------- the workload
def dense_query(model, image_rgb, text_ids, label_ids, max_num_patches):
    """The dense query as the library's predict_dense does it: prefix = text ids, vision start,
    image pads, vision end; label logits at the image tokens, upsampled to the image, argmax.
    Returns (labels [H, W], seconds per stage)."""
    cfg = model.cfg
    times = {}
    t0 = time.perf_counter()
    model.reset()
    pixel_values, grid = preprocess(image_rgb, max_num_patches, cfg["vision_config"]["patch_size"])
    image_embeds = model.embed_image(pixel_values, grid)
    times["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = (list(text_ids) + [cfg["vision_start_token_id"]]
           + [cfg["image_token_id"]] * image_embeds.shape[0] + [cfg["vision_end_token_id"]])
    hidden = model(ids, image_embeds)
    times["prefill"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    slots = torch.tensor(ids) == cfg["image_token_id"]
    logits = model.lm_head(hidden[slots], label_ids)                                   # [N, K]
    hm, wm = grid[0] // 2, grid[1] // 2
    maps = logits.t().reshape(1, len(label_ids), hm, wm)
    height, width = image_rgb.shape[:2]
    maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
    labels = maps[0].argmax(0)
    times["readout"] = time.perf_counter() - t0
    return labels, hidden, times


def decode(model, first_id, n_tokens):
    """Greedy: n_tokens cached steps after what the cache holds, the first of first_id, each next
    of the argmax before it (as densemllm bench --decode). Returns (ids, seconds)."""
    t0 = time.perf_counter()
    ids = [first_id]
    for _ in range(n_tokens):
        ids.append(int(model.lm_head(model([ids[-1]])[-1]).argmax()))
    return ids[1:], time.perf_counter() - t0


def generated_image(width, height):
    """Colour ramps and a disc (the image content does not change the work)."""
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - width / 3) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2
    rgb = np.stack([np.where(disc, 220, 255 * x // width), 255 * y // height,
                    np.where(disc, 40, 150)], axis=-1)
    return rgb.astype(np.uint8)


def parse_ids(text):
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json, weights)")
    ap.add_argument("--text-ids", required=True, type=parse_ids, help="chat ids before the image")
    ap.add_argument("--label-ids", required=True, type=parse_ids, help="label ids of the readout")
    ap.add_argument("--sizes", default="448x448", help="comma-separated WxH of generated images")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--decode", type=int, default=0, help="tokens to generate after the last query")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--max-patches", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.decode < 0:
        ap.error("--repeat must be >= 1 and --decode >= 0")
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    model = YoutuVL(cfg, load_weights(args.model, DTYPES[args.dtype]))
    out = {"torch": torch.__version__, "dtype": args.dtype, "threads": torch.get_num_threads(),
           "seconds_load": time.perf_counter() - t0, "sizes": []}
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        image = generated_image(width, height)
        queries = []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            _, hidden, times = dense_query(model, image, args.text_ids, args.label_ids,
                                           args.max_patches)
            times["seconds"] = time.perf_counter() - t0
            queries.append(times)
            print("torch %s %s repetition %d: %.3f s" % (args.dtype, size, r + 1, times["seconds"]),
                  file=sys.stderr)
        entry = {"width": width, "height": height, "tokens": len(hidden), "queries": queries}
        if args.decode:
            ids, seconds = decode(model, cfg["bos_token_id"], args.decode)
            entry["decode"] = {"tokens": len(ids), "seconds": seconds,
                               "tokens_per_second": len(ids) / seconds}
        out["sizes"].append(entry)
        model.reset()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
