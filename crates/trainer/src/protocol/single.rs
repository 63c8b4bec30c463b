//! Single-dataset runs: train on one class subsample and test (the reference's `train.py`
//! run), and evaluation of saved or reference checkpoints.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use datasets::{DatasetName, Subsample};

use crate::error::Result;
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow};

use super::base_to_novel::evaluated;
use super::run::{run_seed, EvalSpec, LearnerFrom};
use super::sets::{split_config, test_set, train_set};
use super::{method_summary, open_dataset, Context, ImportSpec};

/// One dataset, one class subsample: per seed, train on its few-shot train split and test
/// on its test split. Writes the summary.
pub fn train_and_test<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    root: &Path,
    dataset: DatasetName,
    subsample: Subsample,
    seeds: &[u64],
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let ds = open_dataset(root, dataset, &mut log)?;
    let classes = ClassSet::from(subsample);
    let mut acc = Vec::new();
    for &seed in seeds {
        let run_dir = ctx
            .output_dir
            .join(dataset.as_str())
            .join(format!("seed{seed}"));
        let splits = ds.splits_saved_at(
            &run_dir.join(format!("split_{classes}.json")),
            &split_config(Some(ctx.config.shots), seed, subsample),
        )?;
        let train = train_set(ctx, &ds, &splits, seed)?;
        let evals = vec![EvalSpec::new(dataset.as_str(), classes, || {
            test_set(ctx, &ds, &splits)
        })];
        let r = run_seed(
            ctx,
            Protocol::Train,
            dataset.as_str(),
            seed,
            &run_dir,
            LearnerFrom::Train(&train),
            evals,
            &mut log,
        )?;
        acc.push(evaluated(&r, dataset.as_str(), classes)?);
    }
    let rows = vec![SummaryRow::accuracy(
        &format!("{dataset} ({classes})"),
        seeds,
        &acc,
        None,
    )];
    method_summary(ctx, Protocol::Train, rows, &mut log)
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
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let ds = open_dataset(root, dataset, &mut log)?;
    let classes = ClassSet::from(subsample);
    let half = (subsample != Subsample::All).then_some(ClassSet::Base);
    let shots = (!dataset.is_test_only()).then_some(ctx.config.shots);
    let mut acc = Vec::new();
    for &seed in seeds {
        let path = import.resolve(dataset.as_str(), seed, half)?;
        let run_dir = ctx
            .output_dir
            .join(dataset.as_str())
            .join(format!("seed{seed}"));
        let splits = ds.splits(&split_config(shots, seed, subsample))?;
        let evals = vec![EvalSpec::new(dataset.as_str(), classes, || {
            test_set(ctx, &ds, &splits)
        })];
        let r = run_seed(
            ctx,
            Protocol::Eval,
            dataset.as_str(),
            seed,
            &run_dir,
            LearnerFrom::Import(path),
            evals,
            &mut log,
        )?;
        acc.push(evaluated(&r, dataset.as_str(), classes)?);
    }
    let rows = vec![SummaryRow::accuracy(
        &format!("{dataset} ({classes})"),
        seeds,
        &acc,
        None,
    )];
    method_summary(ctx, Protocol::Eval, rows, &mut log)
}
