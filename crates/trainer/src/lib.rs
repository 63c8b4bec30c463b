//! Training loop, evaluation, the MaPLe protocols and the `maple` command-line tool.
//!
//! - [`config`]: run configurations (the reference's hyper-parameters; `configs/*.json`).
//! - [`data`]: the [`BatchSource`] abstraction over file-backed datasets and the
//!   procedural world, and batch-to-tensor conversion.
//! - [`train`]: the training loop with per-epoch learner-only checkpoints and resuming.
//! - [`eval`]: top-1 accuracy of prompted or zero-shot CLIP, text features encoded once.
//! - [`protocol`]: base-to-novel, cross-dataset, domain generalisation, checkpoint
//!   evaluation (including the reference's released weights), zero-shot.
//! - [`results`]: per-seed results, seed means, HM, averages, JSON and text tables.
//! - [`observer`]: progress events (the binary draws bars from them) and the run log.
//! - [`procedural`]: the procedural world as batch sources.
//! - [`backend`]: the backend chosen by cargo feature (for binaries, examples, tests).
//!
//! Everything is generic over the Burn backend; nothing here prints.
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod observer;
pub mod procedural;
pub mod protocol;
pub mod results;
pub mod train;

pub use config::RunConfig;
pub use data::{BatchSource, LabelledSet};
pub use error::{Result, TrainerError};
pub use eval::{evaluate_prompted, evaluate_zero_shot, Accuracy};
pub use observer::{Event, Observer, RunLog, Silent};
pub use protocol::{Context, ImportSpec};
pub use results::{SeedResult, Summary};
pub use train::{train, Backbone, EpochStats, TrainRequest, Trained};
