"""densemllm metrics and outputs against independent numpy / PIL computations: segmentation areas
and mIoU, depth errors (float32 and float64 inputs), LISA cIoU/gIoU, box IoU; PNG files read back
with PIL; the dense mask text; error messages naming the problem."""
import numpy as np
import pytest
from PIL import Image as PILImage


def test_seg_metrics(dm):
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 4, (6, 7)).astype(np.uint16) for _ in range(3)]
    gts = [rng.integers(0, 4, (6, 7)).astype(np.uint16) for _ in range(3)]
    gts[0][0, :] = 255
    inter = np.zeros(4)
    union = np.zeros(4)
    label = np.zeros(4)
    with dm.SegMetrics(4) as m:
        for p, g in zip(preds, gts):
            m.add(p, g)
            keep = g != 255
            for c in range(4):
                i = np.sum((p == c) & (g == c) & keep)
                inter[c] += i
                union[c] += np.sum((p == c) & keep) + np.sum((g == c) & keep) - i
                label[c] += np.sum((g == c) & keep)
        r = m.result()
    assert r.n_images == 3 and r.n_classes == 4
    np.testing.assert_array_equal(r.area_intersect, inter)
    np.testing.assert_array_equal(r.area_union, union)
    np.testing.assert_allclose(r.iou, inter / union)
    assert r.miou == pytest.approx(np.mean(inter / union)) and r.aacc == pytest.approx(inter.sum() / label.sum())
    assert r.iou.dtype == np.float64 and r.area_label.dtype == np.int64
    assert m.closed


