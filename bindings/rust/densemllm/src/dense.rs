//! Dense prediction (`dmllm_predict_dense`): semantic segmentation, FG/BG and depth read from the
//! LM head at the image tokens.
use crate::error::{Error, Result, Status};
use crate::image::Image;
use crate::session::{Alignment, Session};
use crate::util::{CStrings, cstring, optional_strings_from, string_from, to_c_int, vec_from};
use densemllm_sys as sys;
use std::ffi::{CString, c_int};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenseTask {
    /// Labels are the given classes (plus background when asked for).
    Semantic,
    /// Label 0 = background (`<BG>`), 1 = foreground (`<FG>`).
    FgBg,
    /// Labels are depth bins; metres through a quantisation profile.
    Depth,
}

impl DenseTask {
    fn raw(self) -> sys::dmllm_dense_task {
        match self {
            DenseTask::Semantic => sys::DMLLM_TASK_SEMANTIC,
            DenseTask::FgBg => sys::DMLLM_TASK_FGBG,
            DenseTask::Depth => sys::DMLLM_TASK_DEPTH,
        }
    }

    fn from_raw(task: sys::dmllm_dense_task) -> DenseTask {
        match task {
            sys::DMLLM_TASK_FGBG => DenseTask::FgBg,
            sys::DMLLM_TASK_DEPTH => DenseTask::Depth,
            _ => DenseTask::Semantic,
        }
    }
}

/// Where the image goes relative to the instruction (`dmllm_prompt_layout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PromptLayout {
    /// Official chat layout: image, then the instruction.
    #[default]
    ImageFirst,
    /// Instruction, then the image (the report's depth benchmarks).
    PromptFirst,
}

impl PromptLayout {
    pub(crate) fn raw(self) -> sys::dmllm_prompt_layout {
        match self {
            PromptLayout::ImageFirst => sys::DMLLM_LAYOUT_IMAGE_FIRST,
            PromptLayout::PromptFirst => sys::DMLLM_LAYOUT_PROMPT_FIRST,
        }
    }
}

/// Which classes a semantic readout argmaxes over (`dmllm_semantic_readout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemanticReadout {
    /// Every class of the prompt, in its order.
    All,
    /// The classes the model names first, in the order printed (report 9.2).
    Named,
}

impl SemanticReadout {
    fn raw(self) -> sys::dmllm_semantic_readout {
        match self {
            SemanticReadout::All => sys::DMLLM_READOUT_ALL,
            SemanticReadout::Named => sys::DMLLM_READOUT_NAMED,
        }
    }
}

/// One class a semantic result's label value stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadoutClass {
    /// As printed by the model (named readout), else as given.
    pub name: String,
    /// Index among the given classes; None for a printed name that is not one of them.
    pub prompt_index: Option<usize>,
}

/// Options of [`Session::predict_dense`]; unset fields keep `dmllm_dense_params_init()`'s values
/// (the readout profile decides).
#[derive(Clone, Debug)]
pub struct DenseParams {
    raw: sys::dmllm_dense_params,
    class_names: Vec<String>,
    label_ids: Option<(Vec<i32>, Vec<c_int>)>,
    prompt: Option<String>,
    depth_profile: Option<String>,
}

// SAFETY: the raw struct's pointers are always NULL here; predict_dense sets them on a copy.
unsafe impl Send for DenseParams {}
unsafe impl Sync for DenseParams {}

impl Default for DenseParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_dense_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        DenseParams { raw, class_names: Vec::new(), label_ids: None, prompt: None, depth_profile: None }
    }
}

impl DenseParams {
    /// Semantic segmentation over these class names (tokenised with the profile's rule).
    fn of_task(task: DenseTask) -> Self {
        let mut p = DenseParams::default();
        p.raw.task = task.raw();
        p
    }

    pub fn semantic<S: AsRef<str>>(classes: &[S]) -> Self {
        let mut p = DenseParams::of_task(DenseTask::Semantic);
        p.class_names = classes.iter().map(|s| s.as_ref().to_owned()).collect();
        p
    }

    /// Semantic segmentation with label k the mean of the logits of
    /// `ids[offsets[k] .. offsets[k + 1]]` (offsets has one entry more than there are labels).
    pub fn semantic_ids(ids: Vec<i32>, offsets: Vec<i32>) -> Self {
        let mut p = DenseParams::of_task(DenseTask::Semantic);
        p.label_ids = Some((ids, offsets));
        p
    }

