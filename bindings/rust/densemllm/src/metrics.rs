//! Benchmark metrics (docs/metrics.md): mIoU as mmsegmentation, depth errors as ZoeDepth,
//! cIoU/gIoU as LISA, box IoU. Accumulators are used by one thread at a time (`Send`, not `Sync`).
use crate::error::{Result, check};
use crate::image::check_map_len;
use crate::util::{check_len, vec_from};
use densemllm_sys as sys;
use std::ptr::NonNull;

/// Options of [`SegMetrics`]; `Default` is `dmllm_seg_metrics_params_init()` (n_classes unset).
#[derive(Clone, Copy, Debug)]
pub struct SegMetricsParams {
    raw: sys::dmllm_seg_metrics_params,
}

impl SegMetricsParams {
    /// GT labels 0 .. n_classes - 1, ignore_index 255, no zero-label reduction.
    pub fn new(n_classes: i32) -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let mut raw = unsafe {
            sys::dmllm_seg_metrics_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        raw.n_classes = n_classes;
        SegMetricsParams { raw }
    }

    pub fn ignore_index(mut self, index: i32) -> Self {
        self.raw.ignore_index = index;
        self
    }

    /// Raw ADE20K GT: 0 and ignore_index are ignored, v becomes v - 1.
    pub fn reduce_zero_label(mut self, on: bool) -> Self {
        self.raw.reduce_zero_label = on as i32;
        self
    }
}

/// Semantic segmentation accumulator.
pub struct SegMetrics {
    ptr: NonNull<sys::dmllm_seg_metrics>,
}

// SAFETY: the accumulator has no thread affinity; &mut self serialises its use.
unsafe impl Send for SegMetrics {}

/// `dmllm_seg_result` copied out: fractions, areas summed over the images.
#[derive(Clone, Debug, PartialEq)]
pub struct SegResult {
    pub n_classes: i32,
    pub n_images: i64,
    pub miou: f64,
    pub macc: f64,
    pub aacc: f64,
    pub n_iou_classes: i32,
    pub n_acc_classes: i32,
    /// `[n_classes]`, NaN where 0/0.
    pub iou: Vec<f64>,
    pub acc: Vec<f64>,
    pub area_intersect: Vec<i64>,
    pub area_union: Vec<i64>,
    pub area_pred: Vec<i64>,
    pub area_label: Vec<i64>,
}

impl SegMetrics {
    pub fn new(params: SegMetricsParams) -> Result<SegMetrics> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid params struct and out pointer.
        check(unsafe { sys::dmllm_seg_metrics_create(&params.raw, &mut out) })?;
        Ok(SegMetrics { ptr: NonNull::new(out).expect("success without an accumulator") })
    }

    /// One image: prediction and GT labels at the same resolution.
    pub fn add(&mut self, pred: &[u16], gt: &[u16]) -> Result<()> {
        check_len(pred.len(), gt.len(), "SegMetrics::add pred (GT size)")?;
        // SAFETY: both slices hold pred.len() labels.
        check(unsafe { sys::dmllm_seg_metrics_add(self.ptr.as_ptr(), pred.as_ptr(), gt.as_ptr(), pred.len()) })
    }

    pub fn result(&self) -> Result<SegResult> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live accumulator and a valid out pointer.
        check(unsafe { sys::dmllm_seg_metrics_result(self.ptr.as_ptr(), &mut out) })?;
        // SAFETY: a fresh result with n_classes entries per array, copied then freed once.
        unsafe {
            let r = &*out;
            let n = r.n_classes;
            let result = SegResult {
                n_classes: n,
                n_images: r.n_images,
                miou: r.miou,
                macc: r.macc,
                aacc: r.aacc,
                n_iou_classes: r.n_iou_classes,
                n_acc_classes: r.n_acc_classes,
                iou: vec_from(r.iou, n),
                acc: vec_from(r.acc, n),
                area_intersect: vec_from(r.area_intersect, n),
                area_union: vec_from(r.area_union, n),
                area_pred: vec_from(r.area_pred, n),
                area_label: vec_from(r.area_label, n),
            };
            sys::dmllm_seg_result_free(out);
            Ok(result)
        }
    }
}

impl Drop for SegMetrics {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::dmllm_seg_metrics_free(self.ptr.as_ptr()) }
    }
}

/// Evaluation crop of the depth metrics (`dmllm_depth_crop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DepthCrop {
    #[default]
    None,
    /// NYUv2 (GT must be 480 x 640).
    Eigen,
    /// KITTI-style datasets.
    Garg,
}

/// Options of [`DepthMetrics`]; `Default` is `dmllm_depth_metrics_params_init()` (NYUv2 range
/// 1e-3 .. 10 m, no crop).
#[derive(Clone, Copy, Debug)]
pub struct DepthMetricsParams {
    raw: sys::dmllm_depth_metrics_params,
}

impl Default for DepthMetricsParams {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_depth_metrics_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        DepthMetricsParams { raw }
    }
}

impl DepthMetricsParams {
    /// Valid GT depths, metres (strictly between).
    pub fn range(mut self, min_depth: f64, max_depth: f64) -> Self {
        self.raw.min_depth = min_depth;
        self.raw.max_depth = max_depth;
        self
    }

    pub fn crop(mut self, crop: DepthCrop) -> Self {
        self.raw.crop = match crop {
            DepthCrop::None => sys::DMLLM_DEPTH_CROP_NONE,
            DepthCrop::Eigen => sys::DMLLM_DEPTH_CROP_EIGEN,
            DepthCrop::Garg => sys::DMLLM_DEPTH_CROP_GARG,
        };
        self
    }
}

