"""Cross-checks the C metrics (through ctypes on $DMLLM_LIB) against independent numpy
computations written the way the reference code states them (metrics.md): mmseg's histogram areas,
BTS/ZoeDepth compute_errors per image, LISA's intersectionAndUnion, torchvision's box IoU. Random
inputs cover many images, ignored and out-of-range labels, invalid depths, non-finite predictions,
resizing and crops. Reads nothing but the library; writes nothing.
"""
import ctypes as C
import os

import numpy as np
import pytest

LIB = os.environ.get("DMLLM_LIB")
pytestmark = pytest.mark.skipif(not LIB, reason="DMLLM_LIB not set (run through CTest)")


class SegParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("n_classes", C.c_int), ("ignore_index", C.c_int),
                ("reduce_zero_label", C.c_int)]


class SegResult(C.Structure):
    _fields_ = [("n_classes", C.c_int), ("n_images", C.c_int64), ("miou", C.c_double), ("macc", C.c_double),
                ("aacc", C.c_double), ("n_iou_classes", C.c_int), ("n_acc_classes", C.c_int),
                ("iou", C.POINTER(C.c_double)), ("acc", C.POINTER(C.c_double))] + [
                (name, C.POINTER(C.c_int64)) for name in ("area_intersect", "area_union", "area_pred", "area_label")]


class DepthParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("min_depth", C.c_double), ("max_depth", C.c_double),
                ("crop", C.c_int)]


DEPTH_KEYS = ["delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"]


class DepthScores(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("n_images", C.c_int64), ("n_images_empty", C.c_int64),
                ("n_pixels", C.c_int64)] + [(k, C.c_double) for k in DEPTH_KEYS]


class MaskScores(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("n_samples", C.c_int64), ("sum_intersection", C.c_int64),
                ("sum_union", C.c_int64), ("ciou", C.c_double), ("giou", C.c_double)]


@pytest.fixture(scope="module")
def lib():
    lib = C.CDLL(LIB)
    lib.dmllm_last_error.restype = C.c_char_p
    lib.dmllm_seg_metrics_params_sizeof.restype = C.c_size_t
    lib.dmllm_depth_metrics_params_sizeof.restype = C.c_size_t
    # The mirrors above must match the header's layout.
    assert lib.dmllm_seg_metrics_params_sizeof() == C.sizeof(SegParams)
    assert lib.dmllm_depth_metrics_params_sizeof() == C.sizeof(DepthParams)
    return lib


def ok(lib, status):
    assert status == 0, lib.dmllm_last_error().decode()


def ptr(array, ctype):
    return array.ctypes.data_as(C.POINTER(ctype))


# ---- segmentation ------------------------------------------------------------------------------

def mmseg_areas(pred, gt, n_classes, ignore_index, reduce_zero_label):
    gt = gt.astype(np.int64)
    if reduce_zero_label:
        gt[gt == 0] = 255
        gt = gt - 1
        gt[gt == 254] = 255
    keep = gt != ignore_index
    pred, gt = pred[keep].astype(np.int64), gt[keep]
    bins = dict(bins=n_classes, range=(0, n_classes - 1))  # torch.histc(bins=C, min=0, max=C-1)
    intersect = np.histogram(pred[pred == gt], **bins)[0]
    area_pred = np.histogram(pred, **bins)[0]
    area_label = np.histogram(gt, **bins)[0]
    return intersect, area_pred + area_label - intersect, area_pred, area_label


