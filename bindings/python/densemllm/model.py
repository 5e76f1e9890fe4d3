"""Models (immutable, shared by threads), sessions (one thread at a time: KV cache, encoded image,
last error), the tokenizer, the chat template, and every call a session makes: encoding and
evaluation, readouts at the image, dense prediction, generation, text tasks and the box-prompted
pipelines."""
from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import weakref
from ctypes import byref, c_int, c_size_t, c_void_p
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from . import _arrays, _capi
from .errors import BufferTooSmallError, StateError, check
from .image import Image, ResizeMode, _Handle, as_image, pinned_call
from .results import (DenseResult, DenseTask, GenerateResult, OpensetResult, ReferResult, Regions,
                      SemanticReadout)

_lib = _capi.lib
FROM_PROFILE = -1  # DMLLM_FROM_PROFILE: take the value from the model's readout profile
DEFAULT_MAX_NUM_PATCHES = 8192  # CPU-friendly; a deliberate difference from the reference
HF_MAX_NUM_PATCHES = 36864  # the HF processor's max_image_patches: parity
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

ProgressCallback = Callable[[str, int, int], Any]  # (stage, done, total) -> truthy to abort
TokenCallback = Callable[[int, str], Any]          # (token_id, text piece) -> truthy to stop
ImageLike = Union[Image, str, os.PathLike, Any]


class Compute(enum.IntEnum):
    """dmllm_compute_type: matmul precision."""
    AUTO = 0
    BF16 = 1
    F32 = 2
    OPENBLAS = 3


class Weights(enum.IntEnum):
    """dmllm_weights_type: format of the packed matmul weights (INT8: W8A8, the LM head kept)."""
    AUTO = 0
    BF16 = 1
    F32 = 2
    INT8 = 3


class Alignment(enum.IntEnum):
    """dmllm_alignment: which LM-head position carries an image token's labels."""
    OWN = 0
    PREVIOUS = 1


class Layout(enum.IntEnum):
    """dmllm_prompt_layout: image before the instruction (official) or after it."""
    IMAGE_FIRST = 0
    PROMPT_FIRST = 1