    /// Foreground / background.
    pub fn fgbg() -> Self {
        DenseParams::of_task(DenseTask::FgBg)
    }

    /// Depth with the profile's default quantisation.
    pub fn depth() -> Self {
        DenseParams::of_task(DenseTask::Depth)
    }

    pub fn task(&self) -> DenseTask {
        DenseTask::from_raw(self.raw.task)
    }

    /// SEMANTIC: add a background label (value n_classes) where no class is confident.
    pub fn background(mut self, on: bool) -> Self {
        self.raw.background = on as c_int;
        self
    }

    /// Benchmark and demo mode: softmax(score / temperature), the dense CRF and a confidence
    /// map. Unset: the readout profile's "crf" (on for youtu_vl); false: the plain argmax.
    pub fn evaluation(mut self, on: bool) -> Self {
        self.raw.evaluation = on as c_int;
        self
    }

    pub fn layout(mut self, layout: PromptLayout) -> Self {
        self.raw.layout = layout.raw();
        self
    }

    /// The instruction instead of the profile's prompt for the task.
    pub fn prompt(mut self, prompt: &str) -> Self {
        self.prompt = Some(prompt.to_owned());
        self
    }

    /// The alignment instead of the profile's.
    pub fn alignment(mut self, alignment: Alignment) -> Self {
        self.raw.alignment = alignment.raw();
        self
    }

    /// DEPTH: quantisation name ("nyuv2", "cityscapes", "ddad", "open_world", ...).
    pub fn depth_profile(mut self, name: &str) -> Self {
        self.depth_profile = Some(name.to_owned());
        self
    }

    /// DEPTH: > 0 resizes the input to a 2000 px focal length first (open-world metric depth).
    pub fn focal_length_px(mut self, f: f32) -> Self {
        self.raw.focal_length_px = f;
        self
    }

    /// Also return the label scores on the token grid.
    pub fn keep_token_scores(mut self, on: bool) -> Self {
        self.raw.keep_token_scores = on as c_int;
        self
    }

    /// SEMANTIC: the readout instead of the profile's.
    pub fn readout(mut self, readout: SemanticReadout) -> Self {
        self.raw.readout = readout.raw();
        self
    }
}

/// Depth bins on the official demo's (W//16) x (H//16) grid.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthGrid {
    pub width: i32,
    pub height: i32,
    /// `[height][width]` bin numbers.
    pub bins: Vec<u16>,
}

/// `dmllm_dense_result` copied into owned vectors. Maps are row-major at the original image size.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseResult {
    pub task: DenseTask,
    pub width: i32,
    pub height: i32,
    /// Label values are 0 .. n_labels - 1 (background included).
    pub n_labels: i32,
    /// `[height][width]`; DEPTH: bin numbers.
    pub labels: Vec<u16>,
    /// `[height][width]` probability of the chosen label (evaluation mode).
    pub confidence: Option<Vec<f32>>,
    /// DEPTH: `[height][width]` metres.
    pub depth_m: Option<Vec<f32>>,
    pub depth_grid: Option<DepthGrid>,
    pub tokens_w: i32,
    pub tokens_h: i32,
    /// Scores per token: classes, 2 (BG, FG) or depth bins.
    pub n_scores: i32,
    /// `[tokens_h][tokens_w][n_scores]` when keep_token_scores.
    pub token_scores: Option<Vec<f32>>,
    /// The image prefix of an earlier query was reused.
    pub reused_prefix: bool,
    pub seconds_encode: f64,
    pub seconds_prefill: f64,
    pub seconds_readout: f64,
    /// SEMANTIC: the readout that ran (All when the classes came as token ids).
    pub readout: SemanticReadout,
    /// SEMANTIC: label value k stands for `classes[k]` (empty when the classes came as token ids).
    pub classes: Vec<ReadoutClass>,
    /// Named readout: the reply named no class, so every given class was read out.
    pub named_fallback: bool,
    /// Named readout: the generated category text.
    pub reply: Option<String>,
    /// What every label value 0 .. n_labels - 1 stands for, so an overlay or a legend needs no
    /// names counted again: the classes (None for classes given as token ids), then "background"
    /// in background mode; FGBG "background", "foreground"; None for DEPTH (bin numbers).
    pub label_names: Option<Vec<Option<String>>>,
    /// The label value meaning none of the classes (background mode, FGBG), if any.
    pub background_label: Option<u16>,
}

