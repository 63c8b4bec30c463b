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
//! for 8-bit RGB exactly: a separable two-pass convolution with the bicubic
//! kernel `a = -0.5`, support `2` widened by the downscale factor
//! (antialiasing), coefficients quantised to 22-bit fixed point, and
//! rounding/clipping to `u8` after each pass. The pass order follows Pillow 13
//! (horizontal first unless the height shrinks by more than twice as many
//! pixels as the width); it changes results by the intermediate rounding.
//! Verified bit-exact against Pillow 13.0.0 on ~6,800 resizes. On PNG inputs the
//! resized `u8` images equal Pillow's bit for bit; so do JPEG inputs with the
//! `turbojpeg` feature (see [`decode`] for the decoders and what they refuse).
//!
//! Everything here is plain Rust on `u8`/`f32` buffers (`[3, H, W]` row-major
//! `Vec<f32>` outputs); [`TestTransform::batch`] stacks them into a tensor.

use std::ops::Range;

use image::RgbImage;
use rand::Rng;

pub mod decode;
pub use decode::{decode_rgb, load_rgb, PreprocessError, MAX_IMAGE_PIXELS};

/// CLIP's per-channel (R, G, B) mean, applied after scaling pixels to `[0, 1]`.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel (R, G, B) standard deviation.
// Written as in the Python reference; rounds to the same f32 values.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

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