def _encode(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else text.encode("utf-8")


def _class_list(classes: Union[str, Sequence[str], None]) -> list:
    """Class names as a list: a string is a comma-separated list, each name stripped of spaces and
    empty ones dropped (as the CLI's --classes); any other sequence must hold only strings."""
    if classes is None:
        return []
    if isinstance(classes, str):
        return [name.strip(" ") for name in classes.split(",") if name.strip(" ")]
    if isinstance(classes, (bytes, bytearray)):
        raise TypeError("classes: a str or a sequence of str, not %s" % type(classes).__name__)
    names = list(classes)
    for k, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError("classes[%d] is a %s, not a str" % (k, type(name).__name__))
    return names


def _string_array(strings: Sequence[Optional[str]]):
    """A char *[] of UTF-8 copies; the array keeps the bytes alive."""
    encoded = [_encode(s) for s in strings]
    arr = (ctypes.c_char_p * max(len(encoded), 1))(*encoded)
    arr._keep = encoded
    return arr


class _Callbacks:
    """Python callbacks seen from C. When a callback raises, the exception is recorded and the
    library asked to stop, so the caller can re-raise it. The caller keeps each returned ctypes
    thunk alive for as long as C may call it."""

    def __init__(self):
        self.error: Optional[BaseException] = None

    def _guard(self, fn, *args) -> int:
        try:
            return 1 if fn(*args) else 0
        except BaseException as e:  # KeyboardInterrupt too: it stops the C call, then is re-raised
            self.error = e
            return 1

    def progress(self, fn: Optional[ProgressCallback]):
        if fn is None:
            return _capi.PROGRESS_CALLBACK()
        return _capi.PROGRESS_CALLBACK(lambda stage, done, total, _: self._guard(fn, stage.decode(), done, total))

    def token(self, fn: Optional[TokenCallback]):
        if fn is None:
            return _capi.TOKEN_CALLBACK()
        return _capi.TOKEN_CALLBACK(lambda token_id, text, length, _: self._guard(
            fn, token_id, ctypes.string_at(text, length).decode("utf-8", "replace") if length else ""))

    def reraise(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error


ModelInfo = dataclasses.make_dataclass(
    "ModelInfo", [(name, str if ctype in (ctypes.c_char_p, ctypes.c_char * 8) else
                   float if ctype is ctypes.c_double else int)
                  for name, ctype in _capi.ModelInfo._fields_ if name != "struct_size"], frozen=True)
ModelInfo.__doc__ = "dmllm_model_info: architecture, sizes and special token ids of a loaded model."
ModelInfo.__module__ = __name__


@dataclasses.dataclass
class ChatMessage:
    """One turn of a conversation (dmllm_chat_message). A turn with has_image holds one image."""
    role: str                      # "system", "user" or "assistant"
    text: str = ""
    has_image: bool = False
    layout: Layout = Layout.IMAGE_FIRST


def _messages(messages: Sequence[Union[ChatMessage, Dict[str, Any]]]):
    """ctypes array of dmllm_chat_message from ChatMessage objects or dicts with role, text (or
    content), image/has_image and layout."""
    turns = []
    for m in messages:
        if isinstance(m, dict):
            m = ChatMessage(m["role"], m.get("text", m.get("content", "")) or "",
                            bool(m.get("has_image", m.get("image", False))), Layout(m.get("layout", 0)))
        turns.append(m)
    encoded = [(_encode(m.role), _encode(m.text)) for m in turns]
    size = ctypes.sizeof(_capi.ChatMessage)  # every element's, the array's stride
    arr = (_capi.ChatMessage * max(len(turns), 1))(
        *[_capi.ChatMessage(size, role, text, int(m.has_image), int(m.layout))
          for m, (role, text) in zip(turns, encoded)])
    arr._keep = encoded
    return arr, len(turns)


def chat_apply(messages: Sequence[Union[ChatMessage, Dict[str, Any]]], add_generation_prompt: bool = True,
               n_image_tokens: int = 1) -> str:
    """The prompt text of a conversation in the model-spec 4.8 layout (dmllm_chat_apply)."""
    arr, n = _messages(messages)
    out = c_void_p()
    check(_lib.dmllm_chat_apply(arr, n, int(add_generation_prompt), n_image_tokens, byref(out)))
    try:
        return ctypes.string_at(out.value).decode("utf-8")
    finally:
        _lib.dmllm_text_free(out.value)


def _ids_input(ids: Any, name: str = "ids") -> _arrays.Input:
    return _arrays.Input(ids, "i", name)


def _sized_ids(call) -> Any:
    """Runs a size-query call (ids, capacity, &n) twice: first to learn n, then into an int32 array."""
    n = c_size_t()
    status = call(None, 0, byref(n))
    if status not in (0, BufferTooSmallError.status):
        check(status)
    out, address = _arrays.empty("i", (n.value,))
    if n.value:  # the library refuses a NULL buffer even for zero ids
        check(call(address, n.value, byref(n)))
    return out


class Model(_Handle):
    """A loaded model directory (config.json, safetensors weights, optional tokenizer.json and
    readout_profile.json). Immutable: any number of threads and sessions may share it. Each
    session holds its model: close() closes the sessions too, and the model is freed after the
    last of them (see close()).

    >>> with densemllm.Model("models/tiny") as model, model.session() as s:
    ...     print(s.ask("cat.jpg", "What is this?").text)
    """

    _free = "dmllm_model_free"
    _kind = "model"

    def __init__(self, model_dir: Union[str, os.PathLike], *, compute: Compute = Compute.AUTO, n_threads: int = 0,
                 progress: Optional[ProgressCallback] = None, check_only: bool = False,
                 memory_limit_bytes: int = 0, weights: Weights = Weights.AUTO,
                 cache_dir: Union[None, str, os.PathLike] = None):
        super().__init__(None)
        params = _capi.ModelParams()
        _lib.dmllm_model_params_init(byref(params))
        callbacks = _Callbacks()
        params.compute, params.n_threads, params.check_only = int(compute), n_threads, int(check_only)
        params.memory_limit_bytes = memory_limit_bytes  # its sessions' default; 0: none
        params.weights = int(weights)
        # Packed-weight cache directory; None: $DMLLM_CACHE_DIR, else ~/.cache/densemllm; "off": none.
        params.cache_dir = None if cache_dir is None else os.fsencode(cache_dir)
        params.progress = callbacks.progress(progress)  # the struct keeps the thunk alive
        out = c_void_p()
        status = _lib.dmllm_model_load(os.fsencode(model_dir), byref(params), byref(out))
        callbacks.reraise()
        check(status)
        self._handle = out.value
        self._sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
        self._info: Optional[ModelInfo] = None

    def close(self) -> None:
        """Closes the model and its sessions (idempotent, never blocks): their calls raise
        StateError from now on. Calls already running, on any thread, finish normally on the
        model they started with; each session is freed when its last call returns, and the model
        after its last session."""
        with self._lock:  # one step with the marking, so a session being created is not missed
            sessions = list(getattr(self, "_sessions", ()))
            super().close()
        for session in sessions:
            session.close()

    @property
    def info(self) -> ModelInfo:
        """Architecture, sizes and special ids (dmllm_model_get_info)."""
        if self._info is None:
            raw = _capi.ModelInfo(struct_size=ctypes.sizeof(_capi.ModelInfo))
            check(pinned_call(_lib.dmllm_model_get_info, self, byref(raw)))
            values = {}
            for name, _ in _capi.ModelInfo._fields_[1:]:
                v = getattr(raw, name)
                values[name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
            self._info = ModelInfo(**values)
        return self._info

    def session(self, *, n_threads: int = 0, max_num_patches: int = DEFAULT_MAX_NUM_PATCHES,
                resize_mode: ResizeMode = ResizeMode.HF, n_ctx: int = 0,
                progress: Optional[ProgressCallback] = None, memory_limit_bytes: int = 0) -> "Session":
        """A new Session on this model; the settings are Session()'s."""
        return Session(self, n_threads=n_threads, max_num_patches=max_num_patches, resize_mode=resize_mode,
                       n_ctx=n_ctx, progress=progress, memory_limit_bytes=memory_limit_bytes)

    # -- tokenizer (needs tokenizer.json: StateError otherwise) --
    def tokenize(self, text: str, parse_special: bool = True):
        """Token ids (int32 array) of text; no BOS/EOS is added (dmllm_tokenize)."""
        data = _encode(text)
        return _sized_ids(lambda ids, cap, n: pinned_call(
            _lib.dmllm_tokenize, self, data, int(parse_special), ids, cap, n))

    def detokenize(self, ids: Any, skip_special: bool = False) -> str:
        """Text of ids, invalid UTF-8 replaced by U+FFFD (dmllm_detokenize)."""
        buf = _ids_input(ids)
        length = c_size_t()
        status = pinned_call(_lib.dmllm_detokenize, self, buf.address, buf.size,
                             int(skip_special), None, 0, byref(length))
        if status != BufferTooSmallError.status:
            check(status)
        text = ctypes.create_string_buffer(length.value + 1)
        check(pinned_call(_lib.dmllm_detokenize, self, buf.address, buf.size,
                          int(skip_special), text, len(text), byref(length)))
        return text.raw[:length.value].decode("utf-8")

    def token_id(self, content: str) -> Optional[int]:
        """Id of the token with exactly this content, or None (dmllm_token_id)."""
        token = pinned_call(_lib.dmllm_token_id, self, _encode(content))
        return None if token < 0 else token

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes one id decodes to, maybe part of a UTF-8 character (dmllm_token_bytes)."""
        length = c_size_t()
        status = pinned_call(_lib.dmllm_token_bytes, self, token_id, None, 0, byref(length))
        if status != BufferTooSmallError.status:
            check(status)
        buf = ctypes.create_string_buffer(max(length.value, 1))
        check(pinned_call(_lib.dmllm_token_bytes, self, token_id, buf, len(buf), byref(length)))
        return buf.raw[:length.value]

    def chat_tokenize(self, messages: Sequence[Union[ChatMessage, Dict[str, Any]]],
                      add_generation_prompt: bool = True, n_image_tokens: int = 1):
        """The chat prompt as token ids (dmllm_chat_tokenize)."""
        arr, n_messages = _messages(messages)
        return _sized_ids(lambda ids, cap, n: pinned_call(
            _lib.dmllm_chat_tokenize, self, arr, n_messages, int(add_generation_prompt),
            n_image_tokens, ids, cap, n))

    def __repr__(self) -> str:
        return "<densemllm.Model closed>" if self.closed else f"<densemllm.Model {self.info.model_dir}>"


@dataclasses.dataclass(frozen=True)
class ImageGrid:
    """dmllm_image_grid of the encoded image."""
    grid_h: int
    grid_w: int
    tokens_h: int
    tokens_w: int
    resized_w: int
    resized_h: int
    original_w: int
    original_h: int

    @property
    def n_tokens(self) -> int:
        return self.tokens_h * self.tokens_w


def crf_params(*, iterations: Optional[int] = None, gaussian_sxy: Optional[float] = None,
               gaussian_compat: Optional[float] = None, bilateral_sxy: Optional[float] = None,
               bilateral_srgb: Optional[float] = None, bilateral_compat: Optional[float] = None) -> _capi.CrfParams:
    """dmllm_crf_params: the defaults (model-spec 6.5) with the settings given replaced (None keeps one).

    iterations: mean-field updates, 0 .. 1000 (default 5; 0 returns the clipped, renormalised input).
    gaussian_sxy: pixels, > 0 (default 3). gaussian_compat: >= 0, 0 leaves the kernel out (default 3).
    bilateral_sxy: pixels, > 0 (default 80). bilateral_srgb: RGB levels, > 0 (default 13).
    bilateral_compat: >= 0, 0 leaves the kernel out (default 10)."""
    p = _capi.CrfParams()
    _lib.dmllm_crf_params_init(byref(p))
    given = dict(iterations=iterations, gaussian_sxy=gaussian_sxy, gaussian_compat=gaussian_compat,
                 bilateral_sxy=bilateral_sxy, bilateral_srgb=bilateral_srgb, bilateral_compat=bilateral_compat)
    for name, value in given.items():
        if value is not None:
            setattr(p, name, value)
    return p


def _crf_settings(crf: Optional[Dict[str, Any]]) -> Optional[_capi.CrfParams]:
    """The dmllm_crf_params of a crf= dict (keys: crf_params()'s), or None."""
    if crf is None:
        return None
    try:
        return crf_params(**crf)
    except TypeError as e:  # name the setting, not the helper
        raise TypeError(f"crf: {e}. The settings are crf_params()'s") from None


def crf_refine(image: ImageLike, probabilities: Any, *, iterations: Optional[int] = None,
               gaussian_sxy: Optional[float] = None, gaussian_compat: Optional[float] = None,
               bilateral_sxy: Optional[float] = None, bilateral_srgb: Optional[float] = None,
               bilateral_compat: Optional[float] = None) -> Any:
    """The dense CRF (dmllm_crf_refine) over float32 probabilities (height, width, labels) of the
    image's size; returns the refined marginals in a new array. image: an Image, a path, a PIL
    image or a pixel array. The settings are crf_params()'s (None keeps the default)."""
    img = as_image(image)
    buf = _arrays.Input(probabilities, "f", "probabilities")
    if len(buf.shape) != 3 or buf.shape[:2] != (img.height, img.width):
        raise ValueError(f"probabilities: expected ({img.height}, {img.width}, labels), got {buf.shape}")
    params = crf_params(iterations=iterations, gaussian_sxy=gaussian_sxy, gaussian_compat=gaussian_compat,
                        bilateral_sxy=bilateral_sxy, bilateral_srgb=bilateral_srgb,
                        bilateral_compat=bilateral_compat)
    out, address = _arrays.empty("f", buf.shape)
    check(pinned_call(_lib.dmllm_crf_refine, img, buf.address, buf.shape[2], byref(params),
                      address))
    return out


class Session(_Handle):
    """Mutable inference state on a model: KV cache, encoded image, last error. Use it from one
    thread at a time. Failed calls raise DenseMLLMError subclasses with the session's message.
    The session holds its model (.model) until it is freed; a call pins the session and the
    images it is given, so closing any of them from another thread (or from a callback) lets
    the call finish before the C object is freed."""

    _free = "dmllm_session_free"
    _kind = "session"

    def __init__(self, model: Model, *, n_threads: int = 0, max_num_patches: int = DEFAULT_MAX_NUM_PATCHES,
                 resize_mode: ResizeMode = ResizeMode.HF, n_ctx: int = 0,
                 progress: Optional[ProgressCallback] = None, memory_limit_bytes: int = 0):
        super().__init__(None)
        self._callbacks = _Callbacks()
        params = _capi.SessionParams()
        _lib.dmllm_session_params_init(byref(params))
        params.n_threads, params.max_num_patches, params.resize_mode, params.n_ctx = (
            n_threads, max_num_patches, int(resize_mode), n_ctx)
        params.memory_limit_bytes = memory_limit_bytes  # 0: the model's
        self._progress = params.progress = self._callbacks.progress(progress)  # called during session calls
        out = c_void_p()
        model_handle = model._pin()  # the session's pin on its model, ended when it is freed
        try:
            status = _lib.dmllm_session_create(model_handle, byref(params), byref(out))
            self._callbacks.reraise()
            check(status)
        except BaseException:
            model._unpin()
            raise
        self.model = model
        with model._lock:  # one step against Model.close(), which closes the sessions it lists
            self._handle = out.value
            model._sessions.add(self)
            model_closed = model._closed
        if model_closed:
            self.close()
            raise StateError("the model is closed")

    def _release(self, handle: int) -> None:
        _lib.dmllm_session_free(handle)
        self.model._unpin()

    def _call(self, fn, *args, size_query: bool = False) -> int:
        """fn(session, *args) with the session and the Images among args pinned (pinned_call);
        raises a callback's exception, else a failure with the session's message. size_query:
        BUFFER_TOO_SMALL is the expected answer, not a failure."""
        def checked(handle, *c_args):
            status = fn(handle, *c_args)
            self._callbacks.reraise()
            if size_query and status == BufferTooSmallError.status:
                return status
            return check(status, handle)
        return pinned_call(checked, self, *args)

    @property
    def errmsg(self) -> str:
        """Message of the last failed call on this session ("" if none)."""
        return (pinned_call(_lib.dmllm_session_errmsg, self) or b"").decode("utf-8", "replace")

    # -- encoding and evaluation --
    def encode_image(self, image: ImageLike) -> ImageGrid:
        """Preprocesses the image and runs the vision tower and merger; returns the token grid."""
        img = as_image(image)  # held in a variable: a temporary Image would be freed before the call
        self._call(_lib.dmllm_session_encode_image, img)
        return self.image_grid()

    def encode_pixels(self, pixel_values: Any, grid_h: int, grid_w: int) -> ImageGrid:
        """Encodes caller-made pixel values [grid_h*grid_w, 3*patch*patch] (float32)."""
        buf = _arrays.Input(pixel_values, "f", "pixel_values")
        patch = self.model.info.patch_size
        if buf.size != grid_h * grid_w * 3 * patch * patch:
            raise ValueError(f"pixel_values: {buf.size} values, the {grid_h}x{grid_w} grid needs "
                             f"{grid_h * grid_w * 3 * patch * patch}")
        self._call(_lib.dmllm_session_encode_pixels, buf.address, grid_h, grid_w)
        return self.image_grid()

    def image_grid(self) -> ImageGrid:
        grid = _capi.ImageGrid(struct_size=ctypes.sizeof(_capi.ImageGrid))
        self._call(_lib.dmllm_session_image_grid, byref(grid))
        return ImageGrid(*(getattr(grid, name) for name, _ in _capi.ImageGrid._fields_[1:]))

    def eval(self, token_ids: Any) -> None:
        """Appends tokens to the context and runs the LLM over them (prefill)."""
        buf = _ids_input(token_ids, "token_ids")
        self._call(_lib.dmllm_session_eval, buf.address, buf.size)

    @property
    def n_past(self) -> int:
        """Tokens in the context."""
        return pinned_call(_lib.dmllm_session_n_past, self)

    def truncate(self, n_keep: int) -> None:
        """Drops every token at position >= n_keep."""
        self._call(_lib.dmllm_session_truncate, n_keep)

    def logits(self):
        """Full-vocabulary logits of the last evaluated token: float32 (vocab_size,)."""
        out, address = _arrays.empty("f", (self.model.info.vocab_size,))
        count = c_size_t()
        self._call(_lib.dmllm_session_logits, address, self.model.info.vocab_size, byref(count))
        return out

    def _matrix(self, fn, *before):
        """A (rows, cols) float32 readout with the size-query convention: the library writes into it."""
        rows, cols = c_size_t(), c_size_t()
        self._call(fn, *before, None, 0, byref(rows), byref(cols), size_query=True)
        out, address = _arrays.empty("f", (rows.value, cols.value))
        self._call(fn, *before, address, rows.value * cols.value, byref(rows), byref(cols))
        return out

    def pixel_values(self):
        """Pixel values of the encoded image: (patches, 3*patch*patch)."""
        return self._matrix(_lib.dmllm_session_pixel_values)

    def image_embeddings(self):
        """Merger output of the encoded image: (image tokens, hidden)."""
        return self._matrix(_lib.dmllm_session_image_embeddings)

    def image_hidden(self, alignment: Alignment = Alignment.OWN):
        """Final hidden states at the image positions: (image tokens, hidden)."""
        return self._matrix(_lib.dmllm_session_image_hidden, int(alignment))

    def image_logits(self, token_ids: Any, alignment: Alignment = Alignment.OWN):
        """LM-head logits restricted to token_ids at the image positions: (image tokens, len(ids))."""
        buf = _ids_input(token_ids, "token_ids")
        return self._matrix(_lib.dmllm_session_image_logits, int(alignment), buf.address, buf.size)

    # -- dense prediction --
    def predict_dense(self, image: ImageLike, task: DenseTask = DenseTask.SEMANTIC, *,
                      classes: Union[str, Sequence[str], None] = None,
                      label_token_ids: Optional[Sequence[Sequence[int]]] = None, background: bool = False,
                      evaluation: Optional[bool] = None, layout: Layout = Layout.IMAGE_FIRST,
                      prompt: Optional[str] = None,
                      alignment: Optional[Alignment] = None, depth_profile: Optional[str] = None,
                      focal_length_px: float = 0.0, keep_token_scores: bool = False,
                      crf: Optional[Dict[str, Any]] = None,
                      readout: Optional[SemanticReadout] = None) -> DenseResult:
        """DenseMLLM's readout (dmllm_predict_dense). Settings left as None come from the model's
        readout profile. The result's label_names name every label value.

        image: an Image, a file path, a PIL image or a pixel array (as Image.from_array).
        classes (SEMANTIC): class names, or one comma-separated string ("sky, wall").
        label_token_ids (SEMANTIC, instead of classes): per class the token ids whose logits are
            averaged; such classes have no names (label_names entries None).
        background (SEMANTIC): add a background label, value len(classes), where no class is likely.
        evaluation (SEMANTIC, FGBG): softmax, the dense CRF and a confidence map, as the report's
            benchmarks; False: plain argmax; None: the profile's "crf" (on for youtu_vl).
        layout: the image before the instruction (official) or after it (report's depth benchmarks).
        prompt: the instruction; None: the profile's for the task.
        alignment: which LM-head position carries an image token's labels; None: the profile's.
        depth_profile (DEPTH): the quantisation ("nyuv2", "cityscapes", "ddad", "open_world").
        focal_length_px (DEPTH): > 0 resizes the input to a 2000 px focal length first.
        keep_token_scores: also return the label scores on the token grid.
        crf (evaluation): dense CRF settings, keys as crf_params() (iterations=0 leaves it out).
        readout (SEMANTIC with classes): NAMED argmaxes over the classes the model names first
            (report 9.2; the result's class_names), ALL over every class given."""
        p = _capi.DenseParams()
        _lib.dmllm_dense_params_init(byref(p))
        p.task, p.background, p.layout = int(task), int(background), int(layout)
        p.evaluation = FROM_PROFILE if evaluation is None else int(evaluation)
        p.keep_token_scores, p.focal_length_px = int(keep_token_scores), focal_length_px
        p.alignment = FROM_PROFILE if alignment is None else int(alignment)
        p.readout = FROM_PROFILE if readout is None else int(readout)
        keep = [_encode(prompt), _encode(depth_profile)]  # the C strings live as long as this list
        p.prompt, p.depth_profile = keep[0], keep[1]
        if crf is not None:
            keep.append(_crf_settings(crf))
            p.crf = ctypes.pointer(keep[-1])
        if classes is not None:
            classes = _class_list(classes)
            names = _string_array(classes)
            keep.append(names)
            p.class_names, p.n_classes = ctypes.cast(names, ctypes.POINTER(ctypes.c_char_p)), len(classes)
        if label_token_ids is not None:
            flat = [int(t) for ids in label_token_ids for t in ids]
            offsets = [0]
            for ids in label_token_ids:
                offsets.append(offsets[-1] + len(ids))
            id_arr = (ctypes.c_int32 * max(len(flat), 1))(*flat)
            off_arr = (ctypes.c_int * len(offsets))(*offsets)
            keep += [id_arr, off_arr]
            p.label_token_ids, p.label_offsets = id_arr, off_arr
            p.n_classes = len(label_token_ids)
        img = as_image(image)
        out = ctypes.POINTER(_capi.DenseResult)()
        self._call(_lib.dmllm_predict_dense, img, byref(p), byref(out))
        try:
            return DenseResult._from_c(out.contents)
        finally:
            _lib.dmllm_dense_result_free(out)

    def segment(self, image: ImageLike, classes: Union[str, Sequence[str]], *, background: bool = False,
                evaluation: Optional[bool] = None, layout: Layout = Layout.IMAGE_FIRST,
                prompt: Optional[str] = None, alignment: Optional[Alignment] = None,
                keep_token_scores: bool = False, crf: Optional[Dict[str, Any]] = None,
                readout: Optional[SemanticReadout] = None) -> DenseResult:
        """Semantic segmentation into the given classes (predict_dense with task SEMANTIC): a
        sequence of names, or one comma-separated string as the CLI's --classes ("sky, wall").
        The settings are predict_dense()'s."""
        return self.predict_dense(image, DenseTask.SEMANTIC, classes=classes, background=background,
                                  evaluation=evaluation, layout=layout, prompt=prompt, alignment=alignment,
                                  keep_token_scores=keep_token_scores, crf=crf, readout=readout)

    def depth(self, image: ImageLike, *, layout: Layout = Layout.IMAGE_FIRST, prompt: Optional[str] = None,
              alignment: Optional[Alignment] = None, depth_profile: Optional[str] = None,
              focal_length_px: float = 0.0, keep_token_scores: bool = False) -> DenseResult:
        """Depth in metres (predict_dense with task DEPTH); the settings are predict_dense()'s."""
        return self.predict_dense(image, DenseTask.DEPTH, layout=layout, prompt=prompt, alignment=alignment,
                                  depth_profile=depth_profile, focal_length_px=focal_length_px,
                                  keep_token_scores=keep_token_scores)

    # -- generation and text tasks --
    def _generate_params(self, max_new_tokens: Optional[int] = None, do_sample: Optional[bool] = None,
                         temperature: Optional[float] = None, top_k: Optional[int] = None,
                         top_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
                         seed: Optional[int] = None, stop_ids: Optional[Sequence[int]] = None,
                         skip_special: Optional[bool] = None, rescale_coordinates: Optional[bool] = None,
                         on_token: Optional[TokenCallback] = None) -> _capi.GenerateParams:
        """dmllm_generate_params: None keeps the official default (greedy, penalty 1.05, 4096 tokens)."""
        p = _capi.GenerateParams()
        _lib.dmllm_generate_params_init(byref(p))
        given = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
                     top_p=top_p, repetition_penalty=repetition_penalty, seed=seed, skip_special=skip_special,
                     rescale_coordinates=rescale_coordinates)
        for name, value in given.items():
            if value is not None:
                setattr(p, name, int(value) if isinstance(value, bool) else value)
        if stop_ids is not None:
            arr = (ctypes.c_int32 * max(len(stop_ids), 1))(*stop_ids)
            p.stop_ids, p.n_stop_ids = arr, len(stop_ids)
            p._keep = arr
        p._on_token = p.on_token = self._callbacks.token(on_token)
        return p

    def _generated(self, fn, *args, params: _capi.GenerateParams) -> GenerateResult:
        out = ctypes.POINTER(_capi.GenerateResult)()
        try:
            self._call(fn, *args, byref(params), byref(out))
            return GenerateResult._from_c(out.contents)
        finally:
            _lib.dmllm_generate_result_free(out)

    def generate(self, prompt_ids: Any = (), *, max_new_tokens: Optional[int] = None,
                 do_sample: Optional[bool] = None, temperature: Optional[float] = None,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop_ids: Optional[Sequence[int]] = None, skip_special: Optional[bool] = None,
                 rescale_coordinates: Optional[bool] = None,
                 on_token: Optional[TokenCallback] = None) -> GenerateResult:
        """Evaluates prompt_ids (may be empty: continue from the last logits), then decodes. None
        keeps the official decoding (dmllm_generate_params_init: greedy, penalty 1.05).

        max_new_tokens: at most this many tokens (default 4096).
        do_sample: draw with temperature, top_k and top_p as Hugging Face does (default: argmax).
        temperature: > 0 (default 1). top_k: 0 = off (default). top_p: (0, 1], 1 = off (default).
        repetition_penalty: > 0, 1 = off (default 1.05), over every id in the context.
        seed: of the draws (default 0).
        stop_ids: ids that end generation (default: config.json's eos_token_id).
        skip_special: leave special tokens out of the text (default True).
        rescale_coordinates: map <x_k>/<y_k> to original-image pixels (default True).
        on_token(token_id, text): called per token with the text it completes; truthy stops."""
        buf = _ids_input(prompt_ids, "prompt_ids")
        params = self._generate_params(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                                       seed, stop_ids, skip_special, rescale_coordinates, on_token)
        return self._generated(_lib.dmllm_generate, buf.address, buf.size, params=params)

    def generate_text(self, prompt: str, *, max_new_tokens: Optional[int] = None,
                      do_sample: Optional[bool] = None, temperature: Optional[float] = None,
                      top_k: Optional[int] = None, top_p: Optional[float] = None,
                      repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
                      stop_ids: Optional[Sequence[int]] = None, skip_special: Optional[bool] = None,
                      rescale_coordinates: Optional[bool] = None,
                      on_token: Optional[TokenCallback] = None) -> GenerateResult:
        """generate() from prompt text (special tokens recognised); the settings are generate()'s."""
        params = self._generate_params(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                                       seed, stop_ids, skip_special, rescale_coordinates, on_token)
        return self._generated(_lib.dmllm_generate_text, _encode(prompt), params=params)

    def ask(self, image: Optional[ImageLike], question: str, *, max_new_tokens: Optional[int] = None,
            do_sample: Optional[bool] = None, temperature: Optional[float] = None,
            top_k: Optional[int] = None, top_p: Optional[float] = None,
            repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
            stop_ids: Optional[Sequence[int]] = None, skip_special: Optional[bool] = None,
            rescale_coordinates: Optional[bool] = None,
            on_token: Optional[TokenCallback] = None) -> GenerateResult:
        """Answers a question about an image (None: text only) in the official chat layout; the
        settings are generate()'s."""
        img = as_image(image) if image is not None else None
        params = self._generate_params(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                                       seed, stop_ids, skip_special, rescale_coordinates, on_token)
        return self._generated(_lib.dmllm_ask, img, _encode(question), params=params)

    def _regions(self, fn, *args, params: _capi.GenerateParams) -> Regions:
        out = ctypes.POINTER(_capi.Regions)()
        try:
            self._call(fn, *args, byref(params), byref(out))
            return Regions._from_c(out.contents)
        finally:
            _lib.dmllm_regions_free(out)

    def ground(self, image: ImageLike, phrase: str, *, max_new_tokens: Optional[int] = None,
               do_sample: Optional[bool] = None, temperature: Optional[float] = None,
               top_k: Optional[int] = None, top_p: Optional[float] = None,
               repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
               stop_ids: Optional[Sequence[int]] = None, skip_special: Optional[bool] = None,
               rescale_coordinates: Optional[bool] = None,
               on_token: Optional[TokenCallback] = None) -> Regions:
        """The box of the region a phrase describes (demo grounding prompt); the settings are
        generate()'s."""
        img = as_image(image)
        params = self._generate_params(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                                       seed, stop_ids, skip_special, rescale_coordinates, on_token)
        return self._regions(_lib.dmllm_ground, img, _encode(phrase), params=params)

    def detect(self, image: ImageLike, classes: Union[str, Sequence[str], None] = None, *,
               max_new_tokens: Optional[int] = None, do_sample: Optional[bool] = None,
               temperature: Optional[float] = None, top_k: Optional[int] = None,
               top_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
               seed: Optional[int] = None, stop_ids: Optional[Sequence[int]] = None,
               skip_special: Optional[bool] = None, rescale_coordinates: Optional[bool] = None,
               on_token: Optional[TokenCallback] = None) -> Regions:
        """Every object (classes None) or every object of the given categories, with boxes; the
        settings are generate()'s."""
        classes = _class_list(classes)
        img, names = as_image(image), _string_array(classes)
        params = self._generate_params(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                                       seed, stop_ids, skip_special, rescale_coordinates, on_token)
        return self._regions(_lib.dmllm_detect, img, names, len(classes), params=params)

    # -- box-prompted pipelines --
    def _crop_params(self, padding: Optional[float], short_side: Optional[int], box_px: Optional[int],
                     box_rgb: Optional[Tuple[int, int, int]], max_regions: Optional[int],
                     generate: Optional[Dict[str, Any]], evaluation: Optional[bool] = None,
                     crf: Optional[Dict[str, Any]] = None, demo: bool = False) -> _capi.CropParams:
        p = _capi.CropParams()
        _lib.dmllm_crop_params_init(byref(p))
        p.evaluation = FROM_PROFILE if evaluation is None else int(evaluation)
        p.variant = int(demo)  # DMLLM_VARIANT_DEMO
        if crf is not None:
            p._crf = _crf_settings(crf)  # kept alive by the struct
            p.crf = ctypes.pointer(p._crf)
        for name, value in (("padding", padding), ("short_side", short_side), ("box_px", box_px),
                            ("max_regions", max_regions)):
            if value is not None:
                setattr(p, name, value)
        if box_rgb is not None:
            p.box_rgb[:] = list(box_rgb)
        if generate is not None:
            try:
                p._generate = self._generate_params(**generate)
            except TypeError as e:  # name the setting, not the helper
                raise TypeError(f"generate: {e}. The settings are generate()'s") from None
            p.generate = ctypes.pointer(p._generate)
        return p

    def segment_box(self, image: ImageLike, box: Sequence[int], *, padding: Optional[float] = None,
                    short_side: Optional[int] = None, box_px: Optional[int] = None,
                    box_rgb: Optional[Tuple[int, int, int]] = None,
                    evaluation: Optional[bool] = None, crf: Optional[Dict[str, Any]] = None) -> Any:
        """FG/BG inside one box (x0, y0, x1, y1, original pixels): uint8 (height, width), 1 = FG.
        evaluation reads FG/BG as the report's benchmarks and the demo (softmax, dense CRF tuned by
        crf); None: the profile's "crf"."""
        img = as_image(image)
        params = self._crop_params(padding, short_side, box_px, box_rgb, None, None, evaluation, crf)
        mask, address = _arrays.empty("B", (img.height, img.width))
        self._call(_lib.dmllm_segment_box, img, (c_int * 4)(*box), byref(params), address,
                   img.width * img.height)
        return mask

    def refer_segment(self, image: ImageLike, phrase: str, *, padding: Optional[float] = None,
                      short_side: Optional[int] = None, box_px: Optional[int] = None,
                      box_rgb: Optional[Tuple[int, int, int]] = None,
                      generate: Optional[Dict[str, Any]] = None, evaluation: Optional[bool] = None,
                      crf: Optional[Dict[str, Any]] = None, demo: bool = False) -> ReferResult:
        """Referring segmentation: grounding box for the phrase (demo: the box of the demo's <ins>
        polygon answer, demo crop rounding), then segment_box. No usable box is not an error: the
        result has found False and a message. generate: options as generate(); evaluation, crf: as
        segment_box."""
        img = as_image(image)
        params = self._crop_params(padding, short_side, box_px, box_rgb, None, generate, evaluation, crf,
                                   demo)
        out = ctypes.POINTER(_capi.ReferResult)()
        try:
            self._call(_lib.dmllm_refer_segment, img, _encode(phrase), byref(params), byref(out))
            return ReferResult._from_c(out.contents)
        finally:
            _lib.dmllm_refer_result_free(out)

    def openset_segment(self, image: ImageLike, classes: Union[str, Sequence[str], None] = None, *,
                        padding: Optional[float] = None, short_side: Optional[int] = None,
                        box_px: Optional[int] = None, box_rgb: Optional[Tuple[int, int, int]] = None,
                        max_regions: Optional[int] = None,
                        generate: Optional[Dict[str, Any]] = None) -> OpensetResult:
        """Open-set segmentation by detection: detect, then FG/BG in each box (largest first)."""
        params = self._crop_params(padding, short_side, box_px, box_rgb, max_regions, generate)
        classes = _class_list(classes)
        img, names = as_image(image), _string_array(classes)
        out = ctypes.POINTER(_capi.OpensetResult)()
        try:
            self._call(_lib.dmllm_openset_segment, img, names, len(classes), byref(params),
                       byref(out))
            return OpensetResult._from_c(out.contents)
        finally:
            _lib.dmllm_openset_result_free(out)

    def __repr__(self) -> str:
        return "<densemllm.Session closed>" if self.closed else f"<densemllm.Session n_past={self.n_past}>"
