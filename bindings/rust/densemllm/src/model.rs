//! Models: loading, description, and the tokenizer of the model directory.
use crate::error::{Error, Result, check};
use crate::session::{Session, SessionParams};
use crate::text::ChatMessage;
use crate::util::{
    Callback, ProgressFn, cstring, path_cstring, progress_trampoline, query_vec, string_from, string_from_array,
};
use densemllm_sys as sys;
use std::ffi::c_int;
use std::ops::ControlFlow;
use std::path::Path;
use std::ptr::NonNull;

/// Precision of the matrix multiplications (`dmllm_compute_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ComputeType {
    /// BF16 on CPUs with avx512_bf16, F32 otherwise; env DMLLM_COMPUTE overrides.
    #[default]
    Auto,
    Bf16,
    F32,
    OpenBlas,
}

impl ComputeType {
    fn raw(self) -> sys::dmllm_compute_type {
        match self {
            ComputeType::Auto => sys::DMLLM_COMPUTE_AUTO,
            ComputeType::Bf16 => sys::DMLLM_COMPUTE_BF16,
            ComputeType::F32 => sys::DMLLM_COMPUTE_F32,
            ComputeType::OpenBlas => sys::DMLLM_COMPUTE_OPENBLAS,
        }
    }
}

/// Format of the packed matmul weights (`dmllm_weights_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WeightsType {
    /// The compute type's own (bf16 or f32).
    #[default]
    Auto,
    Bf16,
    F32,
    /// int8 per output channel, activations per token (W8A8); the LM head stays in the compute type.
    Int8,
}

impl WeightsType {
    fn raw(self) -> sys::dmllm_weights_type {
        match self {
            WeightsType::Auto => sys::DMLLM_WEIGHTS_AUTO,
            WeightsType::Bf16 => sys::DMLLM_WEIGHTS_BF16,
            WeightsType::F32 => sys::DMLLM_WEIGHTS_F32,
            WeightsType::Int8 => sys::DMLLM_WEIGHTS_INT8,
        }
    }
}

/// Options of [`Model::load_with`]; `Default` is `dmllm_model_params_init()`.
pub struct ModelParams {
    raw: sys::dmllm_model_params,
    progress: Option<Box<ProgressFn>>,
    cache_dir: Option<std::path::PathBuf>,
}

// SAFETY: the raw struct's pointers are always NULL here (load sets them on a copy); the progress
// closure is Send.
unsafe impl Send for ModelParams {}

impl Default for ModelParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_model_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        ModelParams { raw, progress: None, cache_dir: None }
    }
}

impl ModelParams {
    pub fn compute(mut self, compute: ComputeType) -> Self {
        self.raw.compute = compute.raw();
        self
    }

    /// Format of the packed weights; Int8 fails with Status::Unsupported on CPUs without VNNI.
    pub fn weights(mut self, weights: WeightsType) -> Self {
        self.raw.weights = weights.raw();
        self
    }

    /// Threads used to pack weights; <= 0: all cores.
    pub fn n_threads(mut self, n: i32) -> Self {
        self.raw.n_threads = n;
        self
    }

    /// Validate the checkpoint and read its config without packing weights: `info()` works,
    /// sessions cannot be created.
    pub fn check_only(mut self, on: bool) -> Self {
        self.raw.check_only = on as c_int;
        self
    }

    /// Default memory limit in bytes of the model's sessions (see `SessionParams::memory_limit_bytes`);
    /// 0: none.
    pub fn memory_limit_bytes(mut self, n: i64) -> Self {
        self.raw.memory_limit_bytes = n;
        self
    }

    /// Packed-weight cache directory (see the header's PACKED-WEIGHT CACHE), or "off" for none.
    /// Unset: $DMLLM_CACHE_DIR, else $XDG_CACHE_HOME/densemllm, else ~/.cache/densemllm.
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Called with ("load", done, total); returning `Break` aborts the load (Status::Aborted).
    pub fn progress(mut self, f: impl FnMut(&str, i32, i32) -> ControlFlow<()> + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }
}