impl DenseResult {
    /// Copies the library's result.
    ///
    /// # Safety
    /// `r` is a complete result from dmllm_predict_dense.
    unsafe fn copy(r: &sys::dmllm_dense_result) -> DenseResult {
        let pixels = r.width as usize * r.height as usize;
        let optional = |p: *const f32, n: usize| (!p.is_null()).then(|| unsafe { vec_from(p, n) });
        let n_token_scores = r.tokens_w as usize * r.tokens_h as usize * r.n_scores.max(0) as usize;
        DenseResult {
            task: DenseTask::from_raw(r.task),
            width: r.width,
            height: r.height,
            n_labels: r.n_labels,
            labels: unsafe { vec_from(r.labels, pixels) },
            confidence: optional(r.confidence, pixels),
            depth_m: optional(r.depth_m, pixels),
            depth_grid: (!r.depth_grid_bins.is_null()).then(|| DepthGrid {
                width: r.depth_grid_w,
                height: r.depth_grid_h,
                bins: unsafe { vec_from(r.depth_grid_bins, r.depth_grid_w as usize * r.depth_grid_h as usize) },
            }),
            tokens_w: r.tokens_w,
            tokens_h: r.tokens_h,
            n_scores: r.n_scores,
            token_scores: optional(r.token_scores, n_token_scores),
            reused_prefix: r.reused_prefix != 0,
            seconds_encode: r.seconds_encode,
            seconds_prefill: r.seconds_prefill,
            seconds_readout: r.seconds_readout,
            readout: if r.readout == sys::DMLLM_READOUT_NAMED { SemanticReadout::Named } else { SemanticReadout::All },
            classes: (0..if r.class_names.is_null() { 0 } else { r.n_classes.max(0) as usize })
                .map(|k| ReadoutClass {
                    name: unsafe { string_from(*r.class_names.add(k)) }.unwrap_or_default(),
                    prompt_index: usize::try_from(unsafe { *r.prompt_index.add(k) }).ok(),
                })
                .collect(),
            named_fallback: r.named_fallback != 0,
            reply: unsafe { string_from(r.reply) },
            label_names: unsafe { optional_strings_from(r.label_names, r.n_labels) },
            background_label: u16::try_from(r.background_label).ok(),
        }
    }
}

impl Session<'_> {
    /// Encodes the image (or reuses its prefix), prefills the prompt and reads the labels out.
    pub fn predict_dense(&mut self, image: &Image, params: &DenseParams) -> Result<DenseResult> {
        let mut raw = params.raw;
        let names = CStrings::new(&params.class_names, "class name")?;
        let prompt = params.prompt.as_deref().map(|p| cstring(p, "dense prompt")).transpose()?;
        let depth_profile = params.depth_profile.as_deref().map(|p| cstring(p, "depth profile")).transpose()?;
        if !names.ptrs.is_empty() {
            raw.class_names = names.ptrs.as_ptr();
            raw.n_classes = names.len_c("class names")?;
        }
        if let Some((ids, offsets)) = &params.label_ids {
            // The library reads n_classes + 1 offsets and the ids they index, lengths it cannot see.
            if offsets.is_empty() || offsets.iter().any(|&o| o < 0 || o as usize > ids.len()) {
                return Err(Error::new(
                    Status::InvalidArgument,
                    format!(
                        "DenseParams::semantic_ids: offsets {offsets:?} must be labels + 1 entries within 0 ..= {}",
                        ids.len()
                    ),
                ));
            }
            raw.label_token_ids = ids.as_ptr();
            raw.label_offsets = offsets.as_ptr();
            raw.n_classes = to_c_int(offsets.len() - 1, "label offsets")?;
        }
        raw.prompt = prompt.as_ref().map_or(std::ptr::null(), |p: &CString| p.as_ptr());
        raw.depth_profile = depth_profile.as_ref().map_or(std::ptr::null(), |p: &CString| p.as_ptr());
        let mut out = std::ptr::null_mut();
        // SAFETY: every pointer in raw points into values alive during the call.
        let status = unsafe { sys::dmllm_predict_dense(self.as_ptr(), image.as_ptr(), &raw, &mut out) };
        self.check(status)?;
        // SAFETY: a complete result, copied then freed once.
        unsafe {
            let result = DenseResult::copy(&*out);
            sys::dmllm_dense_result_free(out);
            Ok(result)
        }
    }
}
