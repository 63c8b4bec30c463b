//! Cross-dataset transfer and domain generalisation: train on a source dataset (ImageNet
//! in the paper), test on other datasets with all their classes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use datasets::{Dataset, DatasetName, Subsample};

use crate::error::{Result, TrainerError};
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow};

use super::run::{run_seed, EvalSpec, LearnerFrom};
use super::sets::{split_config, test_set, train_set};
use super::{method_summary, open_dataset, Context, ImportSpec};

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
/// target with all classes (full test split). `protocol` ([`Protocol::Xd`] or
/// [`Protocol::Dg`]) names the outputs.
#[allow(clippy::too_many_arguments)]
pub fn cross_dataset<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    protocol: Protocol,
    root: &Path,
    source: DatasetName,
    targets: &[DatasetName],
    seeds: &[u64],
    import: Option<&ImportSpec>,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    if source.is_test_only() {
        return Err(TrainerError::Invalid(format!(
            "{source} is test-only and cannot be a training source"
        )));
    }
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
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
            (None, None) => {
                return Err(TrainerError::Invalid(format!(
                    "{source} is needed to train: not found under {}",
                    root.display()
                )))
            }
        };
        let mut evals = Vec::new();
        if let (Some(src), Some(splits)) = (&src, &splits) {
            evals.push(EvalSpec::new(source.as_str(), ClassSet::All, move || {
                test_set(ctx, src, splits)
            }));
        }
        for &t in targets {
            evals.push(EvalSpec::new(t.as_str(), ClassSet::All, move || {
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
    method_summary(ctx, protocol, rows, &mut log)
}
