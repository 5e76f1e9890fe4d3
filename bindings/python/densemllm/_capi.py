"""ctypes declarations of include/densemllm.h: the library handle, every struct, callback type and
function prototype. Nothing here is public; the classes in the other modules wrap it.

The library is looked up in this order: the path in the environment variable DMLLM_LIB, a
libdensemllm.so* inside this package's directory, the system search (ctypes.util.find_library),
then the SONAME libdensemllm.so.0, at the first use of `lib` (importing the package loads nothing,
so it works, and help() with it, where the library is missing). Structs must match the header field
by field; the *_sizeof() functions of the params structs are checked against ctypes.sizeof at load
time.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from ctypes import (POINTER, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64, c_size_t, c_uint8,
                    c_uint16, c_uint32, c_uint64, c_void_p)

ABI_VERSION = 0  # the SONAME major this binding was written for

# ---- callbacks --------------------------------------------------------------------------------------
PROGRESS_CALLBACK = ctypes.CFUNCTYPE(c_int, c_char_p, c_int, c_int, c_void_p)
# text is not NUL-terminated: it is passed as a pointer and read with its length.
TOKEN_CALLBACK = ctypes.CFUNCTYPE(c_int, c_int32, c_void_p, c_size_t, c_void_p)
LOG_CALLBACK = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)


# ---- structs (field order and types exactly as in the header) ----------------------------------------
class ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("compute", c_int), ("n_threads", c_int), ("progress", PROGRESS_CALLBACK),
                ("progress_user_data", c_void_p), ("check_only", c_int), ("memory_limit_bytes", c_int64),
                ("weights", c_int), ("cache_dir", c_char_p)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("architecture", c_char_p), ("compute", c_char_p), ("model_dir", c_char_p),
                ("n_params", c_int64), ("vocab_size", c_int),
                ("text_hidden_size", c_int), ("text_layers", c_int), ("text_heads", c_int),
                ("vision_hidden_size", c_int), ("vision_layers", c_int), ("vision_heads", c_int),
                ("patch_size", c_int), ("spatial_merge_size", c_int),
                ("image_token_id", c_int), ("vision_start_token_id", c_int), ("vision_end_token_id", c_int),
                ("bos_token_id", c_int), ("eos_token_id", c_int),
                ("text_intermediate_size", c_int), ("vision_intermediate_size", c_int),
                ("q_lora_rank", c_int), ("kv_lora_rank", c_int), ("qk_nope_head_dim", c_int),
                ("qk_rope_head_dim", c_int), ("v_head_dim", c_int),
                ("rope_theta", c_double), ("weights_dtype", c_char * 8), ("weights", c_char_p)]


class SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("n_threads", c_int), ("max_num_patches", c_int), ("resize_mode", c_int),
                ("n_ctx", c_int), ("progress", PROGRESS_CALLBACK), ("progress_user_data", c_void_p),
                ("memory_limit_bytes", c_int64)]


class ImageParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("max_pixels", c_int64), ("max_encoded_bytes", c_int64),
                ("memory_limit_bytes", c_int64)]


class ImageGrid(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32)] + [(name, c_int) for name in ("grid_h", "grid_w", "tokens_h", "tokens_w", "resized_w", "resized_h",
                                           "original_w", "original_h")]


class CrfParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("iterations", c_int), ("gaussian_sxy", c_float),
                ("gaussian_compat", c_float), ("bilateral_sxy", c_float), ("bilateral_srgb", c_float),
                ("bilateral_compat", c_float)]


class DenseParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("task", c_int), ("class_names", POINTER(c_char_p)), ("n_classes", c_int),
                ("label_token_ids", POINTER(c_int32)), ("label_offsets", POINTER(c_int)), ("background", c_int),
                ("evaluation", c_int), ("layout", c_int), ("prompt", c_char_p), ("alignment", c_int),
                ("depth_profile", c_char_p), ("focal_length_px", c_float), ("keep_token_scores", c_int),
                ("crf", POINTER(CrfParams)), ("readout", c_int)]


class DenseResult(ctypes.Structure):
    _fields_ = [("task", c_int), ("width", c_int), ("height", c_int), ("n_labels", c_int),
                ("labels", POINTER(c_uint16)), ("confidence", POINTER(c_float)), ("depth_m", POINTER(c_float)),
                ("depth_grid_w", c_int), ("depth_grid_h", c_int), ("depth_grid_bins", POINTER(c_uint16)),
                ("tokens_w", c_int), ("tokens_h", c_int), ("n_scores", c_int), ("token_scores", POINTER(c_float)),
                ("reused_prefix", c_int), ("seconds_encode", c_double), ("seconds_prefill", c_double),
                ("seconds_readout", c_double), ("seconds_crf", c_double), ("readout", c_int), ("n_classes", c_int),
                ("class_names", POINTER(c_char_p)), ("prompt_index", POINTER(c_int)), ("named_fallback", c_int),
                ("reply", c_char_p), ("seconds_generate", c_double), ("crf", c_int),
                ("label_names", POINTER(c_char_p)), ("background_label", c_int)]


class SegMetricsParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("n_classes", c_int), ("ignore_index", c_int), ("reduce_zero_label", c_int)]


class SegResult(ctypes.Structure):
    _fields_ = [("n_classes", c_int), ("n_images", c_int64), ("miou", c_double), ("macc", c_double),
                ("aacc", c_double), ("n_iou_classes", c_int), ("n_acc_classes", c_int),
                ("iou", POINTER(c_double)), ("acc", POINTER(c_double)),
                ("area_intersect", POINTER(c_int64)), ("area_union", POINTER(c_int64)),
                ("area_pred", POINTER(c_int64)), ("area_label", POINTER(c_int64))]


class DepthMetricsParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("min_depth", c_double), ("max_depth", c_double), ("crop", c_int)]


class DepthScores(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("n_images", c_int64), ("n_images_empty", c_int64),
                ("n_pixels", c_int64)] + [(name, c_double) for name in (
                    "delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")]


class MaskScores(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("n_samples", c_int64), ("sum_intersection", c_int64),
                ("sum_union", c_int64), ("ciou", c_double), ("giou", c_double)]


class MaskTextResult(ctypes.Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("labels", POINTER(c_uint16)), ("n_names", c_int),
                ("names", POINTER(c_char_p)), ("has_depth_tag", c_int)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("role", c_char_p), ("text", c_char_p), ("has_image", c_int),
                ("layout", c_int)]


class GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("max_new_tokens", c_int), ("do_sample", c_int), ("temperature", c_float),
                ("top_k", c_int), ("top_p", c_float), ("repetition_penalty", c_float), ("seed", c_uint64),
                ("stop_ids", POINTER(c_int32)), ("n_stop_ids", c_int), ("skip_special", c_int),
                ("rescale_coordinates", c_int), ("on_token", TOKEN_CALLBACK), ("user_data", c_void_p)]


class GenerateResult(ctypes.Structure):
    _fields_ = [("ids", POINTER(c_int32)), ("n_ids", c_int), ("text", c_char_p), ("stop_reason", c_int),
                ("stop_id", c_int32), ("n_prompt", c_int), ("seconds_prompt", c_double),
                ("seconds_generate", c_double)]


class Region(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("label", c_char_p), ("box", c_int * 4), ("n_points", c_int),
                ("points", POINTER(c_int))]


class Regions(ctypes.Structure):
    _fields_ = [("n_regions", c_int), ("regions", POINTER(POINTER(Region))), ("text", c_char_p),
                ("message", c_char * 256)]


class OverlayParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("alpha", c_float), ("background_label", c_int), ("outline_px", c_int),
                ("legend", c_int), ("boxes", POINTER(POINTER(Region))), ("n_boxes", c_int)]


class CropParams(ctypes.Structure):
    _fields_ = [("struct_size", c_uint32), ("padding", c_float), ("short_side", c_int), ("box_px", c_int),
                ("box_rgb", c_uint8 * 3), ("max_regions", c_int), ("generate", POINTER(GenerateParams)),
                ("evaluation", c_int), ("crf", POINTER(CrfParams)), ("variant", c_int)]


class PngValues(ctypes.Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("bit_depth", c_int), ("palette", c_int),
                ("values", POINTER(c_uint16))]


class ReferResult(ctypes.Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("mask", POINTER(c_uint8)), ("found", c_int),
                ("box", c_int * 4), ("answer", c_char_p), ("message", c_char * 256), ("crf", c_int),
                ("n_labels", c_int), ("label_names", POINTER(c_char_p))]


class OpensetResult(ctypes.Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("labels", POINTER(c_uint16)), ("n_names", c_int),
                ("names", POINTER(c_char_p)), ("regions", POINTER(Regions)), ("crf", c_int),
                ("n_labels", c_int), ("label_names", POINTER(c_char_p))]


# ---- prototypes ----------------------------------------------------------------------------------------
_P = POINTER
_status = c_int
_handle = c_void_p  # opaque dmllm_model / dmllm_session / dmllm_image / metrics pointers
_size_p = _P(c_size_t)

PROTOTYPES = {
    # versions, errors, logging
    "dmllm_version_number": (ctypes.c_uint, []),
    "dmllm_version_string": (c_char_p, []),
    "dmllm_status_str": (c_char_p, [c_int]),
    "dmllm_last_error": (c_char_p, []),
    "dmllm_text_free": (None, [c_void_p]),
    "dmllm_log_set": (None, [LOG_CALLBACK, c_void_p]),
    # model
    "dmllm_model_params_init": (None, [_P(ModelParams)]),
    "dmllm_model_params_sizeof": (c_size_t, []),
    "dmllm_model_load": (_status, [c_char_p, _P(ModelParams), _P(_handle)]),
    "dmllm_model_free": (None, [_handle]),
    "dmllm_model_get_info": (_status, [_handle, _P(ModelInfo)]),
    # images and preprocessing
    "dmllm_image_load_file": (_status, [c_char_p, _P(_handle)]),
    "dmllm_image_load_memory": (_status, [c_void_p, c_size_t, _P(_handle)]),
    "dmllm_image_params_init": (None, [_P(ImageParams)]),
    "dmllm_image_params_sizeof": (c_size_t, []),
    "dmllm_image_load_file_ex": (_status, [c_char_p, _P(ImageParams), _P(_handle)]),
    "dmllm_image_load_memory_ex": (_status, [c_void_p, c_size_t, _P(ImageParams), _P(_handle)]),
    "dmllm_image_from_rgb": (_status, [c_void_p, c_int, c_int, c_size_t, _P(_handle)]),
    "dmllm_image_width": (c_int, [_handle]),
    "dmllm_image_height": (c_int, [_handle]),
    "dmllm_image_pixels": (c_void_p, [_handle]),
    "dmllm_image_free": (None, [_handle]),
    "dmllm_target_size": (_status, [c_int, c_int, c_int, _P(c_int), _P(c_int)]),
    "dmllm_image_resize": (_status, [_handle, c_int, c_int, c_int, _P(_handle)]),
    # sessions
    "dmllm_session_params_init": (None, [_P(SessionParams)]),
    "dmllm_session_params_sizeof": (c_size_t, []),
    "dmllm_session_create": (_status, [_handle, _P(SessionParams), _P(_handle)]),
    "dmllm_session_free": (None, [_handle]),
    "dmllm_session_errmsg": (c_char_p, [_handle]),
    "dmllm_session_encode_image": (_status, [_handle, _handle]),
    "dmllm_session_encode_pixels": (_status, [_handle, c_void_p, c_int, c_int]),
    "dmllm_session_image_grid": (_status, [_handle, _P(ImageGrid)]),
    "dmllm_session_eval": (_status, [_handle, c_void_p, c_int]),
    "dmllm_session_n_past": (c_int, [_handle]),
    "dmllm_session_truncate": (_status, [_handle, c_int]),
    "dmllm_session_logits": (_status, [_handle, c_void_p, c_size_t, _size_p]),
    "dmllm_session_pixel_values": (_status, [_handle, c_void_p, c_size_t, _size_p, _size_p]),
    "dmllm_session_image_embeddings": (_status, [_handle, c_void_p, c_size_t, _size_p, _size_p]),
    "dmllm_session_image_hidden": (_status, [_handle, c_int, c_void_p, c_size_t, _size_p, _size_p]),
    "dmllm_session_image_logits": (_status, [_handle, c_int, c_void_p, c_int, c_void_p, c_size_t, _size_p, _size_p]),
    # tokenizer
    "dmllm_tokenize": (_status, [_handle, c_char_p, c_int, c_void_p, c_size_t, _size_p]),
    "dmllm_detokenize": (_status, [_handle, c_void_p, c_size_t, c_int, c_void_p, c_size_t, _size_p]),
    "dmllm_token_id": (c_int32, [_handle, c_char_p]),
    "dmllm_token_bytes": (_status, [_handle, c_int32, c_void_p, c_size_t, _size_p]),
    # dense prediction
    "dmllm_dense_params_init": (None, [_P(DenseParams)]),
    "dmllm_dense_params_sizeof": (c_size_t, []),
    "dmllm_predict_dense": (_status, [_handle, _handle, _P(DenseParams), _P(_P(DenseResult))]),
    "dmllm_dense_result_free": (None, [_P(DenseResult)]),
    # metrics
    "dmllm_seg_metrics_params_init": (None, [_P(SegMetricsParams)]),
    "dmllm_seg_metrics_params_sizeof": (c_size_t, []),
    "dmllm_seg_metrics_create": (_status, [_P(SegMetricsParams), _P(_handle)]),
    "dmllm_seg_metrics_add": (_status, [_handle, c_void_p, c_void_p, c_size_t]),
    "dmllm_seg_metrics_free": (None, [_handle]),
    "dmllm_seg_metrics_result": (_status, [_handle, _P(_P(SegResult))]),
    "dmllm_seg_result_free": (None, [_P(SegResult)]),
    "dmllm_depth_metrics_params_init": (None, [_P(DepthMetricsParams)]),
    "dmllm_depth_metrics_params_sizeof": (c_size_t, []),
    "dmllm_depth_metrics_create": (_status, [_P(DepthMetricsParams), _P(_handle)]),
    "dmllm_depth_metrics_add": (_status, [_handle, c_void_p, c_int, c_int, c_void_p, c_int, c_int]),
    "dmllm_depth_metrics_add_f64": (_status, [_handle, c_void_p, c_int, c_int, c_void_p, c_int, c_int]),
    "dmllm_depth_metrics_free": (None, [_handle]),
    "dmllm_depth_metrics_result": (_status, [_handle, _P(DepthScores)]),
    "dmllm_mask_metrics_create": (_status, [_P(_handle)]),
    "dmllm_mask_metrics_add": (_status, [_handle, c_void_p, c_void_p, c_size_t]),
    "dmllm_mask_metrics_free": (None, [_handle]),
    "dmllm_mask_metrics_result": (_status, [_handle, _P(MaskScores)]),
    "dmllm_box_iou": (_status, [_P(c_double), _P(c_double), _P(c_double)]),
    # outputs
    "dmllm_label_color": (_status, [c_int, _P(c_uint8)]),
    "dmllm_write_label_png": (_status, [c_char_p, c_void_p, c_int, c_int, c_int]),
    "dmllm_overlay_color": (_status, [c_int, _P(c_uint8)]),
    "dmllm_overlay_params_init": (None, [_P(OverlayParams)]),
    "dmllm_overlay_params_sizeof": (c_size_t, []),
    "dmllm_write_overlay_png_v2": (_status, [c_char_p, _handle, c_void_p, c_int, _P(c_char_p), _P(OverlayParams)]),
    "dmllm_write_depth_png16": (_status, [c_char_p, c_void_p, c_int, c_int, c_float]),
    "dmllm_write_depth_color_png": (_status, [c_char_p, c_void_p, c_int, c_int, c_float, c_float]),
    "dmllm_write_depth_colorbar_png": (_status, [c_char_p, c_void_p, c_int, c_int, c_float, c_float]),
    "dmllm_write_pca_png": (_status, [c_char_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_int]),
    "dmllm_write_pca_overlay_png": (_status, [c_char_p, _handle, c_void_p, c_int, c_int, c_int, c_int, c_float]),
    "dmllm_mask_text_write": (_status, [c_void_p, c_int, c_int, _P(c_char_p), c_int, _P(c_void_p)]),
    "dmllm_mask_text_parse": (_status, [c_char_p, c_int, c_int, _P(_P(MaskTextResult))]),
    "dmllm_mask_text_result_free": (None, [_P(MaskTextResult)]),
    # chat, generation, text tasks
    "dmllm_chat_apply": (_status, [_P(ChatMessage), c_int, c_int, c_int, _P(c_void_p)]),
    "dmllm_chat_tokenize": (_status, [_handle, _P(ChatMessage), c_int, c_int, c_int, c_void_p, c_size_t, _size_p]),
    "dmllm_generate_params_init": (None, [_P(GenerateParams)]),
    "dmllm_generate_params_sizeof": (c_size_t, []),
    "dmllm_generate": (_status, [_handle, c_void_p, c_int, _P(GenerateParams), _P(_P(GenerateResult))]),
    "dmllm_generate_text": (_status, [_handle, c_char_p, _P(GenerateParams), _P(_P(GenerateResult))]),
    "dmllm_generate_result_free": (None, [_P(GenerateResult)]),
    "dmllm_coordinate_to_original": (_status, [c_int, c_int, c_int, _P(c_int)]),
    "dmllm_parse_regions": (_status, [c_char_p, _P(_P(Regions))]),
    "dmllm_regions_free": (None, [_P(Regions)]),
    "dmllm_ask": (_status, [_handle, _handle, c_char_p, _P(GenerateParams), _P(_P(GenerateResult))]),
    "dmllm_ground": (_status, [_handle, _handle, c_char_p, _P(GenerateParams), _P(_P(Regions))]),
    "dmllm_detect": (_status, [_handle, _handle, _P(c_char_p), c_int, _P(GenerateParams), _P(_P(Regions))]),
    # box-prompted pipelines
    "dmllm_crop_params_init": (None, [_P(CropParams)]),
    "dmllm_crop_params_sizeof": (c_size_t, []),
    "dmllm_segment_box": (_status, [_handle, _handle, _P(c_int), _P(CropParams), c_void_p, c_size_t]),
    "dmllm_refer_segment": (_status, [_handle, _handle, c_char_p, _P(CropParams), _P(_P(ReferResult))]),
    "dmllm_refer_result_free": (None, [_P(ReferResult)]),
    "dmllm_openset_segment": (_status, [_handle, _handle, _P(c_char_p), c_int, _P(CropParams),
                                        _P(_P(OpensetResult))]),
    "dmllm_openset_result_free": (None, [_P(OpensetResult)]),
    # dense CRF, annotation files
    "dmllm_crf_params_init": (None, [_P(CrfParams)]),
    "dmllm_crf_params_sizeof": (c_size_t, []),
    "dmllm_crf_refine": (_status, [_handle, c_void_p, c_int, _P(CrfParams), c_void_p]),
    "dmllm_read_png_values": (_status, [c_char_p, _P(_P(PngValues))]),
    "dmllm_png_values_free": (None, [_P(PngValues)]),
}

# params struct -> its sizeof function: a mismatch means this binding and the library disagree.
_SIZE_CHECKS = {ModelParams: "dmllm_model_params_sizeof", SessionParams: "dmllm_session_params_sizeof",
                ImageParams: "dmllm_image_params_sizeof",
                DenseParams: "dmllm_dense_params_sizeof", SegMetricsParams: "dmllm_seg_metrics_params_sizeof",
                DepthMetricsParams: "dmllm_depth_metrics_params_sizeof",
                GenerateParams: "dmllm_generate_params_sizeof", CropParams: "dmllm_crop_params_sizeof",
                CrfParams: "dmllm_crf_params_sizeof", OverlayParams: "dmllm_overlay_params_sizeof"}


def _candidates():
    env = os.environ.get("DMLLM_LIB")
    if env:
        return [env]  # an explicit choice is never silently replaced by another library
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "libdensemllm.so*")))
    system = ctypes.util.find_library("densemllm")
    return found + ([system] if system else []) + [f"libdensemllm.so.{ABI_VERSION}"]


class LibraryLoadError(ImportError):
    """libdensemllm could not be loaded: not found (the message names every path tried), a major
    version other than this binding's, or a params struct of another size."""


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e) if path in str(e) else f"{path}: {e}")  # dlerror() names most paths
            continue
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(lib, name)  # AttributeError: the library is older than this binding
            fn.restype, fn.argtypes = restype, argtypes
        major = lib.dmllm_version_number() // 10000
        if major != ABI_VERSION:
            raise LibraryLoadError(f"{path} is libdensemllm {lib.dmllm_version_string().decode()}; "
                                   f"this binding needs major version {ABI_VERSION}")
        for struct, sizeof in _SIZE_CHECKS.items():
            if getattr(lib, sizeof)() != ctypes.sizeof(struct):
                raise LibraryLoadError(f"{path}: {sizeof}() is {getattr(lib, sizeof)()}, the binding's struct "
                                       f"has {ctypes.sizeof(struct)} bytes")
        return lib, path
    raise LibraryLoadError("libdensemllm not found (set DMLLM_LIB to its path); tried: " + "; ".join(errors))


class _Library:
    """The library's functions as attributes, loaded at the first one asked for. A failed load
    raises LibraryLoadError at that use and is tried again at the next, so setting DMLLM_LIB after
    the import still works."""

    def __init__(self):
        self._lock = threading.Lock()  # one load, whichever thread comes first
        self._cdll = None
        self.path = None  # of the loaded library

    def load(self):
        with self._lock:
            if self._cdll is None:
                cdll, path = _load()
                for name in PROTOTYPES:  # plain attributes from now on: no __getattr__ per call
                    setattr(self, name, getattr(cdll, name))
                self._cdll, self.path = cdll, path
        return self._cdll

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and introspection probes must not load
            raise AttributeError(name)
        return getattr(self.load(), name)


lib = _Library()
