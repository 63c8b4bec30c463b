//! CLIP image preprocessing, bit-exact with the PyTorch reference pipeline.
//!
//! The reference is torchvision on PIL images:
//!
//! * test: `Resize(size, BICUBIC)` on the shorter side, `CenterCrop(size)`,
//!   `ToTensor()`, `Normalize(CLIP_MEAN, CLIP_STD)`;
//! * train: `RandomResizedCrop(size, scale, ratio, BICUBIC)`,
//!   `RandomHorizontalFlip(0.5)`, `ToTensor()`, `Normalize(..)`.
//!
//! Resizing reimplements Pillow's `ImagingResample` (`libImaging/Resample.c`)
//! for 8-bit RGB exactly: a separable two-pass convolution (horizontal pass
//! first) with the bicubic kernel `a = -0.5`, support `2` widened by the
//! downscale factor (antialiasing), coefficients quantised to 22-bit fixed
//! point, and rounding/clipping to `u8` after each pass. On PNG inputs the
//! resized `u8` images equal Pillow's bit for bit; JPEG inputs differ only by
//! what the decoders (`image`/zune-jpeg here, libjpeg-turbo in Pillow) produce.
//!
//! Images are decoded with the `image` crate and converted to 8-bit RGB like
//! Pillow's `convert("RGB")` (grayscale replicated, alpha dropped, palettes
//! expanded). EXIF orientation is ignored, as in PIL/torchvision. 16-bit
//! images are reduced to 8 bits by the `image` crate (`v / 257`, rounded),
//! which is not what Pillow does for `I;16`; such inputs are rare in datasets.
//!
//! Everything here is plain Rust on `u8`/`f32` buffers; tensors are built by
//! the caller from the `[3, H, W]` row-major `Vec<f32>` outputs.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rand::Rng;

/// CLIP's per-channel (R, G, B) mean, applied after scaling pixels to `[0, 1]`.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel (R, G, B) standard deviation.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Errors from reading or decoding an image file.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file could not be read.
    #[error("cannot read image {}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an image in a supported format (PNG, JPEG), or are corrupt.
    #[error("cannot decode image {}: {source}", path.display())]
    Decode {
        /// The file (or archive member name) that failed.
        path: PathBuf,
        /// Underlying decoder error.
        #[source]
        source: image::ImageError,
    },
}

/// Per-channel normalisation `(x / 255 - mean) / std`, as torchvision's
/// `ToTensor()` followed by `Normalize(mean, std)` (computed in `f32`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel (R, G, B) mean.
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation.
    pub std: [f32; 3],
}

impl Default for Normalize {
    /// CLIP's statistics ([`CLIP_MEAN`], [`CLIP_STD`]).
    fn default() -> Self {
        Self {
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }
}

/// An integer crop rectangle in pixel coordinates (`left`/`top` inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropBox {
    /// First column.
    pub left: u32,
    /// First row.
    pub top: u32,
    /// Number of columns.
    pub width: u32,
    /// Number of rows.
    pub height: u32,
}

impl CropBox {
    /// The box covering a whole `width x height` image.
    pub fn full(width: u32, height: u32) -> Self {
        Self {
            left: 0,
            top: 0,
            width,
            height,
        }
    }