def test_segmentation_matches_mmseg(lib):
    rng = np.random.default_rng(5)
    n_classes = 6
    params = SegParams(C.sizeof(SegParams), n_classes, 255, 1)
    m = C.c_void_p()
    ok(lib, lib.dmllm_seg_metrics_create(C.byref(params), C.byref(m)))
    totals = [np.zeros(n_classes, np.int64) for _ in range(4)]
    for _ in range(7):
        h, w = rng.integers(1, 40, size=2)
        gt = rng.integers(0, n_classes + 1, size=(h, w)).astype(np.uint16)  # raw: 0 = ignore, 1..C
        gt[rng.random((h, w)) < 0.1] = 255
        gt[gt == 6] = 2  # class 5 (raw 6) never in the GT: predicted-only class, IoU 0
        pred = rng.integers(0, n_classes + 2, size=(h, w)).astype(np.uint16)  # C, C+1: out of range
        ok(lib, lib.dmllm_seg_metrics_add(m, ptr(pred, C.c_uint16), ptr(gt, C.c_uint16), C.c_size_t(gt.size)))
        for total, area in zip(totals, mmseg_areas(pred, gt, n_classes, 255, True)):
            total += area
    result = C.POINTER(SegResult)()
    ok(lib, lib.dmllm_seg_metrics_result(m, C.byref(result)))
    r = result.contents
    intersect, union, area_pred, area_label = totals
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = intersect / union, intersect / area_label
    for name, want in zip(("area_intersect", "area_union", "area_pred", "area_label"), totals):
        assert np.array_equal(np.ctypeslib.as_array(getattr(r, name), (n_classes,)), want), name
    np.testing.assert_allclose(np.ctypeslib.as_array(r.iou, (n_classes,)), iou, rtol=1e-12)
    np.testing.assert_allclose(np.ctypeslib.as_array(r.acc, (n_classes,)), acc, rtol=1e-12)
    assert iou[5] == 0 and np.isnan(acc[5])
    assert r.miou == pytest.approx(np.nanmean(iou), rel=1e-12)
    assert r.macc == pytest.approx(np.nanmean(acc), rel=1e-12)
    assert r.aacc == pytest.approx(intersect.sum() / area_label.sum(), rel=1e-12)
    assert r.n_images == 7
    lib.dmllm_seg_result_free(result)
    lib.dmllm_seg_metrics_free(m)


# ---- depth -------------------------------------------------------------------------------------

