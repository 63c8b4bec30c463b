//! The `torch.save` zip container: finding `data.pkl`, reading records with their sizes
//! checked before anything is inflated.
//!
//! Sizes in a zip directory are claims. Before a record is read this module checks that its
//! compressed bytes lie inside the file, that its declared size is what the reader expects
//! (a storage record holds exactly `numel * itemsize` bytes of the storage that names it), and,
//! for compressed records, that the expansion is possible for deflate and fits the archive's
//! inflation allowance ([`MAX_INFLATED_EXTRA`]: `torch.save` stores records uncompressed, so
//! a real checkpoint never uses it). Reading then stops one byte past the declared size, so a
//! record can never produce more bytes than were checked.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::TorchReadError;

/// How many bytes decompressing all the records of one archive may add beyond their
/// compressed sizes. `torch.save` writes stored (uncompressed) records, so this only matters
/// for archives re-zipped by other tools; it bounds what a small "zip bomb" can expand to.
pub const MAX_INFLATED_EXTRA: u64 = 256 << 20;
/// Largest `data.pkl` accepted (torch pickles hold metadata only: a few MiB at most for
/// the largest models).
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// Deflate cannot expand data by more than about 1032:1.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// An open checkpoint archive.
pub(super) struct Archive {
    zip: ::zip::ZipArchive<File>,
    path: PathBuf,
    file_len: u64,
    /// What is left of [`MAX_INFLATED_EXTRA`].
    inflate_left: u64,
}

impl Archive {
    pub(super) fn open(path: &Path) -> Result<Self, TorchReadError> {
        let io = |source| TorchReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let zip = ::zip::ZipArchive::new(file).map_err(|e| TorchReadError::NotZip {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            zip,
            path: path.to_path_buf(),
            file_len,
            inflate_left: MAX_INFLATED_EXTRA,
        })
    }

    /// `<prefix>/data.pkl` with a single top-level folder (torch's layout), or `data.pkl` at
    /// the root; returns the record name.
    pub(super) fn pickle_name(&self) -> Result<String, TorchReadError> {
        self.zip
            .file_names()
            .filter(|n| {
                *n == "data.pkl"
                    || n.strip_suffix("/data.pkl")
                        .is_some_and(|p| !p.is_empty() && !p.contains('/'))
            })
            .min_by_key(|n| n.len())
            .map(str::to_string)
            .ok_or_else(|| TorchReadError::MissingRecord {
                path: self.path.clone(),
                name: "*/data.pkl".into(),
            })
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    fn record_err(&self, name: &str, msg: String) -> TorchReadError {
        TorchReadError::Record {
            path: self.path.clone(),
            name: name.to_string(),
            msg,
        }
    }

    /// Reads a bookkeeping record or the pickle: any size up to `max` bytes.
    pub(super) fn read_small(&mut self, name: &str, max: u64) -> Result<Vec<u8>, TorchReadError> {
        self.read(name, SizeRule::AtMost(max))
    }

    /// Reads storage record `name`, which must hold exactly `expected` bytes
    /// (`numel * itemsize` of the storage naming it; `what` describes that storage).
    pub(super) fn read_storage(
        &mut self,
        name: &str,
        expected: u64,
        what: &str,
    ) -> Result<Vec<u8>, TorchReadError> {
        self.read(
            name,
            SizeRule::Exactly {
                bytes: expected,
                what,
            },
        )
    }

    /// Checks the record's directory entry (its declared size against `rule`), then reads it.
    fn read(&mut self, name: &str, rule: SizeRule<'_>) -> Result<Vec<u8>, TorchReadError> {
        let path = self.path.clone();
        let file_len = self.file_len;
        let record_err = |msg: String| TorchReadError::Record {
            path: path.clone(),
            name: name.to_string(),
            msg,
        };
        let mut file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(::zip::result::ZipError::FileNotFound) => {
                return Err(TorchReadError::MissingRecord {
                    path: self.path.clone(),
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(record_err(e.to_string())),
        };
        let size = file.size();
        let compressed = file.compressed_size();
        if !rule.accepts(size) {
            return Err(record_err(rule.refusal(size)));
        }
        let end = file.data_start().saturating_add(compressed);
        if end > file_len {
            return Err(record_err(format!(
                "record data ends at byte {end}, past the end of the {file_len}-byte file"
            )));
        }
        if file.compression() == ::zip::CompressionMethod::Stored {
            if compressed != size {
                return Err(record_err(format!(
                    "stored record declares {size} bytes but occupies {compressed}"
                )));
            }
        } else {
            let extra = size.saturating_sub(compressed);
            if size
                > compressed
                    .saturating_mul(DEFLATE_MAX_RATIO)
                    .saturating_add(64)
            {
                return Err(record_err(format!(
                    "record declares {size} bytes from {compressed} compressed bytes: \
                     more than deflate can expand"
                )));
            }
            if extra > self.inflate_left {
                return Err(record_err(format!(
                    "decompressing it would expand the archive by more than {} MiB in total \
                     (torch.save stores records uncompressed; a zip bomb?)",
                    MAX_INFLATED_EXTRA >> 20
                )));
            }
            self.inflate_left -= extra;
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(size as usize)
            .map_err(|e| record_err(format!("cannot allocate {size} bytes: {e}")))?;
        // One byte past the declared size, so the zip reader reaches the end of the record and
        // verifies its CRC (and a record longer than declared is noticed).
        (&mut file)
            .take(size.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| record_err(e.to_string()))?;
        if buf.len() as u64 != size {
            return Err(record_err(format!(
                "record is {} bytes, header says {size}",
                buf.len()
            )));
        }
        Ok(buf)
    }

    /// The error for a record that exists but is wrong (used by callers for semantic checks).
    pub(super) fn error(&self, name: &str, msg: String) -> TorchReadError {
        self.record_err(name, msg)
    }
}

/// The size a record's directory entry must declare.
#[derive(Debug, Clone, Copy)]
enum SizeRule<'a> {
    /// Bookkeeping records and the pickle: any size up to the limit.
    AtMost(u64),
    /// A storage: exactly `numel * itemsize` bytes of the storage `what` describes.
    Exactly { bytes: u64, what: &'a str },
}

impl SizeRule<'_> {
    fn accepts(self, size: u64) -> bool {
        match self {
            SizeRule::AtMost(max) => size <= max,
            SizeRule::Exactly { bytes, .. } => size == bytes,
        }
    }

    /// Why a record declaring `size` bytes is refused (for [`TorchReadError::Record`]).
    fn refusal(self, size: u64) -> String {
        match self {
            SizeRule::AtMost(max) => {
                format!("record declares {size} bytes, more than the limit {max}")
            }
            SizeRule::Exactly { bytes, what } => {
                format!("record declares {size} bytes, but {what} needs exactly {bytes}")
            }
        }
    }
}