    /// This box intersected with a `width x height` image (never out of bounds).
    fn clamp_to(self, width: u32, height: u32) -> Self {
        let left = self.left.min(width);
        let top = self.top.min(height);
        Self {
            left,
            top,
            width: self.width.min(width - left),
            height: self.height.min(height - top),
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Reads and decodes an image file (format guessed from its content) and
/// converts it to 8-bit RGB, like `PIL.Image.open(path).convert("RGB")`.
///
/// # Errors
/// [`PreprocessError::Io`] or [`PreprocessError::Decode`], both naming `path`.
pub fn load_rgb(path: &Path) -> Result<RgbImage, PreprocessError> {
    let bytes = std::fs::read(path).map_err(|source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes, path)
}

/// Decodes in-memory image bytes (e.g. an archive member) to 8-bit RGB, like
/// [`load_rgb`]; `origin` only names the source in errors.
///
/// # Errors
/// [`PreprocessError::Decode`] naming `origin` when the format is unknown or
/// the data is corrupt.
pub fn decode_rgb(bytes: &[u8], origin: &Path) -> Result<RgbImage, PreprocessError> {
    let decode_err = |source| PreprocessError::Decode {
        path: origin.to_path_buf(),
        source,
    };
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    let img = reader.decode().map_err(decode_err)?;
    Ok(img.into_rgb8())
}

// ---------------------------------------------------------------------------
// Pillow-exact bicubic resampling
// ---------------------------------------------------------------------------

/// Fixed-point precision of Pillow's 8-bit resampler (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;
/// Rounding bias added to every accumulator (`1 << (PRECISION_BITS - 1)`).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's bicubic kernel with `a = -0.5` (support 2).
#[inline]
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point filter taps for resampling one axis from `in_size` to `out_size`.
struct Coeffs {
    /// Stride of `weights` per output index.
    ksize: usize,
    /// Per output index: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `out_size * ksize` weights in 22-bit fixed point.
    weights: Vec<i32>,
}

impl Coeffs {
    /// Pillow's `precompute_coeffs` (box `[0, in_size]`) followed by
    /// `normalize_coeffs_8bpc`, with the same floating-point operation order.
    fn new(in_size: usize, out_size: usize) -> Self {
        const SUPPORT: f64 = 2.0;
        // Pillow: scale = (double)(in1 - in0) / outSize with float box edges;
        // integer sizes below 2^24 are exact in f32.
        let scale = in_size as f32 as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;

        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut pre = vec![0f64; ksize];
        for (xx, k_out) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero, as does `as`.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).max(0) as usize;
            let xmin = xmin as usize;
            let mut ww = 0.0;
            for (x, p) in pre[..len].iter_mut().enumerate() {
                let w = bicubic_filter(((x + xmin) as f64 - center + 0.5) * ss);
                *p = w;
                ww += w;
            }
            for (p, k) in pre[..len].iter_mut().zip(k_out.iter_mut()) {
                if ww != 0.0 {
                    *p /= ww;
                }
                let scaled = *p * (1u32 << PRECISION_BITS) as f64;
                *k = if *p < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            bounds.push((xmin, len));
        }
        Self {
            ksize,
            bounds,
            weights,
        }
    }

    /// Taps of output index `i`: first input index and fixed-point weights.
    #[inline]
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (min, len) = self.bounds[i];
        (min, &self.weights[i * self.ksize..i * self.ksize + len])
    }
}

/// Pillow's `clip8`: drop the fixed-point fraction and saturate to `u8`.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples the `region` of `img` to `out_w x out_h` exactly as Pillow's
/// `img.crop(region).resize((out_w, out_h), BICUBIC)`, but computes and returns
/// only the output pixels inside `window` (a box in output coordinates). Each
/// output pixel depends only on its own taps, so the window is bit-identical
/// to cropping the full result.
fn resample_window(
    img: &RgbImage,
    region: CropBox,
    out_w: u32,
    out_h: u32,
    window: CropBox,
) -> RgbImage {
    let region = region.clamp_to(img.width(), img.height());
    let window = window.clamp_to(out_w, out_h);
    let (ww, wh) = (window.width as usize, window.height as usize);
    if ww == 0 || wh == 0 {
        return RgbImage::new(window.width, window.height);
    }
    let (in_w, in_h) = (region.width as usize, region.height as usize);
    let (wx0, wy0) = (window.left as usize, window.top as usize);
    let src = img.as_raw();
    let src_stride = img.width() as usize * 3;
    let row_len = ww * 3;
    // Start of `region` row `y`, window column `wx0` (used when no horizontal pass).
    let src_offset = |y: usize| (region.top as usize + y) * src_stride + region.left as usize * 3;

    let need_h = out_w as usize != in_w;
    let need_v = out_h as usize != in_h;

    // Rows of the region the vertical pass reads (all of them, for the window).
    let vert = need_v.then(|| Coeffs::new(in_h, out_h as usize));
    let (y_first, y_last) = match &vert {
        Some(v) => {
            let first = v.bounds[wy0].0;
            let (lmin, llen) = v.bounds[wy0 + wh - 1];
            (first, (lmin + llen).max(first))
        }
        None => (wy0, wy0 + wh),
    };

    // Horizontal pass into `tmp` (rows y_first..y_last, window columns).
    let tmp: Vec<u8> = if need_h {
        let horiz = Coeffs::new(in_w, out_w as usize);
        let mut tmp = vec![0u8; (y_last - y_first) * row_len];
        for (t, out_row) in tmp.chunks_exact_mut(row_len).enumerate() {
            let start = src_offset(y_first + t);
            let in_row = &src[start..start + in_w * 3];
            for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
                let (xmin, k) = horiz.taps(wx0 + xx);
                let taps = &in_row[xmin * 3..(xmin + k.len()) * 3];
                let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
                for (p, &w) in taps.chunks_exact(3).zip(k) {
                    s0 += p[0] as i32 * w;
                    s1 += p[1] as i32 * w;
                    s2 += p[2] as i32 * w;
                }
                px[0] = clip8(s0);
                px[1] = clip8(s1);
                px[2] = clip8(s2);
            }
        }
        tmp
    } else {
        Vec::new()
    };
    // Row `y` (region coordinates) of the horizontally resampled window.
    let row = |y: usize| -> &[u8] {
        if need_h {
            let s = (y - y_first) * row_len;
            &tmp[s..s + row_len]
        } else {
            let s = src_offset(y) + wx0 * 3;
            &src[s..s + row_len]
        }
    };

