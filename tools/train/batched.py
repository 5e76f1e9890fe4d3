"""Batched forward pass and training loss of the tiny DenseMLLM: B samples whose images share one
size go through the vision tower, merger and LLM as [B, ...] tensors, and loss() is train.py's
sample_loss averaged over them.

It must give what the independent reference tests/reference/youtu_vl_ref.py gives per sample
(through tiny_model.encode_image / llm_hidden and train.sample_loss), equal up to float32 rounding:
tools/train/check_batched.py asserts hidden states, losses and gradients. The reference's
shape-generic helpers are reused; what differs is only how the same values are computed: [B, ...]
tensors, window attention by gathering the windows, fused layer_norm / gelu kernels, patches cut
by one reshape, and NTP-M gradients only through the logits that receive any.

The per-sample path is not mostly overhead at these sizes (a 320 x 256 image has 320 patches and
~135 tokens, the vocabulary 4721 ids): most of its time is real arithmetic, so batching gains
1.6-2x per sample on one thread at B=8, not more (check_batched.py measures it).
"""
import functools

import numpy as np
import torch

import data
import tiny_model as tm
import train

ref = tm.ref
F = torch.nn.functional


# torch's fused kernels for three of the reference's formulas (ref.layer_norm, ref.gelu_tanh,
# ref.gelu_erf): equal to float32 rounding, and a fifth less vision time than the element-wise
# compositions and their autograd graphs.
def layer_norm(x, weight, bias, eps):
    return F.layer_norm(x, weight.shape, weight, bias, eps)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


# ----------------------------------------------------------------------------------------- vision
# ref.preprocess's normalisation (u8 - 127.5) / 127.5 in float64, rounded to float32, of every byte.
PIXEL_VALUE = ((np.arange(256) - 127.5) / 127.5).astype(np.float32)


