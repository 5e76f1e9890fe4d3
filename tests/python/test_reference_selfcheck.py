"""Re-run the PyTorch reference on committed golden cases and check it reproduces them.

Guards the fixtures against silent edits and the reference against drift. The reference tests
skip when torch is missing (CI has no torch; the C tests compare the library against the same
fixtures); the file-format test always runs. Reads only tests/fixtures/golden/ and
tests/reference/; writes nothing.
"""
import os
import sys

import numpy as np
import pytest

try:
    import torch
except ImportError:
    torch = None

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_checkpoint  # noqa: E402

if torch is not None:
    import youtu_vl_ref  # noqa: E402
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
FLOAT_KEYS = ["pixel_values", "vision_out", "image_embeds", "hidden", "image_logits_own",
              "image_logits_prev", "last_logits", "greedy_logits", "penalty_logits", "hidden_text_first"]


@needs_torch
@pytest.mark.parametrize("case", ["one_window", "bf16"])
def test_reference_reproduces_golden(case):
    case_dir = os.path.join(GOLDEN, case)
    golden = make_checkpoint.read_safetensors(os.path.join(case_dir, "golden.safetensors"))
    out = youtu_vl_ref.run_reference(
        case_dir, golden["image_rgb"], int(golden["max_num_patches"][0]),
        golden["input_ids"].tolist(), golden["label_ids"].tolist(),
        golden["input_ids_text_first"].tolist(), len(golden["greedy_ids"]),
        float(golden["repetition_penalty"][0]), len(golden["penalty_ids"]))

    assert list(out["grid"]) == golden["grid"].tolist()
    assert out["greedy_ids"] == golden["greedy_ids"].tolist()
    assert out["penalty_ids"] == golden["penalty_ids"].tolist()
    assert out["absorbed_max_rel_diff"] < 1e-12
    for key in FLOAT_KEYS:
        got = out[key].numpy()
        want = golden[key].astype(np.float64)
        assert got.shape == want.shape, key
        rel = np.abs(got - want).max() / np.abs(want).max()
        assert rel < 1e-6, "%s differs from the golden by %.2e (relative to max)" % (key, rel)


@needs_torch
def test_size_rule_upscales_and_shrinks():
    # §2.2: 256x256 stays (the MLXCEL capture: one 16x16 grid); 245x250 rounds UP to 256x256;
    # 340x300 over a 360-patch cap shrinks in 0.02 steps until s = 0.94 -> 320x288.
    assert youtu_vl_ref.target_size(256, 256, 256) == (256, 256)
    assert youtu_vl_ref.target_size(245, 250, 256) == (256, 256)
    assert youtu_vl_ref.target_size(340, 300, 360) == (320, 288)
    assert youtu_vl_ref.target_size(340, 300, 10 ** 6) == (352, 320)


@needs_torch
def test_ragged_windows():
    # Merged grid 10x9 with 8x8 windows: 8x8, 8x1, 2x8, 2x1 tokens -> patch bounds x4.
    index, cu = youtu_vl_ref.window_partition(10, 9, 8)
    assert cu == [0, 256, 288, 352, 360]
    assert index[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 9]          # first window, row-major
    assert index[64:72] == [8, 17, 26, 35, 44, 53, 62, 71]   # the 8x1 column window
    assert sorted(index) == list(range(90))


@needs_torch
def test_vision_rope_angles_match_spec_for_head_dim_72():
    angles = youtu_vl_ref.vision_rope_angles(torch.tensor([[3.0, 5.0]], dtype=torch.float64), 72)
    assert angles.shape == (1, 36)
    assert float(angles[0, 0]) == 3.0 and float(angles[0, 18]) == 5.0
    assert abs(float(angles[0, 1]) - 3.0 * 10000.0 ** (-2.0 / 36)) < 1e-15
    assert abs(float(angles[0, 35]) - 5.0 * 10000.0 ** (-34.0 / 36)) < 1e-15


@needs_torch
def test_interleaved_rope_matches_hf_deinterleave_then_rotate_half():
    # §4.4: HF permutes (x0,x2,..,x1,x3,..) and applies rotate-half; dot products must agree.
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(7, 8, generator=gen, dtype=torch.float64)
    k = torch.randn(7, 8, generator=gen, dtype=torch.float64)
    pos = torch.arange(7)
    ours = (youtu_vl_ref.interleaved_rope(q, pos, 500000.0)
            * youtu_vl_ref.interleaved_rope(k, pos, 500000.0)).sum(-1)

    def hf(x):
        x = torch.cat([x[:, 0::2], x[:, 1::2]], dim=-1)
        inv = 500000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
        ang = torch.cat([pos[:, None] * inv, pos[:, None] * inv], dim=-1)
        rot = torch.cat([-x[:, 4:], x[:, :4]], dim=-1)
        return x * ang.cos() + rot * ang.sin()
    assert torch.allclose(ours, (hf(q) * hf(k)).sum(-1), rtol=0, atol=1e-12)


def test_bf16_checkpoint_values_are_bf16():
    weights = make_checkpoint.read_safetensors(os.path.join(GOLDEN, "bf16", "model.safetensors"))
    w = weights["model.layers.0.self_attn.kv_b_proj.weight"]
    assert w.dtype == np.float32 and not (w.view(np.uint32) & 0xFFFF).any()


@pytest.mark.parametrize("case", ["one_window", "ragged", "bf16"])
def test_fixture_files_are_well_formed_safetensors(case):
    # The layout other readers (HF safetensors, the C loader) require: 8-byte-aligned data start,
    # contiguous tensors in header order covering the data section exactly, no trailing bytes.
    import json
    import struct
    case_dir = os.path.join(GOLDEN, case)
    files = [f for f in os.listdir(case_dir) if f.endswith(".safetensors")]
    assert "golden.safetensors" in files and len(files) >= 2
    for fname in files:
        path = os.path.join(case_dir, fname)
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        assert (8 + n) % 8 == 0, fname
        spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
        assert spans[0][0] == 0, fname
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), fname
        assert os.path.getsize(path) == 8 + n + spans[-1][1], fname
