//! The training loop: any prompt learner on a frozen CLIP, SGD with the reference's
//! per-epoch schedule, one [`PromptedClip::train_step`] per batch, a learner-only
//! checkpoint at the end of every epoch, and resuming.
//!
//! # Resuming
//! A checkpoint holds the learner, the SGD momentum, the completed epoch count and the
//! epoch history. Everything else a run depends on is re-derived: the learning rate from
//! the epoch, the batch order and augmentations from (seed, epoch, item) (see
//! [`crate::data`]), and the initial prompts from the backend seed, which only matters
//! before the first checkpoint. A run stopped at any moment and started again with the
//! same settings therefore continues from its last completed epoch and ends with the
//! same prompts, bit for bit, as a run that was never stopped (floats in the metadata
//! round-trip exactly: serde_json's `float_roundtrip`).
//!
//! - [`backbone`]: the frozen CLIP a command shares between runs.
//! - [`files`]: checkpoint file names in a run's checkpoint folder.
//! - [`learner_file`]: loading a trained learner (ours or the reference's) to evaluate.

pub mod backbone;
pub mod files;
pub mod learner_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use clip_model::HostTensor;
use maple_prompts::checkpoint::{load_checkpoint, save_checkpoint, CheckpointState};
use maple_prompts::{PromptLearner, PromptedClip, Sgd};
use serde::{Deserialize, Serialize};

pub use backbone::Backbone;
pub use files::{checkpoint_name, latest_checkpoint, list_checkpoints};
pub use learner_file::{checkpoint_kind, load_learner, CheckpointKind, LoadedLearner};

use crate::config::RunConfig;
use crate::data::{images_tensor, BatchSource};
use crate::error::{io, Result, TrainerError};
use crate::lock::FolderLock;
use crate::observer::{Event, Observer};
use crate::stats::EpochStats;

/// One training run's inputs.
pub struct TrainRequest<'a> {
    /// Hyper-parameters.
    pub config: &'a RunConfig,
    /// Seed of the backend (initial prompts) and of the data order and augmentations.
    pub seed: u64,
    /// Class names by label.
    pub class_names: &'a [String],
    /// The training images; its epochs must depend only on (seed, epoch).
    pub data: &'a dyn BatchSource,
    /// Where to write a checkpoint after every epoch and to resume from; `None` trains
    /// in memory only. The folder is locked while training.
    pub checkpoint_dir: Option<&'a Path>,
    /// Stop (resumably) once this many epochs are completed in total.
    pub stop_after: Option<usize>,
    /// What else identifies the run (dataset, weights, ...): stored in checkpoints and
    /// compared when resuming.
    pub identity: serde_json::Value,
}

/// A finished training run.
#[derive(Debug)]
pub struct Trained<L> {
    /// The trained learner.
    pub learner: L,
    /// Every epoch, including those run before a resume.
    pub history: Vec<EpochStats>,
    /// Epochs that were loaded from a checkpoint rather than run now.
    pub resumed_epochs: usize,
    /// The final checkpoint, when checkpoints are written.
    pub checkpoint: Option<PathBuf>,
}

/// Checkpoint metadata written by [`train`] in the `extra` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra {
    seed: u64,
    run_config: RunConfig,
    identity: serde_json::Value,
    history: Vec<EpochStats>,
}

fn momentum_to_host<B: Backend>(sgd: &Sgd<B>) -> BTreeMap<String, HostTensor> {
    sgd.buffers
        .iter()
        .map(|(k, t)| (k.clone(), HostTensor::from_tensor(t.clone())))
        .collect()
}

fn momentum_from_host<B: Backend>(
    m: &BTreeMap<String, HostTensor>,
    device: &B::Device,
) -> BTreeMap<String, Tensor<B, 1>> {
    m.iter()
        .map(|(k, t)| {
            let n = t.data.len();
            (
                k.clone(),
                Tensor::from_data(TensorData::new(t.data.clone(), [n]), device),
            )
        })
        .collect()
}

