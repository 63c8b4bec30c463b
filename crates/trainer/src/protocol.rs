//! The MaPLe protocols (`docs/PROTOCOL.md` §6, §7) on top of [`train`] and the
//! evaluation functions:
//!
//! - base-to-novel ([`base_to_novel`]): per dataset and seed, train on the base classes
//!   (16 shots), test on the base classes, then rebuild the prompts from the novel class
//!   names with the trained learner and test on the novel classes;
//! - cross-dataset transfer and domain generalisation ([`cross_dataset`]): train on
//!   ImageNet (all classes, 16 shots), test on other datasets with all their classes;
//! - single train + test runs ([`train_and_test`]), evaluation of saved or reference
//!   checkpoints ([`evaluate_checkpoints`], and the `import` argument of the protocols),
//!   zero-shot CLIP ([`zero_shot`]);
//! - the same base-to-novel protocol on the procedural world ([`procedural_base_to_novel`]).
//!
//! Each seed runs in its own folder `<output>/<dataset>/seed<S>/`: `run.json` (what the
//! run is), `checkpoints/`, `log.txt`, the saved few-shot draws, and `result.json`
//! (rewritten after every evaluation). Running the same command again skips what is done
//! and resumes what is not; a folder made with other settings is refused.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use datasets::procedural::Downstream;
use datasets::{
    Dataset, DatasetName, Loader, LoaderConfig, SplitConfig, Splits, Subsample, Transform,
};
use maple_prompts::Maple;

use crate::config::RunConfig;
use crate::data::LabelledSet;
use crate::error::{io, Result, TrainerError};
use crate::eval::{evaluate_prompted, evaluate_zero_shot, Accuracy};
use crate::observer::{Event, Observer, RunLog};
use crate::procedural::{base_to_novel_sets, ProceduralSplit};
use crate::results::{
    write_json, EvalRecord, SeedResult, Summary, SummaryRow, TrainRecord, SEED_RESULT_FORMAT,
};
use crate::train::{load_learner, train, Backbone, TrainRequest};

/// What every run of a command shares.
pub struct Context<'a, B: AutodiffBackend> {
    /// The frozen CLIP.
    pub backbone: &'a Backbone<B>,
    /// Hyper-parameters.
    pub config: &'a RunConfig,
    /// Root of the outputs of this command.
    pub output_dir: PathBuf,
    /// Stop (resumably) once this many epochs are done in a run.
    pub stop_after: Option<usize>,
    /// Backend and device, for the summaries.
    pub device: String,
}

/// A reference (or our own) checkpoint location to evaluate instead of training.
///
/// `path` is a checkpoint file, or a folder searched, for dataset `D`, seed `S` and
/// class half `H` (`base` for base-to-novel, nothing for cross-dataset), in
/// `path/D/H/seedS`, `path/H/seedS`, `path/D/seedS`, `path/seedS`, `path`, for
/// `MultiModalPromptLearner/model.pth.tar-E` or `model.pth.tar-E` (the reference's
/// layout, E = `epoch` or the highest present) or our `learner-epochE.safetensors`
/// (also under `checkpoints/`). `{dataset}` and `{seed}` in `path` are replaced first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSpec {
    /// File, folder or pattern.
    pub path: PathBuf,
    /// Epoch to load; `None` takes the highest found.
    pub epoch: Option<usize>,
}

impl ImportSpec {
    /// The checkpoint file for `dataset`, `seed` and class half `half`.
    pub fn resolve(&self, dataset: &str, seed: u64, half: Option<&str>) -> Result<PathBuf> {
        let p = self
            .path
            .to_string_lossy()
            .replace("{dataset}", dataset)
            .replace("{seed}", &seed.to_string());
        let root = PathBuf::from(p);
        if root.is_file() {
            return Ok(root);
        }
        let s = format!("seed{seed}");
        let mut dirs = Vec::new();
        if let Some(h) = half {
            dirs.push(root.join(dataset).join(h).join(&s));
            dirs.push(root.join(h).join(&s));
        }
        dirs.push(root.join(dataset).join(&s));
        dirs.push(root.join(&s));
        dirs.push(root.clone());
        for dir in &dirs {
            for sub in [
                dir.join("MultiModalPromptLearner"),
                dir.clone(),
                dir.join("checkpoints"),
            ] {
                if let Some(found) = find_epoch_file(&sub, self.epoch)? {
                    return Ok(found);
                }
            }
        }
        Err(TrainerError::Invalid(format!(
            "no checkpoint for {dataset} seed {seed} under {}: looked for MultiModalPromptLearner/model.pth.tar-{} or learner-epoch{}.safetensors in {}",
            root.display(),
            self.epoch.map_or("N".into(), |e| e.to_string()),
            self.epoch.map_or("N".into(), |e| e.to_string()),
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )))
    }
}

