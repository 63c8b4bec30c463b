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
    #[error("{path}: missing tensor `{key}` (expected shape {expected:?})")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The key, in the file's own naming.
        key: String,
        /// The shape the model expects.
        expected: Vec<usize>,
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
}

/// Result alias for this crate.
pub type Result<T, E = ClipError> = std::result::Result<T, E>;
