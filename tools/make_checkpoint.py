#!/usr/bin/python3
"""Write random Youtu-VL checkpoints with the REAL tensor names and Hugging Face layout.

config.json (LLM keys at the root, nested vision_config), model.safetensors or N shards plus
model.safetensors.index.json. Safetensors are written by the small streaming writer below
(8-byte little-endian header length, JSON header padded to 8 bytes, contiguous tensor data), so
the full 4B-shaped checkpoint never has to fit in memory. Used by tests/reference/make_goldens.py
and by hand for the full-size checkpoint (model-spec.md §1.2-§1.4). Must not touch lib/ or the
committed fixtures other than through make_goldens.py.

    /usr/bin/python3 tools/make_checkpoint.py OUT_DIR [--preset small] [--dtype f32|bf16]
        [--shards N] [--seed S] [--set key=value ...]
    /usr/bin/python3 tools/make_checkpoint.py /tmp/full-ckpt --full
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

# Text (root) and vision dims. Keys mirror config.json names; the vision ones carry a "v_" prefix.
PRESETS = {
    "small": dict(
        hidden_size=96, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
        vocab_size=600, rope_theta=500000.0,
        bos_token_id=280, eos_token_id=281, vision_start_token_id=296, vision_end_token_id=297,
        image_token_id=300, video_token_id=301,
        v_hidden_size=64, v_intermediate_size=128, v_num_hidden_layers=3, v_num_attention_heads=4,
        v_fullatt_block_indexes=[1], v_num_patches=64),
    # The released Youtu-VL-4B shapes (model-spec §1.2, §1.4).
    "full": dict(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=40, num_attention_heads=32,
        q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128, vocab_size=283386, rope_theta=500000.0,
        bos_token_id=128000, eos_token_id=128001, vision_start_token_id=128262,
        vision_end_token_id=128263, image_token_id=128264, video_token_id=128265,
        v_hidden_size=1152, v_intermediate_size=4304, v_num_hidden_layers=27,
        v_num_attention_heads=16, v_fullatt_block_indexes=[7, 15, 23, 26], v_num_patches=4096),
}


def build_config(dims, dtype):
    """config.json contents for the given dims (model-spec §1.2)."""
    d = dims
    return {
        "architectures": ["YoutuVLForConditionalGeneration"],
        "model_type": "youtu_vl",
        "hidden_size": d["hidden_size"],
        "intermediate_size": d["intermediate_size"],
        "num_hidden_layers": d["num_hidden_layers"],
        "num_attention_heads": d["num_attention_heads"],
        "num_key_value_heads": d["num_attention_heads"],
        "q_lora_rank": d["q_lora_rank"],
        "kv_lora_rank": d["kv_lora_rank"],
        "qk_nope_head_dim": d["qk_nope_head_dim"],
        "qk_rope_head_dim": d["qk_rope_head_dim"],
        "v_head_dim": d["v_head_dim"],
        "vocab_size": d["vocab_size"],
        "rms_norm_eps": 1e-6,
        "rope_theta": d["rope_theta"],
        "rope_interleave": True,
        "rope_scaling": None,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
        "image_token_id": d["image_token_id"],
        "video_token_id": d["video_token_id"],
        "vision_start_token_id": d["vision_start_token_id"],
        "vision_end_token_id": d["vision_end_token_id"],
        "bos_token_id": d["bos_token_id"],
        "eos_token_id": d["eos_token_id"],
        "pad_token_id": d["eos_token_id"],
        "torch_dtype": "bfloat16" if dtype == "bf16" else "float32",
        "vision_config": {
            "model_type": "siglip2_vision_model",
            "hidden_size": d["v_hidden_size"],
            "intermediate_size": d["v_intermediate_size"],
            "num_hidden_layers": d["v_num_hidden_layers"],
            "num_attention_heads": d["v_num_attention_heads"],
            "num_channels": 3,
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "spatial_merge_size": 2,
            "window_size": 256,
            "fullatt_block_indexes": list(d["v_fullatt_block_indexes"]),
            "out_hidden_size": d["hidden_size"],
            "num_patches": d["v_num_patches"],
            "tokens_per_second": 2,
        },
    }


def tensor_specs(dims):
    """[(name, shape, kind, fan_in)] in checkpoint order; kind picks the init (see init_std)."""
    d = dims
    vh, vi = d["v_hidden_size"], d["v_intermediate_size"]
    specs = []
    vp = "siglip2.vision_model."
    specs.append((vp + "embeddings.patch_embedding.weight", [vh, 768], "linear", 768))
    specs.append((vp + "embeddings.patch_embedding.bias", [vh], "bias", 0))
    specs.append((vp + "embeddings.position_embedding.weight", [d["v_num_patches"], vh], "embed", 0))
    for l in range(d["v_num_hidden_layers"]):
        p = vp + "encoder.layers.%d." % l
        specs.append((p + "layer_norm1.weight", [vh], "norm", 0))
        specs.append((p + "layer_norm1.bias", [vh], "bias", 0))
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            kind = "out_linear" if proj == "out_proj" else "linear"
            specs.append((p + "self_attn.%s.weight" % proj, [vh, vh], kind, vh))
            specs.append((p + "self_attn.%s.bias" % proj, [vh], "bias", 0))
        specs.append((p + "layer_norm2.weight", [vh], "norm", 0))
        specs.append((p + "layer_norm2.bias", [vh], "bias", 0))
        specs.append((p + "mlp.fc1.weight", [vi, vh], "linear", vh))
        specs.append((p + "mlp.fc1.bias", [vi], "bias", 0))
        specs.append((p + "mlp.fc2.weight", [vh, vi], "out_linear", vi))
        specs.append((p + "mlp.fc2.bias", [vh], "bias", 0))
    specs.append((vp + "post_layernorm.weight", [vh], "norm", 0))
    specs.append((vp + "post_layernorm.bias", [vh], "bias", 0))
    specs.append(("merger.ln_q.weight", [vh], "norm", 0))
    specs.append(("merger.mlp.0.weight", [4 * vh, 4 * vh], "linear", 4 * vh))
    specs.append(("merger.mlp.0.bias", [4 * vh], "bias", 0))
    specs.append(("merger.mlp.2.weight", [d["hidden_size"], 4 * vh], "linear", 4 * vh))
    specs.append(("merger.mlp.2.bias", [d["hidden_size"]], "bias", 0))

    D, H = d["hidden_size"], d["num_attention_heads"]
    nope, rope, vd = d["qk_nope_head_dim"], d["qk_rope_head_dim"], d["v_head_dim"]
    ql, kvl, inter = d["q_lora_rank"], d["kv_lora_rank"], d["intermediate_size"]
    specs.append(("model.embed_tokens.weight", [d["vocab_size"], D], "embed", 0))
    for l in range(d["num_hidden_layers"]):
        p = "model.layers.%d." % l
        specs.append((p + "input_layernorm.weight", [D], "norm", 0))
        specs.append((p + "self_attn.q_a_proj.weight", [ql, D], "linear", D))
        specs.append((p + "self_attn.q_a_layernorm.weight", [ql], "norm", 0))
        specs.append((p + "self_attn.q_b_proj.weight", [H * (nope + rope), ql], "linear", ql))
        specs.append((p + "self_attn.kv_a_proj_with_mqa.weight", [kvl + rope, D], "linear", D))
        specs.append((p + "self_attn.kv_a_layernorm.weight", [kvl], "norm", 0))
        specs.append((p + "self_attn.kv_b_proj.weight", [H * (nope + vd), kvl], "linear", kvl))
        specs.append((p + "self_attn.o_proj.weight", [D, H * vd], "out_linear", H * vd))
        specs.append((p + "post_attention_layernorm.weight", [D], "norm", 0))
        specs.append((p + "mlp.gate_proj.weight", [inter, D], "linear", D))
        specs.append((p + "mlp.up_proj.weight", [inter, D], "linear", D))
        specs.append((p + "mlp.down_proj.weight", [D, inter], "out_linear", inter))
    specs.append(("model.norm.weight", [D], "norm", 0))
    return specs


# Small-model scales (see init_values), chosen by measuring the golden cases: activations stay
# O(1) through the layers, label readouts vary over the image tokens, greedy steps have clear
# margins. Residual-branch output gain, embedding std, relative noise of norm weights.
OUT_GAIN = 1.0
EMBED_STD = 0.35
NORM_NOISE = 0.3


def init_values(kind, fan_in, shape, rng, full, rows=None):
    """float32 values of one tensor (or of `rows` leading rows of it).

    Small models: variance-preserving linears (std 1/sqrt(fan_in), residual-branch outputs times
    OUT_GAIN), norms 1 + NORM_NOISE noise, biases std 0.02, embeddings std EMBED_STD (tied head
    -> logits of a few units). Full model: normal * 0.02, norms exactly 1.
    """
    shape = list(shape)
    if rows is not None:
        shape[0] = rows
    if kind == "norm":
        if full:
            return np.ones(shape, np.float32)
        return (1.0 + NORM_NOISE * rng.standard_normal(shape)).astype(np.float32)
    if full:
        std = 0.02
    elif kind == "linear":
        std = 1.0 / math.sqrt(fan_in)
    elif kind == "out_linear":
        std = OUT_GAIN / math.sqrt(fan_in)
    elif kind == "bias":
        std = 0.02
    else:  # embed
        std = EMBED_STD
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def f32_to_bf16_bits(x):
    """Round float32 to bfloat16 (round to nearest even); returns uint16 bit patterns."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


