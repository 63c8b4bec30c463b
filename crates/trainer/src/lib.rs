//! Training loop, evaluation, the MaPLe protocols and their results, as a library: the
//! `maple` command is the `maple-cli` crate, the terminal UI `maple-ui`.
//!
//! - [`config`]: run configurations (the reference's hyper-parameters; `configs/*.json`).
//! - [`data`]: the [`BatchSource`] abstraction over file-backed datasets and the
//!   procedural world, and batch-to-tensor conversion.
//! - [`train`](mod@train): the training loop, generic over the prompt learner, with per-epoch
//!   learner-only checkpoints and resuming.
//! - [`eval`]: top-1 accuracy of prompted or zero-shot CLIP (text features encoded once
//!   unless the learner conditions them on the image).
//! - [`stats`]: accuracy and epoch statistics, shared by the modules below.
//! - [`lock`]: advisory locks on output folders.
//! - [`protocol`]: base-to-novel, cross-dataset, domain generalisation, checkpoint
//!   evaluation (including the reference's released weights), zero-shot, for any method.
//! - [`results`]: per-seed results, seed means, HM, averages, JSON and text tables.
//! - [`observer`]: progress events (the binary draws bars from them) and the run log.
//! - [`procedural`]: the procedural world as batch sources.
//!
//! Everything is generic over the Burn backend; nothing here prints.
#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod lock;
pub mod observer;
pub mod procedural;
pub mod protocol;
pub mod results;
pub mod stats;
pub mod train;

pub use config::RunConfig;
pub use data::{BatchSource, LabelledSet};
pub use error::{Result, TrainerError};
pub use eval::{evaluate_prompted, evaluate_zero_shot};
pub use observer::{Event, Observer, RunLog, Silent};
pub use protocol::{Context, ImportSpec};
pub use results::{ClassSet, Protocol, SeedResult, Summary};
pub use stats::{Accuracy, EpochStats};
pub use train::{train, Backbone, TrainRequest, Trained};
