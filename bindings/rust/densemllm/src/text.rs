//! Text: the chat template, generation, and the answers of the text tasks (ask, ground, detect).
use crate::dense::PromptLayout;
use crate::error::{Result, check};
use crate::image::Image;
use crate::session::Session;
use crate::util::{
    CStrings, Callback, TokenFn, cstring, string_from, string_from_array, take_text, to_c_int, token_trampoline,
    vec_from,
};
use densemllm_sys as sys;
use std::ffi::{CString, c_int};
use std::ops::ControlFlow;

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// One turn of a conversation (`dmllm_chat_message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub text: String,
    /// Where this turn's image block goes, if it has one.
    pub image: Option<PromptLayout>,
}

impl ChatMessage {
    pub fn new(role: &str, text: &str) -> Self {
        ChatMessage { role: role.to_owned(), text: text.to_owned(), image: None }
    }

    pub fn system(text: &str) -> Self {
        ChatMessage::new("system", text)
    }

    pub fn user(text: &str) -> Self {
        ChatMessage::new("user", text)
    }

    pub fn assistant(text: &str) -> Self {
        ChatMessage::new("assistant", text)
    }

    /// The turn holds one image, placed as `layout` says.
    pub fn with_image(mut self, layout: PromptLayout) -> Self {
        self.image = Some(layout);
        self
    }

    /// The C structs plus the strings they point to (keep both alive together).
    pub(crate) fn to_raw(messages: &[ChatMessage]) -> Result<(Vec<CString>, Vec<sys::dmllm_chat_message>)> {
        let mut strings = Vec::with_capacity(messages.len() * 2);
        for m in messages {
            strings.push(cstring(&m.role, "chat role")?);
            strings.push(cstring(&m.text, "chat text")?);
        }
        let raw = messages
            .iter()
            .zip(strings.chunks(2))
            .map(|(m, s)| sys::dmllm_chat_message {
                struct_size: std::mem::size_of::<sys::dmllm_chat_message>() as u32,
                role: s[0].as_ptr(),
                text: s[1].as_ptr(),
                has_image: m.image.is_some() as c_int,
                layout: m.image.unwrap_or_default().raw(),
            })
            .collect();
        Ok((strings, raw))
    }
}

/// The prompt text of a conversation (model-spec 4.8); each image takes `n_image_tokens`
/// <|image_pad|> slots.
pub fn chat_apply(messages: &[ChatMessage], add_generation_prompt: bool, n_image_tokens: i32) -> Result<String> {
    let (_strings, raw) = ChatMessage::to_raw(messages)?;
    let mut out = std::ptr::null_mut();
    // SAFETY: raw and its strings live during the call.
    check(unsafe {
        sys::dmllm_chat_apply(
            raw.as_ptr(),
            to_c_int(raw.len(), "chat messages")?,
            add_generation_prompt as c_int,
            n_image_tokens,
            &mut out,
        )
    })?;
    // SAFETY: a library string, freed once.
    Ok(unsafe { take_text(out) })
}

/// Decoding options; `Default` is `dmllm_generate_params_init()` (the official greedy decoding
/// with repetition penalty 1.05, at most 4096 tokens).
#[derive(Clone, Debug)]
pub struct GenerateParams {
    raw: sys::dmllm_generate_params,
    stop_ids: Option<Vec<i32>>,
}

// SAFETY: the raw struct's pointers are always NULL here (set only on a copy during a call).
unsafe impl Send for GenerateParams {}
unsafe impl Sync for GenerateParams {}

impl Default for GenerateParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_generate_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        GenerateParams { raw, stop_ids: None }
    }
}

impl GenerateParams {
    pub fn max_new_tokens(mut self, n: i32) -> Self {
        self.raw.max_new_tokens = n;
        self
    }

    /// Sampling with temperature, top-k (0: off) and top-p (1: off), seeded; the default is argmax.
    pub fn sample(mut self, temperature: f32, top_k: i32, top_p: f32, seed: u64) -> Self {
        self.raw.do_sample = 1;
        self.raw.temperature = temperature;
        self.raw.top_k = top_k;
        self.raw.top_p = top_p;
        self.raw.seed = seed;
        self
    }

    /// Hugging Face's repetition penalty over every id in the context; 1: off.
    pub fn repetition_penalty(mut self, penalty: f32) -> Self {
        self.raw.repetition_penalty = penalty;
        self
    }

    /// Ids that end generation instead of the model's eos_token_id (an empty list: none).
    pub fn stop_ids(mut self, ids: &[i32]) -> Self {
        self.stop_ids = Some(ids.to_vec());
        self
    }

    /// Leave special tokens out of the text (default true).
    pub fn skip_special(mut self, on: bool) -> Self {
        self.raw.skip_special = on as c_int;
        self
    }

    /// Map <x_k>/<y_k> in the output to original-image pixels (default true).
    pub fn rescale_coordinates(mut self, on: bool) -> Self {
        self.raw.rescale_coordinates = on as c_int;
        self
    }