    let mut out = vec![0u8; wh * row_len];
    match &vert {
        Some(v) => {
            let mut acc = vec![0i32; row_len];
            for (yy, out_row) in out.chunks_exact_mut(row_len).enumerate() {
                let (ymin, k) = v.taps(wy0 + yy);
                acc.fill(HALF);
                // Integer sums are exact, so tap-major order equals Pillow's.
                for (t, &w) in k.iter().enumerate() {
                    for (a, &p) in acc.iter_mut().zip(row(ymin + t)) {
                        *a += p as i32 * w;
                    }
                }
                for (o, &a) in out_row.iter_mut().zip(&acc) {
                    *o = clip8(a);
                }
            }
        }
        None => {
            for (yy, out_row) in out.chunks_exact_mut(row_len).enumerate() {
                out_row.copy_from_slice(row(wy0 + yy));
            }
        }
    }
    RgbImage::from_raw(window.width, window.height, out)
        .unwrap_or_else(|| RgbImage::new(window.width, window.height))
}

/// Resizes to `width x height` with Pillow's antialiased bicubic filter,
/// bit-exact with `PIL.Image.resize((width, height), Image.BICUBIC)` on RGB.
///
/// # Shapes
/// `[H_in, W_in, 3]` → `[height, width, 3]` (`u8`).
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let full = CropBox::full(img.width(), img.height());
    resample_window(img, full, width, height, CropBox::full(width, height))
}

/// Crops `crop` (clamped to the image) and resizes it to `width x height`,
/// bit-exact with Pillow's `img.crop(box).resize((width, height), BICUBIC)`,
/// i.e. torchvision's `resized_crop` on PIL images. No intermediate copy.
///
/// # Shapes
/// `[H_in, W_in, 3]` → `[height, width, 3]` (`u8`).
pub fn resized_crop(img: &RgbImage, crop: CropBox, width: u32, height: u32) -> RgbImage {
    resample_window(img, crop, width, height, CropBox::full(width, height))
}

/// Output size of torchvision's `Resize(size)` with an integer size: the
/// shorter side becomes `size`, the longer `int(size * long / short)`.
/// Returns `(width, height)`; `(0, 0)` for an empty image.
pub fn shorter_side_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python: int(size * long / short), true division then truncation.
    let new_long = (size as f64 * long as f64 / short as f64) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision `Resize(size, BICUBIC)`: shorter side to `size`, aspect kept