def resize_align_corners(pred, h, w):
    """Bilinear resize with align_corners=True (ZoeDepth's F.interpolate call), in float64."""
    def axis(n_out, n_in):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0
    y0, y1, fy = axis(h, pred.shape[0])
    x0, x1, fx = axis(w, pred.shape[1])
    top = pred[y0][:, x0] * (1 - fx) + pred[y0][:, x1] * fx
    bottom = pred[y1][:, x0] * (1 - fx) + pred[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def compute_errors(gt, pred):
    thresh = np.maximum(gt / pred, pred / gt)
    e = np.log(pred) - np.log(gt)
    return dict(delta1=(thresh < 1.25).mean(), delta2=(thresh < 1.25 ** 2).mean(), delta3=(thresh < 1.25 ** 3).mean(),
                abs_rel=np.mean(np.abs(gt - pred) / gt), sq_rel=np.mean((gt - pred) ** 2 / gt),
                rmse=np.sqrt(np.mean((gt - pred) ** 2)), rmse_log=np.sqrt(np.mean(e ** 2)),
                log10=np.mean(np.abs(np.log10(pred) - np.log10(gt))),
                silog=100 * np.sqrt(np.mean(e ** 2) - np.mean(e) ** 2))


def reference_depth(pred, gt, lo, hi, garg):
    if pred.shape != gt.shape:
        pred = resize_align_corners(pred, *gt.shape)
    pred = pred.copy()
    pred[pred < lo] = lo
    pred[pred > hi] = hi
    pred[np.isinf(pred)] = hi
    pred[np.isnan(pred)] = lo
    valid = (gt > lo) & (gt < hi)
    if garg:
        h, w = gt.shape
        crop = np.zeros_like(valid)
        crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
        valid &= crop
    return compute_errors(gt[valid], pred[valid]), int(valid.sum())


@pytest.mark.parametrize("garg", [False, True])
def test_depth_matches_compute_errors(lib, garg):
    rng = np.random.default_rng(7 + garg)
    lo, hi = 1e-3, 80.0
    params = DepthParams(C.sizeof(DepthParams), lo, hi, 2 if garg else 0)
    m = C.c_void_p()
    ok(lib, lib.dmllm_depth_metrics_create(C.byref(params), C.byref(m)))
    per_image, n_pixels = [], 0
    for i in range(6):
        h, w = (int(v) for v in rng.integers(20, 60, size=2))
        gt = rng.uniform(0.5, 90, size=(h, w))  # some above max
        gt[rng.random((h, w)) < 0.1] = 0
        gt[0, 0] = np.nan
        if i % 2:  # a coarser prediction, resized to the GT
            pred = rng.uniform(0.3, 85, size=(h // 3 + 1, w // 2 + 1))
        else:  # same size, with non-finite and out-of-range values for the clamp
            pred = gt * rng.uniform(0.7, 1.4, size=(h, w))
            pred.flat[rng.choice(gt.size, 8, replace=False)] = [np.nan, np.inf, -np.inf, -1, 0, 1e-4, 200, np.nan]
        ok(lib, lib.dmllm_depth_metrics_add_f64(m, ptr(pred, C.c_double), pred.shape[1], pred.shape[0],
                                                ptr(gt, C.c_double), w, h))
        metrics, n = reference_depth(pred, gt, lo, hi, garg)
        per_image.append(metrics)
        n_pixels += n
    scores = DepthScores(C.sizeof(DepthScores))
    ok(lib, lib.dmllm_depth_metrics_result(m, C.byref(scores)))
    assert scores.n_images == 6 and scores.n_pixels == n_pixels
    for key in DEPTH_KEYS:
        want = np.mean([metrics[key] for metrics in per_image])  # dataset value = mean of per-image values
        assert getattr(scores, key) == pytest.approx(want, rel=1e-10), key
    lib.dmllm_depth_metrics_free(m)


def test_resize_matches_torch():
    torch = pytest.importorskip("torch")
    pred = np.random.default_rng(3).uniform(1, 5, size=(7, 11))
    want = torch.nn.functional.interpolate(torch.from_numpy(pred)[None, None], size=(17, 23), mode="bilinear",
                                           align_corners=True)[0, 0].numpy()
    np.testing.assert_allclose(resize_align_corners(pred, 17, 23), want, rtol=1e-12)


# ---- referring segmentation and boxes ----------------------------------------------------------

def lisa_intersection_union(output, target):
    output = output.astype(np.int64).copy()
    output[target == 255] = 255
    intersection = output[output == target]
    area_intersection = np.histogram(intersection, bins=2, range=(0, 1))[0]
    area_output = np.histogram(output, bins=2, range=(0, 1))[0]
    area_target = np.histogram(target, bins=2, range=(0, 1))[0]
    return area_intersection[1], (area_output + area_target - area_intersection)[1]


def test_masks_match_lisa(lib):
    rng = np.random.default_rng(11)
    m = C.c_void_p()
    ok(lib, lib.dmllm_mask_metrics_create(C.byref(m)))
    inter, union = [], []
    for i in range(9):
        h, w = rng.integers(5, 30, size=2)
        gt = (rng.random((h, w)) < rng.uniform(0, 0.6)).astype(np.uint8)
        pred = (rng.random((h, w)) < rng.uniform(0, 0.6)).astype(np.uint8)
        gt[rng.random((h, w)) < 0.05] = 255
        if i == 4:  # a no-target sample with nothing predicted
            gt[gt == 1] = 0
            pred[:] = 0
        ok(lib, lib.dmllm_mask_metrics_add(m, ptr(pred, C.c_uint8), ptr(gt, C.c_uint8), C.c_size_t(gt.size)))
        a, b = lisa_intersection_union(pred, gt)
        inter.append(a)
        union.append(b)
    inter, union = np.array(inter, np.float64), np.array(union, np.float64)
    scores = MaskScores(C.sizeof(MaskScores))
    ok(lib, lib.dmllm_mask_metrics_result(m, C.byref(scores)))
    assert scores.sum_intersection == inter.sum() and scores.sum_union == union.sum()
    assert scores.ciou == pytest.approx(inter.sum() / (union.sum() + 1e-10), rel=1e-9)
    lisa_giou = inter / (union + 1e-5)
    lisa_giou[union == 0] += 1.0
    assert scores.giou == pytest.approx(lisa_giou.mean(), rel=1e-5)  # LISA's epsilon, left out by the library
    lib.dmllm_mask_metrics_free(m)


def test_box_iou_matches_torchvision_formula(lib):
    rng = np.random.default_rng(13)
    out = C.c_double()
    for _ in range(200):
        a, b = np.sort(rng.uniform(0, 50, size=(2, 2, 2)), axis=2)  # per box: [[x0, x1], [y0, y1]] sorted
        box_a = np.array([a[0, 0], a[1, 0], a[0, 1], a[1, 1]])
        box_b = np.array([b[0, 0], b[1, 0], b[0, 1], b[1, 1]])
        lt, rb = np.maximum(box_a[:2], box_b[:2]), np.minimum(box_a[2:], box_b[2:])
        inter = np.prod(np.clip(rb - lt, 0, None))
        area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
        ok(lib, lib.dmllm_box_iou(ptr(box_a, C.c_double), ptr(box_b, C.c_double), C.byref(out)))
        assert out.value == pytest.approx(inter / (area(box_a) + area(box_b) - inter), rel=1e-12, abs=1e-15)