/// Horizontal pass over one row: `src` holds input columns starting at
/// `src_x0`; writes output columns `cols` of `c` into `dst` (3 bytes each).
#[inline]
fn horizontal_row(src: &[u8], src_x0: usize, c: &Coeffs, cols: Range<usize>, dst: &mut [u8]) {
    for (xx, px) in cols.zip(dst.chunks_exact_mut(3)) {
        let (xmin, k) = c.taps(xx);
        let start = (xmin - src_x0) * 3;
        let taps = &src[start..start + k.len() * 3];
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

/// Vertical pass for output row `yy` of `c`: `row(y)` gives input row `y`
/// (all the same length as `dst`); `acc` is scratch of `dst.len()`.
#[inline]
fn vertical_row<'a>(
    row: impl Fn(usize) -> &'a [u8],
    c: &Coeffs,
    yy: usize,
    acc: &mut [i32],
    dst: &mut [u8],
) {
    let (ymin, k) = c.taps(yy);
    acc.fill(HALF);
    // Integer sums are exact, so tap-major order equals Pillow's pixel-major one.
    for (t, &w) in k.iter().enumerate() {
        for (a, &p) in acc.iter_mut().zip(row(ymin + t)) {
            *a += p as i32 * w;
        }
    }
    for (o, &a) in dst.iter_mut().zip(acc.iter()) {
        *o = clip8(a);
    }
}

/// Resamples the `region` of `img` to `out_w x out_h` exactly as Pillow's
/// `img.crop(region).resize((out_w, out_h), BICUBIC)`, but computes and returns
/// only the output pixels inside `window` (a box in output coordinates). Each
/// output pixel depends only on its own taps, so the window is bit-identical
/// to cropping the full result.
///
/// Pass order follows Pillow 13 (`ImagingResampleInner`): horizontal first,
/// except vertical first when the height shrinks by more than twice as many
/// pixels as the width (`in_h - out_h > 2 * (in_w - out_w)`, height reduced).
/// The order matters because of the `u8` rounding between the passes.
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
    let (out_w, out_h) = (out_w as usize, out_h as usize);
    let (wx0, wy0) = (window.left as usize, window.top as usize);
    let (cols, rows) = (wx0..wx0 + ww, wy0..wy0 + wh);
    let row_len = ww * 3;

    let src = img.as_raw();
    let src_stride = img.width() as usize * 3;
    // Region row `y` (region columns 0..in_w).
    let src_row = |y: usize| -> &[u8] {
        let s = (region.top as usize + y) * src_stride + region.left as usize * 3;
        &src[s..s + in_w * 3]
    };

    let horiz = (out_w != in_w).then(|| Coeffs::new(in_w, out_w));
    let vert = (out_h != in_h).then(|| Coeffs::new(in_h, out_h));
    let mut out = vec![0u8; wh * row_len];
    let mut acc = vec![0i32; row_len];

    match (&horiz, &vert) {
        (None, None) => {
            for (y, dst) in rows.zip(out.chunks_exact_mut(row_len)) {
                dst.copy_from_slice(&src_row(y)[wx0 * 3..wx0 * 3 + row_len]);
            }
        }
        (Some(h), None) => {
            for (y, dst) in rows.zip(out.chunks_exact_mut(row_len)) {
                horizontal_row(src_row(y), 0, h, cols.clone(), dst);
            }
        }
        (None, Some(v)) => {
            let row = |y: usize| &src_row(y)[wx0 * 3..wx0 * 3 + row_len];
            for (yy, dst) in rows.zip(out.chunks_exact_mut(row_len)) {
                vertical_row(row, v, yy, &mut acc, dst);
            }
        }
        (Some(h), Some(v)) => {
            let (dw, dh) = (in_w as i64 - out_w as i64, in_h as i64 - out_h as i64);
            let vertical_first = dh > 0 && dh > 2 * dw;
            if vertical_first {
                // Vertical pass over the input columns the window needs.
                let x_first = h.bounds[wx0].0;
                let (lmin, llen) = h.bounds[wx0 + ww - 1];
                let x_last = (lmin + llen).max(x_first);
                let tmp_len = (x_last - x_first) * 3;
                let mut tmp = vec![0u8; wh * tmp_len];
                let mut tacc = vec![0i32; tmp_len];
                let row = |y: usize| &src_row(y)[x_first * 3..x_last * 3];
                for (yy, t) in rows.zip(tmp.chunks_exact_mut(tmp_len.max(1))) {
                    vertical_row(row, v, yy, &mut tacc, t);
                }
                for (t, dst) in tmp
                    .chunks_exact(tmp_len.max(1))
                    .zip(out.chunks_exact_mut(row_len))
                {
                    horizontal_row(t, x_first, h, cols.clone(), dst);
                }
            } else {
                // Horizontal pass over the input rows the window needs.
                let y_first = v.bounds[wy0].0;
                let (lmin, llen) = v.bounds[wy0 + wh - 1];
                let y_last = (lmin + llen).max(y_first);
                let mut tmp = vec![0u8; (y_last - y_first) * row_len];
                for (y, t) in (y_first..y_last).zip(tmp.chunks_exact_mut(row_len)) {
                    horizontal_row(src_row(y), 0, h, cols.clone(), t);
                }
                let row = |y: usize| &tmp[(y - y_first) * row_len..(y - y_first + 1) * row_len];
                for (yy, dst) in rows.zip(out.chunks_exact_mut(row_len)) {
                    vertical_row(row, v, yy, &mut acc, dst);
                }
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
        resample_window(
            img,
            CropBox::full(img.width(), img.height()),
            rw,
            rh,
            window,
        )
    }

    /// The full transform.
    ///
    /// # Shapes
    /// `[H, W, 3]` (`u8`) → `[3, size, size]` row-major `f32`.
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        to_chw_normalized(&self.apply_rgb(img), &self.norm)
    }

    /// The full transform of each image, stacked into one batch on `device`.
    ///
    /// # Shapes
    /// `n` images of any size → `[n, 3, size, size]`.
    pub fn batch<B: burn::tensor::backend::Backend>(
        &self,
        images: &[RgbImage],
        device: &B::Device,
    ) -> burn::tensor::Tensor<B, 4> {
        let side = self.size as usize;
        let mut data = Vec::with_capacity(images.len() * 3 * side * side);
        for img in images {
            extend_chw_normalized(&self.apply_rgb(img), &self.norm, &mut data);
        }
        let shape = [images.len(), 3, side, side];
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(data, shape), device)
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
    use std::io::Cursor;
    use std::path::{Path, PathBuf};

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

    /// Max and mean |ours - reference|, and how many values do not round to
    /// the reference's f16 exactly.
    fn compare(ours: &[f32], reference: &[f32]) -> (f32, f64, usize) {
        assert_eq!(ours.len(), reference.len());
        let (mut max, mut sum, mut mismatches) = (0f32, 0f64, 0);
        for (&a, &b) in ours.iter().zip(reference) {
            let d = (a - b).abs();
            max = max.max(d);
            sum += d as f64;
            if half::f16::from_f32(a).to_f32() != b {
                mismatches += 1;
            }
        }
        (max, sum / ours.len() as f64, mismatches)
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
            assert_eq!(ours.len(), 3 * 224 * 224);
            let (max, _, mismatches) = compare(&ours, &reference(&st, &name));
            // Measured on all 7 PNGs: every value rounds to the stored f16
            // exactly (the resized u8 images are identical to Pillow's); the
            // max |diff| of 0.000886 is the reference's f16 quantisation.
            assert_eq!(mismatches, 0, "{name}: {mismatches} values differ");
            assert!(max <= 0.02, "{name}: max abs diff {max}");
        }
    }

    #[test]
    fn resize_of_pillow_decoded_jpeg_matches_exactly() {
        // The fixture stores Pillow's decoded JPEG pixels: resizing those must
        // reproduce the reference exactly, isolating decoder differences.
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        for name in image_names(".jpg") {
            let d = st
                .tensor(&format!("{name}.decoded_uint8_hwc"))
                .expect("decoded");
            let (h, w) = (d.shape()[0] as u32, d.shape()[1] as u32);
            let img = RgbImage::from_raw(w, h, d.data().to_vec()).expect("hwc");
            let (_, _, mismatches) = compare(&t.apply(&img), &reference(&st, &name));
            assert_eq!(mismatches, 0, "{name}: {mismatches} values differ");
        }
    }

    /// With libjpeg-turbo, JPEG files through the whole test transform equal torchvision's
    /// output exactly, as PNG files do.
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn jpeg_matches_torchvision_exactly_with_turbojpeg() {
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        for name in image_names(".jpg") {
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("load");
            let (_, _, mismatches) = compare(&t.apply(&img), &reference(&st, &name));
            assert_eq!(mismatches, 0, "{name}: {mismatches} values differ");
        }
    }

    #[test]
    fn jpeg_within_decoder_tolerance() {
        // zune-jpeg (via `image`) and Pillow's libjpeg-turbo differ by up to
        // 5 levels on ~27% of decoded pixels (IDCT / chroma upsampling), mean
        // 0.36 levels. Measured after the transform: max |diff| 0.0440-0.0582
        // (<= 4 levels / (255 * std)), mean 0.0052-0.0063. Bounds: 6 levels
        // (6 / (255 * 0.2613) = 0.090) and a mean of 0.01.
        let bytes = expected_bytes();
        let st = SafeTensors::deserialize(&bytes).expect("parse safetensors");
        let t = TestTransform::default();
        let names = image_names(".jpg");
        assert_eq!(names.len(), 7);
        for name in names {
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("load");
            let (max, mean, _) = compare(&t.apply(&img), &reference(&st, &name));
            assert!(max <= 0.09 && mean <= 0.01, "{name}: max {max} mean {mean}");
        }
    }

    /// Deterministic noise-like test image (same formula as the Python
    /// generator of the hashes below).
    fn synth(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (x, y) = (x as u64, y as u64);
            image::Rgb(std::array::from_fn(|c| {
                (((x * x * 3 + y * 7 + x * y * 5 + c as u64 * 101) ^ (y * y * 11)) & 255) as u8
            }))
        })
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    #[test]
    fn matches_pillow_13_on_synthetic_images() {
        // FNV-1a hashes of Pillow 13.0.0 outputs on `synth` images. Covers
        // both pass orders (Pillow resizes vertically first when the height
        // shrinks by more than twice as many pixels as the width), upscaling,
        // crop-then-resize (torchvision `resized_crop`) and the test transform.
        let resize = [
            ((60, 400), (40, 100), 0xe025_1bb0_9a8e_d113u64), // vertical first
            ((50, 300), (80, 120), 0x4cc8_7363_967e_96d5),    // vertical first
            ((300, 50), (100, 40), 0x2f83_fd36_0dc8_909e),
            ((33, 47), (224, 224), 0x70ef_512e_9297_7a3e),
        ];
        for ((w, h), (ow, oh), hash) in resize {
            let out = resize_bicubic(&synth(w, h), ow, oh);
            assert_eq!(fnv1a(out.as_raw()), hash, "{w}x{h} -> {ow}x{oh}");
        }
        let crops = [
            (
                CropBox {
                    left: 13,
                    top: 7,
                    width: 40,
                    height: 120,
                },
                0xde8f_64cd_0b06_123eu64,
            ),
            (
                CropBox {
                    left: 50,
                    top: 20,
                    width: 150,
                    height: 60,
                },
                0x7c1f_7455_3a10_b5d9,
            ),
        ];
        for (crop, hash) in crops {
            let out = resized_crop(&synth(200, 150), crop, 64, 64);
            assert_eq!(fnv1a(out.as_raw()), hash, "{crop:?}");
        }
        let tests = [
            ((300, 1000), 0xa5d2_55ff_dbc5_035cu64), // vertical first
            ((640, 427), 0xc472_5f46_c29b_ebfb),
            ((97, 131), 0xa682_3302_fc01_80c0),
        ];
        for ((w, h), hash) in tests {
            let img = synth(w, h);
            let out = TestTransform::new(224).apply_rgb(&img);
            assert_eq!(fnv1a(out.as_raw()), hash, "test transform {w}x{h}");
            // The windowed computation equals resize-then-crop.
            assert_eq!(out, center_crop(&resize_shorter_side(&img, 224), 224));
        }
    }

    #[test]
    fn resize_output_sizes_and_identity() {
        assert_eq!(shorter_side_size(500, 375, 224), (298, 224));
        assert_eq!(shorter_side_size(97, 131, 224), (224, 302));
        assert_eq!(shorter_side_size(225, 224, 224), (225, 224));
        assert_eq!(shorter_side_size(0, 10, 224), (0, 0));
        let img = synth(31, 17);
        assert_eq!(resize_bicubic(&img, 31, 17), img);
        let r = resize_bicubic(&img, 5, 40);
        assert_eq!(r.dimensions(), (5, 40));
        assert_eq!(resize_bicubic(&img, 0, 3).dimensions(), (0, 3));
        assert_eq!(
            resize_bicubic(&RgbImage::new(0, 0), 4, 4).dimensions(),
            (4, 4)
        );
    }

    #[test]
    fn center_crop_rounds_half_to_even_and_pads() {
        let img = synth(227, 225);
        // left = round(1.5) = 2, top = round(0.5) = 0.
        let c = center_crop(&img, 224);
        assert_eq!(c.get_pixel(0, 0), img.get_pixel(2, 0));
        let img = synth(225, 224);
        assert_eq!(center_crop(&img, 224).get_pixel(0, 0), img.get_pixel(0, 0));
        // Too small: zero padding, left/top pad = (crop - len) // 2.
        let img = synth(3, 4);
        let c = center_crop(&img, 8);
        assert_eq!(c.dimensions(), (8, 8));
        assert_eq!(c.get_pixel(2, 2), img.get_pixel(0, 0));
        assert_eq!(c.get_pixel(1, 2), &image::Rgb([0, 0, 0]));
        assert_eq!(c.get_pixel(4, 5), img.get_pixel(2, 3));
        assert_eq!(c.get_pixel(5, 6), &image::Rgb([0, 0, 0]));
    }

    #[test]
    fn normalisation_layout() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 255, 0, 128]));
        let n = Normalize::default();
        let v = to_chw_normalized(&img, &n);
        assert_eq!(v.len(), 6);
        assert_eq!(v[0], (0.0 - CLIP_MEAN[0]) / CLIP_STD[0]);
        assert_eq!(v[1], (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]);
        assert_eq!(v[2], (0.0 - CLIP_MEAN[1]) / CLIP_STD[1]);
        assert_eq!(v[5], (128.0 / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2]);
    }

    fn encode_png(img: image::DynamicImage) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)
            .expect("encode");
        buf.into_inner()
    }

    #[test]
    fn grayscale_and_rgba_inputs_are_converted() {
        let gray = image::GrayImage::from_fn(5, 4, |x, y| image::Luma([(x * 40 + y) as u8]));
        let rgb = decode_rgb(&encode_png(gray.into()), Path::new("gray.png")).expect("gray");
        assert_eq!(rgb.dimensions(), (5, 4));
        assert_eq!(rgb.get_pixel(3, 2), &image::Rgb([122, 122, 122]));

        let rgba = image::RgbaImage::from_fn(6, 3, |x, y| image::Rgba([x as u8, y as u8, 7, 0]));
        let rgb = decode_rgb(&encode_png(rgba.into()), Path::new("rgba.png")).expect("rgba");
        // Alpha is dropped, not composited (Pillow's convert("RGB")).
        assert_eq!(rgb.get_pixel(5, 2), &image::Rgb([5, 2, 7]));

        // 2-bit palette PNG with a transparent entry, written by Pillow 13;
        // Pillow's convert("RGB") gives the palette colours, ignoring tRNS.
        const PALETTE_PNG: &str =
            "89504e470d0a1a0a0000000d4948445200000003000000020203000000e01a8e89\
            0000000c504c5445ff000000ff000000ff0a141e228829040000000274524e53ff00e5b7304a0000000c49\
            444154789c639060780200013000fd56cd1c730000000049454e44ae426082";
        let hex: Vec<u8> = PALETTE_PNG
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let bytes: Vec<u8> = hex
            .chunks_exact(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
            .collect();
        let rgb = decode_rgb(&bytes, Path::new("palette.png")).expect("palette");
        let px: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        let expected = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [10, 20, 30],
            [0, 0, 255],
            [0, 255, 0],
        ];
        assert_eq!(px, expected);

        let la = image::GrayAlphaImage::from_fn(2, 2, |_, _| image::LumaA([9, 100]));
        let rgb = decode_rgb(&encode_png(la.into()), Path::new("la.png")).expect("la");
        assert_eq!(rgb.get_pixel(1, 1), &image::Rgb([9, 9, 9]));
        assert_eq!(TestTransform::new(8).apply(&rgb).len(), 3 * 8 * 8);
    }

    #[test]
    fn corrupt_and_missing_files_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("broken.png");
        let mut bytes = encode_png(synth(16, 16).into());
        bytes.truncate(40);
        std::fs::write(&bad, &bytes).expect("write");
        let err = load_rgb(&bad).expect_err("corrupt png");
        assert!(matches!(err, PreprocessError::Decode { .. }));
        assert!(err.to_string().contains("broken.png"), "{err}");

        let junk = dir.path().join("junk.jpg");
        std::fs::write(&junk, b"definitely not an image").expect("write");
        let err = load_rgb(&junk).expect_err("junk");
        assert!(err.to_string().contains("junk.jpg"), "{err}");

        let missing = dir.path().join("missing.png");
        let err = load_rgb(&missing).expect_err("missing");
        assert!(matches!(err, PreprocessError::Io { .. }));
        assert!(err.to_string().contains("missing.png"), "{err}");
    }

    #[test]
    fn train_transform_is_deterministic_per_seed() {
        let img = synth(300, 200);
        let t = TrainTransform::default();
        let a = t.apply(&img, &mut StdRng::seed_from_u64(7));
        let b = t.apply(&img, &mut StdRng::seed_from_u64(7));
        assert_eq!(a.len(), 3 * 224 * 224);
        assert_eq!(a, b);
        let c = t.apply(&img, &mut StdRng::seed_from_u64(8));
        assert_ne!(a, c);
        // Always flipping mirrors the never-flipped output.
        let flip = TrainTransform {
            flip_prob: 1.0,
            ..t.clone()
        };
        let keep = TrainTransform {
            flip_prob: 0.0,
            ..t
        };
        let f = flip.apply_rgb(&img, &mut StdRng::seed_from_u64(3));
        let k = keep.apply_rgb(&img, &mut StdRng::seed_from_u64(3));
        assert_eq!(f, image::imageops::flip_horizontal(&k));
    }

    #[test]
    fn random_crop_boxes_stay_inside() {
        let sizes = [
            (1, 1),
            (1, 100),
            (100, 1),
            (2, 3),
            (97, 131),
            (500, 375),
            (4000, 30),
        ];
        for (w, h) in sizes {
            for seed in 0..500 {
                let mut rng = StdRng::seed_from_u64(seed);
                let b = random_resized_crop_box(w, h, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
                assert!(b.width > 0 && b.height > 0, "{w}x{h} {b:?}");
                assert!(
                    b.left + b.width <= w && b.top + b.height <= h,
                    "{w}x{h} {b:?}"
                );
            }
        }
    }

    #[test]
    fn random_crop_fallback_is_central_and_ratio_clamped() {
        // An unreachable scale forces torchvision's fallback.
        let mut rng = StdRng::seed_from_u64(0);
        let r = (0.75, 4.0 / 3.0);
        // in_ratio 4 > 4/3: h = 100, w = round(100 * 4/3) = 133, centred.
        let b = random_resized_crop_box(400, 100, (2.0, 3.0), r, &mut rng);
        assert_eq!(
            b,
            CropBox {
                left: 133,
                top: 0,
                width: 133,
                height: 100
            }
        );
        // in_ratio 0.25 < 3/4: w = 100, h = round(100 / 0.75) = 133.
        let b = random_resized_crop_box(100, 400, (2.0, 3.0), r, &mut rng);
        assert_eq!(
            b,
            CropBox {
                left: 0,
                top: 133,
                width: 100,
                height: 133
            }
        );
        // Ratio inside the bounds: whole image.
        let b = random_resized_crop_box(120, 100, (2.0, 3.0), r, &mut rng);
        assert_eq!(b, CropBox::full(120, 100));
        // Degenerate parameters never panic or leave the image.
        let b = random_resized_crop_box(50, 40, (1.0, 1.0), (-1.0, f64::NAN), &mut rng);
        assert!(b.left + b.width <= 50 && b.top + b.height <= 40);
        let b = random_resized_crop_box(0, 0, (0.08, 1.0), r, &mut rng);
        assert_eq!((b.width, b.height), (0, 0));
    }
}
