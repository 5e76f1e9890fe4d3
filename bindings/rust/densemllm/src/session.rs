//! Sessions: the mutable state on a model (KV cache, encoded image), evaluation and the
//! intermediate results at the image tokens.
use crate::error::{Error, Result};
use crate::image::{Image, ResizeMode};
use crate::model::Model;
use crate::util::{Callback, ProgressFn, area, check_len, progress_trampoline, query_vec, to_c_int};
use densemllm_sys as sys;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::ptr::NonNull;

/// Options of [`Model::session`]; `Default` is `dmllm_session_params_init()`.
#[derive(Clone)]
pub struct SessionParams {
    raw: sys::dmllm_session_params,
}

// SAFETY: the raw struct's pointers (progress user data) are always NULL here; a session sets
// them on its own copy.
unsafe impl Send for SessionParams {}
unsafe impl Sync for SessionParams {}

impl Default for SessionParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_session_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        SessionParams { raw }
    }
}

impl SessionParams {
    /// OpenMP threads per call; <= 0: all cores.
    pub fn n_threads(mut self, n: i32) -> Self {
        self.raw.n_threads = n;
        self
    }

    /// Patch cap of the resize rule (default 8192, CPU-friendly; Hugging Face parity:
    /// `DMLLM_HF_MAX_NUM_PATCHES`, 36864).
    pub fn max_num_patches(mut self, n: i32) -> Self {
        self.raw.max_num_patches = n;
        self
    }

    pub fn resize_mode(mut self, mode: ResizeMode) -> Self {
        self.raw.resize_mode = mode.raw();
        self
    }

    /// KV-cache capacity in tokens; <= 0: max_num_patches/4 + 4096.
    pub fn n_ctx(mut self, n: i32) -> Self {
        self.raw.n_ctx = n;
        self
    }

    /// Bytes the session may hold during a call (KV cache, encoded image, the call's working
    /// memory); a call that would exceed it fails at once with Status::OutOfMemory naming what it
    /// needs. 0: the model's limit.
    pub fn memory_limit_bytes(mut self, n: i64) -> Self {
        self.raw.memory_limit_bytes = n;
        self
    }
}

/// Which LM-head position carries an image token's labels (`dmllm_alignment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alignment {
    /// The token's own position.
    Own,
    /// The position before it (shifted next-token convention).
    Previous,
}

impl Alignment {
    pub(crate) fn raw(self) -> sys::dmllm_alignment {
        match self {
            Alignment::Own => sys::DMLLM_ALIGN_OWN,
            Alignment::Previous => sys::DMLLM_ALIGN_PREVIOUS,
        }
    }
}

/// Grid of the encoded image (`dmllm_image_grid`).
pub type ImageGrid = sys::dmllm_image_grid;

/// A row-major matrix of f32 copied out of the session.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    /// rows * cols values.
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// The mutable state of inference on a model. Used by one thread at a time (`Send`, not `Sync`);
/// borrows the model, which therefore outlives it. What the Python binding checks at run time
/// (closing a model or image while another thread's call uses it) the borrow checker refuses
/// here. Sessions on a model shared by scoped threads, each using an image they share:
///
/// ```no_run
/// use densemllm::{Image, Model, SessionParams};
/// let model = Model::load("models/tiny")?;
/// let image = Image::load("cat.jpg")?;
/// std::thread::scope(|scope| {
///     for _ in 0..2 {
///         scope.spawn(|| model.session(&SessionParams::default())?.encode_image(&image));
///     }
/// });
/// drop((model, image)); // after every thread has finished
/// # Ok::<(), densemllm::Error>(())
/// ```
///
/// Freeing the model while a session on it lives does not compile:
///
/// ```compile_fail,E0505
/// use densemllm::{Model, SessionParams};
/// let model = Model::load("models/tiny")?;
/// let mut session = model.session(&SessionParams::default())?;
/// drop(model); // cannot move out of `model` because it is borrowed
/// session.eval(&[1, 2])?;
/// # Ok::<(), densemllm::Error>(())
/// ```
///
/// nor does freeing the model or an image while another thread may still be inside a call that
/// uses them:
///
/// ```compile_fail,E0505
/// use densemllm::{Image, Model, SessionParams};
/// let model = Model::load("models/tiny")?;
/// let image = Image::load("cat.jpg")?;
/// std::thread::scope(|scope| {
///     scope.spawn(|| model.session(&SessionParams::default())?.encode_image(&image));
///     drop(image); // cannot move out of `image` because it is borrowed
/// });
/// # Ok::<(), densemllm::Error>(())
/// ```
///
/// ```compile_fail,E0505
/// use densemllm::{Image, Model, SessionParams};
/// let model = Model::load("models/tiny")?;
/// let image = Image::load("cat.jpg")?;
/// std::thread::scope(|scope| {
///     scope.spawn(|| model.session(&SessionParams::default())?.encode_image(&image));
///     drop(model); // cannot move out of `model` because it is borrowed
/// });
/// # Ok::<(), densemllm::Error>(())
/// ```
///
/// A thread that is not scoped cannot take a session at all (it borrows a local model), and two
/// threads cannot share one, so no two calls on a session overlap:
///
/// ```compile_fail,E0597
/// use densemllm::{Model, SessionParams};
/// let model = Model::load("models/tiny")?;
/// let mut session = model.session(&SessionParams::default())?;
/// std::thread::spawn(move || session.eval(&[1, 2])); // `model` does not live long enough
/// # Ok::<(), densemllm::Error>(())
/// ```
///
/// ```compile_fail,E0277
/// fn shared_by_threads<T: Sync>() {}
/// shared_by_threads::<densemllm::Session<'static>>(); // `NonNull<..>` cannot be shared
/// ```
pub struct Session<'m> {
    ptr: NonNull<sys::dmllm_session>,
    patch_size: i32,
    progress: Option<Box<Callback<ProgressFn>>>,
    _model: PhantomData<&'m Model>,
}