/// (see [`shorter_side_size`]), Pillow-exact resampling.
///
/// # Shapes
/// `[H, W, 3]` → `[size, int(size*W/H), 3]` or `[int(size*H/W), size, 3]`.
pub fn resize_shorter_side(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = shorter_side_size(img.width(), img.height(), size);
    resize_bicubic(img, w, h)
}

/// Offset of a centred crop of length `crop` in an axis of length `len`
/// (negative: zero padding before the image), as torchvision `center_crop`.
fn center_offset(len: u32, crop: u32) -> i64 {
    if crop > len {
        // torchvision pads left/top by (crop - len) // 2 first.
        -(((crop - len) / 2) as i64)
    } else {
        // int(round((len - crop) / 2.0)) with Python's round-half-to-even.
        ((len - crop) as f64 / 2.0).round_ties_even() as i64
    }
}

/// torchvision `CenterCrop(size)`: `top = int(round((h - size) / 2))`,
/// `left = int(round((w - size) / 2))` (banker's rounding); a side shorter
/// than `size` is zero-padded symmetrically first, as torchvision does.
///
/// # Shapes
/// `[H, W, 3]` → `[size, size, 3]`.
pub fn center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let top = center_offset(img.height(), size);
    let left = center_offset(img.width(), size);
    let mut out = RgbImage::new(size, size);
    let (w, h) = (img.width() as i64, img.height() as i64);
    // Columns of the output that map inside the image.
    let x_lo = (-left).clamp(0, size as i64);
    let x_hi = (w - left).clamp(x_lo, size as i64);
    if x_hi > x_lo {
        let (src, dst_stride) = (img.as_raw(), size as usize * 3);
        let dst = out.as_mut();
        for y in 0..size as i64 {
            let sy = y + top;
            if sy < 0 || sy >= h {
                continue;
            }
            let s = ((sy * w + x_lo + left) * 3) as usize;
            let d = y as usize * dst_stride + x_lo as usize * 3;
            let n = ((x_hi - x_lo) * 3) as usize;
            dst[d..d + n].copy_from_slice(&src[s..s + n]);
        }
    }
    out
}

/// `ToTensor()` + `Normalize(mean, std)`: `(v / 255 - mean[c]) / std[c]` in
/// `f32`, channel-major.
///
/// # Shapes
/// `[H, W, 3]` (`u8`) → `[3, H, W]` row-major (`Vec<f32>` of `3*H*W`).
pub fn to_chw_normalized(img: &RgbImage, norm: &Normalize) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * img.width() as usize * img.height() as usize);
    extend_chw_normalized(img, norm, &mut out);
    out
}

