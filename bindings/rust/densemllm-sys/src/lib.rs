//! Raw declarations of the libdensemllm C API, written by hand from include/densemllm.h in the
//! header's order, one `#[repr(C)]` struct per C struct with the same fields in the same order.
//! The header's comments are the documentation; the safe API lives in the `densemllm` crate.
//!
//! C enums are declared as `c_int` type aliases with constants rather than Rust enums: the library
//! may return a value this crate does not know yet, and an unknown discriminant in a Rust enum is
//! undefined behaviour. tests/declarations.rs checks that every DMLLM_API function of the header
//! is declared here, tests/layout.rs that the struct sizes match the library's.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_double, c_float, c_int, c_uint, c_void};

// ---- versions ----
pub const DMLLM_VERSION_MAJOR: c_uint = 0;
pub const DMLLM_VERSION_MINOR: c_uint = 2;
pub const DMLLM_VERSION_PATCH: c_uint = 0;
pub const DMLLM_VERSION_NUMBER: c_uint = DMLLM_VERSION_MAJOR * 10000 + DMLLM_VERSION_MINOR * 100 + DMLLM_VERSION_PATCH;
pub const DMLLM_ABI_VERSION: c_uint = 0;

// ---- status and errors ----
pub type dmllm_status = c_int;
pub const DMLLM_OK: dmllm_status = 0;
pub const DMLLM_ERR_INVALID_ARGUMENT: dmllm_status = -1;
pub const DMLLM_ERR_IO: dmllm_status = -2;
pub const DMLLM_ERR_FORMAT: dmllm_status = -3;
pub const DMLLM_ERR_UNSUPPORTED: dmllm_status = -4;
pub const DMLLM_ERR_SHAPE: dmllm_status = -5;
pub const DMLLM_ERR_OUT_OF_MEMORY: dmllm_status = -6;
pub const DMLLM_ERR_ABORTED: dmllm_status = -7;
pub const DMLLM_ERR_BACKEND: dmllm_status = -8;
pub const DMLLM_ERR_STATE: dmllm_status = -9;
pub const DMLLM_ERR_BUFFER_TOO_SMALL: dmllm_status = -10;
pub const DMLLM_ERR_CONTEXT_FULL: dmllm_status = -11;

// ---- logging ----
pub type dmllm_log_level = c_int;
pub const DMLLM_LOG_ERROR: dmllm_log_level = 0;
pub const DMLLM_LOG_WARN: dmllm_log_level = 1;
pub const DMLLM_LOG_INFO: dmllm_log_level = 2;
pub const DMLLM_LOG_DEBUG: dmllm_log_level = 3;

pub type dmllm_log_callback =
    Option<unsafe extern "C" fn(level: dmllm_log_level, message: *const c_char, user_data: *mut c_void)>;

// ---- progress and abort ----
pub type dmllm_progress_callback =
    Option<unsafe extern "C" fn(stage: *const c_char, done: c_int, total: c_int, user_data: *mut c_void) -> c_int>;

// ---- model ----
#[repr(C)]
pub struct dmllm_model {
    _opaque: [u8; 0],
}

pub type dmllm_compute_type = c_int;
pub const DMLLM_COMPUTE_AUTO: dmllm_compute_type = 0;
pub const DMLLM_COMPUTE_BF16: dmllm_compute_type = 1;
pub const DMLLM_COMPUTE_F32: dmllm_compute_type = 2;
pub const DMLLM_COMPUTE_OPENBLAS: dmllm_compute_type = 3;