DTYPE_SIZE = {"F32": 4, "BF16": 2, "I32": 4, "U8": 1, "F64": 8, "I64": 8}


def write_safetensors(path, entries, metadata=None, align=8):
    """Stream a safetensors file. entries: [(name, dtype, shape, chunks)] where chunks() yields
    bytes-like pieces whose total is the tensor's size. The data section starts 8-byte aligned
    and tensors are contiguous (as the format requires); every tensor offset must be a multiple
    of `align`, which the even dims used here guarantee (checked, never padded)."""
    header = {}
    offset = 0
    for name, dtype, shape, _ in entries:
        nbytes = DTYPE_SIZE[dtype] * int(np.prod(shape, dtype=np.int64))
        if offset % align:
            raise ValueError("%s: tensor offset %d is not %d-byte aligned; choose even dims"
                             % (name, offset, align))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = metadata or {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, dtype, shape, chunks in entries:
            start = f.tell()
            for piece in chunks():
                f.write(piece)
            want = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            if f.tell() - start != want:
                raise RuntimeError("%s: wrote %d bytes, expected %d" % (name, f.tell() - start, want))
    return offset


def read_safetensors(path):
    """{name: numpy array} (BF16 returned as float32 values); small files only."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    npt = {"F32": np.float32, "I32": np.int32, "U8": np.uint8, "F64": np.float64,
           "I64": np.int64, "BF16": np.uint16}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=npt[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            arr = bf16_bits_to_f32(arr)
        out[name] = arr.copy()
    return out


def _tensor_chunks(spec, index, seed, dtype, full):
    """Generator factory for one weight tensor, deterministic from (seed, tensor index) so the
    values do not depend on sharding; large tensors are produced in row blocks."""
    name, shape, kind, fan_in = spec

    def chunks():
        rng = np.random.default_rng([seed, index])
        row_elems = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        block = max(1, (1 << 24) // row_elems) if len(shape) > 1 else shape[0]
        done = 0
        while done < shape[0]:
            n = min(block, shape[0] - done)
            vals = init_values(kind, fan_in, shape, rng, full, rows=n)
            yield f32_to_bf16_bits(vals).tobytes() if dtype == "bf16" else vals.tobytes()
            done += n
    return chunks


def make_checkpoint(out_dir, dims, dtype="f32", shards=1, seed=0, full=False):
    """Write config.json and the weights; returns total weight bytes."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(build_config(dims, dtype), f, indent=2)
        f.write("\n")
    specs = tensor_specs(dims)
    st_dtype = "BF16" if dtype == "bf16" else "F32"
    esize = DTYPE_SIZE[st_dtype]
    sizes = [esize * int(np.prod(s[1], dtype=np.int64)) for s in specs]
    total = sum(sizes)
    # Greedy split in checkpoint order into `shards` files of roughly equal size.
    groups, current, acc = [], [], 0
    for i, size in enumerate(sizes):
        current.append(i)
        acc += size
        if len(groups) < shards - 1 and acc >= total * (len(groups) + 1) / shards:
            groups.append(current)
            current = []
    groups.append(current)
    groups = [g for g in groups if g]
    if len(groups) != shards:
        raise ValueError("cannot split %d tensors into %d non-empty shards" % (len(specs), shards))
    weight_map = {}
    for gi, group in enumerate(groups):
        fname = ("model.safetensors" if shards == 1
                 else "model-%05d-of-%05d.safetensors" % (gi + 1, shards))
        entries = [(specs[i][0], st_dtype, specs[i][1], _tensor_chunks(specs[i], i, seed, dtype, full))
                   for i in group]
        write_safetensors(os.path.join(out_dir, fname), entries)
        for i in group:
            weight_map[specs[i][0]] = fname
    if shards > 1:
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
            f.write("\n")
    return total


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one dim, e.g. --set v_num_hidden_layers=4 (v_ = vision_config)")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true",
                    help="full Youtu-VL-4B shapes, bf16, 3 shards, weights normal*0.02 (~10.7 GB)")
    args = ap.parse_args(argv)
    dims = dict(PRESETS["full" if args.full else args.preset])
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key not in dims:
            ap.error("unknown dim %r (known: %s)" % (key, ", ".join(sorted(dims))))
        dims[key] = parse_value(value)
    dtype, shards = ("bf16", 3) if args.full else (args.dtype, args.shards)
    t0 = time.time()
    total = make_checkpoint(args.out_dir, dims, dtype, shards, args.seed, full=args.full)
    print("wrote %s: %.3f GB of weights in %d file(s), %.1f s"
          % (args.out_dir, total / 1e9, shards, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
