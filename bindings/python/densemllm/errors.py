"""Exceptions: every failing library call raises a DenseMLLMError subclass chosen by its status code,
carrying the code and the library's message (dmllm_session_errmsg for session calls, else
dmllm_last_error)."""
from __future__ import annotations

from typing import Optional

from . import _capi


class DenseMLLMError(Exception):
    """A libdensemllm call failed. ``status`` is the dmllm_status code (negative), ``status_name`` its
    English name and ``message`` the library's explanation."""

    status = 0

    def __init__(self, message: str, status: Optional[int] = None):
        if status is not None:
            self.status = status
        self.message = message
        self.status_name = _capi.lib.dmllm_status_str(self.status).decode()
        super().__init__(f"{message} ({self.status_name})" if message else self.status_name)


class InvalidArgumentError(DenseMLLMError, ValueError):
    """A NULL pointer, an out-of-range value, a wrong struct_size (DMLLM_ERR_INVALID_ARGUMENT)."""
    status = -1


class IOFailureError(DenseMLLMError, OSError):
    """A file could not be opened, read, mapped or written (DMLLM_ERR_IO)."""
    status = -2


class FormatError(DenseMLLMError):
    """Malformed or truncated data: JSON, safetensors, image, mask text (DMLLM_ERR_FORMAT)."""
    status = -3


class UnsupportedError(DenseMLLMError):
    """Well-formed but not supported: architecture, dtype, image type (DMLLM_ERR_UNSUPPORTED)."""
    status = -4


class ShapeError(DenseMLLMError):
    """A missing tensor, or a tensor or buffer of the wrong shape (DMLLM_ERR_SHAPE)."""
    status = -5


class OutOfMemoryError(DenseMLLMError, MemoryError):
    """DMLLM_ERR_OUT_OF_MEMORY."""
    status = -6


class AbortedError(DenseMLLMError):
    """A progress callback asked to stop (DMLLM_ERR_ABORTED)."""
    status = -7


class BackendError(DenseMLLMError):
    """oneDNN or OpenBLAS failed (DMLLM_ERR_BACKEND)."""
    status = -8


class StateError(DenseMLLMError):
    """The call does not fit the object's state: no image encoded, no tokenizer, a closed handle
    (DMLLM_ERR_STATE)."""
    status = -9


class BufferTooSmallError(DenseMLLMError):
    """An output buffer was too small (DMLLM_ERR_BUFFER_TOO_SMALL); the binding sizes its buffers, so
    this is only seen from the low-level calls."""
    status = -10


class ContextFullError(DenseMLLMError):
    """The evaluation would exceed the session's context size (DMLLM_ERR_CONTEXT_FULL)."""
    status = -11


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, IOFailureError, FormatError, UnsupportedError, ShapeError, OutOfMemoryError, AbortedError,
    BackendError, StateError, BufferTooSmallError, ContextFullError)}


def error_for(status: int, message: str) -> DenseMLLMError:
    """The exception for a status code (unknown codes give a plain DenseMLLMError)."""
    cls = _BY_STATUS.get(status)
    return cls(message) if cls else DenseMLLMError(message, status)


def check(status: int, session_handle=None) -> int:
    """Raises for a negative status with the session's or the thread's last message; returns status."""
    if status < 0:
        raw = _capi.lib.dmllm_session_errmsg(session_handle) if session_handle else _capi.lib.dmllm_last_error()
        raise error_for(status, (raw or b"").decode("utf-8", "replace"))
    return status