pub type dmllm_weights_type = c_int;
pub const DMLLM_WEIGHTS_AUTO: dmllm_weights_type = 0;
pub const DMLLM_WEIGHTS_BF16: dmllm_weights_type = 1;
pub const DMLLM_WEIGHTS_F32: dmllm_weights_type = 2;
pub const DMLLM_WEIGHTS_INT8: dmllm_weights_type = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_model_params {
    pub struct_size: u32,
    pub compute: dmllm_compute_type,
    pub n_threads: c_int,
    pub progress: dmllm_progress_callback,
    pub progress_user_data: *mut c_void,
    pub check_only: c_int,
    pub memory_limit_bytes: i64,
    pub weights: dmllm_weights_type,
    pub cache_dir: *const c_char,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_model_info {
    pub struct_size: u32,
    pub architecture: *const c_char,
    pub compute: *const c_char,
    pub model_dir: *const c_char,
    pub n_params: i64,
    pub vocab_size: c_int,
    pub text_hidden_size: c_int,
    pub text_layers: c_int,
    pub text_heads: c_int,
    pub vision_hidden_size: c_int,
    pub vision_layers: c_int,
    pub vision_heads: c_int,
    pub patch_size: c_int,
    pub spatial_merge_size: c_int,
    pub image_token_id: c_int,
    pub vision_start_token_id: c_int,
    pub vision_end_token_id: c_int,
    pub bos_token_id: c_int,
    pub eos_token_id: c_int,
    pub text_intermediate_size: c_int,
    pub vision_intermediate_size: c_int,
    pub q_lora_rank: c_int,
    pub kv_lora_rank: c_int,
    pub qk_nope_head_dim: c_int,
    pub qk_rope_head_dim: c_int,
    pub v_head_dim: c_int,
    pub rope_theta: c_double,
    pub weights_dtype: [c_char; 8],
    pub weights: *const c_char,
}

// ---- images ----
#[repr(C)]
pub struct dmllm_image {
    _opaque: [u8; 0],
}

// ---- preprocessing ----
pub type dmllm_resize_mode = c_int;
pub const DMLLM_RESIZE_HF: dmllm_resize_mode = 0;
pub const DMLLM_RESIZE_PILLOW: dmllm_resize_mode = 1;

// ---- sessions ----
#[repr(C)]
pub struct dmllm_session {
    _opaque: [u8; 0],
}

pub const DMLLM_DEFAULT_MAX_NUM_PATCHES: c_int = 8192;
pub const DMLLM_DEFAULT_MAX_IMAGE_PIXELS: i64 = 178_956_970;
pub const DMLLM_DEFAULT_MAX_IMAGE_BYTES: i64 = 256 << 20;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_image_params {
    pub struct_size: u32,
    pub max_pixels: i64,
    pub max_encoded_bytes: i64,
    pub memory_limit_bytes: i64,
}

pub const DMLLM_HF_MAX_NUM_PATCHES: c_int = 36864;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_session_params {
    pub struct_size: u32,
    pub n_threads: c_int,
    pub max_num_patches: c_int,
    pub resize_mode: dmllm_resize_mode,
    pub n_ctx: c_int,
    pub progress: dmllm_progress_callback,
    pub progress_user_data: *mut c_void,
    pub memory_limit_bytes: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct dmllm_image_grid {
    /// Set by the caller: `size_of::<dmllm_image_grid>()`.
    pub struct_size: u32,
    pub grid_h: c_int,
    pub grid_w: c_int,
    pub tokens_h: c_int,
    pub tokens_w: c_int,
    pub resized_w: c_int,
    pub resized_h: c_int,
    pub original_w: c_int,
    pub original_h: c_int,
}

// ---- intermediate results at the image ----
pub type dmllm_alignment = c_int;
pub const DMLLM_ALIGN_OWN: dmllm_alignment = 0;
pub const DMLLM_ALIGN_PREVIOUS: dmllm_alignment = 1;

// ---- dense prediction ----
pub type dmllm_dense_task = c_int;
pub const DMLLM_TASK_SEMANTIC: dmllm_dense_task = 0;
pub const DMLLM_TASK_FGBG: dmllm_dense_task = 1;
pub const DMLLM_TASK_DEPTH: dmllm_dense_task = 2;

pub type dmllm_prompt_layout = c_int;
pub const DMLLM_LAYOUT_IMAGE_FIRST: dmllm_prompt_layout = 0;
pub const DMLLM_LAYOUT_PROMPT_FIRST: dmllm_prompt_layout = 1;

pub const DMLLM_FROM_PROFILE: c_int = -1;

pub type dmllm_semantic_readout = c_int;
pub const DMLLM_READOUT_ALL: dmllm_semantic_readout = 0;
pub const DMLLM_READOUT_NAMED: dmllm_semantic_readout = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_dense_params {
    pub struct_size: u32,
    pub task: dmllm_dense_task,
    pub class_names: *const *const c_char,
    pub n_classes: c_int,
    pub label_token_ids: *const i32,
    pub label_offsets: *const c_int,
    pub background: c_int,
    pub evaluation: c_int,
    pub layout: dmllm_prompt_layout,
    pub prompt: *const c_char,
    pub alignment: c_int,
    pub depth_profile: *const c_char,
    pub focal_length_px: c_float,
    pub keep_token_scores: c_int,
    pub crf: *const dmllm_crf_params,
    pub readout: c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_dense_result {
    pub task: dmllm_dense_task,
    pub width: c_int,
    pub height: c_int,
    pub n_labels: c_int,
    pub labels: *mut u16,
    pub confidence: *mut c_float,
    pub depth_m: *mut c_float,
    pub depth_grid_w: c_int,
    pub depth_grid_h: c_int,
    pub depth_grid_bins: *mut u16,
    pub tokens_w: c_int,
    pub tokens_h: c_int,
    pub n_scores: c_int,
    pub token_scores: *mut c_float,
    pub reused_prefix: c_int,
    pub seconds_encode: c_double,
    pub seconds_prefill: c_double,
    pub seconds_readout: c_double,
    pub seconds_crf: c_double,
    pub readout: dmllm_semantic_readout,
    pub n_classes: c_int,
    pub class_names: *mut *mut c_char,
    pub prompt_index: *mut c_int,
    pub named_fallback: c_int,
    pub reply: *mut c_char,
    pub seconds_generate: c_double,
    pub crf: c_int,
    /// `[n_labels]` what each label value stands for (NULL entries for classes given as ids); NULL
    /// for depth.
    pub label_names: *const *const c_char,
    pub background_label: c_int,
}

// ---- evaluation metrics ----
#[repr(C)]
pub struct dmllm_seg_metrics {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_seg_metrics_params {
    pub struct_size: u32,
    pub n_classes: c_int,
    pub ignore_index: c_int,
    pub reduce_zero_label: c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_seg_result {
    pub n_classes: c_int,
    pub n_images: i64,
    pub miou: c_double,
    pub macc: c_double,
    pub aacc: c_double,
    pub n_iou_classes: c_int,
    pub n_acc_classes: c_int,
    pub iou: *mut c_double,
    pub acc: *mut c_double,
    pub area_intersect: *mut i64,
    pub area_union: *mut i64,
    pub area_pred: *mut i64,
    pub area_label: *mut i64,
}

pub type dmllm_depth_crop = c_int;
pub const DMLLM_DEPTH_CROP_NONE: dmllm_depth_crop = 0;
pub const DMLLM_DEPTH_CROP_EIGEN: dmllm_depth_crop = 1;
pub const DMLLM_DEPTH_CROP_GARG: dmllm_depth_crop = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_depth_metrics_params {
    pub struct_size: u32,
    pub min_depth: c_double,
    pub max_depth: c_double,
    pub crop: dmllm_depth_crop,
}

#[repr(C)]
pub struct dmllm_depth_metrics {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmllm_depth_scores {
    pub struct_size: u32,
    pub n_images: i64,
    pub n_images_empty: i64,
    pub n_pixels: i64,
    pub delta1: c_double,
    pub delta2: c_double,
    pub delta3: c_double,
    pub abs_rel: c_double,
    pub sq_rel: c_double,
    pub rmse: c_double,
    pub rmse_log: c_double,
    pub log10: c_double,
    pub silog: c_double,
}

#[repr(C)]
pub struct dmllm_mask_metrics {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dmllm_mask_scores {
    pub struct_size: u32,
    pub n_samples: i64,
    pub sum_intersection: i64,
    pub sum_union: i64,
    pub ciou: c_double,
    pub giou: c_double,
}

// ---- outputs ----
pub const DMLLM_DEPTH_PNG_SCALE: c_float = 1000.0;

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_mask_text_result {
    pub width: c_int,
    pub height: c_int,
    pub labels: *mut u16,
    pub n_names: c_int,
    pub names: *mut *mut c_char,
    pub has_depth_tag: c_int,
}

// ---- chat template ----
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_chat_message {
    /// `size_of::<dmllm_chat_message>()`, the same in every element (the array's stride).
    pub struct_size: u32,
    pub role: *const c_char,
    pub text: *const c_char,
    pub has_image: c_int,
    pub layout: dmllm_prompt_layout,
}

pub const DMLLM_DEFAULT_SYSTEM_PROMPT: &std::ffi::CStr = c"You are a helpful assistant.";

// ---- text generation ----
pub type dmllm_token_callback =
    Option<unsafe extern "C" fn(token_id: i32, text: *const c_char, length: usize, user_data: *mut c_void) -> c_int>;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_generate_params {
    pub struct_size: u32,
    pub max_new_tokens: c_int,
    pub do_sample: c_int,
    pub temperature: c_float,
    pub top_k: c_int,
    pub top_p: c_float,
    pub repetition_penalty: c_float,
    pub seed: u64,
    pub stop_ids: *const i32,
    pub n_stop_ids: c_int,
    pub skip_special: c_int,
    pub rescale_coordinates: c_int,
    pub on_token: dmllm_token_callback,
    pub user_data: *mut c_void,
}

pub type dmllm_stop_reason = c_int;
pub const DMLLM_STOP_TOKEN: dmllm_stop_reason = 0;
pub const DMLLM_STOP_MAX_TOKENS: dmllm_stop_reason = 1;
pub const DMLLM_STOP_CALLBACK: dmllm_stop_reason = 2;
pub const DMLLM_STOP_CONTEXT_FULL: dmllm_stop_reason = 3;

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_generate_result {
    pub ids: *mut i32,
    pub n_ids: c_int,
    pub text: *mut c_char,
    pub stop_reason: dmllm_stop_reason,
    pub stop_id: i32,
    pub n_prompt: c_int,
    pub seconds_prompt: c_double,
    pub seconds_generate: c_double,
}

// ---- text tasks and their answers ----
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_region {
    /// `size_of::<dmllm_region>()`: set by the library in results, by the caller in overlay boxes.
    pub struct_size: u32,
    pub label: *const c_char,
    /// x0, y0, x1, y1 (`box` in C, a reserved word in Rust).
    pub r#box: [c_int; 4],
    pub n_points: c_int,
    pub points: *const c_int,
}

/// `DMLLM_AUTO`: an overlay size computed from the image size.
pub const DMLLM_AUTO: c_int = -1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_overlay_params {
    pub struct_size: u32,
    pub alpha: c_float,
    pub background_label: c_int,
    pub outline_px: c_int,
    pub legend: c_int,
    /// `[n_boxes]` pointers; `dmllm_regions.regions` fits.
    pub boxes: *const *const dmllm_region,
    pub n_boxes: c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_regions {
    pub n_regions: c_int,
    /// `[n_regions]` pointers, each region allocated on its own.
    pub regions: *mut *mut dmllm_region,
    pub text: *mut c_char,
    pub message: [c_char; 256],
}

// ---- box-prompted segmentation ----
pub type dmllm_crop_variant = c_int;
pub const DMLLM_VARIANT_REPORT: dmllm_crop_variant = 0;
pub const DMLLM_VARIANT_DEMO: dmllm_crop_variant = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_crop_params {
    pub struct_size: u32,
    pub padding: c_float,
    pub short_side: c_int,
    pub box_px: c_int,
    pub box_rgb: [u8; 3],
    pub max_regions: c_int,
    pub generate: *const dmllm_generate_params,
    pub evaluation: c_int,
    pub crf: *const dmllm_crf_params,
    pub variant: dmllm_crop_variant,
}

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_refer_result {
    pub width: c_int,
    pub height: c_int,
    pub mask: *mut u8,
    pub found: c_int,
    pub r#box: [c_int; 4],
    pub answer: *mut c_char,
    pub message: [c_char; 256],
    pub crf: c_int,
    pub n_labels: c_int,
    pub label_names: *const *const c_char,
}

#[repr(C)]
#[derive(Debug)]
pub struct dmllm_openset_result {
    pub width: c_int,
    pub height: c_int,
    pub labels: *mut u16,
    pub n_names: c_int,
    pub names: *mut *mut c_char,
    pub regions: *mut dmllm_regions,
    pub crf: c_int,
    pub n_labels: c_int,
    pub label_names: *const *const c_char,
}

// Getters and *_sizeof() functions take no pointers and have no preconditions, so they are
// declared `safe`; everything else is unsafe to call.
// ---- dense CRF ----
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dmllm_crf_params {
    pub struct_size: u32,
    pub iterations: c_int,
    pub gaussian_sxy: c_float,
    pub gaussian_compat: c_float,
    pub bilateral_sxy: c_float,
    pub bilateral_srgb: c_float,
    pub bilateral_compat: c_float,
}

// ---- annotation files ----
#[repr(C)]
#[derive(Debug)]
pub struct dmllm_png_values {
    pub width: c_int,
    pub height: c_int,
    pub bit_depth: c_int,
    pub palette: c_int,
    pub values: *mut u16,
}

unsafe extern "C" {
    // versions
    pub safe fn dmllm_version_number() -> c_uint;
    pub safe fn dmllm_version_string() -> *const c_char;

    // status and errors
    pub safe fn dmllm_status_str(status: dmllm_status) -> *const c_char;
    pub safe fn dmllm_last_error() -> *const c_char;
    pub fn dmllm_text_free(text: *mut c_char);

    // logging
    pub fn dmllm_log_set(callback: dmllm_log_callback, user_data: *mut c_void);

    // model
    pub fn dmllm_model_params_init(params: *mut dmllm_model_params);
    pub safe fn dmllm_model_params_sizeof() -> usize;
    pub fn dmllm_model_load(
        model_dir: *const c_char,
        params: *const dmllm_model_params,
        out_model: *mut *mut dmllm_model,
    ) -> dmllm_status;
    pub fn dmllm_model_free(model: *mut dmllm_model);
    pub fn dmllm_model_get_info(model: *const dmllm_model, info: *mut dmllm_model_info) -> dmllm_status;

    // images
    pub fn dmllm_image_load_file(path: *const c_char, out_image: *mut *mut dmllm_image) -> dmllm_status;
    pub fn dmllm_image_load_memory(data: *const c_void, size: usize, out_image: *mut *mut dmllm_image) -> dmllm_status;
    pub fn dmllm_image_params_init(params: *mut dmllm_image_params);
    pub safe fn dmllm_image_params_sizeof() -> usize;
    pub fn dmllm_image_load_file_ex(
        path: *const c_char,
        params: *const dmllm_image_params,
        out_image: *mut *mut dmllm_image,
    ) -> dmllm_status;
    pub fn dmllm_image_load_memory_ex(
        data: *const c_void,
        size: usize,
        params: *const dmllm_image_params,
        out_image: *mut *mut dmllm_image,
    ) -> dmllm_status;
    pub fn dmllm_image_from_rgb(
        rgb: *const u8,
        width: c_int,
        height: c_int,
        stride_bytes: usize,
        out_image: *mut *mut dmllm_image,
    ) -> dmllm_status;
    pub fn dmllm_image_width(image: *const dmllm_image) -> c_int;
    pub fn dmllm_image_height(image: *const dmllm_image) -> c_int;
    pub fn dmllm_image_pixels(image: *const dmllm_image) -> *const u8;
    pub fn dmllm_image_free(image: *mut dmllm_image);

    // preprocessing
    pub fn dmllm_target_size(
        width: c_int,
        height: c_int,
        max_num_patches: c_int,
        out_width: *mut c_int,
        out_height: *mut c_int,
    ) -> dmllm_status;
    pub fn dmllm_image_resize(
        image: *const dmllm_image,
        width: c_int,
        height: c_int,
        mode: dmllm_resize_mode,
        out_image: *mut *mut dmllm_image,
    ) -> dmllm_status;

    // sessions
    pub fn dmllm_session_params_init(params: *mut dmllm_session_params);
    pub safe fn dmllm_session_params_sizeof() -> usize;
    pub fn dmllm_session_create(
        model: *const dmllm_model,
        params: *const dmllm_session_params,
        out_session: *mut *mut dmllm_session,
    ) -> dmllm_status;
    pub fn dmllm_session_free(session: *mut dmllm_session);
    pub fn dmllm_session_errmsg(session: *const dmllm_session) -> *const c_char;
    pub fn dmllm_session_encode_image(session: *mut dmllm_session, image: *const dmllm_image) -> dmllm_status;
    pub fn dmllm_session_encode_pixels(
        session: *mut dmllm_session,
        pixel_values: *const c_float,
        grid_h: c_int,
        grid_w: c_int,
    ) -> dmllm_status;
    pub fn dmllm_session_image_grid(session: *const dmllm_session, grid: *mut dmllm_image_grid) -> dmllm_status;
    pub fn dmllm_session_eval(session: *mut dmllm_session, token_ids: *const i32, n_tokens: c_int) -> dmllm_status;
    pub fn dmllm_session_n_past(session: *const dmllm_session) -> c_int;
    pub fn dmllm_session_truncate(session: *mut dmllm_session, n_keep: c_int) -> dmllm_status;
    pub fn dmllm_session_logits(
        session: *mut dmllm_session,
        out: *mut c_float,
        capacity: usize,
        out_count: *mut usize,
    ) -> dmllm_status;

    // intermediate results at the image
    pub fn dmllm_session_pixel_values(
        session: *mut dmllm_session,
        out: *mut c_float,
        capacity: usize,
        rows: *mut usize,
        cols: *mut usize,
    ) -> dmllm_status;
    pub fn dmllm_session_image_embeddings(
        session: *mut dmllm_session,
        out: *mut c_float,
        capacity: usize,
        rows: *mut usize,
        cols: *mut usize,
    ) -> dmllm_status;
    pub fn dmllm_session_image_hidden(
        session: *mut dmllm_session,
        alignment: dmllm_alignment,
        out: *mut c_float,
        capacity: usize,
        rows: *mut usize,
        cols: *mut usize,
    ) -> dmllm_status;
    pub fn dmllm_session_image_logits(
        session: *mut dmllm_session,
        alignment: dmllm_alignment,
        token_ids: *const i32,
        n_ids: c_int,
        out: *mut c_float,
        capacity: usize,
        rows: *mut usize,
        cols: *mut usize,
    ) -> dmllm_status;

    // tokenizer
    pub fn dmllm_tokenize(
        model: *const dmllm_model,
        text: *const c_char,
        parse_special: c_int,
        ids: *mut i32,
        capacity: usize,
        n_ids: *mut usize,
    ) -> dmllm_status;
    pub fn dmllm_detokenize(
        model: *const dmllm_model,
        ids: *const i32,
        n_ids: usize,
        skip_special: c_int,
        text: *mut c_char,
        capacity: usize,
        length: *mut usize,
    ) -> dmllm_status;
    pub fn dmllm_token_id(model: *const dmllm_model, content: *const c_char) -> i32;
    pub fn dmllm_token_bytes(
        model: *const dmllm_model,
        id: i32,
        bytes: *mut c_char,
        capacity: usize,
        length: *mut usize,
    ) -> dmllm_status;

    // dense prediction
    pub fn dmllm_dense_params_init(params: *mut dmllm_dense_params);
    pub safe fn dmllm_dense_params_sizeof() -> usize;
    pub fn dmllm_predict_dense(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        params: *const dmllm_dense_params,
        out_result: *mut *mut dmllm_dense_result,
    ) -> dmllm_status;
    pub fn dmllm_dense_result_free(result: *mut dmllm_dense_result);

    // evaluation metrics: semantic segmentation
    pub fn dmllm_seg_metrics_params_init(params: *mut dmllm_seg_metrics_params);
    pub safe fn dmllm_seg_metrics_params_sizeof() -> usize;
    pub fn dmllm_seg_metrics_create(
        params: *const dmllm_seg_metrics_params,
        out: *mut *mut dmllm_seg_metrics,
    ) -> dmllm_status;
    pub fn dmllm_seg_metrics_add(
        metrics: *mut dmllm_seg_metrics,
        pred: *const u16,
        gt: *const u16,
        n_pixels: usize,
    ) -> dmllm_status;
    pub fn dmllm_seg_metrics_free(metrics: *mut dmllm_seg_metrics);
    pub fn dmllm_seg_metrics_result(metrics: *const dmllm_seg_metrics, out: *mut *mut dmllm_seg_result)
    -> dmllm_status;
    pub fn dmllm_seg_result_free(result: *mut dmllm_seg_result);

    // evaluation metrics: depth
    pub fn dmllm_depth_metrics_params_init(params: *mut dmllm_depth_metrics_params);
    pub safe fn dmllm_depth_metrics_params_sizeof() -> usize;
    pub fn dmllm_depth_metrics_create(
        params: *const dmllm_depth_metrics_params,
        out: *mut *mut dmllm_depth_metrics,
    ) -> dmllm_status;
    pub fn dmllm_depth_metrics_add(
        metrics: *mut dmllm_depth_metrics,
        pred: *const c_float,
        pred_w: c_int,
        pred_h: c_int,
        gt: *const c_float,
        gt_w: c_int,
        gt_h: c_int,
    ) -> dmllm_status;
    pub fn dmllm_depth_metrics_add_f64(
        metrics: *mut dmllm_depth_metrics,
        pred: *const c_double,
        pred_w: c_int,
        pred_h: c_int,
        gt: *const c_double,
        gt_w: c_int,
        gt_h: c_int,
    ) -> dmllm_status;
    pub fn dmllm_depth_metrics_free(metrics: *mut dmllm_depth_metrics);
    pub fn dmllm_depth_metrics_result(
        metrics: *const dmllm_depth_metrics,
        out: *mut dmllm_depth_scores,
    ) -> dmllm_status;

    // evaluation metrics: referring segmentation and boxes
    pub fn dmllm_mask_metrics_create(out: *mut *mut dmllm_mask_metrics) -> dmllm_status;
    pub fn dmllm_mask_metrics_add(
        metrics: *mut dmllm_mask_metrics,
        pred: *const u8,
        gt: *const u8,
        n_pixels: usize,
    ) -> dmllm_status;
    pub fn dmllm_mask_metrics_free(metrics: *mut dmllm_mask_metrics);
    pub fn dmllm_mask_metrics_result(metrics: *const dmllm_mask_metrics, out: *mut dmllm_mask_scores) -> dmllm_status;
    pub fn dmllm_box_iou(box_a: *const c_double, box_b: *const c_double, out_iou: *mut c_double) -> dmllm_status;

    // outputs
    pub fn dmllm_label_color(label: c_int, rgb: *mut u8) -> dmllm_status;
    pub fn dmllm_overlay_color(label: c_int, rgb: *mut u8) -> dmllm_status;
    pub fn dmllm_overlay_params_init(params: *mut dmllm_overlay_params);
    pub safe fn dmllm_overlay_params_sizeof() -> usize;
    pub fn dmllm_write_overlay_png_v2(
        path: *const c_char,
        image: *const dmllm_image,
        labels: *const u16,
        n_labels: c_int,
        names: *const *const c_char,
        params: *const dmllm_overlay_params,
    ) -> dmllm_status;
    pub fn dmllm_write_depth_colorbar_png(
        path: *const c_char,
        depth_m: *const c_float,
        width: c_int,
        height: c_int,
        min_m: c_float,
        max_m: c_float,
    ) -> dmllm_status;
    pub fn dmllm_write_pca_overlay_png(
        path: *const c_char,
        image: *const dmllm_image,
        features: *const c_float,
        rows: c_int,
        cols: c_int,
        grid_w: c_int,
        grid_h: c_int,
        alpha: c_float,
    ) -> dmllm_status;
    pub fn dmllm_write_label_png(
        path: *const c_char,
        labels: *const u16,
        width: c_int,
        height: c_int,
        n_labels: c_int,
    ) -> dmllm_status;
    pub fn dmllm_write_overlay_png(
        path: *const c_char,
        image: *const dmllm_image,
        labels: *const u16,
        n_labels: c_int,
        names: *const *const c_char,
        alpha: c_float,
    ) -> dmllm_status;
    pub fn dmllm_write_depth_png16(
        path: *const c_char,
        depth_m: *const c_float,
        width: c_int,
        height: c_int,
        scale: c_float,
    ) -> dmllm_status;
    pub fn dmllm_write_depth_color_png(
        path: *const c_char,
        depth_m: *const c_float,
        width: c_int,
        height: c_int,
        min_m: c_float,
        max_m: c_float,
    ) -> dmllm_status;
    pub fn dmllm_write_pca_png(
        path: *const c_char,
        features: *const c_float,
        rows: c_int,
        cols: c_int,
        grid_w: c_int,
        grid_h: c_int,
        out_w: c_int,
        out_h: c_int,
    ) -> dmllm_status;
    pub fn dmllm_mask_text_write(
        labels: *const u16,
        width: c_int,
        height: c_int,
        names: *const *const c_char,
        n_labels: c_int,
        out_text: *mut *mut c_char,
    ) -> dmllm_status;
    pub fn dmllm_mask_text_parse(
        text: *const c_char,
        width: c_int,
        height: c_int,
        out_result: *mut *mut dmllm_mask_text_result,
    ) -> dmllm_status;
    pub fn dmllm_mask_text_result_free(result: *mut dmllm_mask_text_result);

    // chat template
    pub fn dmllm_chat_apply(
        messages: *const dmllm_chat_message,
        n_messages: c_int,
        add_generation_prompt: c_int,
        n_image_tokens: c_int,
        out_text: *mut *mut c_char,
    ) -> dmllm_status;
    pub fn dmllm_chat_tokenize(
        model: *const dmllm_model,
        messages: *const dmllm_chat_message,
        n_messages: c_int,
        add_generation_prompt: c_int,
        n_image_tokens: c_int,
        ids: *mut i32,
        capacity: usize,
        n_ids: *mut usize,
    ) -> dmllm_status;

    // text generation
    pub fn dmllm_generate_params_init(params: *mut dmllm_generate_params);
    pub safe fn dmllm_generate_params_sizeof() -> usize;
    pub fn dmllm_generate(
        session: *mut dmllm_session,
        prompt_ids: *const i32,
        n_prompt: c_int,
        params: *const dmllm_generate_params,
        out_result: *mut *mut dmllm_generate_result,
    ) -> dmllm_status;
    pub fn dmllm_generate_text(
        session: *mut dmllm_session,
        prompt: *const c_char,
        params: *const dmllm_generate_params,
        out_result: *mut *mut dmllm_generate_result,
    ) -> dmllm_status;
    pub fn dmllm_generate_result_free(result: *mut dmllm_generate_result);
    pub fn dmllm_coordinate_to_original(
        k: c_int,
        original_size: c_int,
        resized_size: c_int,
        out_k: *mut c_int,
    ) -> dmllm_status;

    // text tasks and their answers
    pub fn dmllm_parse_regions(text: *const c_char, out_regions: *mut *mut dmllm_regions) -> dmllm_status;
    pub fn dmllm_regions_free(regions: *mut dmllm_regions);
    pub fn dmllm_ask(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        question: *const c_char,
        params: *const dmllm_generate_params,
        out_result: *mut *mut dmllm_generate_result,
    ) -> dmllm_status;
    pub fn dmllm_ground(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        phrase: *const c_char,
        params: *const dmllm_generate_params,
        out_regions: *mut *mut dmllm_regions,
    ) -> dmllm_status;
    pub fn dmllm_detect(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        classes: *const *const c_char,
        n_classes: c_int,
        params: *const dmllm_generate_params,
        out_regions: *mut *mut dmllm_regions,
    ) -> dmllm_status;

    // box-prompted segmentation
    pub fn dmllm_crop_params_init(params: *mut dmllm_crop_params);
    pub safe fn dmllm_crop_params_sizeof() -> usize;
    pub fn dmllm_segment_box(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        r#box: *const c_int,
        params: *const dmllm_crop_params,
        mask: *mut u8,
        capacity: usize,
    ) -> dmllm_status;
    pub fn dmllm_refer_segment(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        phrase: *const c_char,
        params: *const dmllm_crop_params,
        out_result: *mut *mut dmllm_refer_result,
    ) -> dmllm_status;
    pub fn dmllm_refer_result_free(result: *mut dmllm_refer_result);
    pub fn dmllm_openset_segment(
        session: *mut dmllm_session,
        image: *const dmllm_image,
        classes: *const *const c_char,
        n_classes: c_int,
        params: *const dmllm_crop_params,
        out_result: *mut *mut dmllm_openset_result,
    ) -> dmllm_status;
    pub fn dmllm_openset_result_free(result: *mut dmllm_openset_result);

    // dense CRF
    pub fn dmllm_crf_params_init(params: *mut dmllm_crf_params);
    pub safe fn dmllm_crf_params_sizeof() -> usize;
    pub fn dmllm_crf_refine(
        image: *const dmllm_image,
        probabilities: *const c_float,
        n_labels: c_int,
        params: *const dmllm_crf_params,
        out_probabilities: *mut c_float,
    ) -> dmllm_status;

    // annotation files
    pub fn dmllm_read_png_values(path: *const c_char, out_values: *mut *mut dmllm_png_values) -> dmllm_status;
    pub fn dmllm_png_values_free(values: *mut dmllm_png_values);
}
