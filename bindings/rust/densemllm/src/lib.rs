//! Safe Rust API of libdensemllm (include/densemllm.h): DenseMLLM-style dense prediction
//! (segmentation, FG/BG, depth), text generation and grounding, box-prompted segmentation,
//! evaluation metrics and output files, on a CPU.
//!
//! Ownership follows the C API's threading rules: a [`Model`] is immutable and shared by any
//! number of threads (`Send + Sync`); a [`Session`] holds the mutable state (KV cache, encoded
//! image) and moves between threads but is used by one at a time (`Send`, not `Sync`), and borrows
//! its model so the model outlives it; an [`Image`] is immutable (`Send + Sync`). Every fallible
//! call returns [`Result`] with an [`Error`] carrying the status code and the library's message.
//! Results the library allocates are copied into owned Rust values and freed at once.
//!
//! ```no_run
//! use densemllm::{DenseParams, Image, Model, SessionParams};
//! let model = Model::load("models/tiny")?;
//! let mut session = model.session(&SessionParams::default())?;
//! let image = Image::load("cat.jpg")?;
//! let seg = session.predict_dense(&image, &DenseParams::semantic(&["cat", "grass", "sky"]))?;
//! println!("{} x {}, label of pixel 0: {}", seg.width, seg.height, seg.labels[0]);
//! # Ok::<(), densemllm::Error>(())
//! ```

mod dense;
mod error;
mod image;
mod log;
mod metrics;
mod model;
mod outputs;
mod pipeline;
mod session;
mod text;
mod util;

pub use dense::{DenseParams, DenseResult, DenseTask, DepthGrid, PromptLayout, ReadoutClass, SemanticReadout};
pub use error::{Error, Result, Status};
pub use image::{Image, ImageLimits, ResizeMode, target_size};
pub use log::{LogLevel, LogSink, set_log};
pub use metrics::{
    DepthCrop, DepthMetrics, DepthMetricsParams, DepthScores, MaskMetrics, MaskScores, SegMetrics, SegMetricsParams,
    SegResult, box_iou,
};
pub use model::{ComputeType, Model, ModelInfo, ModelParams, WeightsType};
pub use outputs::{
    DEPTH_PNG_SCALE, MaskText, label_color, mask_text_parse, mask_text_write, overlay_color, write_depth_color_png, write_depth_png16,
    write_label_png, write_overlay_png, write_pca_png,
};
pub use pipeline::{CropParams, OpensetResult, ReferResult};
pub use session::{Alignment, ImageGrid, Matrix, Session, SessionParams};
pub use text::{
    ChatMessage, DEFAULT_SYSTEM_PROMPT, GenerateParams, Generation, Region, Regions, StopReason, chat_apply,
    coordinate_to_original, parse_regions,
};

/// Re-export of the raw declarations, for what the safe API does not wrap.
pub use densemllm_sys as sys;

/// Runtime library version, e.g. "0.2.0".
pub fn version() -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { util::string_from(sys::dmllm_version_string()) }.unwrap_or_default()
}

/// Runtime version number (major * 10000 + minor * 100 + patch); equals
/// `sys::DMLLM_VERSION_NUMBER` when the library matches the header these bindings were made from.
pub fn version_number() -> u32 {
    sys::dmllm_version_number()
}
