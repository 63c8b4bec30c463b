//! The training loop: MaPLe on a frozen CLIP, SGD with the reference's per-epoch schedule,
//! a learner-only checkpoint at the end of every epoch, and resuming.
//!
//! # Resuming
//! A checkpoint holds the learner, the SGD momentum, the completed epoch count and the
//! epoch history. Everything else a run depends on is re-derived: the learning rate from
//! the epoch, the batch order and augmentations from (seed, epoch, item) (see
//! [`crate::data`]), and the initial prompts from the backend seed, which only matters
//! before the first checkpoint. A run stopped at any moment and started again with the
//! same settings therefore continues from its last completed epoch and ends with the
//! same prompts, bit for bit, as a run that was never stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, ClipConfig};
use maple_prompts::checkpoint::{load_checkpoint, save_checkpoint, CheckpointState, NamedTensor};
use maple_prompts::{cross_entropy, ClassTokens, Maple, PromptLearner, PromptedClip, Sgd};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::{images_tensor, labels_tensor, predictions, BatchSource};
use crate::error::{io, Result, TrainerError};
use crate::observer::{Event, Observer};

/// A frozen CLIP with its tokenizer, loaded once and shared by every run of a command.
#[derive(Debug, Clone)]
pub struct Backbone<B: Backend> {
    /// The model (every parameter frozen).
    pub clip: Clip<B>,
    /// Its architecture, inferred from the weights.
    pub config: ClipConfig,
    /// The CLIP BPE tokenizer.
    pub tokenizer: Tokenizer,
    /// Where the weights came from (`path` or `hub:owner/name`).
    pub origin: String,
    /// Size of the weights file in bytes (part of a run's identity).
    pub weights_bytes: u64,
}

impl<B: Backend> Backbone<B> {
    /// Loads CLIP from `spec`: a safetensors file, a folder holding one, or a hub id
    /// `owner/name` (see [`clip_model::resolve_weights`]).
    pub fn load(spec: &str, device: &B::Device) -> Result<Self> {
        let resolved = clip_model::resolve_weights(spec)?;
        let (clip, config) = Clip::<B>::from_safetensors(&resolved.weights, device)?;
        let weights_bytes = std::fs::metadata(&resolved.weights)
            .map_err(io(&resolved.weights))?
            .len();
        log::info!(
            "loaded CLIP from {} ({})",
            resolved.weights.display(),
            resolved.origin
        );
        Ok(Backbone {
            clip,
            config,
            tokenizer: Tokenizer::new(),
            origin: resolved.origin,
            weights_bytes,
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> B::Device {
        self.clip.device()
    }

    /// The image side a run uses: the config's, else the CLIP's resolution.
    pub fn image_size(&self, config: &RunConfig) -> usize {
        config.image_size.unwrap_or(self.config.image_resolution)
    }

    /// What identifies these weights in a run folder: the architecture and the file size.
    pub fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "clip": serde_json::to_value(&self.config).expect("ClipConfig serialises"),
            "weights_bytes": self.weights_bytes,
        })
    }
}

impl<B: AutodiffBackend> Backbone<B> {
    /// The same backbone without autodiff, for evaluation (shares the weights).
    pub fn valid(&self) -> Backbone<B::InnerBackend> {
        Backbone {
            clip: self.clip.valid(),
            config: self.config.clone(),
            tokenizer: self.tokenizer.clone(),
            origin: self.origin.clone(),
            weights_bytes: self.weights_bytes,
        }
    }
}

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
    /// in memory only.
    pub checkpoint_dir: Option<&'a Path>,
    /// Stop (resumably) once this many epochs are completed in total.
    pub stop_after: Option<usize>,
    /// What else identifies the run (dataset, weights, ...): stored in checkpoints and
    /// compared when resuming.
    pub identity: serde_json::Value,
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Steps taken.
    pub batches: usize,
    /// Mean training loss.
    pub mean_loss: f64,
    /// Training accuracy, percent.
    pub accuracy: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A finished training run.
#[derive(Debug)]
pub struct Trained<B: AutodiffBackend> {
    /// The trained learner.
    pub learner: Maple<B>,
    /// Every epoch, including those run before a resume.
    pub history: Vec<EpochStats>,
    /// Epochs that were loaded from a checkpoint rather than run now.
    pub resumed_epochs: usize,
    /// The final checkpoint, when checkpoints are written.
    pub checkpoint: Option<PathBuf>,
}

/// File name of the checkpoint written after `epoch` (1-based) epochs.
pub fn checkpoint_name(epoch: usize) -> String {
    format!("learner-epoch{epoch}.safetensors")
}

/// The checkpoint with the most completed epochs in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(list_checkpoints(dir)?.into_iter().max_by_key(|(e, _)| *e))
}

