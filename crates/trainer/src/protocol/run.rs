//! One seed of a protocol in its own run folder: `run.json` (what the run is), a lock,
//! `checkpoints/`, `log.txt`, the saved few-shot draws, and `result.json` (rewritten after
//! every evaluation). Running the same seed again skips what is done and resumes what is
//! not; a folder made with other settings is refused.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use maple_prompts::{AnyLearner, PromptedClip};

use crate::data::LabelledSet;
use crate::error::{io, Result, TrainerError};
use crate::eval::evaluate_prompted;
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::results::{
    write_json, ClassSet, EvalRecord, Protocol, SeedResult, TrainRecord, SEED_RESULT_FORMAT,
};
use crate::train::{load_learner, train, TrainRequest};

use super::Context;

/// Where a seed's learner comes from.
pub enum LearnerFrom<'a> {
    /// Trained here on this set (resumable).
    Train(&'a LabelledSet),
    /// Loaded from a checkpoint (ours or the reference's).
    Import(PathBuf),
}

/// One evaluation a seed makes, with its test set built only when needed.
pub struct EvalSpec<'a> {
    /// Dataset name in the records.
    pub dataset: String,
    /// Which classes.
    pub classes: ClassSet,
    /// Builds the test set.
    pub set: Box<dyn FnOnce() -> Result<LabelledSet> + 'a>,
}

impl<'a> EvalSpec<'a> {
    /// An evaluation of `dataset` on `classes`.
    pub fn new(
        dataset: &str,
        classes: ClassSet,
        set: impl FnOnce() -> Result<LabelledSet> + 'a,
    ) -> Self {
        EvalSpec {
            dataset: dataset.into(),
            classes,
            set: Box::new(set),
        }
    }
}

/// Writes `run.json` into a run folder, or checks that the one there describes the same run.
fn prepare_run_dir(dir: &Path, identity: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("run.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let found: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TrainerError::RunMismatch {
                dir: dir.to_path_buf(),
                what: format!("unreadable run.json: {e}"),
            })?;
        if &found != identity {
            return Err(TrainerError::RunMismatch {
                dir: dir.to_path_buf(),
                what: first_difference(&found, identity),
            });
        }
        return Ok(());
    }
    write_json(&path, identity)
}

fn first_difference(was: &serde_json::Value, now: &serde_json::Value) -> String {
    if let (Some(a), Some(b)) = (was.as_object(), now.as_object()) {
        for (k, v) in b {
            match a.get(k) {
                Some(w) if w == v => {}
                Some(w) => return format!("`{k}` was {w}, now {v}"),
                None => return format!("`{k}` is new: {v}"),
            }
        }
        if let Some(k) = a.keys().find(|k| !b.contains_key(*k)) {
            return format!("`{k}` is gone");
        }
    }
    format!("was {was}, now {now}")
}

/// Runs one seed: gets the learner (training it, resumably, or importing it), then makes
/// the evaluations not already recorded in `run_dir/result.json`, rewriting that file
/// after each one. The run folder is locked meanwhile.
#[allow(clippy::too_many_arguments)]
pub fn run_seed<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: Protocol,
    dataset: &str,
    seed: u64,
    run_dir: &Path,
    learner_from: LearnerFrom<'_>,
    evals: Vec<EvalSpec<'_>>,
    observer: &mut dyn Observer,
) -> Result<SeedResult> {
    let method = ctx.config.learner.method();
    let imported = match &learner_from {
        LearnerFrom::Import(p) => Some(p.display().to_string()),
        LearnerFrom::Train(_) => None,
    };
    let identity = serde_json::json!({
        "protocol": protocol,
        "method": method.as_str(),
        "dataset": dataset,
        "seed": seed,
        "training": ctx.config.training_fingerprint(),
        "backbone": ctx.backbone.identity(),
        "import": imported,
    });
    let _lock = FolderLock::acquire(run_dir)?;
    prepare_run_dir(run_dir, &identity)?;
    let mut log = RunLog::new(&run_dir.join("log.txt"), observer);
    let result_path = run_dir.join("result.json");
    let mut result = if result_path.exists() {
        SeedResult::load(&result_path)?
    } else {
        SeedResult {
            format: SEED_RESULT_FORMAT.into(),
            protocol,
            method: method.as_str().into(),
            dataset: dataset.into(),
            seed,
            config: ctx.config.clone(),
            weights: ctx.backbone.origin.clone(),
            learner: imported.clone(),
            train: None,
            evals: Vec::new(),
        }
    };
    let missing: Vec<EvalSpec<'_>> = evals
        .into_iter()
        .filter(|e| result.accuracy(&e.dataset, e.classes).is_none())
        .collect();
    let trained_already = result.train.is_some() || imported.is_some();
    if missing.is_empty() && trained_already {
        log.line(&format!(
            "{protocol} {method} {dataset} seed {seed}: complete, see {}",
            result_path.display()
        ));
        return Ok(result);
    }
    log.line(&format!(
        "{protocol} {method} {dataset} seed {seed}: config {}, weights {}, {}",
        ctx.config.name, ctx.backbone.origin, ctx.device
    ));

    let valid = ctx.backbone.valid();
    let learner: AnyLearner<B::InnerBackend> = match learner_from {
        LearnerFrom::Train(set) => {
            let request = TrainRequest {
                config: ctx.config,
                seed,
                class_names: &set.class_names,
                data: &*set.source,
                checkpoint_dir: Some(&run_dir.join("checkpoints")),
                stop_after: ctx.stop_after,
                identity: identity.clone(),
            };
            log.line(&format!(
                "training {} on {} images of {} classes, {} epochs of {} batches",
                method.display_name(),
                set.source.num_items(),
                set.class_names.len(),
                ctx.config.optim.max_epoch,
                set.source.num_batches()
            ));
            let n_classes = set.class_names.len();
            let trained = train(
                ctx.backbone,
                &request,
                |bb| {
                    Ok(ctx
                        .config
                        .learner
                        .init(&bb.clip, &bb.tokenizer, n_classes)?)
                },
                &mut log,
            )?;
            log.line("Finished training");
            result.train = Some(TrainRecord {
                images: set.source.num_items(),
                num_classes: n_classes,
                resumed_epochs: trained.resumed_epochs,
                history: trained.history.clone(),
                checkpoint: trained.checkpoint.as_ref().map(|p| relative(p, run_dir)),
            });
            write_json(&result_path, &result)?;
            trained.learner.valid()
        }
        LearnerFrom::Import(path) => {
            let loaded = load_learner(&path, &valid, ctx.config)?;
            log.line(&format!(
                "loaded a {} learner from {} (epoch {}): {}",
                loaded.settings.method().display_name(),
                path.display(),
                loaded.epoch.map_or("?".into(), |e| e.to_string()),
                serde_json::to_string(&loaded.settings).unwrap_or_default()
            ));
            loaded.learner
        }
    };
    let model = PromptedClip::new(valid.clip.clone(), learner);
    for spec in missing {
        let set = (spec.set)()?;
        let name = format!(
            "{} seed {seed} {} ({} classes)",
            spec.dataset,
            spec.classes,
            set.class_names.len()
        );
        let acc = evaluate_prompted(&name, &model, &valid.tokenizer, &set, &mut log)?;
        result.evals.push(EvalRecord::new(
            &spec.dataset,
            spec.classes,
            set.class_names.len(),
            &acc,
        ));
        write_json(&result_path, &result)?;
    }
    Ok(result)
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}
