//! Images: decoded 8-bit RGB owned by the library, and the preprocessing helpers.
use crate::error::{Error, Result, check};
use crate::util::{area, check_len, path_cstring};
use densemllm_sys as sys;
use std::path::Path;
use std::ptr::NonNull;

/// An immutable 8-bit RGB image (row-major, 3 bytes per pixel, no padding).
pub struct Image {
    ptr: NonNull<sys::dmllm_image>,
}

// SAFETY: a dmllm_image is immutable after creation and may be shared across threads.
unsafe impl Send for Image {}
unsafe impl Sync for Image {}

/// Resize filters of the preprocessing (`dmllm_resize_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResizeMode {
    /// torchvision uint8 antialias path: Hugging Face parity.
    #[default]
    Hf,
    /// classic Pillow fixed point: bit-exact with PIL 9.4.
    Pillow,
}

impl ResizeMode {
    pub(crate) fn raw(self) -> sys::dmllm_resize_mode {
        match self {
            ResizeMode::Hf => sys::DMLLM_RESIZE_HF,
            ResizeMode::Pillow => sys::DMLLM_RESIZE_PILLOW,
        }
    }
}

/// Limits of decoding (`dmllm_image_params`); `Default` is `dmllm_image_params_init()`:
/// 178,956,970 pixels (PIL's limit), 256 MiB of encoded data, no memory limit. 0 switches one off.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    raw: sys::dmllm_image_params,
}

impl Default for ImageLimits {
    fn default() -> Self {
        let mut raw = std::mem::MaybeUninit::uninit();
        // SAFETY: the init function fills the whole struct.
        let raw = unsafe {
            sys::dmllm_image_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        ImageLimits { raw }
    }
}

impl ImageLimits {
    /// Width * height read from the JPEG frame header or PNG IHDR, checked before decoding.
    pub fn max_pixels(mut self, n: i64) -> Self {
        self.raw.max_pixels = n;
        self
    }

    /// Size of the encoded data; a file (pipes and devices too) is read no further.
    pub fn max_encoded_bytes(mut self, n: i64) -> Self {
        self.raw.max_encoded_bytes = n;
        self
    }

    /// Peak bytes of the decode (Status::OutOfMemory with the amount needed when exceeded).
    pub fn memory_limit_bytes(mut self, n: i64) -> Self {
        self.raw.memory_limit_bytes = n;
        self
    }
}

impl Image {
    /// Takes ownership of an image returned by a successful library call.
    fn created(status: sys::dmllm_status, ptr: *mut sys::dmllm_image) -> Result<Image> {
        check(status)?;
        Ok(Image { ptr: NonNull::new(ptr).expect("the library returned success without an image") })
    }

    /// Decodes a JPEG (EXIF orientation applied), PNG, WebP, TIFF or BMP file to RGB.
    pub fn load(path: impl AsRef<Path>) -> Result<Image> {
        let path = path_cstring(path.as_ref())?;
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid path string and out pointer.
        let status = unsafe { sys::dmllm_image_load_file(path.as_ptr(), &mut out) };
        Image::created(status, out)
    }

    /// [`Image::load`] within the given limits.
    pub fn load_with(path: impl AsRef<Path>, limits: &ImageLimits) -> Result<Image> {
        let path = path_cstring(path.as_ref())?;
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid path string, params struct and out pointer.
        let status = unsafe { sys::dmllm_image_load_file_ex(path.as_ptr(), &limits.raw, &mut out) };
        Image::created(status, out)
    }

    /// [`Image::from_memory`] within the given limits.
    pub fn from_memory_with(data: &[u8], limits: &ImageLimits) -> Result<Image> {
        let mut out = std::ptr::null_mut();
        // SAFETY: data is valid for data.len() bytes during the call (the library copies it).
        let status =
            unsafe { sys::dmllm_image_load_memory_ex(data.as_ptr().cast(), data.len(), &limits.raw, &mut out) };
        Image::created(status, out)
    }

    /// Decodes a JPEG, PNG, WebP, TIFF or BMP held in memory.
    pub fn from_memory(data: &[u8]) -> Result<Image> {
        let mut out = std::ptr::null_mut();
        // SAFETY: data is valid for data.len() bytes during the call (the library copies it).
        let status = unsafe { sys::dmllm_image_load_memory(data.as_ptr().cast(), data.len(), &mut out) };
        Image::created(status, out)
    }

    /// Copies packed RGB bytes: `rgb.len()` must be width * height * 3.
    pub fn from_rgb(rgb: &[u8], width: i32, height: i32) -> Result<Image> {
        let row = area(width, 1, 3, "Image::from_rgb")?;
        Image::from_rgb_strided(rgb, width, height, row)
    }

    /// Copies `height` rows of `width * 3` RGB bytes that start `stride` bytes apart.
    pub fn from_rgb_strided(rgb: &[u8], width: i32, height: i32, stride: usize) -> Result<Image> {
        let row = area(width, 1, 3, "Image::from_rgb")?;
        let rows = usize::try_from(height).unwrap_or(0);
        // The library reads (height - 1) full strides plus one row.
        let needed = if rows == 0 { 0 } else { stride.max(row).saturating_mul(rows - 1).saturating_add(row) };
        if rgb.len() < needed {
            return Err(Error::new(
                crate::Status::InvalidArgument,
                format!(
                    "Image::from_rgb: {} bytes given, {width} x {height} with stride {stride} needs {needed}",
                    rgb.len()
                ),
            ));
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: rgb holds at least the bytes the library reads (checked above).
        let status = unsafe { sys::dmllm_image_from_rgb(rgb.as_ptr(), width, height, stride, &mut out) };
        Image::created(status, out)
    }

    pub fn width(&self) -> i32 {
        // SAFETY: a live image.
        unsafe { sys::dmllm_image_width(self.ptr.as_ptr()) }
    }

    pub fn height(&self) -> i32 {
        // SAFETY: a live image.
        unsafe { sys::dmllm_image_height(self.ptr.as_ptr()) }
    }

    /// The RGB bytes, row-major: width * height * 3.
    pub fn pixels(&self) -> &[u8] {
        let len = self.width() as usize * self.height() as usize * 3;
        // SAFETY: the image owns width*height*3 bytes, immutable while it lives.
        unsafe { std::slice::from_raw_parts(sys::dmllm_image_pixels(self.ptr.as_ptr()), len) }
    }

    /// Antialiased bilinear resize.
    pub fn resize(&self, width: i32, height: i32, mode: ResizeMode) -> Result<Image> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live image and a valid out pointer.
        let status = unsafe { sys::dmllm_image_resize(self.ptr.as_ptr(), width, height, mode.raw(), &mut out) };
        Image::created(status, out)
    }

    pub(crate) fn as_ptr(&self) -> *const sys::dmllm_image {
        self.ptr.as_ptr()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the image is owned and freed once.
        unsafe { sys::dmllm_image_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} x {})", self.width(), self.height())
    }
}

/// The size the model sees for a width x height image under a patch cap (model-spec 2).
pub fn target_size(width: i32, height: i32, max_num_patches: i32) -> Result<(i32, i32)> {
    let (mut w, mut h) = (0, 0);
    // SAFETY: valid out pointers.
    check(unsafe { sys::dmllm_target_size(width, height, max_num_patches, &mut w, &mut h) })?;
    Ok((w, h))
}

/// Checks that a row-major map matches an image's size.
pub(crate) fn check_map_len(len: usize, width: i32, height: i32, what: &str) -> Result<()> {
    check_len(len, area(width, height, 1, what)?, what)
}
