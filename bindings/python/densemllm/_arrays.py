"""Array plumbing between Python and the C buffers.

With numpy (the default when it imports; DENSEMLLM_NO_NUMPY=1 turns it off) arrays are
numpy.ndarray; without it they are memoryview objects with a shape (``.tolist()``, indexing
``m[i, j]``), backed by a bytearray. Inputs are passed to C without a copy when they already
have the right element type and are C-contiguous (numpy arrays, array.array, writable buffers);
anything else is converted once. Library-owned results are copied out before the library frees
them; outputs of known size (logits, hidden states) are written by C straight into a new array.
"""
from __future__ import annotations

import array
import ctypes
import os
from typing import Any, Optional, Sequence, Tuple

try:
    if os.environ.get("DENSEMLLM_NO_NUMPY") == "1":
        raise ImportError("disabled by DENSEMLLM_NO_NUMPY")
    import numpy
except ImportError:
    numpy = None

HAVE_NUMPY = numpy is not None

# struct / array codes of the C element types used by the API.
_NUMPY_DTYPE = {"B": "uint8", "H": "uint16", "i": "int32", "q": "int64", "f": "float32", "d": "float64"}
_INT_RANGE = {"B": (0, 255), "H": (0, 65535), "i": (-2 ** 31, 2 ** 31 - 1), "q": (-2 ** 63, 2 ** 63 - 1)}


def _size(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def empty(code: str, shape: Sequence[int]) -> Tuple[Any, int]:
    """A new zero-filled array of the C type `code` and its data address (0 when it is empty)."""
    shape = tuple(int(d) for d in shape)
    if HAVE_NUMPY:
        arr = numpy.zeros(shape, dtype=_NUMPY_DTYPE[code])
        return arr, arr.ctypes.data if arr.size else 0
    raw = bytearray(_size(shape) * array.array(code).itemsize)
    address = ctypes.addressof((ctypes.c_char * len(raw)).from_buffer(raw)) if raw else 0
    return memoryview(raw).cast(code, shape) if raw else memoryview(raw).cast(code), address


def copy_from(pointer, code: str, shape: Sequence[int]):
    """A copy of shape elements of type `code` at a C pointer (NULL is allowed for 0 elements)."""
    arr, address = empty(code, shape)
    if address:
        ctypes.memmove(address, pointer, _size(shape) * array.array(code).itemsize)
    return arr


class _Owned:
    """Mixed into ctypes array types so a view keeps the object that owns its memory alive."""


def view(address: int, code: str, shape: Sequence[int], owner: Any, readonly: bool = True):
    """A zero-copy view of C memory that keeps `owner` alive as long as the view lives."""
    ctype = {"B": ctypes.c_uint8, "H": ctypes.c_uint16, "f": ctypes.c_float}[code]
    holder_type = type("_View", (ctype * _size(shape), _Owned), {})
    holder = holder_type.from_address(address)
    holder.owner = owner
    if HAVE_NUMPY:
        arr = numpy.ctypeslib.as_array(holder).reshape(shape)
        arr.flags.writeable = not readonly
        return arr
    mv = memoryview(holder).cast("B").cast(code, list(shape))
    return mv.toreadonly() if readonly else mv


class Input:
    """A C-contiguous buffer of one element type made from an input: .address, .shape, .size. It
    holds a reference to whatever backs the memory for as long as it lives."""

    def __init__(self, obj: Any, code: str, name: str):
        self.name, self.code = name, code
        if HAVE_NUMPY and not isinstance(obj, (bytes, bytearray, memoryview, array.array)):
            arr = numpy.asarray(obj)
            if arr.dtype != numpy.dtype(_NUMPY_DTYPE[code]):
                arr = self._cast_numpy(arr, code)
            arr = numpy.ascontiguousarray(arr)
            self.keep, self.shape = arr, arr.shape
            self.address = arr.ctypes.data if arr.size else 0
            return
        try:
            mv = memoryview(obj)
        except TypeError:
            mv = None
        if mv is not None and mv.format.lstrip("@=<") == code and mv.c_contiguous:
            self.shape = mv.shape
            if mv.readonly:  # ctypes cannot point into immutable memory: one copy
                mv = memoryview(bytearray(mv.cast("B"))).cast(code, list(mv.shape) or [0])
            self.keep = mv
            self.address = ctypes.addressof((ctypes.c_char * mv.nbytes).from_buffer(mv)) if mv.nbytes else 0
            return
        flat, shape = self._flatten(mv.tolist() if mv is not None else obj)
        if code in _INT_RANGE:
            lo, hi = _INT_RANGE[code]
            bad = next((v for v in flat if not (isinstance(v, int) and lo <= v <= hi)), None)
            if bad is not None:
                raise ValueError(f"{name}: {bad!r} is not an integer in {lo} .. {hi}")
        buf = array.array(code, flat)
        self.keep, self.shape = buf, shape
        self.address = buf.buffer_info()[0] if len(buf) else 0

    def _cast_numpy(self, arr, code):
        target = numpy.dtype(_NUMPY_DTYPE[code])
        if code in _INT_RANGE:
            if arr.dtype.kind not in "biu":
                raise ValueError(f"{self.name}: expected integers, got {arr.dtype}")
            lo, hi = _INT_RANGE[code]
            if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                raise ValueError(f"{self.name}: values must lie in {lo} .. {hi}")
        elif arr.dtype.kind not in "biuf":
            raise ValueError(f"{self.name}: expected numbers, got {arr.dtype}")
        return arr.astype(target)

    def _flatten(self, obj):
        if isinstance(obj, (int, float)):
            return [obj], ()
        items = list(obj)
        if not items or not hasattr(items[0], "__len__"):  # a row of numbers
            return items, (len(items),)
        flat, inner = [], None
        for item in items:
            f, s = self._flatten(item)
            if inner is not None and s != inner:
                raise ValueError(f"{self.name}: rows of different lengths")
            inner = s
            flat.extend(f)
        return flat, (len(items),) + inner

    def max_value(self) -> Optional[int]:
        """The largest element, or None when empty."""
        if not self.size:
            return None
        if HAVE_NUMPY and isinstance(self.keep, numpy.ndarray):
            return self.keep.max().item()
        return max(memoryview(self.keep).cast("B").cast(self.code))

    @property
    def size(self) -> int:
        return _size(self.shape)

    def shape2d(self, width: Optional[int] = None, height: Optional[int] = None) -> Tuple[int, int]:
        """(height, width) of a row-major map: its 2-D shape, or the given sizes for a flat buffer."""
        if len(self.shape) == 2 and width is None and height is None:
            return self.shape[0], self.shape[1]
        if width is None or height is None:
            raise ValueError(f"{self.name}: a 2-D (height, width) array, or width and height, is needed")
        if self.size != width * height:
            raise ValueError(f"{self.name}: {self.size} values, but width * height is {width * height}")
        return height, width
