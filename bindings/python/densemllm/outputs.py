"""Files and text made from dense predictions: PNG writers (written atomically by the library),
the VOC palette of label maps and the overlay palette, and the official dense mask text. Label maps are uint16 (height, width) arrays;
a flat buffer works too when width and height are given."""
from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_void_p
from typing import Any, Optional, Sequence, Tuple, Union

from . import _arrays, _capi
from .errors import check
from .image import as_image, pinned_call
from .model import ImageLike, _string_array
from .results import MaskText

_lib = _capi.lib
PathLike = Union[str, os.PathLike]
DEPTH_PNG_SCALE = 1000.0  # DMLLM_DEPTH_PNG_SCALE: units per metre of write_depth_png16 (millimetres)


def label_color(label: int) -> Tuple[int, int, int]:
    """The PASCAL VOC palette colour of a label (dmllm_label_color)."""
    rgb = (ctypes.c_uint8 * 3)()
    check(_lib.dmllm_label_color(label, rgb))
    return tuple(rgb)


def overlay_color(label: int) -> Tuple[int, int, int]:
    """The colour of a label in overlays (dmllm_overlay_color): light, never dark."""
    rgb = (ctypes.c_uint8 * 3)()
    check(_lib.dmllm_overlay_color(label, rgb))
    return tuple(rgb)


def _map(values: Any, code: str, name: str, width: Optional[int], height: Optional[int]):
    buf = _arrays.Input(values, code, name)
    h, w = buf.shape2d(width, height)
    return buf, w, h


def write_label_png(path: PathLike, labels: Any, n_labels: Optional[int] = None, *, width: Optional[int] = None,
                    height: Optional[int] = None) -> None:
    """The map as a PNG of label values: 8-bit palette when n_labels <= 256, else 16-bit gray.
    n_labels defaults to the largest label + 1."""
    buf, w, h = _map(labels, "H", "labels", width, height)
    n = (buf.max_value() or 0) + 1 if n_labels is None else n_labels
    check(_lib.dmllm_write_label_png(os.fsencode(path), buf.address, w, h, n))


def _boxes(boxes: Sequence[Any]):
    """(label, (x0, y0, x1, y1)) pairs or objects with .label and .box (Region) as the C array of
    pointers dmllm_overlay_params.boxes takes; the structs and encoded labels are returned too, to
    live as long as the array."""
    labels, structs = [], (_capi.Region * len(boxes))()
    pointers = (ctypes.POINTER(_capi.Region) * max(len(boxes), 1))()
    for i, item in enumerate(boxes):
        label, box = (item.label, item.box) if hasattr(item, "box") else item
        if len(box) != 4:
            raise ValueError(f"boxes[{i}]: expected x0, y0, x1, y1, got {box!r}")
        labels.append((label or "").encode())
        structs[i].struct_size = ctypes.sizeof(_capi.Region)
        structs[i].label = labels[-1]
        structs[i].box[:] = [int(v) for v in box]
        pointers[i] = ctypes.pointer(structs[i])
    return pointers, (structs, labels)


def write_overlay_png(path: PathLike, image: ImageLike, labels: Any, n_labels: Optional[int] = None,
                      names: Optional[Sequence[Optional[str]]] = None, alpha: float = 0.5, *,
                      background: Optional[int] = None, outline: Optional[int] = None, legend: bool = True,
                      boxes: Sequence[Any] = ()) -> None:
    """The image blended toward each label's overlay colour with outlines along the label borders,
    the background label left as the photo, boxes with their label on a tag, and a legend of the
    labels present in a panel right of the image (dmllm_write_overlay_png_v2).

    image: what segment() takes: an Image, a file path, a PIL image or a pixel array.
    labels: a (height, width) label map of the image's size, or a result (DenseResult, ReferResult,
        OpensetResult), whose labels, label_names and background_label then give labels, n_labels,
        names and background unless these are passed; None with n_labels 0 draws the boxes alone.
    n_labels: label values are 0 .. n_labels-1; None: len(names), else the largest label + 1.
    names: the legend's name of each label value (None, or a None entry: "label N").
    alpha: weight of the label colour, 0 .. 1.
    background: the label left as the photo (no colour, outline or legend row), or None.
    outline: width in px of the outline along the inside of label borders; None: by the image
        size; 0: none.
    legend: draw the legend panel.
    boxes: (label, (x0, y0, x1, y1)) pairs or Region objects (a Regions result works)."""
    if hasattr(labels, "label_names"):  # a result: it names its own labels
        result = labels
        labels = result.labels
        names = result.label_names if names is None else names
        background = result.background_label if background is None else background
    img = as_image(image)
    buf = _arrays.Input(labels, "H", "labels") if labels is not None else None
    if buf is not None and buf.size != img.width * img.height:
        raise ValueError(f"labels: {buf.size} values for a {img.width}x{img.height} image")
    if n_labels is None:
        n_labels = len(names) if names is not None else ((buf.max_value() or 0) + 1 if buf is not None else 0)
    name_arr = _string_array(names) if names is not None else None
    if names is not None and len(names) < n_labels:
        raise ValueError(f"names: {len(names)} names for {n_labels} labels")
    names_c = ctypes.cast(name_arr, ctypes.POINTER(ctypes.c_char_p)) if name_arr else None
    params = _capi.OverlayParams()
    _lib.dmllm_overlay_params_init(byref(params))
    params.alpha = alpha
    params.background_label = -1 if background is None else background
    params.outline_px = -1 if outline is None else outline  # -1: DMLLM_AUTO
    params.legend = int(bool(legend))
    box_array, _keep = _boxes(boxes)
    params.boxes = ctypes.cast(box_array, ctypes.POINTER(ctypes.POINTER(_capi.Region)))
    params.n_boxes = len(boxes)
    check(pinned_call(_lib.dmllm_write_overlay_png_v2, os.fsencode(path), img,
                      buf.address if buf is not None else None, n_labels, names_c, byref(params)))


