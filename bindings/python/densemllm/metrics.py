"""The report's benchmark metrics (docs/metrics.md): accumulators for semantic segmentation (mmseg
IoUMetric), depth (BTS/ZoeDepth compute_errors) and referring segmentation (LISA cIoU/gIoU), plus
box IoU. Each accumulator is a context manager owning its C object."""
from __future__ import annotations

import ctypes
import enum
from ctypes import byref, c_double, c_void_p
from dataclasses import dataclass
from typing import Any, Sequence

from . import _arrays, _capi
from .image import _Handle, pinned_call
from .errors import check

_lib = _capi.lib


class DepthCrop(enum.IntEnum):
    """dmllm_depth_crop: evaluation crop of the depth metrics."""
    NONE = 0
    EIGEN = 1
    GARG = 2


@dataclass
class SegResult:
    """dmllm_seg_result: dataset scores as fractions; per-class arrays have n_classes entries
    (NaN where a ratio is 0/0)."""
    n_classes: int
    n_images: int
    miou: float
    macc: float
    aacc: float
    n_iou_classes: int
    n_acc_classes: int
    iou: Any
    acc: Any
    area_intersect: Any
    area_union: Any
    area_pred: Any
    area_label: Any


@dataclass
class DepthScores:
    """dmllm_depth_scores: means of the per-image values over images with valid pixels."""
    n_images: int
    n_images_empty: int
    n_pixels: int
    delta1: float
    delta2: float
    delta3: float
    abs_rel: float
    sq_rel: float
    rmse: float
    rmse_log: float
    log10: float
    silog: float


@dataclass
class MaskScores:
    """dmllm_mask_scores: LISA's cIoU (pooled) and gIoU (mean per sample)."""
    n_samples: int
    sum_intersection: int
    sum_union: int
    ciou: float
    giou: float


def _scores(cls, raw):
    return cls(**{name: getattr(raw, name) for name in cls.__dataclass_fields__})


def _pair(pred: Any, gt: Any, code: str):
    p, g = _arrays.Input(pred, code, "pred"), _arrays.Input(gt, code, "gt")
    if p.size != g.size:
        raise ValueError(f"pred has {p.size} values, gt {g.size}")
    return p, g


class SegMetrics(_Handle):
    """Semantic segmentation accumulator: add(pred, gt) per image, then result()."""

    _free = "dmllm_seg_metrics_free"
    _kind = "segmentation metrics"

    def __init__(self, n_classes: int, ignore_index: int = 255, reduce_zero_label: bool = False):
        super().__init__(None)
        p = _capi.SegMetricsParams()
        _lib.dmllm_seg_metrics_params_init(byref(p))
        p.n_classes, p.ignore_index, p.reduce_zero_label = n_classes, ignore_index, int(reduce_zero_label)
        out = c_void_p()
        check(_lib.dmllm_seg_metrics_create(byref(p), byref(out)))
        self._handle = out.value

    def add(self, pred: Any, gt: Any) -> None:
        """One image: label maps (uint16) of the same size."""
        p, g = _pair(pred, gt, "H")
        check(pinned_call(_lib.dmllm_seg_metrics_add, self, p.address, g.address, p.size))

    def result(self) -> SegResult:
        out = ctypes.POINTER(_capi.SegResult)()
        check(pinned_call(_lib.dmllm_seg_metrics_result, self, byref(out)))
        try:
            r = out.contents
            n = (r.n_classes,)
            return SegResult(r.n_classes, r.n_images, r.miou, r.macc, r.aacc, r.n_iou_classes, r.n_acc_classes,
                             _arrays.copy_from(r.iou, "d", n), _arrays.copy_from(r.acc, "d", n),
                             *(_arrays.copy_from(getattr(r, name), "q", n)
                               for name in ("area_intersect", "area_union", "area_pred", "area_label")))
        finally:
            _lib.dmllm_seg_result_free(out)


class DepthMetrics(_Handle):
    """Depth accumulator (metres): add(pred, gt) per image, then result(). float64 inputs go
    through dmllm_depth_metrics_add_f64, anything else as float32."""

    _free = "dmllm_depth_metrics_free"
    _kind = "depth metrics"

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0, crop: DepthCrop = DepthCrop.NONE):
        super().__init__(None)
        p = _capi.DepthMetricsParams()
        _lib.dmllm_depth_metrics_params_init(byref(p))
        p.min_depth, p.max_depth, p.crop = min_depth, max_depth, int(crop)
        out = c_void_p()
        check(_lib.dmllm_depth_metrics_create(byref(p), byref(out)))
        self._handle = out.value

    @staticmethod
    def _is_f64(x: Any) -> bool:
        if _arrays.HAVE_NUMPY:
            return getattr(x, "dtype", None) == _arrays.numpy.float64
        return getattr(x, "typecode", None) == "d" or getattr(x, "format", None) == "d"

    def add(self, pred: Any, gt: Any) -> None:
        """One image: pred (h, w) and gt (H, W) depth maps; pred is resized to gt when they differ."""
        code = "d" if self._is_f64(pred) and self._is_f64(gt) else "f"
        p, g = _arrays.Input(pred, code, "pred"), _arrays.Input(gt, code, "gt")
        (ph, pw), (gh, gw) = p.shape2d(), g.shape2d()
        add = _lib.dmllm_depth_metrics_add_f64 if code == "d" else _lib.dmllm_depth_metrics_add
        check(pinned_call(add, self, p.address, pw, ph, g.address, gw, gh))

    def result(self) -> DepthScores:
        raw = _capi.DepthScores(struct_size=ctypes.sizeof(_capi.DepthScores))
        check(pinned_call(_lib.dmllm_depth_metrics_result, self, byref(raw)))
        return _scores(DepthScores, raw)


class MaskMetrics(_Handle):
    """Referring segmentation accumulator: add(pred 0/1, gt 0/1/255) per sample, then result()."""

    _free = "dmllm_mask_metrics_free"
    _kind = "mask metrics"

    def __init__(self):
        super().__init__(None)
        out = c_void_p()
        check(_lib.dmllm_mask_metrics_create(byref(out)))
        self._handle = out.value

    def add(self, pred: Any, gt: Any) -> None:
        p, g = _pair(pred, gt, "B")
        check(pinned_call(_lib.dmllm_mask_metrics_add, self, p.address, g.address, p.size))

    def result(self) -> MaskScores:
        raw = _capi.MaskScores(struct_size=ctypes.sizeof(_capi.MaskScores))
        check(pinned_call(_lib.dmllm_mask_metrics_result, self, byref(raw)))
        return _scores(MaskScores, raw)


def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes, no +1 (dmllm_box_iou)."""
    out = c_double()
    check(_lib.dmllm_box_iou((c_double * 4)(*box_a), (c_double * 4)(*box_b), byref(out)))
    return out.value
