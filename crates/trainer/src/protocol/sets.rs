//! Assembling the labelled sets a protocol trains and tests on from a dataset's splits.

use burn::tensor::backend::AutodiffBackend;
use datasets::{Dataset, Loader, LoaderConfig, SplitConfig, Splits, Subsample, Transform};

use crate::data::LabelledSet;
use crate::error::Result;

use super::Context;

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

/// The few-shot training set of `splits`, shuffled and augmented per (seed, epoch, item).
pub fn train_set<B: AutodiffBackend>(
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

/// The test set of `splits`, in list order with the evaluation transform.
pub fn test_set<B: AutodiffBackend>(
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

/// The split configuration of `shots` (`None`: the full splits), `seed` and `subsample`.
pub fn split_config(shots: Option<usize>, seed: u64, subsample: Subsample) -> SplitConfig {
    SplitConfig::new(shots.map(|k| k as i64), seed, subsample)
}