    /// The raw struct for one call, pointing into `self`; `on_token` is the streaming state.
    pub(crate) fn to_raw(&self, on_token: Option<&mut Callback<TokenFn<'_>>>) -> sys::dmllm_generate_params {
        let mut raw = self.raw;
        if let Some(ids) = &self.stop_ids {
            // Never NULL, even when empty (a Vec's pointer is then dangling but non-null): NULL
            // would mean the model's eos default, an empty list means no stop id.
            raw.stop_ids = ids.as_ptr();
            raw.n_stop_ids = ids.len() as c_int;
        }
        if let Some(cb) = on_token {
            raw.on_token = Some(token_trampoline);
            raw.user_data = cb.user_data();
        }
        raw
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A stop id was generated (not part of the output).
    Token,
    MaxTokens,
    /// The streaming callback returned `Break`.
    Callback,
    /// The context had no room for the next token.
    ContextFull,
}

/// `dmllm_generate_result` copied out.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated ids without the stop id.
    pub ids: Vec<i32>,
    /// The ids decoded; None when the model has no tokenizer.
    pub text: Option<String>,
    pub stop_reason: StopReason,
    /// The stop id met.
    pub stop_id: Option<i32>,
    /// Prompt ids this call evaluated.
    pub n_prompt: i32,
    pub seconds_prompt: f64,
    pub seconds_generate: f64,
}

impl Generation {
    /// Copies and frees a library result.
    ///
    /// # Safety
    /// `r` is a result of a dmllm_generate* call, not used afterwards.
    unsafe fn take(r: *mut sys::dmllm_generate_result) -> Generation {
        let g = unsafe { &*r };
        let out = Generation {
            ids: unsafe { vec_from(g.ids, g.n_ids) },
            text: unsafe { string_from(g.text) },
            stop_reason: match g.stop_reason {
                sys::DMLLM_STOP_TOKEN => StopReason::Token,
                sys::DMLLM_STOP_CALLBACK => StopReason::Callback,
                sys::DMLLM_STOP_CONTEXT_FULL => StopReason::ContextFull,
                _ => StopReason::MaxTokens,
            },
            stop_id: (g.stop_id >= 0).then_some(g.stop_id),
            n_prompt: g.n_prompt,
            seconds_prompt: g.seconds_prompt,
            seconds_generate: g.seconds_generate,
        };
        unsafe { sys::dmllm_generate_result_free(r) };
        out
    }
}

/// A box or polygon of a grounding / detection answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The <ref>NAME</ref> before it; "" when none.
    pub label: String,
    /// x0, y0, x1, y1 (a polygon's bounding box).
    pub bbox: [i32; 4],
    /// Polygon vertices (x, y); empty for a box.
    pub points: Vec<[i32; 2]>,
}

/// `dmllm_regions` copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regions {
    pub regions: Vec<Region>,
    /// The model's answer (task helpers); None from [`parse_regions`].
    pub text: Option<String>,
    /// "" when the text parsed cleanly, else what was skipped and why.
    pub message: String,
}

impl Regions {
    /// Copies a library result (not freed: it may belong to a larger result).
    ///
    /// # Safety
    /// `r` is NULL or a complete dmllm_regions.
    pub(crate) unsafe fn copy(r: *const sys::dmllm_regions) -> Regions {
        let Some(r) = (unsafe { r.as_ref() }) else {
            return Regions { regions: Vec::new(), text: None, message: String::new() };
        };
        let regions = unsafe { vec_from(r.regions, r.n_regions) }
            .into_iter()
            .map(|g| unsafe { &*g })
            .map(|g| Region {
                label: unsafe { string_from(g.label) }.unwrap_or_default(),
                bbox: g.r#box,
                points: unsafe { vec_from(g.points, g.n_points.max(0) * 2) }.chunks(2).map(|p| [p[0], p[1]]).collect(),
            })
            .collect();
        Regions { regions, text: unsafe { string_from(r.text) }, message: string_from_array(&r.message) }
    }

    /// Copies and frees a library result.
    ///
    /// # Safety
    /// `r` is a dmllm_regions the caller owns, not used afterwards.
    unsafe fn take(r: *mut sys::dmllm_regions) -> Regions {
        let out = unsafe { Regions::copy(r) };
        unsafe { sys::dmllm_regions_free(r) };
        out
    }
}

/// Parses an answer in the official formats (`<ref>`, `<box>`, `<ins>` polygons); malformed items are
/// skipped and described in `message`.
pub fn parse_regions(text: &str) -> Result<Regions> {
    let text = cstring(text, "regions text")?;
    let mut out = std::ptr::null_mut();
    // SAFETY: a valid string and out pointer.
    check(unsafe { sys::dmllm_parse_regions(text.as_ptr(), &mut out) })?;
    // SAFETY: a fresh result, owned here.
    Ok(unsafe { Regions::take(out) })
}