def write_depth_png16(path: PathLike, depth_m: Any, scale: float = 0.0, *, width: Optional[int] = None,
                      height: Optional[int] = None) -> None:
    """Depth as 16-bit gray: round(depth * scale) (scale 0: DEPTH_PNG_SCALE, millimetres)."""
    buf, w, h = _map(depth_m, "f", "depth_m", width, height)
    check(_lib.dmllm_write_depth_png16(os.fsencode(path), buf.address, w, h, scale))


def write_depth_color_png(path: PathLike, depth_m: Any, min_m: float = 0.0, max_m: float = 0.0, *,
                          width: Optional[int] = None, height: Optional[int] = None, colorbar: bool = False) -> None:
    """Depth as a colour map, near = warm; min_m / max_m <= 0 take the 2nd / 98th percentile (fix
    both for one scale across images). colorbar: a bar with ticks in metres right of the map."""
    buf, w, h = _map(depth_m, "f", "depth_m", width, height)
    write = _lib.dmllm_write_depth_colorbar_png if colorbar else _lib.dmllm_write_depth_color_png
    check(write(os.fsencode(path), buf.address, w, h, min_m, max_m))


def write_pca_png(path: PathLike, features: Any, grid_w: int, grid_h: int, out_w: int = 0, out_h: int = 0) -> None:
    """PCA picture of token features (rows = grid_w*grid_h tokens, cols = features), as Figure 4."""
    buf = _arrays.Input(features, "f", "features")
    if len(buf.shape) != 2:
        raise ValueError(f"features: expected (tokens, features), got shape {buf.shape}")
    check(_lib.dmllm_write_pca_png(os.fsencode(path), buf.address, buf.shape[0], buf.shape[1], grid_w, grid_h,
                                   out_w, out_h))


def read_png_values(path: PathLike) -> Tuple[Any, bool]:
    """A grayscale or palette PNG's sample values as uint16 (height, width), as numpy reads them
    with PIL (class indices, 16-bit depth), and whether they are palette indices."""
    out = ctypes.POINTER(_capi.PngValues)()
    check(_lib.dmllm_read_png_values(os.fsencode(path), byref(out)))
    try:
        v = out.contents
        return _arrays.copy_from(v.values, "H", (v.height, v.width)), bool(v.palette)
    finally:
        _lib.dmllm_png_values_free(out)


def mask_text_write(labels: Any, names: Optional[Sequence[str]] = None, n_labels: Optional[int] = None, *,
                    width: Optional[int] = None, height: Optional[int] = None) -> str:
    """The official dense text: <ref>name</ref> per label (when names are given), then
    <mask>(v,n)...</mask> run-length encoded row-major (dmllm_mask_text_write). n_labels defaults
    to len(names), else to the largest label + 1."""
    buf, w, h = _map(labels, "H", "labels", width, height)
    if n_labels is None:
        n_labels = len(names) if names is not None else (buf.max_value() or 0) + 1
    name_arr = _string_array(names) if names is not None else None
    if names is not None and len(names) < n_labels:
        raise ValueError(f"names: {len(names)} names for {n_labels} labels")
    out = c_void_p()
    check(_lib.dmllm_mask_text_write(buf.address, w, h,
                                     ctypes.cast(name_arr, ctypes.POINTER(ctypes.c_char_p)) if name_arr else None,
                                     n_labels, byref(out)))
    try:
        return ctypes.string_at(out.value).decode("utf-8")
    finally:
        _lib.dmllm_text_free(out.value)


def mask_text_parse(text: str, width: int, height: int) -> MaskText:
    """Parses dense text back into a (height, width) map (dmllm_mask_text_parse)."""
    out = ctypes.POINTER(_capi.MaskTextResult)()
    check(_lib.dmllm_mask_text_parse(text.encode("utf-8"), width, height, byref(out)))
    try:
        return MaskText._from_c(out.contents)
    finally:
        _lib.dmllm_mask_text_result_free(out)


def write_pca_overlay_png(path: PathLike, image: ImageLike, features: Any, grid_w: int, grid_h: int,
                          alpha: float = 0.5) -> None:
    """The PCA picture resized smoothly to the image and blended over it (Figure 4). image: what
    segment() takes (an Image, a file path, a PIL image or a pixel array)."""
    image = as_image(image)
    buf = _arrays.Input(features, "f", "features")
    if len(buf.shape) != 2:
        raise ValueError(f"features: expected (tokens, features), got shape {buf.shape}")
    check(pinned_call(_lib.dmllm_write_pca_overlay_png, os.fsencode(path), image, buf.address, buf.shape[0],
                      buf.shape[1], grid_w, grid_h, alpha))
