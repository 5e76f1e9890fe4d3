//! Conversions shared by the wrappers: Rust strings and slices to C arguments with their checks,
//! library-owned arrays and strings copied into owned Rust values, and the callback trampolines.
use crate::error::{Error, Result, Status};
use std::any::Any;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

pub(crate) fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArgument, format!("{what} holds a NUL byte")))
}

pub(crate) fn path_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(Status::InvalidArgument, format!("path {} holds a NUL byte", path.display())))
}

/// The strings as C strings plus the array of pointers to them (valid while both live).
pub(crate) struct CStrings {
    _owned: Vec<CString>,
    pub(crate) ptrs: Vec<*const c_char>,
}

impl CStrings {
    pub(crate) fn new<S: AsRef<str>>(items: &[S], what: &str) -> Result<CStrings> {
        let owned = items.iter().map(|s| cstring(s.as_ref(), what)).collect::<Result<Vec<_>>>()?;
        let ptrs = owned.iter().map(|s| s.as_ptr()).collect();
        Ok(CStrings { _owned: owned, ptrs })
    }

    /// The pointer array, or NULL when there are no strings (the C API's "none given").
    pub(crate) fn as_ptr_or_null(&self) -> *const *const c_char {
        if self.ptrs.is_empty() { std::ptr::null() } else { self.ptrs.as_ptr() }
    }

    pub(crate) fn len_c(&self, what: &str) -> Result<c_int> {
        to_c_int(self.ptrs.len(), what)
    }
}

pub(crate) fn to_c_int(n: usize, what: &str) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::new(Status::InvalidArgument, format!("{what}: {n} is too many")))
}

/// Fails unless `len` equals `expected` (a map of width x height, a pixel buffer, ...): the C
/// library cannot see the length of a caller buffer.
pub(crate) fn check_len(len: usize, expected: usize, what: &str) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::new(Status::InvalidArgument, format!("{what} holds {len} values, expected {expected}")))
    }
}

/// width * height (* channels) of caller dimensions, failing on negative sizes or overflow.
pub(crate) fn area(width: i32, height: i32, channels: usize, what: &str) -> Result<usize> {
    let (w, h) = (usize::try_from(width), usize::try_from(height));
    match (w, h) {
        (Ok(w), Ok(h)) => w
            .checked_mul(h)
            .and_then(|n| n.checked_mul(channels))
            .ok_or_else(|| Error::new(Status::InvalidArgument, format!("{what}: {width} x {height} is too large"))),
        _ => Err(Error::new(Status::InvalidArgument, format!("{what}: negative size {width} x {height}"))),
    }
}

/// Copy of a library string; None for NULL.
///
/// # Safety
/// `s` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn string_from(s: *const c_char) -> Option<String> {
    if s.is_null() { None } else { Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()) }
}

/// Copy of a library array of `len` elements; empty for NULL or len <= 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` initialised elements.
pub(crate) unsafe fn vec_from<T: Copy>(ptr: *const T, len: impl TryInto<usize>) -> Vec<T> {
    match len.try_into() {
        Ok(n) if !ptr.is_null() && n > 0 => unsafe { std::slice::from_raw_parts(ptr, n) }.to_vec(),
        _ => Vec::new(),
    }
}

/// Copy of a library array of `n` C strings that may be NULL (a label name table); None for a NULL
/// array.
///
/// # Safety
/// `ptr` is NULL or points to `n` pointers, each NULL or a valid NUL-terminated string.
pub(crate) unsafe fn optional_strings_from(ptr: *const *const c_char, n: c_int) -> Option<Vec<Option<String>>> {
    (!ptr.is_null()).then(|| unsafe { vec_from(ptr, n) }.into_iter().map(|s| unsafe { string_from(s) }).collect())
}

/// Copy of a library array of `n` C strings.
///
/// # Safety
/// `ptr` is NULL or points to `n` valid NUL-terminated strings.
pub(crate) unsafe fn strings_from(ptr: *const *mut c_char, n: c_int) -> Vec<String> {
    unsafe { vec_from(ptr, n) }.into_iter().map(|s| unsafe { string_from(s) }.unwrap_or_default()).collect()
}