/// Coordinate k of a <x_k>/<y_k> token in original-image pixels, as HF generate maps it.
pub fn coordinate_to_original(k: i32, original_size: i32, resized_size: i32) -> Result<i32> {
    let mut out = 0;
    // SAFETY: a valid out pointer.
    check(unsafe { sys::dmllm_coordinate_to_original(k, original_size, resized_size, &mut out) })?;
    Ok(out)
}

/// What a generation starts from.
enum Prompt<'a> {
    Ids(&'a [i32]),
    Text(&'a CString),
    Ask(Option<&'a Image>, &'a CString),
}

impl Session<'_> {
    fn run_generate(
        &mut self,
        prompt: Prompt<'_>,
        params: &GenerateParams,
        on_token: Option<&mut TokenFn<'_>>,
    ) -> Result<Generation> {
        let mut callback = on_token.map(|f| Callback::new(Box::new(f) as Box<TokenFn<'_>>));
        let raw = params.to_raw(callback.as_mut());
        let mut out = std::ptr::null_mut();
        let session = self.as_ptr();
        // SAFETY: every pointer in raw and the prompt lives during the call; the callback state
        // is on this frame.
        let status = unsafe {
            match prompt {
                Prompt::Ids(ids) => {
                    sys::dmllm_generate(session, ids.as_ptr(), to_c_int(ids.len(), "prompt ids")?, &raw, &mut out)
                }
                Prompt::Text(text) => sys::dmllm_generate_text(session, text.as_ptr(), &raw, &mut out),
                Prompt::Ask(image, question) => sys::dmllm_ask(
                    session,
                    image.map_or(std::ptr::null(), Image::as_ptr),
                    question.as_ptr(),
                    &raw,
                    &mut out,
                ),
            }
        };
        if let Some(cb) = callback.as_mut() {
            cb.resume_panic();
        }
        self.check(status)?;
        // SAFETY: a fresh result, owned here.
        Ok(unsafe { Generation::take(out) })
    }

    /// Evaluates `prompt_ids` (may be empty: continue from the last logits), then decodes.
    pub fn generate(&mut self, prompt_ids: &[i32], params: &GenerateParams) -> Result<Generation> {
        self.run_generate(Prompt::Ids(prompt_ids), params, None)
    }

    /// Same, calling `on_token(id, text)` for each token (text: the complete UTF-8 characters it
    /// adds; id -1 for bytes pending at the end); `Break` stops with StopReason::Callback.
    pub fn generate_streaming(
        &mut self,
        prompt_ids: &[i32],
        params: &GenerateParams,
        mut on_token: impl FnMut(i32, &str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.run_generate(Prompt::Ids(prompt_ids), params, Some(&mut on_token))
    }

    /// Generates from prompt text (special tokens such as <|image_pad|> recognised).
    pub fn generate_text(&mut self, prompt: &str, params: &GenerateParams) -> Result<Generation> {
        let prompt = cstring(prompt, "prompt")?;
        self.run_generate(Prompt::Text(&prompt), params, None)
    }

    /// Answers a question about an image (None: text only) in the official chat layout.
    pub fn ask(&mut self, image: Option<&Image>, question: &str, params: &GenerateParams) -> Result<Generation> {
        let question = cstring(question, "question")?;
        self.run_generate(Prompt::Ask(image, &question), params, None)
    }

    /// [`Session::ask`] with streaming as in [`Session::generate_streaming`].
    pub fn ask_streaming(
        &mut self,
        image: Option<&Image>,
        question: &str,
        params: &GenerateParams,
        mut on_token: impl FnMut(i32, &str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let question = cstring(question, "question")?;
        self.run_generate(Prompt::Ask(image, &question), params, Some(&mut on_token))
    }

    /// The box of the region `phrase` describes (official grounding prompt), parsed.
    pub fn ground(&mut self, image: &Image, phrase: &str, params: &GenerateParams) -> Result<Regions> {
        let phrase = cstring(phrase, "phrase")?;
        let raw = params.to_raw(None);
        let mut out = std::ptr::null_mut();
        // SAFETY: valid pointers alive during the call.
        let status = unsafe { sys::dmllm_ground(self.as_ptr(), image.as_ptr(), phrase.as_ptr(), &raw, &mut out) };
        self.check(status)?;
        // SAFETY: a fresh result, owned here.
        Ok(unsafe { Regions::take(out) })
    }

    /// Every object with its class; `classes` empty: all objects.
    pub fn detect<S: AsRef<str>>(&mut self, image: &Image, classes: &[S], params: &GenerateParams) -> Result<Regions> {
        let classes = CStrings::new(classes, "class name")?;
        let raw = params.to_raw(None);
        let mut out = std::ptr::null_mut();
        // SAFETY: valid pointers alive during the call.
        let status = unsafe {
            sys::dmllm_detect(
                self.as_ptr(),
                image.as_ptr(),
                classes.as_ptr_or_null(),
                classes.len_c("classes")?,
                &raw,
                &mut out,
            )
        };
        self.check(status)?;
        // SAFETY: a fresh result, owned here.
        Ok(unsafe { Regions::take(out) })
    }
}
