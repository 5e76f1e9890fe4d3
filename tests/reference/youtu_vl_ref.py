"""Independent PyTorch reference of Youtu-VL (model-spec.md §2-§4), float64, written for clarity.

Written only from /work/shared/docs/model-spec.md, never from the C code in lib/. It reads a
Hugging Face-style checkpoint directory (config.json + safetensors, BF16 weights are used with
their exact bf16 values) and computes every intermediate the golden fixtures store. Must not
import or call the C library.
"""
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from make_checkpoint import read_safetensors  # noqa: E402

DT = torch.float64


# ----------------------------------------------------------------------------- checkpoint
def checkpoint_files(ckpt_dir):
    """The safetensors file names: those of the shard index, else model.safetensors."""
    index = os.path.join(ckpt_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return ["model.safetensors"]
    with open(index) as f:
        return sorted(set(json.load(f)["weight_map"].values()))


def load_checkpoint(ckpt_dir):
    """(config dict, {name: float64 tensor}) from config.json and one or several safetensors."""
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = {}
    for fname in checkpoint_files(ckpt_dir):
        for name, arr in read_safetensors(os.path.join(ckpt_dir, fname)).items():
            weights[name] = torch.from_numpy(arr.astype(np.float64))
    return cfg, weights


# ----------------------------------------------------------------------------- preprocessing §2
def target_size(height, width, max_num_patches, patch=16, merge=2):
    """§2.2: round up to multiples of 32, shrink by 0.02 steps while over the patch cap."""
    align = patch * merge

    def scaled(s, n):
        return max(align, int(math.ceil(n * s / align)) * align)

    s = 1.0
    while True:
        ht, wt = scaled(s, height), scaled(s, width)
        if (ht // patch) * (wt // patch) <= max_num_patches:
            return ht, wt
        s -= 0.02
        if s <= 0.0:
            raise ValueError("no size within %d patches" % max_num_patches)


def preprocess(image_rgb, max_num_patches, patch=16):
    """uint8 [H,W,3] -> (pixel_values [Np, 3*patch*patch] float64, (gh, gw)).

    Resize with PIL BILINEAR (the `pillow` mode of §2.3), normalise (u8-127.5)/127.5 (§2.4),
    cut patches in 2x2 merge-block order with (py, px, c) features (§2.5)."""
    h, w = image_rgb.shape[:2]
    ht, wt = target_size(h, w, max_num_patches, patch)
    resized = np.asarray(Image.fromarray(image_rgb).resize((wt, ht), Image.BILINEAR))
    pixels = (resized.astype(np.float64) - 127.5) / 127.5          # [ht, wt, 3]
    gh, gw = ht // patch, wt // patch
    rows = []
    for bh in range(gh // 2):
        for bw in range(gw // 2):
            for dy in range(2):
                for dx in range(2):
                    y0, x0 = (2 * bh + dy) * patch, (2 * bw + dx) * patch
                    rows.append(pixels[y0:y0 + patch, x0:x0 + patch, :].reshape(-1))
    return torch.tensor(np.stack(rows), dtype=DT), (gh, gw)


def patch_positions(gh, gw):
    """(y, x) grid position of each patch in merge-block order: [Np, 2]."""
    pos = []
    for bh in range(gh // 2):
        for bw in range(gw // 2):
            for dy in range(2):
                for dx in range(2):
                    pos.append((2 * bh + dy, 2 * bw + dx))
    return torch.tensor(pos, dtype=DT)


# ----------------------------------------------------------------------------- vision §3
def window_partition(hm, wm, ws):
    """§3.2: merged-token permutation into ws x ws windows (ragged at the edges) and the window
    boundaries in patch units."""
    window_index, cu = [], [0]
    for wr in range(math.ceil(hm / ws)):
        for wc in range(math.ceil(wm / ws)):
            n = 0
            for r in range(wr * ws, min(wr * ws + ws, hm)):
                for c in range(wc * ws, min(wc * ws + ws, wm)):
                    window_index.append(r * wm + c)
                    n += 1
            cu.append(cu[-1] + 4 * n)
    return window_index, cu


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def rms_norm(x, weight, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def vision_rope_angles(positions, head_dim):
    """§3.3 generalised: head_dim/4 row angles then head_dim/4 column angles, theta 10000."""
    quarter = head_dim // 4
    k = torch.arange(quarter, dtype=DT)
    inv = 10000.0 ** (-2.0 * k / (head_dim / 2))
    return torch.cat([positions[:, :1] * inv, positions[:, 1:2] * inv], dim=1)  # [Np, head_dim/2]


def rotate_half_rope(x, angles):
    """NeoX rotate-half: pairs (i, i + head_dim/2). x [Np, heads, head_dim], angles [Np, head_dim/2]."""
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)[:, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)[:, None, :]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def segment_attention(q, k, v, bounds):
    """Bidirectional attention inside each [bounds[i], bounds[i+1]) segment. q,k,v [Np, H, d]."""
    out = torch.zeros_like(v)
    scale = q.shape[-1] ** -0.5
    for start, end in zip(bounds[:-1], bounds[1:]):
        scores = torch.einsum("thd,shd->hts", q[start:end], k[start:end]) * scale
        probs = torch.softmax(scores, dim=-1)
        out[start:end] = torch.einsum("hts,shd->thd", probs, v[start:end])
    return out


def vision_tower(W, vcfg, pixel_values, grid):
    """§3.1-§3.5: [Np, 768] merge-block order -> post-LN hidden [Np, hidden], merge-block order."""
    gh, gw = grid
    heads = vcfg["num_attention_heads"]
    hidden = vcfg["hidden_size"]
    head_dim = hidden // heads
    eps = vcfg["layer_norm_eps"]
    merge, patch = vcfg["spatial_merge_size"], vcfg["patch_size"]
    ws = vcfg["window_size"] // merge // patch
    p = "siglip2.vision_model."
    n_patches = pixel_values.shape[0]

    x = pixel_values @ W[p + "embeddings.patch_embedding.weight"].T + W[p + "embeddings.patch_embedding.bias"]
    angles = vision_rope_angles(patch_positions(gh, gw), head_dim)

    window_index, window_cu = window_partition(gh // merge, gw // merge, ws)
    patch_order = [4 * g + u for g in window_index for u in range(4)]  # window order -> merge-block row
    x = x[patch_order]
    angles = angles[patch_order]

    for l in range(vcfg["num_hidden_layers"]):
        lp = p + "encoder.layers.%d." % l
        bounds = [0, n_patches] if l in vcfg["fullatt_block_indexes"] else window_cu
        h = layer_norm(x, W[lp + "layer_norm1.weight"], W[lp + "layer_norm1.bias"], eps)

        def proj(name, inp):
            return inp @ W[lp + "self_attn.%s.weight" % name].T + W[lp + "self_attn.%s.bias" % name]
        q = rotate_half_rope(proj("q_proj", h).view(n_patches, heads, head_dim), angles)
        k = rotate_half_rope(proj("k_proj", h).view(n_patches, heads, head_dim), angles)
        v = proj("v_proj", h).view(n_patches, heads, head_dim)
        attn = segment_attention(q, k, v, bounds).reshape(n_patches, hidden)
        x = x + proj("out_proj", attn)
        h = layer_norm(x, W[lp + "layer_norm2.weight"], W[lp + "layer_norm2.bias"], eps)
        h = gelu_tanh(h @ W[lp + "mlp.fc1.weight"].T + W[lp + "mlp.fc1.bias"])
        x = x + h @ W[lp + "mlp.fc2.weight"].T + W[lp + "mlp.fc2.bias"]

    restored = torch.empty_like(x)
    restored[patch_order] = x
    return layer_norm(restored, W[p + "post_layernorm.weight"], W[p + "post_layernorm.bias"], eps)


def merger(W, vision_out, eps=1e-6):
    """§3.6: RMSNorm, concat the 4 rows of each merge block, Linear, erf-GELU, Linear."""
    y = rms_norm(vision_out, W["merger.ln_q.weight"], eps)
    z = y.reshape(-1, 4 * y.shape[1])
    z = gelu_erf(z @ W["merger.mlp.0.weight"].T + W["merger.mlp.0.bias"])
    return z @ W["merger.mlp.2.weight"].T + W["merger.mlp.2.bias"]


# ----------------------------------------------------------------------------- LLM §4
def embed_inputs(W, cfg, input_ids, image_embeds):
    """§4.1: token embeddings, the k-th image pad replaced by image row k."""
    ids = torch.tensor(input_ids, dtype=torch.long)
    x = W["model.embed_tokens.weight"][ids].clone()
    slots = (ids == cfg["image_token_id"]).nonzero().flatten()
    if image_embeds is None:
        image_embeds = torch.zeros(0, x.shape[1], dtype=DT)
    if len(slots) != image_embeds.shape[0]:
        raise ValueError("%d image pads but %d image rows" % (len(slots), image_embeds.shape[0]))
    x[slots] = image_embeds
    return x


def interleaved_rope(x, positions, theta):
    """§4.4: GPT-J pairs (2i, 2i+1), angle pos * theta^(-2i/r). x [T, ..., r], positions [T]."""
    r = x.shape[-1]
    inv = theta ** (-2.0 * torch.arange(r // 2, dtype=DT) / r)
    ang = positions.to(DT)[:, None] * inv                        # [T, r/2]
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [r // 2]
    cos, sin = ang.cos().view(shape), ang.sin().view(shape)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out


class Dims:
    def __init__(self, cfg):
        self.heads = cfg["num_attention_heads"]
        self.nope = cfg["qk_nope_head_dim"]
        self.rope = cfg["qk_rope_head_dim"]
        self.vdim = cfg["v_head_dim"]
        self.kvl = cfg["kv_lora_rank"]
        self.eps = cfg["rms_norm_eps"]
        self.theta = float(cfg["rope_theta"])
        self.scale = (self.nope + self.rope) ** -0.5


def mla_queries(W, lp, d, x, positions):
    """q_nope [T,H,nope], roped q_pe [T,H,rope] via the q LoRA path."""
    cq = rms_norm(x @ W[lp + "q_a_proj.weight"].T, W[lp + "q_a_layernorm.weight"], d.eps)
    q = (cq @ W[lp + "q_b_proj.weight"].T).view(x.shape[0], d.heads, d.nope + d.rope)
    return q[..., :d.nope], interleaved_rope(q[..., d.nope:], positions, d.theta)


def mla_latent(W, lp, d, x, positions):
    """Normalised latent c [T, kvl] and the shared roped k_pe [T, rope]."""
    ckv = x @ W[lp + "kv_a_proj_with_mqa.weight"].T
    c = rms_norm(ckv[:, :d.kvl], W[lp + "kv_a_layernorm.weight"], d.eps)
    return c, interleaved_rope(ckv[:, d.kvl:], positions, d.theta)


def mla_attention(W, lp, d, x, positions):
    """§4.4 non-absorbed MLA over a whole sequence, causal."""
    t = x.shape[0]
    q_nope, q_pe = mla_queries(W, lp, d, x, positions)
    c, k_pe = mla_latent(W, lp, d, x, positions)
    kv = (c @ W[lp + "kv_b_proj.weight"].T).view(t, d.heads, d.nope + d.vdim)
    k_nope, v = kv[..., :d.nope], kv[..., d.nope:]
    q = torch.cat([q_nope, q_pe], dim=-1)
    k = torch.cat([k_nope, k_pe[:, None, :].expand(t, d.heads, d.rope)], dim=-1)
    scores = torch.einsum("thd,shd->hts", q, k) * d.scale
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    o = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v)
    return o.reshape(t, d.heads * d.vdim) @ W[lp + "o_proj.weight"].T


def swiglu(W, lp, u):
    gate = u @ W[lp + "mlp.gate_proj.weight"].T
    up = u @ W[lp + "mlp.up_proj.weight"].T
    return (torch.nn.functional.silu(gate) * up) @ W[lp + "mlp.down_proj.weight"].T


def llm_forward(W, cfg, x):
    """§4.2-§4.5: input embeddings [T, D] -> final-normed hidden [T, D] (non-absorbed MLA)."""
    d = Dims(cfg)
    positions = torch.arange(x.shape[0])
    for l in range(cfg["num_hidden_layers"]):
        lp = "model.layers.%d." % l
        x = x + mla_attention(W, lp + "self_attn.", d,
                              rms_norm(x, W[lp + "input_layernorm.weight"], d.eps), positions)
        x = x + swiglu(W, lp, rms_norm(x, W[lp + "post_attention_layernorm.weight"], d.eps))
    return rms_norm(x, W["model.norm.weight"], d.eps)


class AbsorbedDecoder:
    """§4.4 "Absorbed form": one token at a time, caching only the latent c and roped k_pe per
    layer; W_UK is folded into the query and W_UV applied after the latent-space attention.
    Used only as an independent cross-check of llm_forward."""

    def __init__(self, W, cfg):
        self.W, self.cfg, self.d = W, cfg, Dims(cfg)
        self.cache = [([], []) for _ in range(cfg["num_hidden_layers"])]  # per layer: c, k_pe lists

    def step(self, x_t):
        """x_t [D] embedding of the next token -> its final-normed hidden [D]."""
        W, d = self.W, self.d
        pos = torch.tensor([len(self.cache[0][0])])
        x = x_t[None, :]
        for l in range(self.cfg["num_hidden_layers"]):
            lp = "model.layers.%d." % l
            ap = lp + "self_attn."
            h = rms_norm(x, W[lp + "input_layernorm.weight"], d.eps)
            q_nope, q_pe = mla_queries(W, ap, d, h, pos)              # [1,H,nope], [1,H,rope]
            c, k_pe = mla_latent(W, ap, d, h, pos)                    # [1,kvl], [1,rope]
            self.cache[l][0].append(c[0])
            self.cache[l][1].append(k_pe[0])
            cs = torch.stack(self.cache[l][0])                        # [S, kvl]
            ks = torch.stack(self.cache[l][1])                        # [S, rope]
            kvb = W[ap + "kv_b_proj.weight"].view(d.heads, d.nope + d.vdim, d.kvl)
            w_uk, w_uv = kvb[:, :d.nope, :], kvb[:, d.nope:, :]       # [H,nope,kvl], [H,vdim,kvl]
            q_lat = torch.einsum("hn,hnk->hk", q_nope[0], w_uk)       # [H, kvl]
            scores = (q_lat @ cs.T + q_pe[0] @ ks.T) * d.scale        # [H, S]
            c_hat = torch.softmax(scores, dim=-1) @ cs                # [H, kvl]
            o = torch.einsum("hk,hvk->hv", c_hat, w_uv)               # [H, vdim]
            x = x + o.reshape(1, -1) @ W[ap + "o_proj.weight"].T
            x = x + swiglu(W, lp, rms_norm(x, W[lp + "post_attention_layernorm.weight"], d.eps))
        return rms_norm(x, W["model.norm.weight"], d.eps)[0]


# ----------------------------------------------------------------------------- whole pipeline
def repetition_penalty(logits, ids, penalty):
    """Hugging Face's RepetitionPenaltyLogitsProcessor: every distinct id of the running sequence
    (prompt and generated) has its logit multiplied by penalty when negative, else divided."""
    out = logits.clone()
    seen = torch.tensor(sorted(set(ids)), dtype=torch.long)
    picked = out[seen]
    out[seen] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return out


def run_reference(ckpt_dir, image_rgb, max_num_patches, input_ids, label_ids,
                  input_ids_text_first, greedy_steps, penalty=1.0, penalty_steps=0):
    """Everything golden.safetensors stores (float64 tensors / python ints), plus the
    absorbed-vs-non-absorbed check result under key 'absorbed_max_rel_diff'. With penalty_steps,
    also a greedy run on repetition-penalised logits ('penalty_ids', raw 'penalty_logits')."""
    cfg, W = load_checkpoint(ckpt_dir)
    vcfg = cfg["vision_config"]
    pixel_values, grid = preprocess(image_rgb, max_num_patches, vcfg["patch_size"])
    vision_out = vision_tower(W, vcfg, pixel_values, grid)
    image_embeds = merger(W, vision_out)

    embed = W["model.embed_tokens.weight"]
    hidden = llm_forward(W, cfg, embed_inputs(W, cfg, input_ids, image_embeds))
    labels = torch.tensor(label_ids, dtype=torch.long)
    slots = (torch.tensor(input_ids) == cfg["image_token_id"]).nonzero().flatten()
    logits_labels = hidden @ embed[labels].T                          # [T, K]

    # Greedy decoding with full recomputation (non-absorbed); the absorbed decoder replays the
    # same prompt + generated tokens one at a time and must give the same hidden states.
    ids = list(input_ids)
    greedy_ids, greedy_logits = [], []
    seq_hidden = hidden
    for _ in range(greedy_steps):
        logits = seq_hidden[-1] @ embed.T
        nxt = int(torch.argmax(logits))
        greedy_ids.append(nxt)
        greedy_logits.append(logits)
        ids.append(nxt)
        seq_hidden = llm_forward(W, cfg, embed_inputs(W, cfg, ids, image_embeds))
    full_embeds = embed_inputs(W, cfg, ids, image_embeds)
    decoder = AbsorbedDecoder(W, cfg)
    absorbed = torch.stack([decoder.step(full_embeds[t]) for t in range(len(ids))])
    absorbed_diff = float((absorbed - seq_hidden).abs().max() / seq_hidden.abs().max())

    # Greedy on penalised logits: the generated tokens vary, so each step checks that the right
    # token was fed back.
    ids = list(input_ids)
    penalty_ids, penalty_logits = [], []
    seq_hidden = hidden
    for _ in range(penalty_steps):
        logits = seq_hidden[-1] @ embed.T
        nxt = int(torch.argmax(repetition_penalty(logits, ids, penalty)))
        penalty_ids.append(nxt)
        penalty_logits.append(logits)
        ids.append(nxt)
        seq_hidden = llm_forward(W, cfg, embed_inputs(W, cfg, ids, image_embeds))

    hidden_tf = llm_forward(W, cfg, embed_inputs(W, cfg, input_ids_text_first, image_embeds))
    return {
        "penalty_ids": penalty_ids,
        "penalty_logits": torch.stack(penalty_logits) if penalty_logits else None,
        "grid": grid,
        "pixel_values": pixel_values,
        "vision_out": vision_out,
        "image_embeds": image_embeds,
        "hidden": hidden,
        "image_logits_own": logits_labels[slots],
        "image_logits_prev": logits_labels[slots - 1],
        "last_logits": hidden[-1] @ embed.T,
        "greedy_ids": greedy_ids,
        "greedy_logits": torch.stack(greedy_logits),
        "hidden_text_first": hidden_tf,
        "absorbed_max_rel_diff": absorbed_diff,
    }
