"""Re-run the PyTorch reference on committed golden cases and check it reproduces them.

Guards the fixtures against silent edits and the reference against drift. Skips when torch is
missing (CI has no torch); the C tests compare the library against the same fixtures. Reads only
tests/fixtures/golden/ and tests/reference/; writes nothing.
"""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_checkpoint  # noqa: E402
import youtu_vl_ref  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
FLOAT_KEYS = ["pixel_values", "vision_out", "image_embeds", "hidden", "image_logits_own",
              "image_logits_prev", "last_logits", "greedy_logits", "hidden_text_first"]


@pytest.mark.parametrize("case", ["one_window", "bf16"])
def test_reference_reproduces_golden(case):
    case_dir = os.path.join(GOLDEN, case)
    golden = make_checkpoint.read_safetensors(os.path.join(case_dir, "golden.safetensors"))
    out = youtu_vl_ref.run_reference(
        case_dir, golden["image_rgb"], int(golden["max_num_patches"][0]),
        golden["input_ids"].tolist(), golden["label_ids"].tolist(),
        golden["input_ids_text_first"].tolist(), len(golden["greedy_ids"]))

    assert list(out["grid"]) == golden["grid"].tolist()
    assert out["greedy_ids"] == golden["greedy_ids"].tolist()
    assert out["absorbed_max_rel_diff"] < 1e-12
    for key in FLOAT_KEYS:
        got = out[key].numpy()
        want = golden[key].astype(np.float64)
        assert got.shape == want.shape, key
        rel = np.abs(got - want).max() / np.abs(want).max()
        assert rel < 1e-6, "%s differs from the golden by %.2e (relative to max)" % (key, rel)
