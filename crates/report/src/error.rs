//! The crate's error type: what went wrong, with the file or folder at fault.

use std::path::PathBuf;

/// Everything reading results and writing a report can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The folder to read results from is not a folder.
    #[error("{path} is not a folder of results")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The folder holds no result file this crate can read.
    #[error("no results under {path}: looked for result.json (format {seed}) and results.json (format {summary}) in every sub-folder")]
    NoResults {
        /// The folder searched.
        path: PathBuf,
        /// The per-seed format looked for.
        seed: &'static str,
        /// The summary format looked for.
        summary: &'static str,
    },
    /// A result file that is not valid JSON or lacks a field its format requires.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A maple-burn result file of a format version this crate does not know.
    #[error("{path}: unsupported result format {format:?} (this report reads {known})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The `format` field found.
        format: String,
        /// The formats this crate reads.
        known: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {source}")]
    Plot {
        /// The image being drawn.
        path: PathBuf,
        /// What failed.
        #[source]
        source: PlotError,
    },
}

/// Why a figure could not be drawn ([`ReportError::Plot`] names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The embedded font could not be registered with plotters.
    #[error("the embedded DejaVu Sans font does not load")]
    Font,
    /// A plotters drawing call failed (its backend's error, as plotters prints it).
    #[error("drawing failed: {message}")]
    Draw {
        /// The backend's error.
        message: String,
    },
    /// The PNG encoder failed.
    #[error("encoding PNG: {message}")]
    EncodePng {
        /// The encoder's error.
        message: String,
    },
}

/// `Result` with [`ReportError`].
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Maps an I/O error to [`ReportError::Io`] naming `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}