/// A loaded model: immutable, shared by any number of threads and sessions.
pub struct Model {
    ptr: NonNull<sys::dmllm_model>,
}

// SAFETY: a dmllm_model is immutable once loaded and may be used from any thread at once.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

/// `dmllm_model_info` with owned strings.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub architecture: String,
    /// Matmul path: "onednn-bf16", "onednn-f32", "openblas-f32", or "none" (check_only).
    pub compute: String,
    pub model_dir: String,
    pub n_params: i64,
    pub vocab_size: i32,
    pub text_hidden_size: i32,
    pub text_layers: i32,
    pub text_heads: i32,
    pub vision_hidden_size: i32,
    pub vision_layers: i32,
    pub vision_heads: i32,
    pub patch_size: i32,
    pub spatial_merge_size: i32,
    pub image_token_id: i32,
    pub vision_start_token_id: i32,
    pub vision_end_token_id: i32,
    pub bos_token_id: i32,
    pub eos_token_id: i32,
    pub text_intermediate_size: i32,
    pub vision_intermediate_size: i32,
    pub q_lora_rank: i32,
    pub kv_lora_rank: i32,
    pub qk_nope_head_dim: i32,
    pub qk_rope_head_dim: i32,
    pub v_head_dim: i32,
    pub rope_theta: f64,
    /// "BF16", "F16" or "F32".
    pub weights_dtype: String,
    /// Packed matmul weights: "bf16", "f32", "int8", or "none" (check_only).
    pub weights: String,
}