// SAFETY: a session may move between threads; its raw pointer keeps it !Sync, so it is used by
// one thread at a time. The progress closure it holds is Send.
unsafe impl Send for Session<'_> {}

impl<'m> Session<'m> {
    pub(crate) fn new(model: &'m Model, params: &SessionParams) -> Result<Session<'m>> {
        Session::create(model, params, None)
    }

    /// A session whose long calls report (stage, done, total) to `progress` ("vision", "llm",
    /// "generate"); returning `Break` aborts the call with Status::Aborted and rolls it back.
    pub fn with_progress(
        model: &'m Model,
        params: &SessionParams,
        progress: impl FnMut(&str, i32, i32) -> ControlFlow<()> + Send + 'static,
    ) -> Result<Session<'m>> {
        Session::create(model, params, Some(Box::new(progress)))
    }

    fn create(model: &'m Model, params: &SessionParams, progress: Option<Box<ProgressFn>>) -> Result<Session<'m>> {
        let patch_size = model.info()?.patch_size;
        let mut raw = params.raw;
        // Boxed so its address stays fixed while the session (which keeps the pointer) lives.
        let mut progress = progress.map(|f| Box::new(Callback::new(f)));
        if let Some(cb) = progress.as_mut() {
            raw.progress = Some(progress_trampoline);
            raw.progress_user_data = cb.user_data();
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: a live model and a valid params struct; the callback outlives the session.
        crate::error::check(unsafe { sys::dmllm_session_create(model.as_ptr(), &raw, &mut out) })?;
        let ptr = NonNull::new(out).expect("the library returned success without a session");
        Ok(Session { ptr, patch_size, progress, _model: PhantomData })
    }

    pub(crate) fn as_ptr(&mut self) -> *mut sys::dmllm_session {
        self.ptr.as_ptr()
    }

    /// Ok for DMLLM_OK, else the error; re-raises a panic of the progress closure. The message is
    /// the thread's dmllm_last_error(), which every failing call sets; the session's own copy
    /// (errmsg()) is not updated by calls on a const session such as image_grid.
    pub(crate) fn check(&mut self, status: sys::dmllm_status) -> Result<()> {
        if let Some(cb) = self.progress.as_mut() {
            cb.resume_panic();
        }
        if status == sys::DMLLM_OK { Ok(()) } else { Err(Error::last(status)) }
    }

    /// Message of the last failed call on this session that changes it ("" if none).
    pub fn errmsg(&self) -> String {
        // SAFETY: a live session; the message is copied at once.
        unsafe { crate::util::string_from(sys::dmllm_session_errmsg(self.ptr.as_ptr())) }.unwrap_or_default()
    }

    /// Preprocesses the image and runs the vision tower and merger.
    pub fn encode_image(&mut self, image: &Image) -> Result<()> {
        // SAFETY: a live session and image.
        let status = unsafe { sys::dmllm_session_encode_image(self.as_ptr(), image.as_ptr()) };
        self.check(status)
    }

    /// Encodes caller-made pixel values: [grid_h * grid_w][3 * patch * patch] in 2x2-merge-block
    /// patch order (model-spec 2.5).
    pub fn encode_pixels(&mut self, pixel_values: &[f32], grid_h: i32, grid_w: i32) -> Result<()> {
        let features = 3 * (self.patch_size as usize).pow(2);
        check_len(pixel_values.len(), area(grid_w, grid_h, features, "encode_pixels")?, "encode_pixels pixel_values")?;
        // SAFETY: pixel_values holds the grid_h * grid_w * features floats the library reads.
        let status = unsafe { sys::dmllm_session_encode_pixels(self.as_ptr(), pixel_values.as_ptr(), grid_h, grid_w) };
        self.check(status)
    }

    /// Grid of the encoded image: patches, merged tokens, resized and original size.
    pub fn image_grid(&self) -> Result<ImageGrid> {
        let mut grid = ImageGrid { struct_size: std::mem::size_of::<ImageGrid>() as u32, ..Default::default() };
        // SAFETY: a live session and a valid out struct.
        crate::error::check(unsafe { sys::dmllm_session_image_grid(self.ptr.as_ptr(), &mut grid) })?;
        Ok(grid)
    }

    /// Appends tokens and runs the LLM over them; every image_token_id takes the next row of the
    /// encoded image.
    pub fn eval(&mut self, ids: &[i32]) -> Result<()> {
        let n = to_c_int(ids.len(), "eval ids")?;
        // SAFETY: ids is valid for n ids.
        let status = unsafe { sys::dmllm_session_eval(self.as_ptr(), ids.as_ptr(), n) };
        self.check(status)
    }

    /// Tokens in the context.
    pub fn n_past(&self) -> usize {
        // SAFETY: a live session.
        unsafe { sys::dmllm_session_n_past(self.ptr.as_ptr()) }.max(0) as usize
    }

    /// Drops every token at position >= n_keep.
    pub fn truncate(&mut self, n_keep: usize) -> Result<()> {
        let n = to_c_int(n_keep, "truncate n_keep")?;
        // SAFETY: a live session.
        let status = unsafe { sys::dmllm_session_truncate(self.as_ptr(), n) };
        self.check(status)
    }

    /// Full-vocabulary logits of the last evaluated token.
    pub fn logits(&mut self) -> Result<Vec<f32>> {
        let ptr = self.as_ptr();
        // SAFETY: the buffer holds `cap` floats.
        query_vec(|out, cap, n| unsafe { sys::dmllm_session_logits(ptr, out, cap, n) }, Error::last)
    }

    /// Pixel values of the last encoded image: rows = patches, cols = 3 * patch * patch.
    pub fn pixel_values(&mut self) -> Result<Matrix> {
        let ptr = self.as_ptr();
        // SAFETY: the buffer holds `cap` floats.
        self.matrix(|out, cap, r, c| unsafe { sys::dmllm_session_pixel_values(ptr, out, cap, r, c) })
    }

    /// Merger output of the last encoded image: rows = image tokens, cols = text hidden size.
    pub fn image_embeddings(&mut self) -> Result<Matrix> {
        let ptr = self.as_ptr();
        // SAFETY: the buffer holds `cap` floats.
        self.matrix(|out, cap, r, c| unsafe { sys::dmllm_session_image_embeddings(ptr, out, cap, r, c) })
    }

    /// Final hidden states at the most recently evaluated image's positions.
    pub fn image_hidden(&mut self, alignment: Alignment) -> Result<Matrix> {
        let ptr = self.as_ptr();
        // SAFETY: the buffer holds `cap` floats.
        self.matrix(|out, cap, r, c| unsafe { sys::dmllm_session_image_hidden(ptr, alignment.raw(), out, cap, r, c) })
    }

    /// LM-head logits of `token_ids` at the image positions: rows = image tokens, cols = ids.
    pub fn image_logits(&mut self, alignment: Alignment, token_ids: &[i32]) -> Result<Matrix> {
        let ptr = self.as_ptr();
        let n = to_c_int(token_ids.len(), "image_logits token_ids")?;
        self.matrix(|out, cap, r, c| {
            // SAFETY: token_ids is valid for n ids, the buffer for `cap` floats.
            unsafe { sys::dmllm_session_image_logits(ptr, alignment.raw(), token_ids.as_ptr(), n, out, cap, r, c) }
        })
    }

    /// The size-query convention for a (rows, cols) result.
    fn matrix(
        &mut self,
        mut call: impl FnMut(*mut f32, usize, &mut usize, &mut usize) -> sys::dmllm_status,
    ) -> Result<Matrix> {
        let (mut rows, mut cols) = (0usize, 0usize);
        let data = query_vec(
            |out, cap, count| {
                let status = call(out, cap, &mut rows, &mut cols);
                *count = rows * cols;
                status
            },
            Error::last,
        )?;
        Ok(Matrix { rows, cols, data })
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // SAFETY: owned and freed once, before the progress callback box it may call.
        unsafe { sys::dmllm_session_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session(n_past = {})", self.n_past())
    }
}