fn find_epoch_file(dir: &Path, epoch: Option<usize>) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let e = name
            .strip_prefix("model.pth.tar-")
            .or_else(|| {
                name.strip_prefix("learner-epoch")
                    .and_then(|r| r.strip_suffix(".safetensors"))
            })
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(e) = e {
            if epoch.is_none_or(|want| want == e) && best.as_ref().is_none_or(|(b, _)| e > *b) {
                best = Some((e, path));
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}

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
    /// `base`, `novel` or `all`.
    pub classes: String,
    /// Builds the test set.
    pub set: Box<dyn FnOnce() -> Result<LabelledSet> + 'a>,
}

impl<'a> EvalSpec<'a> {
    /// An evaluation of `dataset` on `classes`.
    pub fn new(
        dataset: &str,
        classes: &str,
        set: impl FnOnce() -> Result<LabelledSet> + 'a,
    ) -> Self {
        EvalSpec {
            dataset: dataset.into(),
            classes: classes.into(),
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
/// after each one.
#[allow(clippy::too_many_arguments)]
pub fn run_seed<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: &str,
    dataset: &str,
    seed: u64,
    run_dir: &Path,
    learner_from: LearnerFrom<'_>,
    evals: Vec<EvalSpec<'_>>,
    observer: &mut dyn Observer,
) -> Result<SeedResult> {
    let imported = match &learner_from {
        LearnerFrom::Import(p) => Some(p.display().to_string()),
        LearnerFrom::Train(_) => None,
    };
    let identity = serde_json::json!({
        "protocol": protocol,
        "dataset": dataset,
        "seed": seed,
        "training": ctx.config.training_fingerprint(),
        "backbone": ctx.backbone.identity(),
        "import": imported,
    });
    prepare_run_dir(run_dir, &identity)?;
    let mut log = RunLog::new(&run_dir.join("log.txt"), observer);
    let result_path = run_dir.join("result.json");
    let mut result = if result_path.exists() {
        SeedResult::load(&result_path)?
    } else {
        SeedResult {
            format: SEED_RESULT_FORMAT.into(),
            protocol: protocol.into(),
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
        .filter(|e| result.accuracy(&e.dataset, &e.classes).is_none())
        .collect();
    let trained_already = result.train.is_some() || imported.is_some();
    if missing.is_empty() && trained_already {
        log.line(&format!(
            "{protocol} {dataset} seed {seed}: complete, see {}",
            result_path.display()
        ));
        return Ok(result);
    }
    log.line(&format!(
        "{protocol} {dataset} seed {seed}: config {}, weights {}, {}",
        ctx.config.name, ctx.backbone.origin, ctx.device
    ));

    let valid = ctx.backbone.valid();
    let learner: Maple<B::InnerBackend> = match learner_from {
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
                "training on {} images of {} classes, {} epochs of {} batches",
                set.source.num_items(),
                set.class_names.len(),
                ctx.config.optim.max_epoch,
                set.source.num_batches()
            ));
            let trained = train(ctx.backbone, &request, &mut log)?;
            log.line("Finished training");
            result.train = Some(TrainRecord {
                images: set.source.num_items(),
                num_classes: set.class_names.len(),
                resumed_epochs: trained.resumed_epochs,
                history: trained.history.clone(),
                checkpoint: trained.checkpoint.as_ref().map(|p| relative(p, run_dir)),
            });
            write_json(&result_path, &result)?;
            trained.learner.valid()
        }
        LearnerFrom::Import(path) => {
            let (learner, epoch) = load_learner(&path, &valid, ctx.config)?;
            log.line(&format!(
                "loaded learner from {} (epoch {}, depth {}, {} context tokens)",
                path.display(),
                epoch.map_or("?".into(), |e| e.to_string()),
                learner.depth(),
                learner.n_ctx()
            ));
            learner
        }
    };
    for spec in missing {
        let set = (spec.set)()?;
        let name = format!(
            "{} seed {seed} {} ({} classes)",
            spec.dataset,
            spec.classes,
            set.class_names.len()
        );
        let acc: Accuracy = evaluate_prompted(
            &name,
            &valid.clip,
            &learner,
            &valid.tokenizer,
            &set,
            &mut log,
        )?;
        result.evals.push(EvalRecord::new(
            &spec.dataset,
            &spec.classes,
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

/// A loader-backed set of `items` of `splits`.
fn loader_set(
    ds: &Dataset,
    splits: &Splits,
    split: &str,
    items: Vec<datasets::Datum>,
    transform: Transform,
    cfg: LoaderConfig,
) -> Result<LabelledSet> {
    let loader = Loader::new(ds.name().as_str(), split, ds.dir(), items, transform, cfg)?;
    Ok(LabelledSet {
        class_names: splits.classnames.clone(),
        source: Box::new(loader),
    })
}

fn train_set<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    ds: &Dataset,
    splits: &Splits,
    seed: u64,
) -> Result<LabelledSet> {
    let size = ctx.backbone.image_size(ctx.config) as u32;
    let mut cfg = LoaderConfig::train(ctx.config.batch_size, seed);
    // The reference drops the last incomplete batch only when there is a full one.
    cfg.drop_last = splits.train.len() >= ctx.config.batch_size;
    loader_set(
        ds,
        splits,
        "train",
        splits.train.clone(),
        if ctx.config.train_augment {
            Transform::train(size)
        } else {
            Transform::test(size)
        },
        cfg,
    )
}

fn test_set<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    ds: &Dataset,
    splits: &Splits,
) -> Result<LabelledSet> {
    let size = ctx.backbone.image_size(ctx.config) as u32;
    loader_set(
        ds,
        splits,
        "test",
        splits.test.clone(),
        Transform::test(size),
        LoaderConfig::test(ctx.config.test_batch_size),
    )
}

/// The classes word of a subsample in records: `base`, `novel` or `all`.
pub fn classes_word(s: Subsample) -> &'static str {
    match s {
        Subsample::All => "all",
        Subsample::Base => "base",
        Subsample::New => "novel",
    }
}

fn split_config(shots: Option<usize>, seed: u64, subsample: Subsample) -> SplitConfig {
    SplitConfig::new(shots.map(|k| k as i64), seed, subsample)
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

/// Base-to-novel generalisation on `datasets` (each with `config.seeds` unless `seeds`
/// is given): see the module docs. With `import`, the learners are loaded from
/// checkpoints (the reference's released weights) instead of trained.
///
/// Writes `results.json` / `results.txt` into the output folder and returns the summary.
pub fn base_to_novel<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    root: &Path,
    datasets: &[DatasetName],
    seeds: &[u64],
    import: Option<&ImportSpec>,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let shots = Some(ctx.config.shots);
    let mut rows = Vec::new();
    for &name in datasets {
        if name.is_test_only() {
            return Err(TrainerError::Invalid(format!(
                "{name} is test-only and has no base/novel split; base-to-novel datasets are {}",
                DatasetName::BASE_TO_NOVEL.map(|d| d.as_str()).join(", ")
            )));
        }
        let ds = open_dataset(root, name, &mut log)?;
        let (mut base, mut novel) = (Vec::new(), Vec::new());
        for &seed in seeds {
            let run_dir = ctx
                .output_dir
                .join(name.as_str())
                .join(format!("seed{seed}"));
            std::fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;
            let base_splits = ds.splits_saved_at(
                &run_dir.join("split_base.json"),
                &split_config(shots, seed, Subsample::Base),
            )?;
            let train = train_set(ctx, &ds, &base_splits, seed)?;
            let learner = match import {
                Some(spec) => {
                    LearnerFrom::Import(spec.resolve(name.as_str(), seed, Some("base"))?)
                }
                None => LearnerFrom::Train(&train),
            };
            let (ds_ref, bs, dir) = (&ds, &base_splits, run_dir.clone());
            let evals = vec![
                EvalSpec::new(name.as_str(), "base", move || test_set(ctx, ds_ref, bs)),
                EvalSpec::new(name.as_str(), "novel", move || {
                    let novel = ds_ref.splits_saved_at(
                        &dir.join("split_novel.json"),
                        &split_config(shots, seed, Subsample::New),
                    )?;
                    test_set(ctx, ds_ref, &novel)
                }),
            ];
            let r = run_seed(
                ctx,
                "base2novel",
                name.as_str(),
                seed,
                &run_dir,
                learner,
                evals,
                &mut log,
            )?;
            base.push(r.accuracy(name.as_str(), "base").expect("base evaluated"));
            novel.push(r.accuracy(name.as_str(), "novel").expect("novel evaluated"));
        }
        rows.push(SummaryRow::base_to_novel(
            name.as_str(),
            seeds,
            &base,
            &novel,
        ));
    }
    maple_summary(ctx, "base2novel", rows, &mut log)
}

/// The targets of the cross-dataset benchmark: the 10 datasets besides ImageNet.
pub const CROSS_DATASET_TARGETS: [DatasetName; 10] = [
    DatasetName::Caltech101,
    DatasetName::OxfordPets,
    DatasetName::StanfordCars,
    DatasetName::OxfordFlowers,
    DatasetName::Food101,
    DatasetName::FgvcAircraft,
    DatasetName::Sun397,
    DatasetName::Dtd,
    DatasetName::EuroSat,
    DatasetName::Ucf101,
];

/// The targets of domain generalisation: the four ImageNet variants.
pub const DOMAIN_GENERALISATION_TARGETS: [DatasetName; 4] = [
    DatasetName::ImageNetV2,
    DatasetName::ImageNetSketch,
    DatasetName::ImageNetA,
    DatasetName::ImageNetR,
];

/// Cross-dataset transfer or domain generalisation: per seed, train on `source` (all
/// classes, `config.shots` shots; or import the learner), test on the source and on every
/// target with all classes (full test split). `protocol` names the outputs (`xd`, `dg`).
#[allow(clippy::too_many_arguments)]
pub fn cross_dataset<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: &str,
    root: &Path,
    source: DatasetName,
    targets: &[DatasetName],
    seeds: &[u64],
    import: Option<&ImportSpec>,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    if source.is_test_only() {
        return Err(TrainerError::Invalid(format!(
            "{source} is test-only and cannot be a training source"
        )));
    }
    // Imported learners need no training data: without the source's folder, only the
    // targets are evaluated (as the reference's xd_test does).
    let src = if import.is_some() && !root.join(source.dir()).is_dir() {
        log.line(&format!(
            "{source} not found under {}: evaluating the targets only",
            root.display()
        ));
        None
    } else {
        Some(open_dataset(root, source, &mut log)?)
    };
    // Targets are opened on first use (only when an evaluation is still missing) and
    // shared by the seeds.
    let opened: RefCell<BTreeMap<DatasetName, Arc<Dataset>>> = RefCell::default();
    let open = |name: DatasetName| -> Result<Arc<Dataset>> {
        if let Some(d) = opened.borrow().get(&name) {
            return Ok(d.clone());
        }
        log::info!("opening {name} under {}", root.display());
        let d = Arc::new(Dataset::open(name, root)?);
        opened.borrow_mut().insert(name, d.clone());
        Ok(d)
    };
    let open = &open;
    let mut acc: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for &seed in seeds {
        let run_dir = ctx
            .output_dir
            .join(source.as_str())
            .join(format!("seed{seed}"));
        std::fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;
        let splits = match &src {
            Some(src) => Some(src.splits_saved_at(
                &run_dir.join("split_all.json"),
                &split_config(Some(ctx.config.shots), seed, Subsample::All),
            )?),
            None => None,
        };
        let train = match (&src, &splits) {
            (Some(src), Some(splits)) => Some(train_set(ctx, src, splits, seed)?),
            _ => None,
        };
        let learner = match (import, &train) {
            (Some(spec), _) => LearnerFrom::Import(spec.resolve(source.as_str(), seed, None)?),
            (None, Some(train)) => LearnerFrom::Train(train),
            (None, None) => unreachable!("the source is opened when training"),
        };
        let mut evals = Vec::new();
        if let (Some(src), Some(splits)) = (&src, &splits) {
            evals.push(EvalSpec::new(source.as_str(), "all", move || {
                test_set(ctx, src, splits)
            }));
        }
        for &t in targets {
            evals.push(EvalSpec::new(t.as_str(), "all", move || {
                let d = open(t)?;
                let s = d.splits(&split_config(None, seed, Subsample::All))?;
                test_set(ctx, &d, &s)
            }));
        }
        let r = run_seed(
            ctx,
            protocol,
            source.as_str(),
            seed,
            &run_dir,
            learner,
            evals,
            &mut log,
        )?;
        for e in &r.evals {
            acc.entry(e.dataset.clone()).or_default().push(e.accuracy);
        }
    }
    let get = |d: DatasetName| acc.get(d.as_str()).cloned().unwrap_or_default();
    let mut rows = Vec::new();
    if src.is_some() {
        rows.push(SummaryRow::accuracy(
            source.as_str(),
            seeds,
            &get(source),
            Some("source"),
        ));
    }
    for &t in targets {
        rows.push(SummaryRow::accuracy(
            t.as_str(),
            seeds,
            &get(t),
            Some("target"),
        ));
    }
    maple_summary(ctx, protocol, rows, &mut log)
}

/// The MaPLe summary of a protocol run: written to the output folder and logged.
fn maple_summary<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: &str,
    rows: Vec<SummaryRow>,
    log: &mut RunLog<'_>,
) -> Result<Summary> {
    let summary = Summary::new(
        protocol,
        "MaPLe",
        &ctx.config.name,
        &ctx.backbone.origin,
        &ctx.device,
        rows,
    );
    summary.write(&ctx.output_dir)?;
    log.line(&summary.table());
    Ok(summary)
}

