//! Files and text made from dense predictions: PNGs (written atomically by the library) and the
//! official dense text "<ref>name</ref>...<mask>(v,n)...</mask>".
use crate::error::{Result, check};
use crate::image::{Image, check_map_len};
use crate::util::{CStrings, area, check_len, cstring, path_cstring, strings_from, take_text, vec_from};
use densemllm_sys as sys;
use std::path::Path;

/// Units per metre of [`write_depth_png16`]'s default scale: millimetres.
pub const DEPTH_PNG_SCALE: f32 = sys::DMLLM_DEPTH_PNG_SCALE;

/// Colour of a label in the PASCAL VOC palette (labels 0 .. 2^24 - 1).
pub fn label_color(label: i32) -> Result<[u8; 3]> {
    let mut rgb = [0u8; 3];
    // SAFETY: rgb holds the 3 bytes written.
    check(unsafe { sys::dmllm_label_color(label, rgb.as_mut_ptr()) })?;
    Ok(rgb)
}

/// Colour of a label in overlays (labels 0 .. 65535): light, never dark.
pub fn overlay_color(label: i32) -> Result<[u8; 3]> {
    let mut rgb = [0u8; 3];
    // SAFETY: rgb holds the 3 bytes written.
    check(unsafe { sys::dmllm_overlay_color(label, rgb.as_mut_ptr()) })?;
    Ok(rgb)
}

/// The label map as a PNG of label values (VOC palette up to 256 labels, else 16-bit gray).
pub fn write_label_png(path: impl AsRef<Path>, labels: &[u16], width: i32, height: i32, n_labels: i32) -> Result<()> {
    check_map_len(labels.len(), width, height, "write_label_png labels")?;
    let path = path_cstring(path.as_ref())?;
    // SAFETY: labels holds width * height values.
    check(unsafe { sys::dmllm_write_label_png(path.as_ptr(), labels.as_ptr(), width, height, n_labels) })
}

/// The image blended toward its labels' colours with a legend; `names` (n_labels entries) or
/// None for "label N".
pub fn write_overlay_png<S: AsRef<str>>(
    path: impl AsRef<Path>,
    image: &Image,
    labels: &[u16],
    n_labels: i32,
    names: Option<&[S]>,
    alpha: f32,
) -> Result<()> {
    check_map_len(labels.len(), image.width(), image.height(), "write_overlay_png labels")?;
    let names = names.map(|n| CStrings::new(n, "label name")).transpose()?;
    if let Some(names) = &names {
        // The library reads n_labels names.
        check_len(names.ptrs.len(), usize::try_from(n_labels).unwrap_or(0), "write_overlay_png names")?;
    }
    let path = path_cstring(path.as_ref())?;
    let names_ptr = names.as_ref().map_or(std::ptr::null(), |n| n.ptrs.as_ptr());
    // SAFETY: labels matches the image; names holds n_labels strings or is NULL.
    check(unsafe {
        sys::dmllm_write_overlay_png(path.as_ptr(), image.as_ptr(), labels.as_ptr(), n_labels, names_ptr, alpha)
    })
}

/// Depth as 16-bit gray: round(depth_m * scale) clamped (scale 0: [`DEPTH_PNG_SCALE`]).
pub fn write_depth_png16(path: impl AsRef<Path>, depth_m: &[f32], width: i32, height: i32, scale: f32) -> Result<()> {
    check_map_len(depth_m.len(), width, height, "write_depth_png16 depth")?;
    let path = path_cstring(path.as_ref())?;
    // SAFETY: depth_m holds width * height values.
    check(unsafe { sys::dmllm_write_depth_png16(path.as_ptr(), depth_m.as_ptr(), width, height, scale) })
}

/// Depth as an RGB colour map (near warm, far cool); min_m / max_m <= 0 take the 2nd / 98th
/// percentile of the valid depths.
pub fn write_depth_color_png(
    path: impl AsRef<Path>,
    depth_m: &[f32],
    width: i32,
    height: i32,
    min_m: f32,
    max_m: f32,
) -> Result<()> {
    check_map_len(depth_m.len(), width, height, "write_depth_color_png depth")?;
    let path = path_cstring(path.as_ref())?;
    // SAFETY: depth_m holds width * height values.
    check(unsafe { sys::dmllm_write_depth_color_png(path.as_ptr(), depth_m.as_ptr(), width, height, min_m, max_m) })
}

/// PCA picture of token features `[rows = grid_w * grid_h][cols]`, enlarged to out_w x out_h
/// (<= 0: the grid size).
#[allow(clippy::too_many_arguments)]
pub fn write_pca_png(
    path: impl AsRef<Path>,
    features: &[f32],
    rows: i32,
    cols: i32,
    grid_w: i32,
    grid_h: i32,
    out_w: i32,
    out_h: i32,
) -> Result<()> {
    check_len(features.len(), area(rows, cols, 1, "write_pca_png features")?, "write_pca_png features")?;
    let path = path_cstring(path.as_ref())?;
    // SAFETY: features holds rows * cols values.
    check(unsafe {
        sys::dmllm_write_pca_png(path.as_ptr(), features.as_ptr(), rows, cols, grid_w, grid_h, out_w, out_h)
    })
}

/// The official dense text of a label map whose labels are below `n_labels`; `names` (n_labels
/// entries) or None for only the `<mask>` block.
pub fn mask_text_write<S: AsRef<str>>(
    labels: &[u16],
    width: i32,
    height: i32,
    n_labels: i32,
    names: Option<&[S]>,
) -> Result<String> {
    check_map_len(labels.len(), width, height, "mask_text_write labels")?;
    let names = names.map(|n| CStrings::new(n, "label name")).transpose()?;
    if let Some(names) = &names {
        // The library reads n_labels names.
        check_len(names.ptrs.len(), usize::try_from(n_labels).unwrap_or(0), "mask_text_write names")?;
    }
    let names_ptr = names.as_ref().map_or(std::ptr::null(), |n| n.ptrs.as_ptr());
    let mut out = std::ptr::null_mut();
    // SAFETY: labels holds width * height values; names holds n_labels strings or is NULL.
    check(unsafe { sys::dmllm_mask_text_write(labels.as_ptr(), width, height, names_ptr, n_labels, &mut out) })?;
    // SAFETY: a library string, freed once.
    Ok(unsafe { take_text(out) })
}

/// A parsed dense text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskText {
    pub width: i32,
    pub height: i32,
    /// `[height][width]`; index into `names` when there are names.
    pub labels: Vec<u16>,
    /// The `<ref>` entries, in text order.
    pub names: Vec<String>,
    /// The text holds `"<depth>"`.
    pub has_depth_tag: bool,
}

/// Parses dense text back into a width x height map (errors name the byte offset).
pub fn mask_text_parse(text: &str, width: i32, height: i32) -> Result<MaskText> {
    let text = cstring(text, "mask text")?;
    let mut out = std::ptr::null_mut();
    // SAFETY: a valid string and out pointer.
    check(unsafe { sys::dmllm_mask_text_parse(text.as_ptr(), width, height, &mut out) })?;
    // SAFETY: a fresh result, copied then freed once.
    unsafe {
        let r = &*out;
        let result = MaskText {
            width: r.width,
            height: r.height,
            labels: vec_from(r.labels, r.width as usize * r.height as usize),
            names: strings_from(r.names, r.n_names),
            has_depth_tag: r.has_depth_tag != 0,
        };
        sys::dmllm_mask_text_result_free(out);
        Ok(result)
    }
}
