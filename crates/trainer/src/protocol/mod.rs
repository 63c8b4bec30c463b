//! The reference protocols (`docs/PROTOCOL.md` §6, §7) for any prompt method, on top of
//! [`crate::train::train`] and the evaluation functions:
//!
//! - [`base_to_novel()`]: per dataset and seed, train on the base classes (16 shots),
//!   test on the base classes, then rebuild the prompts from the novel class names with
//!   the trained learner and test on the novel classes;
//! - [`cross_dataset()`]: cross-dataset transfer and domain generalisation: train on
//!   ImageNet (all classes, 16 shots), test on other datasets with all their classes;
//! - [`train_and_test`] (one dataset, one class subsample) and [`evaluate_checkpoints`]
//!   (saved or reference checkpoints; the `import` argument of the protocols too);
//! - [`zero_shot()`]: zero-shot CLIP with the reference's per-dataset templates;
//! - [`procedural`]: base-to-novel on the procedural world (no download).
//!
//! Each seed runs in its own folder `<output>/<dataset>/seed<S>/` (see [`run`]); the
//! output folder holds `log.txt` and the summary `results.json` / `results.txt`. Output
//! and run folders are locked while in use ([`crate::lock`]).

pub mod base_to_novel;
pub mod import;
pub mod procedural;
pub mod run;
pub mod sets;
pub mod single;
pub mod transfer;
pub mod zero_shot;

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use datasets::{Dataset, DatasetName};

pub use base_to_novel::base_to_novel;
pub use import::ImportSpec;
pub use procedural::{
    demo_config, demo_world, procedural_base_to_novel, procedural_train_and_test,
    procedural_zero_shot, DEMO_EPOCH_FACTOR, PROCEDURAL,
};
pub use run::{run_seed, EvalSpec, LearnerFrom};
pub use single::{evaluate_checkpoints, train_and_test};
pub use transfer::{cross_dataset, CROSS_DATASET_TARGETS, DOMAIN_GENERALISATION_TARGETS};
pub use zero_shot::{zero_shot, ZeroShotSets};

use crate::config::RunConfig;
use crate::error::Result;
use crate::observer::{Event, Observer, RunLog};
use crate::results::{Protocol, Summary, SummaryRow};
use crate::train::Backbone;

/// What every run of a command shares.
pub struct Context<'a, B: AutodiffBackend> {
    /// The frozen CLIP.
    pub backbone: &'a Backbone<B>,
    /// Hyper-parameters, with the prompt method.
    pub config: &'a RunConfig,
    /// Root of the outputs of this command.
    pub output_dir: PathBuf,
    /// Stop (resumably) once this many epochs are done in a run.
    pub stop_after: Option<usize>,
    /// Backend and device, for the summaries.
    pub device: String,
}

/// Opens `name` under `root`, reporting it.
pub fn open_dataset(
    root: &Path,
    name: DatasetName,
    observer: &mut dyn Observer,
) -> Result<Dataset> {
    let _ = observer.event(&Event::Message(&format!(
        "opening {name} under {}",
        root.display()
    )));
    Ok(Dataset::open(name, root)?)
}

/// The summary of a protocol run of the context's method: written to the output folder
/// and logged.
fn method_summary<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: Protocol,
    rows: Vec<SummaryRow>,
    log: &mut RunLog<'_>,
) -> Result<Summary> {
    let summary = Summary::new(
        protocol,
        ctx.config.learner.method().as_str(),
        &ctx.config.name,
        &ctx.backbone.origin,
        &ctx.device,
        rows,
    );
    summary.write(&ctx.output_dir)?;
    log.line(&summary.table());
    Ok(summary)
}
