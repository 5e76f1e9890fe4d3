"""Images (dmllm_image: immutable 8-bit RGB) and the preprocessing helpers."""
from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import threading
from typing import Any, Optional, Tuple, Union

from . import _arrays, _capi
from .errors import StateError, check

_lib = _capi.lib


class ResizeMode(enum.IntEnum):
    """dmllm_resize_mode: HF is torchvision's antialias path (the default), PILLOW is bit-exact PIL."""
    HF = 0
    PILLOW = 1


class _Handle:
    """Owns one library pointer. close(), leaving a with block or the collector closes the object:
    from then on its calls raise StateError. The C object itself is freed once nothing uses it:
    at once when idle, otherwise when the last call running on it (on any thread) returns, and
    for a model when its last session is freed, for an image when its last pixels view is
    collected. So close() never blocks, never raises and never frees memory a call still reads."""

    _free = ""  # name of the dmllm_*_free function, set by subclasses (looked up when first used)
    _kind = "object"

    def __init__(self, handle: Optional[int]):
        self._lock = threading.RLock()  # reentrant: the collector may run an unpinning __del__
        self._handle = handle  # the C pointer; None before creation and once freed
        self._closed = False
        self._users = 0  # pins: calls in progress, a model's sessions, an image's pixels views

    @property
    def handle(self) -> int:
        """The C pointer, for raw calls through densemllm._capi; StateError once closed. It is
        not pinned: keep the object open for as long as you use the pointer."""
        if self.closed:
            raise StateError(f"the {self._kind} is closed")
        return self._handle

    @property
    def closed(self) -> bool:
        return self._closed or not self._handle

    def _pin(self) -> int:
        """Counts one more user (a call, a session, a view) and returns the pointer, which stays
        valid until the matching _unpin() even if close() is called meanwhile; StateError if the
        object is already closed."""
        with self._lock:
            handle = self.handle
            self._users += 1
            return handle

    def _unpin(self) -> None:
        with self._lock:
            self._users -= 1
        self._free_if_unused()

    @contextlib.contextmanager
    def _pinned(self):
        """_pin() for the duration of a with block."""
        handle = self._pin()
        try:
            yield handle
        finally:
            self._unpin()

    def _free_if_unused(self) -> None:
        with self._lock:
            handle = self._handle if self._closed and not self._users else None
            if handle:
                self._handle = None
        if handle:  # outside the lock: freeing a session unpins its model
            self._release(handle)

    def _release(self, handle: int) -> None:
        """Frees the C object (once, when it is closed and unused)."""
        getattr(_lib, type(self)._free)(handle)

    def close(self) -> None:
        """Closes the object now (idempotent); the C object is freed once no call, session or
        view uses it."""
        with self._lock:
            self._closed = True
        self._free_if_unused()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()


def pinned_call(fn, *args):
    """fn(*args) with every _Handle argument replaced by its pointer and pinned until fn returns
    (StateError if one is closed); None and other arguments are passed as they are."""
    with contextlib.ExitStack() as pins:
        return fn(*(pins.enter_context(a._pinned()) if isinstance(a, _Handle) else a for a in args))


class _ViewPin:
    """Owns one pin of an object (taken by the caller) for as long as a zero-copy view of its
    memory, which keeps this alive, lives."""

    def __init__(self, obj: _Handle):
        self.obj = obj

    def __del__(self):
        self.obj._unpin()


def _image_params(max_pixels: Optional[int], max_encoded_bytes: Optional[int],
                  memory_limit_bytes: Optional[int]) -> _capi.ImageParams:
    params = _capi.ImageParams()
    _lib.dmllm_image_params_init(ctypes.byref(params))
    for name, value in (("max_pixels", max_pixels), ("max_encoded_bytes", max_encoded_bytes),
                        ("memory_limit_bytes", memory_limit_bytes)):
        if value is not None:
            setattr(params, name, value)
    return params


