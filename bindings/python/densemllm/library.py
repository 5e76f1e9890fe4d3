"""Library-wide calls: versions, status names, the thread's last error, the log sink, and the text
helpers that need no session."""
from __future__ import annotations

import ctypes
import enum
from ctypes import byref
from typing import Callable, Optional

from . import _capi
from .errors import check
from .results import Regions

_lib = _capi.lib
_log_thunk = _capi.LOG_CALLBACK()  # the installed sink, kept alive while the library may call it


class LogLevel(enum.IntEnum):
    """dmllm_log_level."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


def version() -> str:
    """The library's version string, e.g. "0.2.0"."""
    return _lib.dmllm_version_string().decode()


def version_number() -> int:
    """major * 10000 + minor * 100 + patch."""
    return _lib.dmllm_version_number()


def status_str(status: int) -> str:
    """English name of a dmllm_status."""
    return _lib.dmllm_status_str(status).decode()


def last_error() -> str:
    """Message of the last failure on the calling thread ("" if none)."""
    return (_lib.dmllm_last_error() or b"").decode("utf-8", "replace")


def log_set(callback: Optional[Callable[[LogLevel, str], None]]) -> None:
    """Routes the library's log to callback(level, message); None silences it. Exceptions raised
    by the callback are ignored (the library cannot stop for them). Not thread-safe."""
    global _log_thunk

    def sink(level: int, message: bytes, _user: int) -> None:
        try:
            callback(LogLevel(level), message.decode("utf-8", "replace"))
        except Exception:  # a log sink must not unwind through C
            pass

    thunk = _capi.LOG_CALLBACK(sink) if callback is not None else _capi.LOG_CALLBACK()
    _lib.dmllm_log_set(thunk, None)
    _log_thunk = thunk


def coordinate_to_original(k: int, original_size: int, resized_size: int) -> int:
    """A <x_k>/<y_k> coordinate of the resized image in original-image pixels, as HF generate."""
    out = ctypes.c_int()
    check(_lib.dmllm_coordinate_to_original(k, original_size, resized_size, byref(out)))
    return out.value


def parse_regions(text: str) -> Regions:
    """Boxes and polygons of an answer in the official formats; malformed items are skipped and
    described in .message (dmllm_parse_regions)."""
    out = ctypes.POINTER(_capi.Regions)()
    check(_lib.dmllm_parse_regions(text.encode("utf-8"), byref(out)))
    try:
        return Regions._from_c(out.contents)
    finally:
        _lib.dmllm_regions_free(out)
