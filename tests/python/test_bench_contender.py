"""bench/contender.py does the work the library does: on a small random checkpoint (3 vision layers
with ragged windows and one full-attention layer, 2 MLA layers), in float32, its pixel values, its
label logits at the image tokens and its cached decode steps match the library's f32 path, and its
bf16 mode (the one bench/run_full.py times) stays close. Skips without torch or outside CTest."""
import json
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import contender  # noqa: E402
import make_checkpoint  # noqa: E402

TEXT_IDS = [5, 17, 42, 7]           # stand-ins for the chat text before the image
LABEL_IDS = [3, 50, 99, 120, 400]
FORCED_IDS = [11, 250, 599]         # decode steps with given tokens (greedy locks onto one id)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    if not os.environ.get("DMLLM_LIB"):
        pytest.skip("DMLLM_LIB not set (run through CTest)")
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import densemllm as dm
    ckpt = str(tmp_path_factory.mktemp("small"))
    make_checkpoint.make_checkpoint(ckpt, dict(make_checkpoint.PRESETS["small"]), "f32")
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    rgb = contender.generated_image(320, 288)   # 20x18 patches: 2x2 ragged 8x8 windows
    with dm.Model(ckpt, compute=dm.Compute.F32) as model, model.session(n_threads=2) as s:
        s.encode_image(dm.Image.from_array(rgb))
        pixel_values = np.asarray(s.pixel_values())
        n = s.image_grid().n_tokens
        ids = (TEXT_IDS + [cfg["vision_start_token_id"]] + [cfg["image_token_id"]] * n
               + [cfg["vision_end_token_id"]])
        s.eval(ids)
        logits = np.asarray(s.image_logits(LABEL_IDS, dm.Alignment.OWN))
        steps = []
        for token in FORCED_IDS:
            s.eval([token])
            steps.append(np.asarray(s.logits()))
    torch.set_grad_enabled(False)
    return dict(ckpt=ckpt, cfg=cfg, rgb=rgb, ids=ids, pixel_values=pixel_values, logits=logits,
                steps=np.stack(steps))


def run_contender(case, dtype):
    model = contender.YoutuVL(case["cfg"], contender.load_weights(case["ckpt"], dtype))
    labels, hidden, _ = contender.dense_query(model, case["rgb"], TEXT_IDS, LABEL_IDS, 8192)
    slots = torch.tensor(case["ids"]) == case["cfg"]["image_token_id"]
    logits = model.lm_head(hidden[slots], LABEL_IDS).numpy()
    steps = np.stack([model.lm_head(model([t])[-1]).numpy() for t in FORCED_IDS])
    return labels, logits, steps


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_f32_matches_the_library(case):
    pixel_values, _ = contender.preprocess(case["rgb"], 8192)
    assert rel(pixel_values.numpy(), case["pixel_values"]) < 1e-6
    labels, logits, steps = run_contender(case, torch.float32)
    assert logits.shape == case["logits"].shape == (90, len(LABEL_IDS))
    assert rel(logits, case["logits"]) < 1e-5
    assert (logits.argmax(1) == case["logits"].argmax(1)).all()
    assert rel(steps, case["steps"]) < 1e-5
    assert labels.shape == (288, 320) and len(set(labels.flatten().tolist())) > 1


def test_bf16_stays_close(case):
    _, logits, steps = run_contender(case, torch.bfloat16)
    assert rel(logits, case["logits"]) < 0.05
    assert (logits.argmax(1) == case["logits"].argmax(1)).mean() > 0.9
    assert rel(steps, case["steps"]) < 0.05