fn list_checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(n) = name
            .strip_prefix("learner-epoch")
            .and_then(|r| r.strip_suffix(".safetensors"))
        {
            if let Ok(epoch) = n.parse::<usize>() {
                out.push((epoch, path));
            }
        }
    }
    Ok(out)
}

/// Removes temporary files left by an atomic write that was killed (`.<name>.tmp<pid>`).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Checkpoint metadata written by [`train`] in the `extra` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra {
    seed: u64,
    identity: serde_json::Value,
    history: Vec<EpochStats>,
}

fn momentum_to_host<B: Backend>(sgd: &Sgd<B>) -> BTreeMap<String, NamedTensor> {
    sgd.buffers
        .iter()
        .map(|(k, t)| {
            let data = t.clone().into_data().convert::<f32>();
            let shape = data.shape.to_vec();
            (
                k.clone(),
                NamedTensor {
                    shape,
                    data: data.to_vec::<f32>().expect("f32 momentum"),
                },
            )
        })
        .collect()
}

fn momentum_from_host<B: Backend>(
    m: &BTreeMap<String, NamedTensor>,
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

/// Trains a fresh MaPLe learner (or resumes one from `request.checkpoint_dir`).
///
/// # Errors
/// [`TrainerError::Stopped`] when the observer or `stop_after` ends the run early (the
/// checkpoint is written first); [`TrainerError::RunMismatch`] when the checkpoint folder
/// holds a run with other settings; data, loss and I/O errors.
pub fn train<B: AutodiffBackend>(
    backbone: &Backbone<B>,
    request: &TrainRequest<'_>,
    observer: &mut dyn Observer,
) -> Result<Trained<B>> {
    let config = request.config;
    config.validate()?;
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
    let mut learner = Maple::<B>::new(&config.maple_config(), &backbone.clip, &backbone.tokenizer)?;
    let mut sgd = Sgd::<B::InnerBackend>::new(config.sgd_config());
    let mut history = Vec::new();
    let mut start = 0;

    if let Some(dir) = request.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        remove_stale_temporaries(dir);
        if let Some((_, path)) = latest_checkpoint(dir)? {
            let (loaded, state) = load_checkpoint::<B, _>(&path, learner)?;
            check_resumable(dir, &path, &state, request)?;
            let extra: Extra = serde_json::from_value(state.extra.clone()).map_err(|e| {
                TrainerError::RunMismatch {
                    dir: dir.to_path_buf(),
                    what: format!("{} has unreadable run metadata: {e}", path.display()),
                }
            })?;
            learner = loaded;
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

    let classes = ClassTokens::<B>::new(
        &backbone.clip,
        &backbone.tokenizer,
        learner.prompt_prefix(),
        request.class_names,
    )?;
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
        for (i, batch) in data.epoch(epoch).enumerate() {
            let batch = batch?;
            if let Some(&y) = batch
                .labels
                .iter()
                .find(|&&y| y >= request.class_names.len())
            {
                return Err(TrainerError::Invalid(format!(
                    "training label {y} but only {} class names",
                    request.class_names.len()
                )));
            }
            let model = PromptedClip {
                clip: backbone.clip.clone(),
                learner,
            };
            let logits = model.forward(images_tensor::<B>(&batch, &device), &classes);
            let pred = predictions(logits.clone().inner());
            let loss = cross_entropy(logits, labels_tensor::<B>(&batch, &device));
            let loss_value: f64 = loss.clone().into_scalar().elem();
            if !loss_value.is_finite() {
                return Err(TrainerError::NonFinite {
                    epoch: epoch + 1,
                    batch: i,
                    loss: loss_value,
                });
            }
            let grads = loss.backward();
            learner = sgd.step::<B, _>(lr, model.learner, &grads);
            loss_sum += loss_value;
            steps += 1;
            correct += pred
                .iter()
                .zip(&batch.labels)
                .filter(|(p, y)| p == y)
                .count();
            seen += batch.len();
            let accuracy = 100.0 * correct as f64 / seen as f64;
            let _ = observer.event(&Event::TrainBatch {
                epoch: epoch + 1,
                batch: i,
                loss: loss_value,
                mean_loss: loss_sum / steps as f64,
                accuracy,
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
        };
        history.push(stats.clone());
        if let Some(dir) = request.checkpoint_dir {
            let path = dir.join(checkpoint_name(epoch + 1));
            let state = CheckpointState {
                epoch: epoch + 1,
                config: serde_json::to_value(config).expect("RunConfig serialises"),
                class_names: request.class_names.to_vec(),
                momentum: momentum_to_host(&sgd),
                extra: serde_json::to_value(Extra {
                    seed: request.seed,
                    identity: request.identity.clone(),
                    history: history.clone(),
                })
                .expect("metadata serialises"),
            };
            save_checkpoint::<B, _>(&path, &learner, &state)?;
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
        learner,
        history,
        resumed_epochs: start,
        checkpoint,
    })
}

fn check_resumable(
    dir: &Path,
    path: &Path,
    state: &CheckpointState,
    request: &TrainRequest<'_>,
) -> Result<()> {
    let mismatch = |what: String| {
        Err(TrainerError::RunMismatch {
            dir: dir.to_path_buf(),
            what,
        })
    };
    let saved: RunConfig =
        serde_json::from_value(state.config.clone()).map_err(|e| TrainerError::RunMismatch {
            dir: dir.to_path_buf(),
            what: format!("{} has an unreadable config: {e}", path.display()),
        })?;
    let (was, now) = (
        saved.training_fingerprint(),
        request.config.training_fingerprint(),
    );
    if was != now {
        return mismatch(format!("training settings were {was}, now {now}"));
    }
    if state.class_names != request.class_names {
        return mismatch(format!(
            "class names were {:?}, now {:?}",
            state.class_names, request.class_names
        ));
    }
    let seed = state.extra.get("seed").and_then(serde_json::Value::as_u64);
    if seed != Some(request.seed) {
        return mismatch(format!("seed was {seed:?}, now {}", request.seed));
    }
    let identity = state.extra.get("identity").cloned().unwrap_or_default();
    if identity != request.identity {
        return mismatch(format!(
            "run identity was {identity}, now {}",
            request.identity
        ));
    }
    if state.epoch > request.config.optim.max_epoch {
        return mismatch(format!(
            "{} epochs done, but the run has {}",
            state.epoch, request.config.optim.max_epoch
        ));
    }
    Ok(())
}

/// How a learner checkpoint to evaluate was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointKind {
    /// This project's learner checkpoint (`learner-epochN.safetensors`).
    Ours,
    /// The reference implementation's `model.pth.tar-N`.
    Reference,
}

/// Whether `path` is a reference (PyTorch) checkpoint or one of ours, by its first bytes.
pub fn checkpoint_kind(path: &Path) -> Result<CheckpointKind> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let n = f.read(&mut head).map_err(io(path))?;
    // torch.save writes a zip archive ("PK\x03\x04"); old torch a raw pickle (0x80 protocol byte).
    Ok(
        if (n >= 2 && &head[..2] == b"PK") || (n >= 1 && head[0] == 0x80) {
            CheckpointKind::Reference
        } else {
            CheckpointKind::Ours
        },
    )
}

/// Loads a learner to evaluate from `path`: one of our checkpoints (its own settings
/// are used) or a reference `model.pth.tar-N` (its depth and context length are read
/// from the tensors; the context words come from `config`, whose `ctx_init` sets the
/// prompt words after the learned context).
///
/// Returns the learner on the backbone's device and the epoch recorded in the file.
pub fn load_learner<B: Backend>(
    path: &Path,
    backbone: &Backbone<B>,
    config: &RunConfig,
) -> Result<(Maple<B>, Option<usize>)> {
    match checkpoint_kind(path)? {
        CheckpointKind::Ours => {
            let bytes = std::fs::read(path).map_err(io(path))?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                TrainerError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "neither a reference checkpoint nor a safetensors learner checkpoint: {e}"
                    ),
                }
            })?;
            let meta = header.metadata().clone().unwrap_or_default();
            let saved: RunConfig = meta
                .get("config")
                .and_then(|c| serde_json::from_str(c).ok())
                .ok_or_else(|| TrainerError::Config {
                    path: path.to_path_buf(),
                    message: "no readable `config` metadata".into(),
                })?;
            let fresh =
                Maple::<B>::new(&saved.maple_config(), &backbone.clip, &backbone.tokenizer)?;
            let (learner, state) = load_checkpoint::<B, _>(path, fresh)?;
            Ok((learner, Some(state.epoch)))
        }
        CheckpointKind::Reference => {
            let r = maple_prompts::checkpoint::read_reference_checkpoint(path)?;
            let n_ctx =
                r.params
                    .get("ctx")
                    .map(|t| t.shape[0])
                    .ok_or_else(|| TrainerError::Config {
                        path: path.to_path_buf(),
                        message: "no prompt_learner.ctx tensor".into(),
                    })?;
            let depth = 1 + r
                .params
                .keys()
                .filter(|k| k.starts_with("compound_prompts_text."))
                .count();
            let mut settings = config.clone();
            settings.maple.n_ctx = n_ctx;
            settings.maple.depth = depth;
            let fresh = Maple::<B>::new(
                &settings.maple_config(),
                &backbone.clip,
                &backbone.tokenizer,
            )?;
            let learner = maple_prompts::checkpoint::load_named::<B, _>(fresh, &r.params, path)?;
            Ok((learner, r.epoch.and_then(|e| usize::try_from(e).ok())))
        }
    }
}