impl Model {
    /// Loads a Hugging Face model directory with the default parameters.
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(dir, ModelParams::default())
    }

    pub fn load_with(dir: impl AsRef<Path>, params: ModelParams) -> Result<Model> {
        let dir = path_cstring(dir.as_ref())?;
        let mut raw = params.raw;
        let cache_dir = params.cache_dir.as_deref().map(path_cstring).transpose()?;
        if let Some(cache_dir) = &cache_dir {
            raw.cache_dir = cache_dir.as_ptr();
        }
        let mut callback = params.progress.map(Callback::new);
        if let Some(cb) = callback.as_mut() {
            raw.progress = Some(progress_trampoline);
            raw.progress_user_data = cb.user_data();
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: valid strings and pointers; the callback state outlives the call.
        let status = unsafe { sys::dmllm_model_load(dir.as_ptr(), &raw, &mut out) };
        let result = check(status);
        if let Some(cb) = callback.as_mut() {
            cb.resume_panic();
        }
        result?;
        Ok(Model { ptr: NonNull::new(out).expect("the library returned success without a model") })
    }

    pub fn info(&self) -> Result<ModelInfo> {
        // SAFETY: all-zero is a valid dmllm_model_info (NULL pointers, zero numbers).
        let mut i: sys::dmllm_model_info = unsafe { std::mem::zeroed() };
        i.struct_size = size_of::<sys::dmllm_model_info>() as u32;
        // SAFETY: a live model and a struct of the size it declares.
        check(unsafe { sys::dmllm_model_get_info(self.ptr.as_ptr(), &mut i) })?;
        // SAFETY: the strings are owned by the model, alive here.
        let s = |p| unsafe { string_from(p) }.unwrap_or_default();
        Ok(ModelInfo {
            architecture: s(i.architecture),
            compute: s(i.compute),
            model_dir: s(i.model_dir),
            n_params: i.n_params,
            vocab_size: i.vocab_size,
            text_hidden_size: i.text_hidden_size,
            text_layers: i.text_layers,
            text_heads: i.text_heads,
            vision_hidden_size: i.vision_hidden_size,
            vision_layers: i.vision_layers,
            vision_heads: i.vision_heads,
            patch_size: i.patch_size,
            spatial_merge_size: i.spatial_merge_size,
            image_token_id: i.image_token_id,
            vision_start_token_id: i.vision_start_token_id,
            vision_end_token_id: i.vision_end_token_id,
            bos_token_id: i.bos_token_id,
            eos_token_id: i.eos_token_id,
            text_intermediate_size: i.text_intermediate_size,
            vision_intermediate_size: i.vision_intermediate_size,
            q_lora_rank: i.q_lora_rank,
            kv_lora_rank: i.kv_lora_rank,
            qk_nope_head_dim: i.qk_nope_head_dim,
            qk_rope_head_dim: i.qk_rope_head_dim,
            v_head_dim: i.v_head_dim,
            rope_theta: i.rope_theta,
            weights_dtype: string_from_array(&i.weights_dtype),
            weights: s(i.weights),
        })
    }

    /// A new session on this model; the model must outlive it.
    pub fn session(&self, params: &SessionParams) -> Result<Session<'_>> {
        Session::new(self, params)
    }

    /// Token ids of `text` (no BOS/EOS); with `parse_special`, special tokens written in the text
    /// ("<|image_pad|>") become their ids.
    pub fn tokenize(&self, text: &str, parse_special: bool) -> Result<Vec<i32>> {
        let text = cstring(text, "tokenize text")?;
        query_vec(
            // SAFETY: a live model, a valid string and a buffer of `cap` ids.
            |ids, cap, n| unsafe {
                sys::dmllm_tokenize(self.ptr.as_ptr(), text.as_ptr(), parse_special as c_int, ids, cap, n)
            },
            Error::last,
        )
    }

    /// Text of `ids` (invalid UTF-8 as U+FFFD); `skip_special` leaves special tokens out.
    pub fn detokenize(&self, ids: &[i32], skip_special: bool) -> Result<String> {
        let mut bytes = query_vec(
            // SAFETY: ids is valid for its length; the buffer holds `cap` bytes.
            |text, cap, len| unsafe {
                let status = sys::dmllm_detokenize(
                    self.ptr.as_ptr(),
                    ids.as_ptr(),
                    ids.len(),
                    skip_special as c_int,
                    text,
                    cap,
                    len,
                );
                *len += 1; // room for the NUL the library writes
                status
            },
            Error::last,
        )?;
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        Ok(String::from_utf8_lossy(&bytes.iter().map(|&c| c as u8).collect::<Vec<u8>>()).into_owned())
    }

    /// Id of the token with exactly this content (`"<FG>"`, `"<|image_pad|>"`, a vocabulary piece).
    pub fn token_id(&self, content: &str) -> Option<i32> {
        let content = cstring(content, "token content").ok()?;
        // SAFETY: a live model and a valid string.
        let id = unsafe { sys::dmllm_token_id(self.ptr.as_ptr(), content.as_ptr()) };
        (id >= 0).then_some(id)
    }

    /// The raw bytes one id decodes to (maybe part of a UTF-8 character).
    pub fn token_bytes(&self, id: i32) -> Result<Vec<u8>> {
        let bytes = query_vec(
            // SAFETY: the buffer holds `cap` bytes.
            |b, cap, len| unsafe { sys::dmllm_token_bytes(self.ptr.as_ptr(), id, b, cap, len) },
            Error::last,
        )?;
        Ok(bytes.into_iter().map(|c| c as u8).collect())
    }

    /// The chat prompt of `messages` (see [`crate::chat_apply`]) as token ids.
    pub fn chat_tokenize(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        n_image_tokens: i32,
    ) -> Result<Vec<i32>> {
        let (_strings, raw) = ChatMessage::to_raw(messages)?;
        let n = crate::util::to_c_int(raw.len(), "chat messages")?;
        query_vec(
            // SAFETY: raw and the strings it points to live during the call.
            |ids, cap, count| unsafe {
                sys::dmllm_chat_tokenize(
                    self.ptr.as_ptr(),
                    raw.as_ptr(),
                    n,
                    add_generation_prompt as c_int,
                    n_image_tokens,
                    ids,
                    cap,
                    count,
                )
            },
            Error::last,
        )
    }

    pub(crate) fn as_ptr(&self) -> *const sys::dmllm_model {
        self.ptr.as_ptr()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: owned; every Session borrows the model, so none is left.
        unsafe { sys::dmllm_model_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Model")
    }
}