/// Like [`to_chw_normalized`] but appends to `out` (e.g. a batch buffer).
///
/// # Shapes
/// Appends `3*H*W` values, laid out `[3, H, W]`.
pub fn extend_chw_normalized(img: &RgbImage, norm: &Normalize, out: &mut Vec<f32>) {
    let raw = img.as_raw();
    out.reserve(raw.len());
    for c in 0..3 {
        // Same f32 operations as torchvision, tabulated per byte value.
        let mut lut = [0f32; 256];
        for (v, l) in lut.iter_mut().enumerate() {
            *l = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
        out.extend(raw.iter().skip(c).step_by(3).map(|&v| lut[v as usize]));
    }
}

// ---------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------

/// CLIP's evaluation transform: `Resize(size, BICUBIC)` (shorter side),
/// `CenterCrop(size)`, `ToTensor()`, `Normalize`.
#[derive(Clone, Debug, PartialEq)]
pub struct TestTransform {
    /// Output side length (224 for ViT-B/16).
    pub size: u32,
    /// Normalisation statistics.
    pub norm: Normalize,
}

impl Default for TestTransform {
    /// `size = 224`, CLIP normalisation.
    fn default() -> Self {
        Self::new(224)
    }
}

impl TestTransform {
    /// The transform for square outputs of side `size`, CLIP normalisation.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            norm: Normalize::default(),
        }
    }

    /// Resize + center crop, before normalisation. Only the cropped window of
    /// the resized image is computed (bit-identical to resizing then cropping).
    ///
    /// # Shapes
    /// `[H, W, 3]` → `[size, size, 3]` (`u8`).
    pub fn apply_rgb(&self, img: &RgbImage) -> RgbImage {
        let size = self.size;
        let (rw, rh) = shorter_side_size(img.width(), img.height(), size);
        if rw < size || rh < size {
            // Only for degenerate (empty) inputs: pad like torchvision.
            return center_crop(&resize_bicubic(img, rw, rh), size);
        }
        let window = CropBox {
            left: center_offset(rw, size) as u32,
            top: center_offset(rh, size) as u32,
            width: size,
            height: size,
        };
        resample_window(img, CropBox::full(img.width(), img.height()), rw, rh, window)
    }

    /// The full transform.
    ///
    /// # Shapes
    /// `[H, W, 3]` (`u8`) → `[3, size, size]` row-major `f32`.
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        to_chw_normalized(&self.apply_rgb(img), &self.norm)
    }
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random
/// area fraction in `scale` and log-uniform aspect ratio in `ratio`, falling
/// back to a central crop clamped to the ratio bounds. Always inside the image
/// (for a non-empty image), with positive width and height.
///
/// Draws from `rng` in the same order as torchvision (area, ratio, then `top`,
/// `left` on success); the numbers themselves differ from torch's generator.
pub fn random_resized_crop_box<R: Rng + ?Sized>(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut R,
) -> CropBox {
    // Uniform in [lo, hi) without `random_range`, which panics on empty ranges.
    fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * rng.random::<f64>()
    }
    let area = width as f64 * height as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        // int(round(..)); NaN/negative saturate to 0 and are rejected below.
        let w = (target_area * aspect).sqrt().round_ties_even() as u32;
        let h = (target_area / aspect).sqrt().round_ties_even() as u32;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                left,
                top,
                width: w,
                height: h,
            };
        }
    }
    // Fallback to a central crop.
    let in_ratio = width as f64 / height as f64;
    let (min_r, max_r) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < min_r {
        (width, (width as f64 / min_r).round_ties_even() as u32)
    } else if in_ratio > max_r {
        ((height as f64 * max_r).round_ties_even() as u32, height)
    } else {
        (width, height)
    };
    // Guard degenerate ratios/sizes: keep the box non-empty and inside.
    let (w, h) = (w.clamp(1.min(width), width), h.clamp(1.min(height), height));
    CropBox {
        left: (width - w) / 2,
        top: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// CLIP/CoOp training transform: `RandomResizedCrop(size, scale, ratio,
/// BICUBIC)`, `RandomHorizontalFlip(flip_prob)`, `ToTensor()`, `Normalize`,
/// driven by an explicit RNG so runs are reproducible.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTransform {
    /// Output side length.
    pub size: u32,
    /// Range of the crop area as a fraction of the image area.
    pub scale: (f64, f64),
    /// Range of the crop aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub flip_prob: f64,
    /// Normalisation statistics.
    pub norm: Normalize,
}

impl Default for TrainTransform {
    /// torchvision defaults at `size = 224`: scale `(0.08, 1)`, ratio
    /// `(3/4, 4/3)`, flip probability 0.5, CLIP normalisation.
    fn default() -> Self {
        Self::new(224)
    }
}