/// Trains a fresh learner made by `make` (called once, after the backend is seeded with
/// `request.seed`), or resumes it from `request.checkpoint_dir`.
///
/// # Errors
/// [`TrainerError::Stopped`] when the observer or `stop_after` ends the run early (the
/// checkpoint is written first); [`TrainerError::RunMismatch`] when the checkpoint folder
/// holds a run with other settings; [`TrainerError::Locked`] when another process trains
/// into the same folder; [`TrainerError::At`] for a non-finite loss or a bad label (with
/// the epoch and batch); data and I/O errors.
pub fn train<B, L, F>(
    backbone: &Backbone<B>,
    request: &TrainRequest<'_>,
    make: F,
    observer: &mut dyn Observer,
) -> Result<Trained<L>>
where
    B: AutodiffBackend,
    L: PromptLearner<B> + AutodiffModule<B>,
    L::InnerModule: PromptLearner<B::InnerBackend>,
    F: FnOnce(&Backbone<B>) -> Result<L>,
{
    let config = request.config;
    config.validate()?;
    backbone.check(config)?;
    let device = backbone.device();
    let epochs = config.optim.max_epoch;
    let data = request.data;
    if data.num_batches() == 0 {
        return Err(TrainerError::Invalid(format!(
            "the training set has {} images: not one batch of {}",
            data.num_items(),
            config.batch_size
        )));
    }

    B::seed(&device, request.seed);
    let mut model = PromptedClip::new(backbone.clip.clone(), make(backbone)?);
    let mut sgd = Sgd::<B::InnerBackend>::new(config.sgd_config());
    let mut history = Vec::new();
    let mut start = 0;

    let _lock = match request.checkpoint_dir {
        Some(dir) => Some(FolderLock::acquire(dir)?),
        None => None,
    };
    if let Some(dir) = request.checkpoint_dir {
        if let Some((_, path)) = latest_checkpoint(dir)? {
            let (loaded, state) = load_checkpoint::<B, _>(&path, model.learner.clone())?;
            let extra = check_resumable(dir, &path, &state, request, &model.learner)?;
            model.learner = loaded;
            sgd.buffers = momentum_from_host::<B::InnerBackend>(&state.momentum, &device);
            history = extra.history;
            start = state.epoch;
            let msg = format!(
                "resuming from {} ({start} of {epochs} epochs done)",
                path.display()
            );
            let _ = observer.event(&Event::Message(&msg));
        }
    }

    let classes = model.classes(&backbone.tokenizer, request.class_names)?;
    let schedule = config.schedule();
    let mut checkpoint = request
        .checkpoint_dir
        .and_then(|d| latest_checkpoint(d).ok().flatten())
        .map(|(_, p)| p);

    if let Some(n) = request.stop_after {
        if start >= n && start < epochs {
            return Err(TrainerError::Stopped {
                completed: start,
                total: epochs,
            });
        }
    }
    for epoch in start..epochs {
        let lr = schedule.lr_at(epoch);
        let began = Instant::now();
        let batches = data.num_batches();
        let _ = observer.event(&Event::EpochStart {
            epoch: epoch + 1,
            epochs,
            batches,
            lr,
        });
        let (mut loss_sum, mut correct, mut seen, mut steps) = (0.0f64, 0usize, 0usize, 0usize);
        let mut waited = 0.0f64;
        let mut loader = data.epoch(epoch).enumerate();
        loop {
            let asked = Instant::now();
            let Some((i, batch)) = loader.next() else {
                break;
            };
            waited += asked.elapsed().as_secs_f64();
            let batch = batch?;
            let images = images_tensor::<B>(&batch, &device);
            let step = model
                .train_step(&mut sgd, lr, images, &batch.labels, &classes)
                .map_err(|source| TrainerError::At {
                    place: format!("epoch {}, batch {i}", epoch + 1),
                    source: Box::new(source),
                })?;
            loss_sum += step.loss;
            steps += 1;
            correct += step.correct(&batch.labels);
            seen += batch.len();
            let _ = observer.event(&Event::TrainBatch {
                epoch: epoch + 1,
                batch: i,
                loss: step.loss,
                mean_loss: loss_sum / steps as f64,
                accuracy: 100.0 * correct as f64 / seen as f64,
            });
        }
        let stats = EpochStats {
            epoch: epoch + 1,
            epochs,
            lr,
            batches: steps,
            mean_loss: loss_sum / steps.max(1) as f64,
            accuracy: 100.0 * correct as f64 / seen.max(1) as f64,
            seconds: began.elapsed().as_secs_f64(),
            data_wait_seconds: waited,
        };
        log::info!(
            "epoch {}/{epochs}: {:.2} s, of which {:.3} s ({:.1}%) waiting for data",
            epoch + 1,
            stats.seconds,
            waited,
            100.0 * waited / stats.seconds.max(f64::MIN_POSITIVE)
        );
        history.push(stats.clone());
        if let Some(dir) = request.checkpoint_dir {
            let path = dir.join(checkpoint_name(epoch + 1));
            let state = CheckpointState {
                epoch: epoch + 1,
                config: model.learner.settings(),
                class_names: request.class_names.to_vec(),
                momentum: momentum_to_host(&sgd),
                extra: serde_json::to_value(Extra {
                    seed: request.seed,
                    run_config: config.clone(),
                    identity: request.identity.clone(),
                    history: history.clone(),
                })
                .map_err(|e| TrainerError::Invalid(format!("run metadata: {e}")))?,
            };
            save_checkpoint::<B, _>(&path, &model.learner, &state)?;
            for (e, old) in list_checkpoints(dir)? {
                if e != epoch + 1 {
                    std::fs::remove_file(&old).map_err(io(&old))?;
                }
            }
            checkpoint = Some(path);
        }
        let flow = observer.event(&Event::EpochEnd(&stats));
        let asked = request.stop_after.is_some_and(|n| epoch + 1 >= n);
        if epoch + 1 < epochs && (flow.is_break() || asked) {
            return Err(TrainerError::Stopped {
                completed: epoch + 1,
                total: epochs,
            });
        }
    }
    Ok(Trained {
        learner: model.learner,
        history,
        resumed_epochs: start,
        checkpoint,
    })
}

