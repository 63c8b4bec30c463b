//! The crate's error type: what went wrong, with the file, setting or run at fault.

use std::path::PathBuf;

/// Everything training, evaluation and the protocols can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// A configuration value or argument that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// A configuration file that does not parse or has unknown fields.
    #[error("config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An output folder holds a run made with other settings, so it cannot be resumed.
    #[error(
        "{dir} holds a run made with other settings ({what}); use another --output-dir, or delete that folder to start over"
    )]
    RunMismatch {
        /// The run folder.
        dir: PathBuf,
        /// Which setting differs, with both values.
        what: String,
    },
    /// An output folder is in use by another live run.
    #[error(
        "{dir} is in use by another running maple process (it holds {dir}/.maple.lock); wait for it to finish or use another --output-dir"
    )]
    Locked {
        /// The folder.
        dir: PathBuf,
    },
    /// Training stopped on request (an observer or `stop_after`) after `completed` epochs;
    /// running the same command again continues from there.
    #[error("stopped after epoch {completed} of {total} as asked; run the same command again to continue")]
    Stopped {
        /// Epochs completed and checkpointed.
        completed: usize,
        /// Epochs the run has in total.
        total: usize,
    },
    /// A training step or an evaluation failed at a known place (non-finite loss or
    /// logits, a bad label, ...).
    #[error("{place}: {source}")]
    At {
        /// Where: epoch and batch, or the evaluation's name and batch.
        place: String,
        /// What went wrong (boxed: keeps every `Result` of this crate small).
        #[source]
        source: Box<maple_prompts::MapleError>,
    },
    /// CLIP (weights, tokenizer).
    #[error(transparent)]
    Clip(#[from] clip_model::ClipError),
    /// Prompt learner, checkpoints.
    #[error(transparent)]
    Maple(#[from] maple_prompts::MapleError),
    /// Dataset reading, sampling, decoding.
    #[error(transparent)]
    Dataset(#[from] datasets::DatasetError),
    /// The CLIP tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] clip_model::tokenizer::TokenizerError),
}

/// Result alias.
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

/// Wraps an I/O error with its path.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainerError {
    let path = path.into();
    move |source| TrainerError::Io { path, source }
}
