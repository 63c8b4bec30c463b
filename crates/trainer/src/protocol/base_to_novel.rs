//! Base-to-novel generalisation on benchmark datasets.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use datasets::{DatasetName, Subsample};

use crate::error::{Result, TrainerError};
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow};

use super::run::{run_seed, EvalSpec, LearnerFrom};
use super::sets::{split_config, test_set, train_set};
use super::{method_summary, open_dataset, Context, ImportSpec};

/// Base-to-novel generalisation on `datasets` with `seeds`: see the module docs of
/// [`crate::protocol`]. With `import`, the learners are loaded from checkpoints (the
/// reference's released weights) instead of trained.
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
    if let Some(name) = datasets.iter().find(|d| d.is_test_only()) {
        return Err(TrainerError::Invalid(format!(
            "{name} is test-only and has no base/novel split; base-to-novel datasets are {}",
            DatasetName::BASE_TO_NOVEL.map(|d| d.as_str()).join(", ")
        )));
    }
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let shots = Some(ctx.config.shots);
    let mut rows = Vec::new();
    for &name in datasets {
        let ds = open_dataset(root, name, &mut log)?;
        let (mut base, mut novel) = (Vec::new(), Vec::new());
        for &seed in seeds {
            let run_dir = ctx
                .output_dir
                .join(name.as_str())
                .join(format!("seed{seed}"));
            let base_splits = ds.splits_saved_at(
                &run_dir.join("split_base.json"),
                &split_config(shots, seed, Subsample::Base),
            )?;
            let train = train_set(ctx, &ds, &base_splits, seed)?;
            let learner = match import {
                Some(spec) => {
                    LearnerFrom::Import(spec.resolve(name.as_str(), seed, Some(ClassSet::Base))?)
                }
                None => LearnerFrom::Train(&train),
            };
            let (ds_ref, bs, dir) = (&ds, &base_splits, run_dir.clone());
            let evals = vec![
                EvalSpec::new(name.as_str(), ClassSet::Base, move || {
                    test_set(ctx, ds_ref, bs)
                }),
                EvalSpec::new(name.as_str(), ClassSet::Novel, move || {
                    let novel = ds_ref.splits_saved_at(
                        &dir.join("split_novel.json"),
                        &split_config(shots, seed, Subsample::New),
                    )?;
                    test_set(ctx, ds_ref, &novel)
                }),
            ];
            let r = run_seed(
                ctx,
                Protocol::Base2novel,
                name.as_str(),
                seed,
                &run_dir,
                learner,
                evals,
                &mut log,
            )?;
            base.push(evaluated(&r, name.as_str(), ClassSet::Base)?);
            novel.push(evaluated(&r, name.as_str(), ClassSet::Novel)?);
        }
        rows.push(SummaryRow::base_to_novel(
            name.as_str(),
            seeds,
            &base,
            &novel,
        ));
    }
    method_summary(ctx, Protocol::Base2novel, rows, &mut log)
}

/// The accuracy a finished seed recorded for `dataset` on `classes`.
pub(crate) fn evaluated(
    r: &crate::results::SeedResult,
    dataset: &str,
    classes: ClassSet,
) -> Result<f64> {
    r.accuracy(dataset, classes).ok_or_else(|| {
        TrainerError::Invalid(format!(
            "seed {} of {dataset} has no {classes} evaluation after running",
            r.seed
        ))
    })
}
