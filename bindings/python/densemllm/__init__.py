"""densemllm: Python binding of libdensemllm (ctypes, standard library only; numpy arrays when
numpy imports, shaped memoryviews otherwise).

    import densemllm
    with densemllm.Model("models/tiny") as model, model.session() as session:
        seg = session.segment("cat.jpg", ["cat", "sofa", "wall"])   # seg.labels: (H, W) uint16
        print(session.ask("cat.jpg", "What is on the sofa?").text)

The library is found through the environment variable DMLLM_LIB, then next to this package, then
the system search, when it is first needed: importing works without it, and the first call raises
LibraryLoadError naming the paths tried. Every failing call raises a DenseMLLMError subclass
carrying the status code and the library's message. Models, sessions, images and metric
accumulators are context managers whose close() frees the C object, or later if a call (on any
thread) still uses it: see README.md, "Lifetimes and threads" (the garbage collector frees them
otherwise).
"""
from . import _capi
from ._capi import LibraryLoadError
from .errors import (AbortedError, BackendError, BufferTooSmallError, ContextFullError, DenseMLLMError, FormatError,
                     InvalidArgumentError, IOFailureError, OutOfMemoryError, ShapeError, StateError,
                     UnsupportedError)
from .image import Image, ResizeMode, target_size
from .library import (LogLevel, coordinate_to_original, last_error, log_set, parse_regions, status_str, version,
                      version_number)
from .metrics import DepthCrop, DepthMetrics, DepthScores, MaskMetrics, MaskScores, SegMetrics, SegResult, box_iou
from .model import (DEFAULT_MAX_NUM_PATCHES, DEFAULT_SYSTEM_PROMPT, FROM_PROFILE, HF_MAX_NUM_PATCHES,
                    Alignment, ChatMessage, Compute, ImageGrid, Layout, Model, ModelInfo, Session, Weights,
                    chat_apply, crf_params, crf_refine)
from .outputs import (DEPTH_PNG_SCALE, label_color, mask_text_parse, mask_text_write, overlay_color, read_png_values,
                      write_depth_color_png, write_depth_png16, write_label_png, write_overlay_png, write_pca_overlay_png,
                      write_pca_png)
from .results import (DenseResult, DenseTask, GenerateResult, MaskText, OpensetResult, ReferResult, Region, Regions,
                      SemanticReadout, StopReason)

__version__ = "0.2.0"
__all__ = [
    "library_path", "LibraryLoadError", "AbortedError", "Alignment", "BackendError", "box_iou",
    "BufferTooSmallError", "chat_apply",
    "ChatMessage", "Compute", "ContextFullError", "coordinate_to_original", "crf_params", "crf_refine", "DEFAULT_MAX_NUM_PATCHES",
    "DEFAULT_SYSTEM_PROMPT", "DenseMLLMError", "DenseResult", "DenseTask", "DEPTH_PNG_SCALE", "DepthCrop",
    "DepthMetrics", "DepthScores", "FormatError", "FROM_PROFILE", "GenerateResult", "HF_MAX_NUM_PATCHES",
    "Image", "ImageGrid",
    "InvalidArgumentError", "IOFailureError", "label_color", "last_error", "Layout", "log_set", "LogLevel",
    "mask_text_parse", "mask_text_write", "MaskMetrics", "MaskScores", "MaskText", "Model", "ModelInfo",
    "OpensetResult", "OutOfMemoryError", "parse_regions", "read_png_values", "ReferResult", "Region", "Regions", "ResizeMode",
    "SegMetrics", "SegResult", "SemanticReadout", "Session", "ShapeError", "StateError", "status_str", "StopReason", "target_size",
    "UnsupportedError", "version", "version_number", "Weights", "write_depth_color_png", "write_depth_png16", "write_label_png",
    "write_overlay_png", "write_pca_overlay_png", "write_pca_png", "overlay_color",
]


def __getattr__(name):
    # library_path: the loaded library's path, so reading it loads the library (PEP 562).
    if name == "library_path":
        _capi.lib.load()
        return _capi.lib.path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