def pixel_values(images, patch=16):
    """tm.pixel_values of each image (H, W multiples of 32, so the reference's resize is the identity),
    stacked: [B, Np, 3 * patch * patch] and (gh, gw). One reshape cuts the patches in the reference's
    order (2x2 merge blocks row-major, then the block's 4 patches row-major; features (py, px, c))."""
    pixels = np.stack(images)
    b, h, w = pixels.shape[:3]
    if h % (2 * patch) or w % (2 * patch):
        raise ValueError("image sides must be multiples of %d: %dx%d" % (2 * patch, h, w))
    gh, gw = h // patch, w // patch
    pixels = pixels.reshape(b, gh // 2, 2, patch, gw // 2, 2, patch, 3).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return torch.from_numpy(PIXEL_VALUE[pixels.reshape(b, gh * gw, 3 * patch * patch)]), (gh, gw)


@functools.lru_cache(maxsize=None)
def vision_layout(gh, gw, ws, head_dim):
    """What the vision tower needs that depends only on the patch grid, shared by every image of
    the batch: window order of the patches, its inverse, RoPE angles in window order, and the
    windows as slots [n_windows, S] (S the largest window; -1 where a ragged edge window, e.g. 4,4,2
    merged tokens on a 320-px side, is shorter)."""
    angles = ref.vision_rope_angles(ref.patch_positions(gh, gw), head_dim)
    window_index, window_cu = ref.window_partition(gh // 2, gw // 2, ws)
    order = torch.tensor([4 * g + u for g in window_index for u in range(4)])
    sizes = [end - start for start, end in zip(window_cu[:-1], window_cu[1:])]
    slots = torch.full((len(sizes), max(sizes)), -1, dtype=torch.long)
    for i, (start, end) in enumerate(zip(window_cu[:-1], window_cu[1:])):
        slots[i, :end - start] = torch.arange(start, end)
    return order, torch.argsort(order), angles[order], slots


def attention(q, k, v, key_bias=None):
    """Bidirectional attention; q, k, v [..., N, H, d], key_bias added to the scores [..., H, N, N]."""
    scores = torch.einsum("...thd,...shd->...hts", q * q.shape[-1] ** -0.5, k)
    if key_bias is not None:
        scores = scores + key_bias
    return torch.einsum("...hts,...shd->...thd", torch.softmax(scores, dim=-1), v)


def window_attention(q, k, v, slots):
    """ref.segment_attention over the windows: q, k, v [B, Np, H, d] gathered into [B, n_windows, S,
    H, d]. Missing slots of short windows are keys with bias -inf, whose exp is exactly 0, and
    queries whose outputs are dropped, so each window's softmax is the reference's."""
    b, n, h, d = q.shape
    valid = slots >= 0
    index = slots.clamp(min=0).flatten()
    key_bias = None
    if not valid.all():
        key_bias = torch.zeros(slots.shape).masked_fill(~valid, float("-inf"))[:, None, None, :]
    out = attention(*(t[:, index].view(b, *slots.shape, h, d) for t in (q, k, v)), key_bias)
    return out.reshape(b, -1, h, d)[:, valid.flatten()]     # valid slots in order are positions 0..Np-1


def vision_tower(W, vcfg, pixel_values, grid):
    """ref.vision_tower over [B, Np, 768] pixel values of one grid -> [B, Np, hidden]."""
    gh, gw = grid
    heads, hidden = vcfg["num_attention_heads"], vcfg["hidden_size"]
    head_dim, eps = hidden // heads, vcfg["layer_norm_eps"]
    ws = vcfg["window_size"] // vcfg["spatial_merge_size"] // vcfg["patch_size"]
    order, inverse, angles, slots = vision_layout(gh, gw, ws, head_dim)
    p = "siglip2.vision_model."
    b, n = pixel_values.shape[:2]

    x = pixel_values @ W[p + "embeddings.patch_embedding.weight"].T + W[p + "embeddings.patch_embedding.bias"]
    x = x[:, order]
    for l in range(vcfg["num_hidden_layers"]):
        lp = p + "encoder.layers.%d." % l
        h = layer_norm(x, W[lp + "layer_norm1.weight"], W[lp + "layer_norm1.bias"], eps)

        def proj(name, inp):
            return inp @ W[lp + "self_attn.%s.weight" % name].T + W[lp + "self_attn.%s.bias" % name]
        q = ref.rotate_half_rope(proj("q_proj", h).view(b, n, heads, head_dim), angles)
        k = ref.rotate_half_rope(proj("k_proj", h).view(b, n, heads, head_dim), angles)
        v = proj("v_proj", h).view(b, n, heads, head_dim)
        full = l in vcfg["fullatt_block_indexes"]
        attn = attention(q, k, v) if full else window_attention(q, k, v, slots)
        x = x + proj("out_proj", attn.reshape(b, n, hidden))
        h = layer_norm(x, W[lp + "layer_norm2.weight"], W[lp + "layer_norm2.bias"], eps)
        h = gelu_tanh(h @ W[lp + "mlp.fc1.weight"].T + W[lp + "mlp.fc1.bias"])
        x = x + h @ W[lp + "mlp.fc2.weight"].T + W[lp + "mlp.fc2.bias"]
    return layer_norm(x[:, inverse], W[p + "post_layernorm.weight"], W[p + "post_layernorm.bias"], eps)


def merger(W, vision_out, eps=1e-6):
    """ref.merger over [B, Np, hidden] -> [B, Np/4, D]."""
    y = ref.rms_norm(vision_out, W["merger.ln_q.weight"], eps)
    z = y.reshape(y.shape[0], -1, 4 * y.shape[2])
    z = F.gelu(z @ W["merger.mlp.0.weight"].T + W["merger.mlp.0.bias"])
    return z @ W["merger.mlp.2.weight"].T + W["merger.mlp.2.bias"]


# -------------------------------------------------------------------------------------------- LLM
def rope(x, positions, theta):
    """ref.interleaved_rope wants positions on the first axis: [B, T, ...] -> via [T, B, ...]."""
    return ref.interleaved_rope(x.transpose(0, 1), positions, theta).transpose(0, 1)


def mla_attention(W, lp, d, x, positions):
    """ref.mla_attention over [B, T, D], causal."""
    b, t = x.shape[:2]
    cq = ref.rms_norm(x @ W[lp + "q_a_proj.weight"].T, W[lp + "q_a_layernorm.weight"], d.eps)
    q = (cq @ W[lp + "q_b_proj.weight"].T).view(b, t, d.heads, d.nope + d.rope)
    q = torch.cat([q[..., :d.nope], rope(q[..., d.nope:], positions, d.theta)], dim=-1)
    ckv = x @ W[lp + "kv_a_proj_with_mqa.weight"].T
    c = ref.rms_norm(ckv[..., :d.kvl], W[lp + "kv_a_layernorm.weight"], d.eps)
    k_pe = rope(ckv[..., d.kvl:], positions, d.theta)
    kv = (c @ W[lp + "kv_b_proj.weight"].T).view(b, t, d.heads, d.nope + d.vdim)
    k = torch.cat([kv[..., :d.nope], k_pe[:, :, None, :].expand(b, t, d.heads, d.rope)], dim=-1)
    assert q.shape[-1] ** -0.5 == d.scale
    causal = torch.zeros(t, t).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    o = attention(q, k, kv[..., d.nope:], causal)
    return o.reshape(b, t, d.heads * d.vdim) @ W[lp + "o_proj.weight"].T


def llm_forward(W, cfg, x):
    """ref.llm_forward over [B, T, D] input embeddings -> final-normed hidden [B, T, D]."""
    d = ref.Dims(cfg)
    positions = torch.arange(x.shape[1])
    for l in range(cfg["num_hidden_layers"]):
        lp = "model.layers.%d." % l
        x = x + mla_attention(W, lp + "self_attn.", d,
                              ref.rms_norm(x, W[lp + "input_layernorm.weight"], d.eps), positions)
        x = x + ref.swiglu(W, lp, ref.rms_norm(x, W[lp + "post_attention_layernorm.weight"], d.eps))
    return ref.rms_norm(x, W["model.norm.weight"], d.eps)


def forward(W, cfg, images, ids_list):
    """Images (uint8 [H, W, 3], one size, H and W multiples of 32) and token-id lists -> final-normed
    hidden [B, T_max, D]. Shorter id lists are right-padded with eos: attention is causal, so the
    padding never reaches an earlier position and no padding mask is needed; rows past
    len(ids_list[b]) are meaningless."""
    pixels, grid = pixel_values(images, cfg["vision_config"]["patch_size"])
    vision = vision_tower(W, cfg["vision_config"], pixels, grid)
    image_embeds = merger(W, vision)                                     # [B, N, D]

    t_max = max(len(ids) for ids in ids_list)
    ids = torch.tensor([list(i) + [cfg["eos_token_id"]] * (t_max - len(i)) for i in ids_list])
    slots = ids == cfg["image_token_id"]
    counts = slots.sum(1)
    if (counts != image_embeds.shape[1]).any():
        raise ValueError("image pads per sample %s but %d image rows" % (counts.tolist(), image_embeds.shape[1]))
    # As ref.embed_inputs: the k-th image pad of sample b takes image row k of b (nonzero is row-major).
    x = W["model.embed_tokens.weight"][ids].index_put(slots.nonzero(as_tuple=True),
                                                      image_embeds.reshape(-1, image_embeds.shape[2]))
    return llm_forward(W, cfg, x)


# ------------------------------------------------------------------------------------------- loss
def id_pairs(id_lists):
    """(rows, ids) of every (i, id) with id in id_lists[i], as index tensors (no per-token loop)."""
    lengths = torch.tensor([len(ids) for ids in id_lists], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(id_lists)), lengths)
    return rows, torch.tensor([i for ids in id_lists for i in ids], dtype=torch.long)


def ntpm_terms(h, E, positives, excluded):
    """train.ntpm_loss per token (before its mean), h [N, D] the image tokens' hidden states.
    Only the positives' and the chosen negatives' logits get gradients, so the full [N, V] logits
    are computed without autograd (to choose the negatives) and the ~20 needed per token again with
    it: the same values, without the two [N, V] matmuls and [N, V] log-sigmoid of the backward."""
    n, vocab = h.shape[0], E.shape[0]
    pos_rows, pos_ids = id_pairs(positives)
    with torch.no_grad():
        candidates = h @ E.T
        candidates[pos_rows, pos_ids] = float("-inf")
        candidates[id_pairs(excluded)] = float("-inf")
        top = candidates.topk(train.K_NEGATIVES, dim=1).indices                # [N, K]
    # A repeated positive counts once, as in ntpm_loss's boolean mask.
    pairs = torch.unique(pos_rows * vocab + pos_ids)
    rows, ids = pairs // vocab, pairs % vocab
    pos_sum = torch.zeros(n).index_add(0, rows, F.logsigmoid((h[rows] * E[ids]).sum(1)))
    pos_term = -pos_sum / torch.bincount(rows, minlength=n).clamp(min=1)
    neg_term = -F.logsigmoid(-torch.einsum("nd,nkd->nk", h, E[top])).mean(1)
    return pos_term + neg_term


def loss(W, cfg, batch, first_coordinate_id):
    """(l_ntpm, l_text): the means over the batch of what train.sample_loss gives per sample, so
    (l_ntpm + l_text).backward() accumulates the gradient train.py's step accumulates over B samples."""
    hidden = forward(W, cfg, [s["image"] for s in batch], [s["ids"] for s in batch])
    E = W["model.embed_tokens.weight"]
    b, vocab = len(batch), E.shape[0]
    n = len(batch[0]["targets"])            # image tokens: the same for every sample (same image size)
    assert all(len(s["targets"]) == n for s in batch)
    rows = torch.tensor([s["pad0"] for s in batch])[:, None] + torch.arange(n)
    h = hidden[torch.arange(b)[:, None], rows].reshape(b * n, -1)
    terms = ntpm_terms(h, E, [t[0] for s in batch for t in s["targets"]], [t[1] for s in batch for t in s["targets"]])
    l_ntpm = terms.view(b, n).mean(1).mean()

    # Answer tokens are predicted from the previous position, as in sample_loss.
    positions, answers = zip(*(data.answer_positions(s) for s in batch))
    sample_of = torch.cat([torch.full((len(p),), i) for i, p in enumerate(positions)])
    logits = hidden[sample_of, torch.tensor([p for ps in positions for p in ps])] @ E.T
    target = torch.cat([train.text_targets(a, first_coordinate_id, vocab) for a in answers])
    weights = torch.cat([train.text_weights(a, first_coordinate_id) for a in answers])
    ce = weights * -(target * torch.log_softmax(logits, dim=1)).sum(1)
    lengths = [len(p) for p in positions]
    l_text = torch.stack([c.sum() / w.sum() for c, w in zip(ce.split(lengths), weights.split(lengths))]).mean()
    return l_ntpm, l_text
