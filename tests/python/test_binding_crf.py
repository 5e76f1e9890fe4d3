"""The dense CRF and annotation reading through the Python binding: crf_refine against its
identities (0 iterations or no kernels return the input) and on a noisy two-region map, the CRF
settings reaching predict_dense and the box pipeline, and read_png_values round trips."""
import numpy as np
import pytest


def scene(dm, h=30, w=40, flip=0.3, seed=3):
    rng = np.random.default_rng(seed)
    truth = (np.arange(w)[None, :] >= w // 2).repeat(h, 0).astype(int)
    rgb = np.where(truth[..., None] == 1, [40, 180, 60], [200, 40, 40]).astype(np.uint8)
    favoured = np.where(rng.random((h, w)) < flip, 1 - truth, truth)
    prob = np.stack([np.where(favoured == 0, 0.7, 0.3), np.where(favoured == 1, 0.7, 0.3)], -1).astype(np.float32)
    return dm.Image.from_rgb(rgb.tobytes(), w, h), prob, truth


def test_crf_refine(dm):
    image, prob, truth = scene(dm)
    assert np.abs(dm.crf_refine(image, prob, iterations=0) - prob).max() < 1e-6
    assert np.abs(dm.crf_refine(image, prob, gaussian_compat=0, bilateral_compat=0) - prob).max() < 1e-6
    refined = dm.crf_refine(image, prob)
    assert refined.shape == prob.shape and np.allclose(refined.sum(-1), 1, atol=1e-5)
    assert (prob.argmax(-1) != truth).mean() > 0.2 and (refined.argmax(-1) != truth).mean() < 0.02
    with pytest.raises(dm.InvalidArgumentError, match="gaussian_sxy"):
        dm.crf_refine(image, prob, gaussian_sxy=0)
    with pytest.raises(TypeError, match="sigma"):
        dm.crf_refine(image, prob, sigma=1)
    with pytest.raises(ValueError, match="probabilities"):
        dm.crf_refine(image, prob[:-1])


def test_crf_settings_reach_the_readout(session, dm):
    image, _, _ = scene(dm)
    ids = [[5], [17], [42]]
    plain = session.predict_dense(image, label_token_ids=ids, evaluation=False)  # the default is the CRF
    skipped = session.predict_dense(image, label_token_ids=ids, evaluation=True, crf={"iterations": 0})
    refined = session.predict_dense(image, label_token_ids=ids, evaluation=True)
    assert (plain.labels == skipped.labels).all() and skipped.seconds_crf == 0 and refined.seconds_crf > 0
    with pytest.raises(dm.InvalidArgumentError, match="bilateral_srgb"):
        session.predict_dense(image, label_token_ids=ids, evaluation=True, crf={"bilateral_srgb": -1})


def test_read_png_values(dm, tmp_path):
    labels = (np.arange(12 * 7).reshape(7, 12) * 37 % 300).astype(np.uint16)
    for n_labels, palette in ((300, False), (256, True)):
        values = labels % n_labels
        dm.write_label_png(tmp_path / "l.png", values, n_labels)
        got, is_palette = dm.read_png_values(tmp_path / "l.png")
        assert (got == values).all() and got.dtype == np.uint16 and is_palette == palette
    with pytest.raises(dm.IOFailureError):
        dm.read_png_values(tmp_path / "missing.png")
