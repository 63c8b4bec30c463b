//! Image decoding to 8-bit RGB, as Pillow's `Image.open(path).convert("RGB")`: the one
//! decode function every image of this workspace goes through ([`load_rgb`] / [`decode_rgb`]).
//!
//! * **JPEG** with the `turbojpeg` feature: libjpeg-turbo (the library inside Pillow, built
//!   from source by the `turbojpeg` crate), with Pillow's settings (accurate integer IDCT,
//!   fancy upsampling): the pixels equal Pillow's byte for byte. Without the feature the
//!   pure-Rust zune-jpeg (through `image`) decodes; it differs from libjpeg-turbo by up to 5
//!   levels on about a quarter of the pixels (IDCT and chroma upsampling rounding), which is
//!   more than the reference's preprocessing tolerance. CMYK/YCCK JPEGs always use the
//!   pure-Rust path (libjpeg-turbo cannot convert them to RGB; Pillow does it itself).
//! * **Other formats** (PNG, ...): the `image` crate, converted like Pillow's
//!   `convert("RGB")` (grayscale replicated, alpha dropped, palettes expanded). EXIF
//!   orientation is ignored, as in PIL/torchvision. 16-bit images are reduced to 8 bits by the
//!   `image` crate (`v / 257`, rounded), which is not what Pillow does for `I;16`; such inputs
//!   are rare in datasets.
//!
//! What Pillow refuses is refused with both JPEG decoders: a JPEG whose data ends before its
//! end-of-image marker (truncated: Pillow raises "image file is truncated"; libjpeg-turbo and
//! zune-jpeg would silently fill the rest) is [`PreprocessError::Truncated`]. What Pillow only
//! warns about is accepted: bytes after the end-of-image marker, stray bytes between markers,
//! corrupt entropy data followed by a marker. Images larger than Pillow's decompression-bomb
//! limit ([`MAX_IMAGE_PIXELS`]) are refused from their header, before any pixel buffer is
//! allocated.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::RgbImage;

/// Most pixels an image may have: Pillow's `DecompressionBombError` threshold
/// (`2 * Image.MAX_IMAGE_PIXELS`, `2 * 89_478_485`). Checked from the header, before decoding.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// Errors from reading or decoding an image file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// libjpeg-turbo refused the JPEG (corrupt data it cannot decode).
    #[error("cannot decode JPEG {}: {message}", path.display())]
    Jpeg {
        /// The file (or archive member name) that failed.
        path: PathBuf,
        /// libjpeg-turbo's message.
        message: String,
    },
    /// A JPEG ends before its end-of-image marker (Pillow: "image file is truncated").
    #[error("JPEG {} is truncated: {detail} (Pillow refuses it too)", path.display())]
    Truncated {
        /// The file (or archive member name) that failed.
        path: PathBuf,
        /// Where the data ran out.
        detail: String,
    },
    /// The header declares more pixels than [`MAX_IMAGE_PIXELS`].
    #[error(
        "image {} is {width}x{height} pixels, more than the limit of {limit} (a decompression bomb?)",
        path.display()
    )]
    TooLarge {
        /// The file (or archive member name).
        path: PathBuf,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit, [`MAX_IMAGE_PIXELS`].
        limit: u64,
    },
}

/// Reads and decodes an image file (format guessed from its content) and
/// converts it to 8-bit RGB, like `PIL.Image.open(path).convert("RGB")`.
///
/// # Errors
/// Any [`PreprocessError`], naming `path`.
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
/// Any [`PreprocessError`] but `Io`, naming `origin`: unknown format, corrupt or truncated
/// data, too many pixels.
pub fn decode_rgb(bytes: &[u8], origin: &Path) -> Result<RgbImage, PreprocessError> {
    if is_jpeg(bytes) {
        check_jpeg_complete(bytes).map_err(|end| PreprocessError::Truncated {
            path: origin.to_path_buf(),
            detail: end.to_string(),
        })?;
        #[cfg(feature = "turbojpeg")]
        if let Some(img) = turbo::decode(bytes, origin)? {
            return Ok(img);
        }
    }
    decode_with_image_crate(bytes, origin)
}

