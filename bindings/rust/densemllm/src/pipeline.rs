//! Box-prompted segmentation: FG/BG inside a box, referring and open-set segmentation.
use crate::error::Result;
use crate::image::Image;
use crate::session::Session;
use crate::text::{GenerateParams, Regions};
use crate::util::{CStrings, area, cstring, string_from, string_from_array, strings_from, vec_from};
use densemllm_sys as sys;

/// Crop settings; `Default` is `dmllm_crop_params_init()` (padding, short side and outline from
/// the readout profile, a red outline, at most 30 regions, default decoding).
#[derive(Clone, Debug)]
pub struct CropParams {
    raw: sys::dmllm_crop_params,
    generate: Option<GenerateParams>,
}

// SAFETY: raw.generate is always NULL here (set only on a copy during a call).
unsafe impl Send for CropParams {}
unsafe impl Sync for CropParams {}

impl Default for CropParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_crop_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        CropParams { raw, generate: None }
    }
}

impl CropParams {
    /// Box scale about its centre, >= 1.
    pub fn padding(mut self, padding: f32) -> Self {
        self.raw.padding = padding;
        self
    }

    /// Short side of the resized crop, 32 .. 16384.
    pub fn short_side(mut self, pixels: i32) -> Self {
        self.raw.short_side = pixels;
        self
    }

    /// Width of the box outline drawn on the crop (0: none) and its colour.
    pub fn outline(mut self, px: i32, rgb: [u8; 3]) -> Self {
        self.raw.box_px = px;
        self.raw.box_rgb = rgb;
        self
    }

    /// Open-set: the largest boxes kept.
    pub fn max_regions(mut self, n: i32) -> Self {
        self.raw.max_regions = n;
        self
    }

    /// Calls `f` with the C struct, its `generate` pointing at this call's decoding options.
    fn with_raw<R>(&self, f: impl FnOnce(&sys::dmllm_crop_params) -> R) -> R {
        let generate = self.generate.as_ref().map(|g| g.to_raw(None));
        let mut raw = self.raw;
        raw.generate = generate.as_ref().map_or(std::ptr::null(), |g| g as *const _);
        f(&raw)
    }

    /// Decoding of the grounding / detection stage.
    pub fn generate(mut self, params: GenerateParams) -> Self {
        self.generate = Some(params);
        self
    }
}

/// Referring segmentation result (`dmllm_refer_result`) copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferResult {
    pub width: i32,
    pub height: i32,
    /// `[height][width]`, 1 = the referred object.
    pub mask: Vec<u8>,
    /// The grounding answer held a usable box.
    pub found: bool,
    pub bbox: [i32; 4],
    pub answer: String,
    /// Why nothing was segmented, or "".
    pub message: String,
    /// Names of the mask values: "background", the phrase.
    pub label_names: Vec<String>,
}

/// Open-set segmentation result (`dmllm_openset_result`) copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpensetResult {
    pub width: i32,
    pub height: i32,
    /// `[height][width]`; 0 background, k the class `names[k - 1]`.
    pub labels: Vec<u16>,
    pub names: Vec<String>,
    /// The detection answer the boxes came from.
    pub regions: Regions,
    /// Names of every label value: "background", then `names`.
    pub label_names: Vec<String>,
}

impl Session<'_> {
    /// FG/BG inside `bbox` (x0, y0, x1, y1 in original pixels, far edges exclusive): a mask of the
    /// image's size with 1 on the foreground.
    pub fn segment_box(&mut self, image: &Image, bbox: [i32; 4], params: &CropParams) -> Result<Vec<u8>> {
        let mut mask = vec![0u8; area(image.width(), image.height(), 1, "segment_box mask")?];
        let session = self.as_ptr();
        // SAFETY: mask holds width * height bytes as passed; the other pointers live during the call.
        let status = params.with_raw(|raw| unsafe {
            sys::dmllm_segment_box(session, image.as_ptr(), bbox.as_ptr(), raw, mask.as_mut_ptr(), mask.len())
        });
        self.check(status)?;
        Ok(mask)
    }

    /// Grounds `phrase`, then segments the first box; `found` is false when the answer held none.
    pub fn refer_segment(&mut self, image: &Image, phrase: &str, params: &CropParams) -> Result<ReferResult> {
        let phrase = cstring(phrase, "phrase")?;
        let (session, mut out) = (self.as_ptr(), std::ptr::null_mut());
        // SAFETY: valid pointers alive during the call.
        let status = params.with_raw(|raw| unsafe {
            sys::dmllm_refer_segment(session, image.as_ptr(), phrase.as_ptr(), raw, &mut out)
        });
        self.check(status)?;
        // SAFETY: a fresh result, copied then freed once.
        unsafe {
            let r = &*out;
            let result = ReferResult {
                width: r.width,
                height: r.height,
                mask: vec_from(r.mask, r.width as usize * r.height as usize),
                found: r.found != 0,
                bbox: r.r#box,
                answer: string_from(r.answer).unwrap_or_default(),
                message: string_from_array(&r.message),
                label_names: strings_from(r.label_names.cast(), r.n_labels),
            };
            sys::dmllm_refer_result_free(out);
            Ok(result)
        }
    }

    /// Detects (all objects, or `classes`), then segments the largest boxes.
    pub fn openset_segment<S: AsRef<str>>(
        &mut self,
        image: &Image,
        classes: &[S],
        params: &CropParams,
    ) -> Result<OpensetResult> {
        let classes = CStrings::new(classes, "class name")?;
        let (session, n_classes, mut out) = (self.as_ptr(), classes.len_c("classes")?, std::ptr::null_mut());
        // SAFETY: valid pointers alive during the call.
        let status = params.with_raw(|raw| unsafe {
            sys::dmllm_openset_segment(session, image.as_ptr(), classes.as_ptr_or_null(), n_classes, raw, &mut out)
        });
        self.check(status)?;
        // SAFETY: a fresh result, copied then freed once (with the regions it owns).
        unsafe {
            let r = &*out;
            let result = OpensetResult {
                width: r.width,
                height: r.height,
                labels: vec_from(r.labels, r.width as usize * r.height as usize),
                names: strings_from(r.names, r.n_names),
                regions: Regions::copy(r.regions),
                label_names: strings_from(r.label_names.cast(), r.n_labels),
            };
            sys::dmllm_openset_result_free(out);
            Ok(result)
        }
    }
}