fn check_resumable<B: Backend, L: PromptLearner<B>>(
    dir: &Path,
    path: &Path,
    state: &CheckpointState,
    request: &TrainRequest<'_>,
    fresh: &L,
) -> Result<Extra> {
    let mismatch = |what: String| TrainerError::RunMismatch {
        dir: dir.to_path_buf(),
        what,
    };
    let extra: Extra = serde_json::from_value(state.extra.clone()).map_err(|e| {
        mismatch(format!(
            "{} has unreadable run metadata: {e}",
            path.display()
        ))
    })?;
    let (was, now) = (
        extra.run_config.training_fingerprint(),
        request.config.training_fingerprint(),
    );
    if was != now {
        return Err(mismatch(format!("training settings were {was}, now {now}")));
    }
    if state.config != fresh.settings() {
        return Err(mismatch(format!(
            "the learner was {}, now {}",
            state.config,
            fresh.settings()
        )));
    }
    if state.class_names != request.class_names {
        return Err(mismatch(format!(
            "class names were {:?}, now {:?}",
            state.class_names, request.class_names
        )));
    }
    if extra.seed != request.seed {
        return Err(mismatch(format!(
            "seed was {}, now {}",
            extra.seed, request.seed
        )));
    }
    if extra.identity != request.identity {
        return Err(mismatch(format!(
            "run identity was {}, now {}",
            extra.identity, request.identity
        )));
    }
    if state.epoch > request.config.optim.max_epoch {
        return Err(mismatch(format!(
            "{} epochs done, but the run has {}",
            state.epoch, request.config.optim.max_epoch
        )));
    }
    Ok(extra)
}