impl TrainTransform {
    /// torchvision defaults (see [`Default`]) at output side `size`.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_prob: 0.5,
            norm: Normalize::default(),
        }
    }

    /// Random crop box, resize of the crop, random flip; before normalisation.
    /// Consumes the RNG as torchvision does: crop parameters, then one uniform
    /// draw for the flip.
    ///
    /// # Shapes
    /// `[H, W, 3]` → `[size, size, 3]` (`u8`).
    pub fn apply_rgb<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> RgbImage {
        let crop = random_resized_crop_box(img.width(), img.height(), self.scale, self.ratio, rng);
        let mut out = resized_crop(img, crop, self.size, self.size);
        if rng.random::<f64>() < self.flip_prob {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }

    /// The full transform.
    ///
    /// # Shapes
    /// `[H, W, 3]` (`u8`) → `[3, size, size]` row-major `f32`.
    pub fn apply<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> Vec<f32> {
        to_chw_normalized(&self.apply_rgb(img, rng), &self.norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use safetensors::SafeTensors;

    fn fixtures() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/preprocess");
        if p.exists() {
            p
        } else {
            PathBuf::from("/work/main/tests/fixtures/preprocess")
        }
    }

    fn expected_bytes() -> Vec<u8> {
        std::fs::read(fixtures().join("expected.safetensors")).expect("read expected.safetensors")
    }

    fn image_names(ext: &str) -> Vec<String> {
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("config.json")).expect("read config.json"),
        )
        .expect("parse config.json");
        cfg["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| i["file"].as_str().expect("file").to_string())
            .filter(|f| f.ends_with(ext))
            .collect()
    }

    /// Reference `[3, 224, 224]` tensor (stored as f16) for `name`.
    fn reference(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
        let t = st.tensor(name).expect("tensor");
        assert_eq!(t.dtype(), safetensors::Dtype::F16);
        assert_eq!(t.shape(), &[3, 224, 224]);
        t.data()
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    }

    /// Max |ours - reference| over all values, and the number of values whose
    /// f16 rounding differs from the reference.
    fn compare(ours: &[f32], reference: &[f32]) -> (f32, usize) {
        assert_eq!(ours.len(), reference.len());
        let mut max = 0f32;
        let mut mismatches = 0;
        for (&a, &b) in ours.iter().zip(reference) {
            max = max.max((a - b).abs());
            if half::f16::from_f32(a).to_f32() != b {
                mismatches += 1;
            }
        }
        (max, mismatches)
    }

    #[test]
    fn png_matches_torchvision_exactly() {
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        let names = image_names(".png");
        assert_eq!(names.len(), 7);
        for name in names {
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("load");
            let ours = t.apply(&img);
            let (max, mismatches) = compare(&ours, &reference(&st, &name));
            // Measured: every value rounds to the reference f16 exactly (the
            // resized u8 images are identical); max |diff| 0.0019 is the f16
            // quantisation of the stored reference only.
            assert_eq!(mismatches, 0, "{name}: {mismatches} values differ");
            assert!(max <= 0.02, "{name}: max abs diff {max}");
        }
    }

    #[test]
    fn resize_of_pillow_decoded_jpeg_matches_exactly() {
        // The fixture also stores Pillow's decoded JPEG pixels: resizing those
        // must reproduce the reference exactly, isolating decoder differences.
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        for name in image_names(".jpg") {
            let d = st.tensor(&format!("{name}.decoded_uint8_hwc")).expect("decoded");
            let (h, w) = (d.shape()[0] as u32, d.shape()[1] as u32);
            let img = RgbImage::from_raw(w, h, d.data().to_vec()).expect("hwc");
            let (_, mismatches) = compare(&t.apply(&img), &reference(&st, &name));
            assert_eq!(mismatches, 0, "{name}: {mismatches} values differ");
        }
    }

    #[test]
    fn jpeg_within_decoder_tolerance() {
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        for name in image_names(".jpg") {
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("load");
            let ours = t.apply(&img);
            let (max, _) = compare(&ours, &reference(&st, &name));
            let mean = ours
                .iter()
                .zip(reference(&st, &name))
                .map(|(a, b)| (a - b).abs() as f64)
                .sum::<f64>()
                / ours.len() as f64;
            // JPEG_BOUNDS_PLACEHOLDER
            assert!(max <= 0.1 && mean <= 0.01, "{name}: max {max} mean {mean}");
        }
    }
}