# Source channel of R, G and B for each channel count of a pixel array, as PIL's convert("RGB")
# reads modes L, LA, RGB and RGBA: gray is replicated, alpha dropped (not composited).
_RGB_SOURCE = {1: (0, 0, 0), 2: (0, 0, 0), 3: (0, 1, 2), 4: (0, 1, 2)}


def _channels_error(shape) -> ValueError:
    return ValueError(f"pixels: expected (height, width) gray or (height, width, 1|2|3|4) gray, gray+alpha, "
                      f"RGB or RGBA, got shape {tuple(shape)}")


class Image(_Handle):
    """An 8-bit RGB image owned by the library. Immutable; may be shared across threads.

    Make one with Image.open(path), Image.from_bytes(encoded), Image.from_array(pixels),
    Image.from_pil(pil_image) or Image.from_rgb(buffer, width, height). numpy.asarray(image) and
    image.to_pil() give the pixels back."""

    _free = "dmllm_image_free"
    _kind = "image"

    @classmethod
    def open(cls, path: Union[str, os.PathLike], *, max_pixels: Optional[int] = None,
             max_encoded_bytes: Optional[int] = None, memory_limit_bytes: Optional[int] = None) -> "Image":
        """Decodes a JPEG (EXIF orientation applied), PNG, WebP, TIFF or BMP file. The limits
        (dmllm_image_params; None keeps the default: 178,956,970 pixels, 256 MiB, no memory limit;
        0 switches one off) are checked on the header before decoding; exceeding one raises
        UnsupportedError or OutOfMemoryError."""
        params = _image_params(max_pixels, max_encoded_bytes, memory_limit_bytes)
        out = ctypes.c_void_p()
        check(_lib.dmllm_image_load_file_ex(os.fsencode(path), ctypes.byref(params), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview], *, max_pixels: Optional[int] = None,
                   max_encoded_bytes: Optional[int] = None, memory_limit_bytes: Optional[int] = None) -> "Image":
        """Decodes a JPEG, PNG, WebP, TIFF or BMP held in memory, within the limits of open()."""
        params = _image_params(max_pixels, max_encoded_bytes, memory_limit_bytes)
        buf = _arrays.Input(memoryview(data).cast("B"), "B", "data")
        out = ctypes.c_void_p()
        check(_lib.dmllm_image_load_memory_ex(buf.address, buf.size, ctypes.byref(params), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def from_rgb(cls, rgb: Any, width: int, height: int, stride_bytes: int = 0) -> "Image":
        """Copies height rows of width*3 RGB bytes (stride_bytes apart; 0 = packed)."""
        buf = _arrays.Input(rgb, "B", "rgb")
        needed = (stride_bytes or width * 3) * (height - 1) + width * 3 if width > 0 and height > 0 else 0
        if buf.size < needed:
            raise ValueError(f"rgb: {buf.size} bytes, {width}x{height} needs {needed}")
        out = ctypes.c_void_p()
        check(_lib.dmllm_image_from_rgb(buf.address, width, height, stride_bytes, ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def from_array(cls, pixels: Any) -> "Image":
        """Copies a uint8 pixel array: (height, width, 3) RGB, or converted as PIL's convert("RGB")
        does: gray (height, width) or (height, width, 1) and gray+alpha (height, width, 2) are
        replicated to RGB, RGBA (height, width, 4) loses its alpha. numpy row strides of an RGB
        array are passed on, so a view with padded rows needs no copy on the Python side."""
        if _arrays.HAVE_NUMPY:
            arr = _arrays.numpy.asarray(pixels)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            if arr.ndim != 3 or arr.shape[2] not in _RGB_SOURCE:
                raise _channels_error(arr.shape)
            if arr.shape[2] != 3:
                arr = arr[:, :, list(_RGB_SOURCE[arr.shape[2]])]
            if arr.dtype == _arrays.numpy.uint8 and arr.strides[1:] == (3, 1) and arr.strides[0] >= 3 * arr.shape[1]:
                address = arr.ctypes.data
                out = ctypes.c_void_p()
                check(_lib.dmllm_image_from_rgb(address, arr.shape[1], arr.shape[0], arr.strides[0],
                                                ctypes.byref(out)))
                return cls(out.value)
            pixels = arr
        buf = _arrays.Input(pixels, "B", "pixels")
        shape = buf.shape + (1,) if len(buf.shape) == 2 else buf.shape
        if len(shape) != 3 or shape[2] not in _RGB_SOURCE:
            raise _channels_error(buf.shape)
        height, width, channels = shape
        if channels == 3:
            return cls.from_rgb(buf.keep, width, height)
        raw = bytes(memoryview(buf.keep).cast("B"))
        rgb = bytearray(width * height * 3)
        for dst, src in enumerate(_RGB_SOURCE[channels]):
            rgb[dst::3] = raw[src::channels]
        return cls.from_rgb(rgb, width, height)

    @classmethod
    def from_pil(cls, image: Any) -> "Image":
        """Copies a PIL image, converted with its convert("RGB") (any mode PIL can convert)."""
        rgb = image.convert("RGB")
        return cls.from_rgb(rgb.tobytes(), rgb.width, rgb.height)

    @property
    def width(self) -> int:
        return pinned_call(_lib.dmllm_image_width, self)

    @property
    def height(self) -> int:
        return pinned_call(_lib.dmllm_image_height, self)

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height), as PIL."""
        return self.width, self.height

    @property
    def pixels(self):
        """A read-only zero-copy (height, width, 3) view of the pixels. The view pins the image:
        after close() its memory stays valid until the last view is collected."""
        handle = self._pin()
        pin = _ViewPin(self)  # unpins when the view is collected, or now if this raises
        return _arrays.view(_lib.dmllm_image_pixels(handle), "B", (self.height, self.width, 3), pin)

    def to_array(self):
        """A writable copy of the pixels, shape (height, width, 3)."""
        with self._pinned() as handle:
            shape = (self.height, self.width, 3)
            return _arrays.copy_from(_lib.dmllm_image_pixels(handle), "B", shape)

    def __array__(self, dtype: Any = None, copy: Any = None):
        """numpy.asarray(image): a copy of the pixels, uint8 (height, width, 3)."""
        import numpy  # only numpy calls this
        return numpy.asarray(self.to_array(), dtype=dtype)

    def to_pil(self):
        """A copy of the pixels as a PIL image of mode RGB (needs Pillow)."""
        from PIL import Image as PILImage
        with self._pinned() as handle:
            width, height = self.width, self.height
            raw = ctypes.string_at(_lib.dmllm_image_pixels(handle), width * height * 3)
        return PILImage.frombytes("RGB", (width, height), raw)

    def resize(self, width: int, height: int, mode: ResizeMode = ResizeMode.HF) -> "Image":
        """Antialiased bilinear resize (dmllm_image_resize)."""
        out = ctypes.c_void_p()
        check(pinned_call(_lib.dmllm_image_resize, self, width, height, int(mode),
                          ctypes.byref(out)))
        return Image(out.value)

    def __repr__(self) -> str:
        return "<densemllm.Image closed>" if self.closed else f"<densemllm.Image {self.width}x{self.height}>"


def target_size(width: int, height: int, max_num_patches: int = 8192) -> Tuple[int, int]:
    """(width, height) the model sees for an image of this size (dmllm_target_size)."""
    w, h = ctypes.c_int(), ctypes.c_int()
    check(_lib.dmllm_target_size(width, height, max_num_patches, ctypes.byref(w), ctypes.byref(h)))
    return w.value, h.value


def _is_pil(image: Any) -> bool:
    return all(hasattr(image, name) for name in ("convert", "mode", "tobytes", "width", "height"))


def as_image(image: Union[Image, str, os.PathLike, Any]) -> Image:
    """An Image from an Image (as is), a file path, a PIL image (Image.from_pil) or a pixel
    array (Image.from_array: RGB, gray, gray+alpha or RGBA)."""
    if isinstance(image, Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        return Image.open(image)
    return Image.from_pil(image) if _is_pil(image) else Image.from_array(image)