/// One dataset, one class subsample: per seed, train on its few-shot train split and test
/// on its test split (the reference's `train.py` run). Writes the summary.
pub fn train_and_test<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    root: &Path,
    dataset: DatasetName,
    subsample: Subsample,
    seeds: &[u64],
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let ds = open_dataset(root, dataset, &mut log)?;
    let word = classes_word(subsample);
    let mut acc = Vec::new();
    for &seed in seeds {
        let run_dir = ctx
            .output_dir
            .join(dataset.as_str())
            .join(format!("seed{seed}"));
        std::fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;
        let splits = ds.splits_saved_at(
            &run_dir.join(format!("split_{word}.json")),
            &split_config(Some(ctx.config.shots), seed, subsample),
        )?;
        let train = train_set(ctx, &ds, &splits, seed)?;
        let evals = vec![EvalSpec::new(dataset.as_str(), word, || {
            test_set(ctx, &ds, &splits)
        })];
        let r = run_seed(
            ctx,
            "train",
            dataset.as_str(),
            seed,
            &run_dir,
            LearnerFrom::Train(&train),
            evals,
            &mut log,
        )?;
        acc.push(r.accuracy(dataset.as_str(), word).expect("evaluated"));
    }
    let rows = vec![SummaryRow::accuracy(
        &format!("{dataset} ({word})"),
        seeds,
        &acc,
        None,
    )];
    maple_summary(ctx, "train", rows, &mut log)
}

