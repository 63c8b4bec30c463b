//! The error type of maple-prompts.

use std::path::PathBuf;

/// Errors of prompt learners, checkpoints and imports.
#[derive(Debug, thiserror::Error)]
pub enum MapleError {
    /// Invalid configuration or argument.
    #[error("{0}")]
    Invalid(String),
    /// Error from CLIP (tokenizer, weights).
    #[error(transparent)]
    Clip(#[from] clip_model::ClipError),
    /// Tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] clip_model::tokenizer::TokenizerError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint is malformed, foreign or does not fit the model.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A loss, logit or parameter that is NaN or infinite.
    #[error("{what} is {value}: training diverged or the inputs hold NaN/inf; lower the learning rate or check the weights and data")]
    NonFinite {
        /// What was checked (e.g. `the loss`).
        what: String,
        /// The value found.
        value: f64,
    },
    /// A label outside the class list.
    #[error("label {label} but only {classes} classes")]
    Label {
        /// The label.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A reference (PyTorch) checkpoint could not be read.
    #[error(transparent)]
    Torch(#[from] crate::torch_pickle::TorchReadError),
}

/// Result alias.
pub type Result<T, E = MapleError> = std::result::Result<T, E>;
