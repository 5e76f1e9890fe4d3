//! The process-wide log sink (`dmllm_log_set`) as a Rust closure.
use densemllm_sys as sys;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::RwLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// A log sink: called from any thread the library logs on.
pub type LogSink = Box<dyn Fn(LogLevel, &str) + Send + Sync>;

/// The installed sink; the C side only ever sees `log_trampoline`.
static SINK: RwLock<Option<LogSink>> = RwLock::new(None);

unsafe extern "C" fn log_trampoline(level: sys::dmllm_log_level, message: *const c_char, _: *mut c_void) {
    let level = match level {
        sys::DMLLM_LOG_ERROR => LogLevel::Error,
        sys::DMLLM_LOG_WARN => LogLevel::Warn,
        sys::DMLLM_LOG_INFO => LogLevel::Info,
        _ => LogLevel::Debug,
    };
    // SAFETY: the library passes a NUL-terminated message valid during the call.
    let message = unsafe { crate::util::string_from(message) }.unwrap_or_default();
    if let Ok(sink) = SINK.read() {
        if let Some(sink) = sink.as_ref() {
            // A panicking sink must not unwind into C; the message is dropped instead.
            let _ = catch_unwind(AssertUnwindSafe(|| sink(level, &message)));
        }
    }
}

/// Sends the library's log messages to `sink`, or silences the library with None. The default
/// (before any call) writes WARN and ERROR to stderr.
///
/// # Safety
/// As `dmllm_log_set`: must not be called while other threads use the library.
pub unsafe fn set_log(sink: Option<LogSink>) {
    let install = sink.is_some();
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = sink;
    // SAFETY: the trampoline is a valid callback for the whole process lifetime; the caller
    // guarantees no other thread uses the library meanwhile.
    unsafe { sys::dmllm_log_set(if install { Some(log_trampoline) } else { None }, std::ptr::null_mut()) };
}