/// Dataset depth scores: means of the per-image values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthScores {
    pub n_images: i64,
    pub n_images_empty: i64,
    pub n_pixels: i64,
    pub delta1: f64,
    pub delta2: f64,
    pub delta3: f64,
    pub abs_rel: f64,
    pub sq_rel: f64,
    pub rmse: f64,
    pub rmse_log: f64,
    pub log10: f64,
    pub silog: f64,
}

/// Depth accumulator.
pub struct DepthMetrics {
    ptr: NonNull<sys::dmllm_depth_metrics>,
}

// SAFETY: as SegMetrics.
unsafe impl Send for DepthMetrics {}

impl DepthMetrics {
    pub fn new(params: DepthMetricsParams) -> Result<DepthMetrics> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid params struct and out pointer.
        check(unsafe { sys::dmllm_depth_metrics_create(&params.raw, &mut out) })?;
        Ok(DepthMetrics { ptr: NonNull::new(out).expect("success without an accumulator") })
    }

    /// One image in metres: pred `[pred_h][pred_w]` (resized to the GT size when it differs) and
    /// gt `[gt_h][gt_w]`.
    pub fn add(&mut self, pred: &[f32], pred_w: i32, pred_h: i32, gt: &[f32], gt_w: i32, gt_h: i32) -> Result<()> {
        check_map_len(pred.len(), pred_w, pred_h, "DepthMetrics::add pred")?;
        check_map_len(gt.len(), gt_w, gt_h, "DepthMetrics::add gt")?;
        // SAFETY: the slices hold the sizes passed.
        check(unsafe {
            sys::dmllm_depth_metrics_add(self.ptr.as_ptr(), pred.as_ptr(), pred_w, pred_h, gt.as_ptr(), gt_w, gt_h)
        })
    }

    /// Same for f64 maps.
    pub fn add_f64(&mut self, pred: &[f64], pred_w: i32, pred_h: i32, gt: &[f64], gt_w: i32, gt_h: i32) -> Result<()> {
        check_map_len(pred.len(), pred_w, pred_h, "DepthMetrics::add_f64 pred")?;
        check_map_len(gt.len(), gt_w, gt_h, "DepthMetrics::add_f64 gt")?;
        // SAFETY: the slices hold the sizes passed.
        check(unsafe {
            sys::dmllm_depth_metrics_add_f64(self.ptr.as_ptr(), pred.as_ptr(), pred_w, pred_h, gt.as_ptr(), gt_w, gt_h)
        })
    }

    pub fn result(&self) -> Result<DepthScores> {
        let mut s =
            sys::dmllm_depth_scores { struct_size: size_of::<sys::dmllm_depth_scores>() as u32, ..Default::default() };
        // SAFETY: a live accumulator and a struct of the size it declares.
        check(unsafe { sys::dmllm_depth_metrics_result(self.ptr.as_ptr(), &mut s) })?;
        Ok(DepthScores {
            n_images: s.n_images,
            n_images_empty: s.n_images_empty,
            n_pixels: s.n_pixels,
            delta1: s.delta1,
            delta2: s.delta2,
            delta3: s.delta3,
            abs_rel: s.abs_rel,
            sq_rel: s.sq_rel,
            rmse: s.rmse,
            rmse_log: s.rmse_log,
            log10: s.log10,
            silog: s.silog,
        })
    }
}

impl Drop for DepthMetrics {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::dmllm_depth_metrics_free(self.ptr.as_ptr()) }
    }
}

/// Referring segmentation scores (LISA).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskScores {
    pub n_samples: i64,
    pub sum_intersection: i64,
    pub sum_union: i64,
    pub ciou: f64,
    pub giou: f64,
}

/// Referring segmentation accumulator.
pub struct MaskMetrics {
    ptr: NonNull<sys::dmllm_mask_metrics>,
}

// SAFETY: as SegMetrics.
unsafe impl Send for MaskMetrics {}

impl MaskMetrics {
    pub fn new() -> Result<MaskMetrics> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid out pointer.
        check(unsafe { sys::dmllm_mask_metrics_create(&mut out) })?;
        Ok(MaskMetrics { ptr: NonNull::new(out).expect("success without an accumulator") })
    }

    /// One sample: pred 0/1, gt 0/1/255 (ignore), same length.
    pub fn add(&mut self, pred: &[u8], gt: &[u8]) -> Result<()> {
        check_len(pred.len(), gt.len(), "MaskMetrics::add pred (GT size)")?;
        // SAFETY: both slices hold pred.len() values.
        check(unsafe { sys::dmllm_mask_metrics_add(self.ptr.as_ptr(), pred.as_ptr(), gt.as_ptr(), pred.len()) })
    }

    pub fn result(&self) -> Result<MaskScores> {
        let mut s =
            sys::dmllm_mask_scores { struct_size: size_of::<sys::dmllm_mask_scores>() as u32, ..Default::default() };
        // SAFETY: a live accumulator and a struct of the size it declares.
        check(unsafe { sys::dmllm_mask_metrics_result(self.ptr.as_ptr(), &mut s) })?;
        Ok(MaskScores {
            n_samples: s.n_samples,
            sum_intersection: s.sum_intersection,
            sum_union: s.sum_union,
            ciou: s.ciou,
            giou: s.giou,
        })
    }
}

impl Drop for MaskMetrics {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::dmllm_mask_metrics_free(self.ptr.as_ptr()) }
    }
}

/// IoU of two boxes (x0, y0, x1, y1), continuous coordinates, no +1.
pub fn box_iou(a: [f64; 4], b: [f64; 4]) -> Result<f64> {
    let mut iou = 0.0;
    // SAFETY: two arrays of 4 and a valid out pointer.
    check(unsafe { sys::dmllm_box_iou(a.as_ptr(), b.as_ptr(), &mut iou) })?;
    Ok(iou)
}