fn decode_with_image_crate(bytes: &[u8], origin: &Path) -> Result<RgbImage, PreprocessError> {
    let decode_err = |source| PreprocessError::Decode {
        path: origin.to_path_buf(),
        source,
    };
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(decode_err)
        .map(|(w, h)| (u64::from(w), u64::from(h)))?;
    check_pixels(width, height, origin)?;
    // `into_dimensions` consumed the reader: make a fresh one (header parsing is cheap). The
    // `image` crate's own allocation limit (512 MiB) stays in force as a second guard.
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    let img = reader.decode().map_err(decode_err)?;
    Ok(img.into_rgb8())
}

fn check_pixels(width: u64, height: u64, origin: &Path) -> Result<(), PreprocessError> {
    if width.saturating_mul(height) > MAX_IMAGE_PIXELS {
        return Err(PreprocessError::TooLarge {
            path: origin.to_path_buf(),
            width,
            height,
            limit: MAX_IMAGE_PIXELS,
        });
    }
    Ok(())
}

/// Whether the bytes start with a JPEG start-of-image marker.
fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Where a JPEG's data runs out before its end-of-image marker ([`check_jpeg_complete`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum JpegEnd {
    /// The marker walk reached the end of the data without an EOI.
    #[error("no end-of-image marker in {len} bytes")]
    NoEndMarker {
        /// Length of the data.
        len: usize,
    },
    /// The data ends inside a marker's length field.
    #[error("data ends inside the header of marker 0x{marker:02X} at byte {at}")]
    InMarkerHeader {
        /// The marker code.
        marker: u8,
        /// Offset of the marker's 0xFF.
        at: usize,
    },
    /// A marker segment declares more bytes than remain.
    #[error("marker 0x{marker:02X} at byte {at} declares {declared} bytes, {remaining} remain")]
    SegmentPastEnd {
        /// The marker code.
        marker: u8,
        /// Offset of the marker's 0xFF.
        at: usize,
        /// The segment length it declares.
        declared: usize,
        /// Bytes left after the marker code.
        remaining: usize,
    },
    /// Entropy-coded scan data reaches the end of the data.
    #[error("scan data runs to the end of the {len} bytes")]
    ScanPastEnd {
        /// Length of the data.
        len: usize,
    },
}

