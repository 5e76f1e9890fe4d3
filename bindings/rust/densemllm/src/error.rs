//! Errors: every failing call becomes an `Error` holding the library's status code, the status
//! name (`dmllm_status_str`) and the message the library wrote for that failure.
use densemllm_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// The library's status codes (`dmllm_status`), with `Other` for a code this crate does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    InvalidArgument,
    Io,
    Format,
    Unsupported,
    Shape,
    OutOfMemory,
    Aborted,
    Backend,
    State,
    BufferTooSmall,
    ContextFull,
    Other(i32),
}

impl Status {
    pub fn from_code(code: sys::dmllm_status) -> Status {
        match code {
            sys::DMLLM_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::DMLLM_ERR_IO => Status::Io,
            sys::DMLLM_ERR_FORMAT => Status::Format,
            sys::DMLLM_ERR_UNSUPPORTED => Status::Unsupported,
            sys::DMLLM_ERR_SHAPE => Status::Shape,
            sys::DMLLM_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::DMLLM_ERR_ABORTED => Status::Aborted,
            sys::DMLLM_ERR_BACKEND => Status::Backend,
            sys::DMLLM_ERR_STATE => Status::State,
            sys::DMLLM_ERR_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            sys::DMLLM_ERR_CONTEXT_FULL => Status::ContextFull,
            other => Status::Other(other),
        }
    }

    pub fn code(self) -> sys::dmllm_status {
        match self {
            Status::InvalidArgument => sys::DMLLM_ERR_INVALID_ARGUMENT,
            Status::Io => sys::DMLLM_ERR_IO,
            Status::Format => sys::DMLLM_ERR_FORMAT,
            Status::Unsupported => sys::DMLLM_ERR_UNSUPPORTED,
            Status::Shape => sys::DMLLM_ERR_SHAPE,
            Status::OutOfMemory => sys::DMLLM_ERR_OUT_OF_MEMORY,
            Status::Aborted => sys::DMLLM_ERR_ABORTED,
            Status::Backend => sys::DMLLM_ERR_BACKEND,
            Status::State => sys::DMLLM_ERR_STATE,
            Status::BufferTooSmall => sys::DMLLM_ERR_BUFFER_TOO_SMALL,
            Status::ContextFull => sys::DMLLM_ERR_CONTEXT_FULL,
            Status::Other(code) => code,
        }
    }

    /// The library's English name of the status (`dmllm_status_str`).
    pub fn name(self) -> &'static str {
        // SAFETY: dmllm_status_str returns a static NUL-terminated string for every value.
        unsafe { CStr::from_ptr(sys::dmllm_status_str(self.code())) }.to_str().unwrap_or("?")
    }
}

/// A failed call: the status and the library's message naming the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// An error detected on the Rust side before calling the library (e.g. a string holding NUL,
    /// or a slice of the wrong length).
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }

    /// The failure of a call that returned `code`, with the calling thread's `dmllm_last_error()`
    /// (read at once: it stays valid until the next failing call on this thread).
    pub(crate) fn last(code: sys::dmllm_status) -> Error {
        // SAFETY: dmllm_last_error returns a NUL-terminated thread-local string.
        let message = unsafe { crate::util::string_from(sys::dmllm_last_error()) }.unwrap_or_default();
        Error { status: Status::from_code(code), message }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The numeric status code (`dmllm_status`, < 0).
    pub fn code(&self) -> i32 {
        self.status.code()
    }

    /// The library's message for this failure.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status.name(), self.code(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Ok for DMLLM_OK, else the error with the thread's last message.
pub(crate) fn check(code: sys::dmllm_status) -> Result<()> {
    if code == sys::DMLLM_OK { Ok(()) } else { Err(Error::last(code)) }
}