/// Evaluates checkpoints (ours or the reference's, see [`ImportSpec`]) of `seeds` on one
/// dataset's test split restricted to `subsample`. Writes the summary.
pub fn evaluate_checkpoints<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    root: &Path,
    dataset: DatasetName,
    subsample: Subsample,
    seeds: &[u64],
    import: &ImportSpec,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let ds = open_dataset(root, dataset, &mut log)?;
    let word = classes_word(subsample);
    let half = (subsample != Subsample::All).then_some("base");
    let shots = (!dataset.is_test_only()).then_some(ctx.config.shots);
    let mut acc = Vec::new();
    for &seed in seeds {
        let path = import.resolve(dataset.as_str(), seed, half)?;
        let run_dir = ctx
            .output_dir
            .join(dataset.as_str())
            .join(format!("seed{seed}"));
        let splits = ds.splits(&split_config(shots, seed, subsample))?;
        let evals = vec![EvalSpec::new(dataset.as_str(), word, || {
            test_set(ctx, &ds, &splits)
        })];
        let r = run_seed(
            ctx,
            "eval",
            dataset.as_str(),
            seed,
            &run_dir,
            LearnerFrom::Import(path),
            evals,
            &mut log,
        )?;
        acc.push(r.accuracy(dataset.as_str(), word).expect("evaluated"));
    }
    let rows = vec![SummaryRow::accuracy(
        &format!("{dataset} ({word})"),
        seeds,
        &acc,
        None,
    )];
    maple_summary(ctx, "eval", rows, &mut log)
}