/// Walks the JPEG marker structure from SOI and checks that an end-of-image marker (EOI) is
/// reached before the data ends; `Err` says where it ran out.
///
/// Stray bytes between markers are skipped (libjpeg only warns about them); inside
/// entropy-coded data, `FF 00` stuffing, `FF FF` fill and restart markers `FF D0..D7` do not
/// end the segment. Bytes after EOI are ignored (Pillow ignores them too).
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), JpegEnd> {
    let n = bytes.len();
    let mut pos = 2; // after SOI
    loop {
        // Next marker: an 0xFF (any number of fill 0xFF) followed by a marker code.
        while pos < n && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < n && bytes[pos] == 0xFF {
            pos += 1;
        }
        if pos >= n {
            return Err(JpegEnd::NoEndMarker { len: n });
        }
        let marker = bytes[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            // TEM, RSTn (standalone), and 0x00 (a stuffed byte outside a scan: stray data).
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if pos + 2 > n {
            return Err(JpegEnd::InMarkerHeader {
                marker,
                at: pos - 2,
            });
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if len < 2 || pos + len > n {
            return Err(JpegEnd::SegmentPastEnd {
                marker,
                at: pos - 2,
                declared: len,
                remaining: n - pos,
            });
        }
        pos += len;
        if marker == 0xDA {
            // Entropy-coded data up to the next real marker.
            loop {
                while pos < n && bytes[pos] != 0xFF {
                    pos += 1;
                }
                if pos + 1 >= n {
                    return Err(JpegEnd::ScanPastEnd { len: n });
                }
                match bytes[pos + 1] {
                    0x00 | 0xD0..=0xD7 => pos += 2,
                    0xFF => pos += 1,
                    _ => break,
                }
            }
        }
    }
}

#[cfg(feature = "turbojpeg")]
#[allow(unsafe_code)] // FFI to libjpeg-turbo: every call checks its handle and return code.
mod turbo {
    //! libjpeg-turbo through the `turbojpeg` crate's raw TurboJPEG 3 API (the safe wrapper
    //! reports warnings as errors, and Pillow accepts what libjpeg only warns about).

    use std::os::raw::c_int;
    use std::path::Path;

    use image::RgbImage;
    use turbojpeg::raw;

    use super::{check_pixels, PreprocessError};

    /// An owned TurboJPEG decompressor handle.
    struct Handle(raw::tjhandle);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from tj3Init and is destroyed once.
            unsafe { raw::tj3Destroy(self.0) }
        }
    }

    impl Handle {
        /// After a call returned -1: `Ok` for a warning Pillow ignores (e.g. extraneous bytes
        /// before a marker), `Err` for an error or for running out of data.
        fn warning_or_error(&self, origin: &Path) -> Result<(), PreprocessError> {
            // SAFETY: valid handle.
            let code = unsafe { raw::tj3GetErrorCode(self.0) };
            let message = self.message();
            if code != raw::TJERR_TJERR_WARNING as c_int {
                return Err(PreprocessError::Jpeg {
                    path: origin.to_path_buf(),
                    message,
                });
            }
            if message.contains("Premature end of JPEG file") {
                return Err(PreprocessError::Truncated {
                    path: origin.to_path_buf(),
                    detail: message,
                });
            }
            log::debug!("{}: libjpeg-turbo warning: {message}", origin.display());
            Ok(())
        }

        fn message(&self) -> String {
            // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
            unsafe { std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(self.0)) }
                .to_string_lossy()
                .into_owned()
        }

        fn get(&self, param: raw::TJPARAM) -> i32 {
            // SAFETY: valid handle, plain integer query.
            unsafe { raw::tj3Get(self.0, param as c_int) }
        }
    }

    /// Decodes a JPEG to RGB with libjpeg-turbo; `Ok(None)` when libjpeg-turbo cannot produce
    /// RGB from it (CMYK/YCCK), so that the caller falls back to the pure-Rust decoder.
    pub(super) fn decode(bytes: &[u8], origin: &Path) -> Result<Option<RgbImage>, PreprocessError> {
        let err = |message: String| PreprocessError::Jpeg {
            path: origin.to_path_buf(),
            message,
        };
        // SAFETY: tj3Init has no preconditions; a null result is checked.
        let ptr = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if ptr.is_null() {
            return Err(err("cannot create a libjpeg-turbo decompressor".into()));
        }
        let h = Handle(ptr);
        // SAFETY: valid handle; `bytes` outlives the call.
        let rc = unsafe { raw::tj3DecompressHeader(h.0, bytes.as_ptr(), bytes.len() as _) };
        if rc != 0 {
            h.warning_or_error(origin)?;
        }
        let cs = h.get(raw::TJPARAM_TJPARAM_COLORSPACE) as u32;
        if cs == raw::TJCS_TJCS_CMYK || cs == raw::TJCS_TJCS_YCCK {
            return Ok(None);
        }
        if h.get(raw::TJPARAM_TJPARAM_LOSSLESS) == 1 || h.get(raw::TJPARAM_TJPARAM_PRECISION) != 8 {
            // 12/16-bit and lossless JPEGs: Pillow does not decode them either.
            return Err(err("only 8-bit lossy JPEGs are supported".into()));
        }
        let width = usize::try_from(h.get(raw::TJPARAM_TJPARAM_JPEGWIDTH)).unwrap_or(0);
        let height = usize::try_from(h.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT)).unwrap_or(0);
        check_pixels(width as u64, height as u64, origin)?;
        if width == 0 || height == 0 {
            return Err(err(format!("header declares a {width}x{height} image")));
        }
        let pitch = width * 3;
        let mut pixels = Vec::new();
        pixels
            .try_reserve_exact(pitch * height)
            .map_err(|e| err(format!("cannot allocate {width}x{height} RGB: {e}")))?;
        pixels.resize(pitch * height, 0u8);
        // SAFETY: `pixels` holds `pitch * height` bytes, the size of a `width x height` RGB
        // image with row pitch `pitch`; the handle and `bytes` are valid for the call.
        let rc = unsafe {
            raw::tj3Decompress8(
                h.0,
                bytes.as_ptr(),
                bytes.len() as _,
                pixels.as_mut_ptr(),
                pitch as c_int,
                raw::TJPF_TJPF_RGB,
            )
        };
        if rc != 0 {
            h.warning_or_error(origin)?;
        }
        RgbImage::from_raw(width as u32, height as u32, pixels)
            .map(Some)
            .ok_or_else(|| err("decoded buffer has the wrong size".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/preprocess")
    }

    fn jpeg_names() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(fixtures().join("images"))
            .expect("fixture images")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".jpg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fixture_jpegs_are_complete_and_truncations_are_refused_by_the_walk() {
        for name in jpeg_names() {
            let bytes = std::fs::read(fixtures().join("images").join(&name)).expect("read");
            assert_eq!(check_jpeg_complete(&bytes), Ok(()), "{name}");
            for cut in [3, 20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
                assert!(
                    check_jpeg_complete(&bytes[..cut]).is_err(),
                    "{name} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn truncated_jpeg_is_refused_naming_the_file() {
        let name = &jpeg_names()[0];
        let bytes = std::fs::read(fixtures().join("images").join(name)).expect("read");
        let dir = tempfile::tempdir().expect("tempdir");
        for cut in [bytes.len() / 2, bytes.len() - 2] {
            let p = dir.path().join(format!("cut{cut}.jpg"));
            std::fs::write(&p, &bytes[..cut]).expect("write");
            let e = load_rgb(&p).expect_err("truncated JPEG decoded");
            assert!(matches!(e, PreprocessError::Truncated { .. }), "{e:?}");
            assert!(e.to_string().contains(&format!("cut{cut}.jpg")), "{e}");
        }
    }

    #[test]
    fn trailing_and_stray_bytes_are_accepted_as_pillow_does() {
        let name = &jpeg_names()[0];
        let bytes = std::fs::read(fixtures().join("images").join(name)).expect("read");
        let clean = decode_rgb(&bytes, Path::new("clean.jpg")).expect("clean");
        // Garbage after EOI: ignored.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"extraneous trailing bytes \xff\xd8 junk");
        let t = decode_rgb(&trailing, Path::new("trailing.jpg")).expect("trailing bytes");
        assert_eq!(t, clean);
        // Stray bytes between two header segments (libjpeg warns "extraneous bytes before
        // marker"): the APP0 segment starts at byte 2.
        let app0_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        let at = 4 + app0_len;
        let mut stray = bytes[..at].to_vec();
        stray.extend_from_slice(b"\x00\x11\x22");
        stray.extend_from_slice(&bytes[at..]);
        let s = decode_rgb(&stray, Path::new("stray.jpg")).expect("stray bytes");
        assert_eq!(s, clean);
    }

    #[test]
    fn oversized_header_is_refused_before_decoding() {
        // A small PNG whose header is patched to declare 20000 x 20000 pixels.
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(RgbImage::new(4, 4))
            .write_to(&mut png, image::ImageFormat::Png)
            .expect("encode");
        let mut png = png.into_inner();
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_rgb(&png, Path::new("bomb.png")).expect_err("bomb");
        assert!(matches!(e, PreprocessError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("bomb.png"), "{e}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// With libjpeg-turbo the decoded pixels are Pillow's, byte for byte.
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn turbojpeg_decoding_equals_pillow_byte_for_byte() {
        let bytes = std::fs::read(fixtures().join("expected.safetensors")).expect("fixture");
        let st = SafeTensors::deserialize(&bytes).expect("safetensors");
        let names = jpeg_names();
        assert_eq!(names.len(), 7);
        for name in names {
            let want = st
                .tensor(&format!("{name}.decoded_uint8_hwc"))
                .expect("decoded pixels");
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("decode");
            assert_eq!(
                [img.height() as usize, img.width() as usize, 3],
                want.shape(),
                "{name}"
            );
            let differing = img
                .as_raw()
                .iter()
                .zip(want.data())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differing, 0, "{name}: {differing} bytes differ from Pillow");
        }
    }

    /// Without libjpeg-turbo the pure-Rust decoder is close to Pillow, not equal (the bound the
    /// README states: at most 5 levels).
    #[cfg(not(feature = "turbojpeg"))]
    #[test]
    fn pure_rust_jpeg_decoding_is_within_5_levels_of_pillow() {
        let bytes = std::fs::read(fixtures().join("expected.safetensors")).expect("fixture");
        let st = SafeTensors::deserialize(&bytes).expect("safetensors");
        for name in jpeg_names() {
            let want = st
                .tensor(&format!("{name}.decoded_uint8_hwc"))
                .expect("decoded pixels");
            let img = load_rgb(&fixtures().join("images").join(&name)).expect("decode");
            let max = img
                .as_raw()
                .iter()
                .zip(want.data())
                .map(|(&a, &b)| a.abs_diff(b))
                .max()
                .unwrap_or(0);
            assert!(max <= 5, "{name}: max difference {max} levels");
        }
    }
}