/// A fixed char array of a result struct (NUL-terminated within it) as a String.
pub(crate) fn string_from_array(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Takes a library string returned through a `char **` and frees it with dmllm_text_free.
///
/// # Safety
/// `text` is NULL or a string the library allocated for the caller.
pub(crate) unsafe fn take_text(text: *mut c_char) -> String {
    let s = unsafe { string_from(text) }.unwrap_or_default();
    unsafe { densemllm_sys::dmllm_text_free(text) };
    s
}

/// Calls `query(ptr, capacity, &mut count)` the header's way: a first call with (NULL, 0) for the
/// size, then one with a buffer of that size.
pub(crate) fn query_vec<T: Copy + Default>(
    mut query: impl FnMut(*mut T, usize, &mut usize) -> densemllm_sys::dmllm_status,
    fail: impl Fn(densemllm_sys::dmllm_status) -> Error,
) -> Result<Vec<T>> {
    let mut count = 0usize;
    let status = query(std::ptr::null_mut(), 0, &mut count);
    if status == densemllm_sys::DMLLM_OK && count == 0 {
        return Ok(Vec::new());
    }
    if status != densemllm_sys::DMLLM_OK && status != densemllm_sys::DMLLM_ERR_BUFFER_TOO_SMALL {
        return Err(fail(status));
    }
    let mut out = vec![T::default(); count];
    let status = query(out.as_mut_ptr(), out.len(), &mut count);
    if status != densemllm_sys::DMLLM_OK {
        return Err(fail(status));
    }
    out.truncate(count);
    Ok(out)
}

/// A Rust callback behind a C callback: the closure, and the payload of a panic it raised (the
/// panic cannot cross the C frames, so the call is aborted and the panic resumed afterwards).
pub(crate) struct Callback<F: ?Sized> {
    panic: Option<Box<dyn Any + Send>>,
    f: Box<F>,
}

pub(crate) type ProgressFn = dyn FnMut(&str, i32, i32) -> ControlFlow<()> + Send;
pub(crate) type TokenFn<'a> = dyn FnMut(i32, &str) -> ControlFlow<()> + 'a;

impl<F: ?Sized> Callback<F> {
    pub(crate) fn new(f: Box<F>) -> Callback<F> {
        Callback { panic: None, f }
    }

    pub(crate) fn user_data(&mut self) -> *mut c_void {
        self as *mut Self as *mut c_void
    }

    /// Re-raises a panic the closure raised during the last C call.
    pub(crate) fn resume_panic(&mut self) {
        if let Some(payload) = self.panic.take() {
            std::panic::resume_unwind(payload);
        }
    }
}

fn run_guarded<F: ?Sized>(state: &mut Callback<F>, call: impl FnOnce(&mut F) -> ControlFlow<()>) -> c_int {
    if state.panic.is_some() {
        return 1;
    }
    match catch_unwind(AssertUnwindSafe(|| call(&mut state.f))) {
        Ok(ControlFlow::Continue(())) => 0,
        Ok(ControlFlow::Break(())) => 1,
        Err(payload) => {
            state.panic = Some(payload);
            1
        }
    }
}

pub(crate) unsafe extern "C" fn progress_trampoline(
    stage: *const c_char,
    done: c_int,
    total: c_int,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: user_data is the Callback<ProgressFn> registered with this trampoline, alive for as
    // long as the library may call it (the load call, or the session).
    let state = unsafe { &mut *(user_data as *mut Callback<ProgressFn>) };
    let stage = unsafe { string_from(stage) }.unwrap_or_default();
    run_guarded(state, |f| f(&stage, done, total))
}

pub(crate) unsafe extern "C" fn token_trampoline(
    token_id: i32,
    text: *const c_char,
    length: usize,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: user_data is the Callback<TokenFn> of the running generate call.
    let state = unsafe { &mut *(user_data as *mut Callback<TokenFn<'_>>) };
    let bytes = if text.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(text as *const u8, length) } };
    let text = String::from_utf8_lossy(bytes);
    run_guarded(state, |f| f(token_id, &text))
}