/// Zero-shot CLIP with the reference's per-dataset templates (`trainers/zsclip.py`):
/// base and novel classes (and their HM) for datasets with a train split, all classes
/// for the test-only ones. Writes the summary into `output_dir`.
pub fn zero_shot<B: Backend>(
    backbone: &Backbone<B>,
    root: &Path,
    datasets: &[DatasetName],
    test_batch_size: usize,
    output_dir: &Path,
    device: &str,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut log = RunLog::new(&output_dir.join("log.txt"), observer);
    let size = backbone.config.image_resolution as u32;
    let mut rows = Vec::new();
    for &name in datasets {
        let ds = open_dataset(root, name, &mut log)?;
        let template = [name.template()];
        let eval = |subsample: Subsample, log: &mut RunLog<'_>| -> Result<f64> {
            let shots = (!name.is_test_only()).then_some(16);
            let splits = ds.splits(&split_config(shots, 1, subsample))?;
            let loader = Loader::new(
                name.as_str(),
                "test",
                ds.dir(),
                splits.test.clone(),
                Transform::test(size),
                LoaderConfig::test(test_batch_size),
            )?;
            let set = LabelledSet {
                class_names: splits.classnames.clone(),
                source: Box::new(loader),
            };
            let label = format!(
                "{name} {} ({} classes), zero-shot",
                classes_word(subsample),
                set.class_names.len()
            );
            Ok(evaluate_zero_shot(
                &label,
                &backbone.clip,
                &backbone.tokenizer,
                &template,
                &set,
                log,
            )?
            .percent())
        };
        if name.is_test_only() {
            let a = eval(Subsample::All, &mut log)?;
            rows.push(SummaryRow::accuracy(name.as_str(), &[], &[a], None));
        } else {
            let b = eval(Subsample::Base, &mut log)?;
            let n = eval(Subsample::New, &mut log)?;
            rows.push(SummaryRow::base_to_novel(name.as_str(), &[], &[b], &[n]));
        }
    }
    let summary = Summary::new(
        "zeroshot",
        "CLIP (zero-shot)",
        "zsclip",
        &backbone.origin,
        device,
        rows,
    );
    summary.write(output_dir)?;
    log.line(&summary.table());
    Ok(summary)
}

