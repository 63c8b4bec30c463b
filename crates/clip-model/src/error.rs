//! The error type of the clip-model crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running CLIP from user input.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A safetensors file is malformed or truncated.
    #[error("{path} is not a valid safetensors file (truncated or corrupt?): {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A tensor the model needs is not in the weights.
    #[error("{path}: missing tensor `{key}` (expected shape {expected})")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The key (OpenAI naming, or the file's own for a Hugging Face q/k/v projection).
        key: String,
        /// The shape the model expects, e.g. `[512, 768]` or `[width, 3, patch, patch]`.
        expected: String,
    },
    /// A tensor has a shape no CLIP can have (it defines the architecture, so there is no
    /// single expected shape: the rule it breaks is given).
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected}")]
    InvalidTensor {
        /// The weights file.
        path: PathBuf,
        /// The key (OpenAI naming).
        key: String,
        /// The rule, e.g. `[1 + grid^2, width] with grid >= 1`.
        expected: String,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity (after conversion to f32).
    #[error("{path}: tensor `{key}` holds a non-finite value {value} at flat index {index}")]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The key, in the file's own naming.
        key: String,
        /// Row-major index of the first non-finite element.
        index: usize,
        /// That element.
        value: f32,
    },
    /// The weights hold tensors the model does not use.
    #[error("{path}: unexpected tensor(s) not used by the model: {keys:?}")]
    UnexpectedTensors {
        /// The weights file.
        path: PathBuf,
        /// The unused keys.
        keys: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype that cannot be converted to f32.
    #[error("{path}: tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The weights file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The dtype name.
        dtype: String,
    },
    /// The architecture cannot be inferred or is not supported.
    #[error("{path}: {message}")]
    Config {
        /// The weights or config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Weights could not be resolved on the Hugging Face hub or its cache.
    #[error("hub model `{repo}`: {message}")]
    Hub {
        /// The repository id.
        repo: String,
        /// What went wrong.
        message: String,
    },
    /// Tokenization failed.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// Image preprocessing failed.
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    /// Invalid argument to an API.
    #[error("{0}")]
    Invalid(String),
    /// The backend cannot compute in the requested precision on this device.
    #[error("precision {precision} is not supported by backend {backend} on this device: {hint}")]
    UnsupportedPrecision {
        /// The precision asked for.
        precision: crate::Precision,
        /// The backend's name (`Backend::name`).
        backend: String,
        /// What to use instead.
        hint: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = ClipError> = std::result::Result<T, E>;