def test_seg_metrics_errors(dm):
    with dm.SegMetrics(3) as m:
        with pytest.raises(dm.StateError):
            m.result()
        with pytest.raises(dm.InvalidArgumentError) as info:
            m.add(np.zeros(4, np.uint16), np.array([0, 1, 7, 0], np.uint16))
        assert "pixel" in info.value.message
        with pytest.raises(ValueError):
            m.add(np.zeros(4, np.uint16), np.zeros(5, np.uint16))
        with pytest.raises(ValueError):
            m.add(np.full(4, -1), np.zeros(4, np.uint16))  # not silently wrapped to 65535
    with pytest.raises(dm.InvalidArgumentError):
        dm.SegMetrics(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depth_metrics(dm, dtype):
    rng = np.random.default_rng(2)
    gt = rng.uniform(0.5, 9, (8, 10)).astype(dtype)
    pred = (gt * rng.uniform(0.8, 1.3, gt.shape)).astype(dtype)
    with dm.DepthMetrics(1e-3, 10.0) as m:
        m.add(pred, gt)
        s = m.result()
    g, p = gt.astype(np.float64), np.clip(pred.astype(np.float64), 1e-3, 10.0)  # clamped as the header says
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert s.n_images == 1 and s.n_pixels == gt.size
    assert s.abs_rel == pytest.approx(np.mean(np.abs(g - p) / g), rel=tol)
    assert s.rmse == pytest.approx(np.sqrt(np.mean((g - p) ** 2)), rel=tol)
    assert s.delta1 == pytest.approx(np.mean(np.maximum(g / p, p / g) < 1.25), rel=tol)


def test_mask_metrics_and_box_iou(dm):
    with dm.MaskMetrics() as m:
        m.add(np.array([1, 1, 0, 0], np.uint8), np.array([1, 0, 1, 255], np.uint8))  # I 1, U 3
        m.add(np.array([0, 0], np.uint8), np.array([0, 0], np.uint8))  # empty union scores 1
        s = m.result()
        with pytest.raises(dm.InvalidArgumentError):
            m.add([2], [0])
    assert (s.n_samples, s.sum_intersection, s.sum_union) == (2, 1, 3)
    assert s.ciou == pytest.approx(1 / 3) and s.giou == pytest.approx((1 / 3 + 1) / 2)
    assert dm.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    with pytest.raises(dm.InvalidArgumentError):
        dm.box_iou((10, 0, 0, 10), (0, 0, 1, 1))


def test_label_png_and_palette(dm, tmp_path):
    labels = np.array([[0, 1, 2], [3, 2, 1]], np.uint16)
    path = tmp_path / "labels.png"
    dm.write_label_png(path, labels)
    with PILImage.open(path) as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im), labels)
        assert im.getpalette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    assert [dm.label_color(k) for k in range(4)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    with pytest.raises(dm.InvalidArgumentError) as info:
        dm.write_label_png(tmp_path / "bad.png", labels, n_labels=2)
    assert info.value.message
    assert not (tmp_path / "bad.png").exists()


def test_depth_pngs(dm, tmp_path):
    depth = np.array([[0.5, 1.25], [2.0, np.nan]], np.float32)
    dm.write_depth_png16(tmp_path / "d16.png", depth)
    with PILImage.open(tmp_path / "d16.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.int64), [[500, 1250], [2000, 0]])
    dm.write_depth_color_png(tmp_path / "dc.png", depth, 0.5, 2.0)
    with PILImage.open(tmp_path / "dc.png") as im:
        rgb = np.asarray(im.convert("RGB"))
    assert tuple(rgb[0, 0]) == (252, 236, 140) and tuple(rgb[1, 0]) == (25, 30, 95) and tuple(rgb[1, 1]) == (0, 0, 0)
    with pytest.raises(ValueError):
        dm.write_depth_png16(tmp_path / "x.png", np.zeros(6, np.float32))  # flat needs width/height
    dm.write_depth_png16(tmp_path / "flat.png", np.zeros(6, np.float32), width=3, height=2)
    with PILImage.open(tmp_path / "flat.png") as im:
        assert im.size == (3, 2)


def test_overlay_and_pca(dm, tmp_path, image):
    labels = np.zeros((image.height, image.width), np.uint16)
    labels[:, image.width // 2:] = 1
    dm.write_overlay_png(tmp_path / "o.png", image, labels, 2, ["left", "right"], alpha=1.0)
    with PILImage.open(tmp_path / "o.png") as im:
        out = np.asarray(im.convert("RGB"))
    assert out.shape[0] == image.height and out.shape[1] > image.width  # the legend panel on the right
    w = image.width
    assert tuple(out[-1, w - 1]) == dm.overlay_color(1) and tuple(out[-1, 0]) == dm.overlay_color(0)
    # the background left as the photo, no legend, a box with its tag
    dm.write_overlay_png(tmp_path / "b.png", image, labels, 2, ["left", "right"], alpha=1.0, background=0,
                         legend=False, outline=0, boxes=[("right", (w // 2, 0, w, image.height))])
    with PILImage.open(tmp_path / "b.png") as im:
        out = np.asarray(im.convert("RGB"))
    photo = np.array(image.pixels, np.uint8)
    assert out.shape == photo.shape and np.array_equal(out[:, :w // 4], photo[:, :w // 4])
    assert tuple(out[-1, w - 1]) == dm.overlay_color(1)
    dm.write_pca_overlay_png(tmp_path / "po.png", image, np.random.default_rng(1).normal(size=(6, 5)).astype(
        np.float32), 3, 2, alpha=0.0)
    with PILImage.open(tmp_path / "po.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), photo)
    depth = np.linspace(1, 5, image.width * image.height, dtype=np.float32).reshape(image.height, w)
    dm.write_depth_color_png(tmp_path / "bar.png", depth, 1.0, 5.0, colorbar=True)
    with PILImage.open(tmp_path / "bar.png") as im:
        assert im.size[0] > w
    with pytest.raises(ValueError):
        dm.write_overlay_png(tmp_path / "o.png", image, labels[1:], 2)
    features = np.random.default_rng(3).normal(size=(6, 5)).astype(np.float32)
    dm.write_pca_png(tmp_path / "pca.png", features, 3, 2, 30, 20)
    with PILImage.open(tmp_path / "pca.png") as im:
        assert im.size == (30, 20)


def test_mask_text_roundtrip(dm):
    labels = np.array([[0, 0, 1], [1, 1, 2]], np.uint16)
    text = dm.mask_text_write(labels, ["wall", "<FG>", "sky"])
    assert text == "<ref>wall</ref><ref><FG></ref><ref>sky</ref><mask>(0,2)(1,3)(2,1)</mask>"
    assert dm.mask_text_write(labels) == "<mask>(0,2)(1,3)(2,1)</mask>"
    with pytest.raises(dm.InvalidArgumentError) as info:
        dm.mask_text_write(labels, n_labels=2)
    assert "(x 2, y 1)" in info.value.message  # the library names the offending pixel
    parsed = dm.mask_text_parse(text, 3, 2)
    assert np.array_equal(parsed.labels, labels) and parsed.names == ["wall", "<FG>", "sky"]
    assert not parsed.has_depth_tag and dm.mask_text_parse("<depth><mask>(0,6)</mask>", 3, 2).has_depth_tag
    with pytest.raises(dm.FormatError) as info:
        dm.mask_text_parse("<mask>(0,5)</mask>", 3, 2)
    assert info.value.message


def test_input_conversions(dm, tmp_path):
    # Nested lists, bool masks, other integer dtypes and big-endian arrays are converted once;
    # out-of-range values are refused instead of wrapped.
    dm.write_label_png(tmp_path / "l.png", [[0, 1], [2, 0]])
    with PILImage.open(tmp_path / "l.png") as im:
        assert np.asarray(im).tolist() == [[0, 1], [2, 0]]
    dm.write_label_png(tmp_path / "b.png", np.array([[1, 0], [0, 1]], dtype=">i8"), 2)
    with PILImage.open(tmp_path / "b.png") as im:
        assert np.asarray(im).tolist() == [[1, 0], [0, 1]]
    with dm.MaskMetrics() as m:
        m.add(np.array([True, False]), np.array([1, 1], np.int64))
        assert m.result().sum_intersection == 1
    with pytest.raises(ValueError):
        dm.write_label_png(tmp_path / "x.png", [[0, 1], [2]])
    with pytest.raises(ValueError):
        dm.write_label_png(tmp_path / "x.png", np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError):
        dm.write_label_png(tmp_path / "x.png", [[70000]])