/// Base-to-novel on the procedural world: zero-shot CLIP (template
/// `"a photo of a {}."`) and MaPLe trained on the base classes, per seed. Returns the
/// MaPLe summary and the zero-shot summary, and writes `results.json` / `results.txt`
/// (MaPLe) and `zeroshot/results.*` into the output folder.
pub fn procedural_base_to_novel<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    world: &Arc<Downstream>,
    seeds: &[u64],
    observer: &mut dyn Observer,
) -> Result<(Summary, Summary)> {
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let name = "procedural";
    let image_size = ctx.backbone.image_size(ctx.config);
    let valid = ctx.backbone.valid();
    let split = |seed| ProceduralSplit {
        shots: ctx.config.shots,
        seed,
        batch_size: ctx.config.batch_size,
        test_batch_size: ctx.config.test_batch_size,
        image_size,
        augment: ctx.config.train_augment,
    };

    // Zero-shot CLIP does not depend on the seed.
    let (_, base_test, novel_test) =
        base_to_novel_sets(world, &split(seeds.first().copied().unwrap_or(1)))?;
    let template = [datasets::procedural::ZERO_SHOT_TEMPLATE];
    let zb = evaluate_zero_shot(
        "procedural base, zero-shot",
        &valid.clip,
        &valid.tokenizer,
        &template,
        &base_test,
        &mut log,
    )?;
    let zn = evaluate_zero_shot(
        "procedural novel, zero-shot",
        &valid.clip,
        &valid.tokenizer,
        &template,
        &novel_test,
        &mut log,
    )?;
    let zs_rows = vec![SummaryRow::base_to_novel(
        name,
        &[],
        &[zb.percent()],
        &[zn.percent()],
    )];
    let zs = Summary::new(
        "base2novel",
        "CLIP (zero-shot)",
        "zsclip",
        &ctx.backbone.origin,
        &ctx.device,
        zs_rows,
    );
    zs.write(&ctx.output_dir.join("zeroshot"))?;

    let (mut base, mut novel) = (Vec::new(), Vec::new());
    for &seed in seeds {
        let (train, base_test, novel_test) = base_to_novel_sets(world, &split(seed))?;
        let run_dir = ctx.output_dir.join(name).join(format!("seed{seed}"));
        let evals = vec![
            EvalSpec::new(name, "base", move || Ok(base_test)),
            EvalSpec::new(name, "novel", move || Ok(novel_test)),
        ];
        let r = run_seed(
            ctx,
            "base2novel",
            name,
            seed,
            &run_dir,
            LearnerFrom::Train(&train),
            evals,
            &mut log,
        )?;
        base.push(r.accuracy(name, "base").expect("base evaluated"));
        novel.push(r.accuracy(name, "novel").expect("novel evaluated"));
    }
    let rows = vec![SummaryRow::base_to_novel(name, seeds, &base, &novel)];
    let summary = maple_summary(ctx, "base2novel", rows, &mut log)?;
    Ok((summary, zs))
}
