"""The batched training path (tools/train/batched.py) equals the per-sample reference path
(tiny_model + youtu_vl_ref, train.sample_loss) on hidden states, losses and gradients, on a freshly
initialised tiny model and on the committed one. Skips without torch (CI has none; retraining needs
it). tools/train/check_batched.py runs the same checks on more samples and times both paths."""
import os
import sys

import numpy as np
import pytest

try:
    import torch
except ImportError:
    torch = None

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
pytestmark = pytest.mark.skipif(torch is None, reason="torch not installed")

if torch is not None:
    sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
    import check_batched  # noqa: E402
    import data  # noqa: E402
    import tiny_model as tm  # noqa: E402
    import train  # noqa: E402


@pytest.fixture(scope="module")
def fresh_model():
    torch.set_num_threads(1)
    _, vocab, cfg, W = train.fresh_model(4)
    return cfg, W, vocab, vocab.first_coordinate


def test_forward_loss_and_gradients_equal_the_reference(fresh_model):
    cfg, W, vocab, fc = fresh_model
    rng = np.random.default_rng(4)
    # Two scenes of one size (one batched group, conversations of 3 and 2 answers) and a crop.
    samples = [data.make_sample(rng, vocab, (256, 320), crop_fraction) for crop_fraction in (0.0, 0.0, 1.0)]
    assert [s["turns"][0][0] == tm.PROMPT_FGBG for s in samples] == [False, False, True]
    assert [len(s["answer_spans"]) for s in samples] == [3, 2, 1]
    assert check_batched.check_forward(W, cfg, samples) <= 1e-5
    e_loss, e_grad, name = check_batched.check_loss_and_grads(W, cfg, samples, fc)
    assert e_loss <= 1e-5
    assert e_grad <= 1e-4, name


def test_forward_equals_the_reference_on_the_committed_model():
    cfg, W, tok = check_batched.load_model(os.path.join(ROOT, "models", "tiny"))
    rng = np.random.default_rng(5)
    samples = [data.make_sample(rng, data.Vocabulary(tok)) for _ in range(4)]
    assert check_batched.check_forward(W, cfg, samples) <= 1e-5
