//! Zero-shot CLIP with the reference's per-dataset prompt templates (`trainers/zsclip.py`).

use std::path::Path;

use burn::tensor::backend::Backend;
use datasets::{DatasetName, Loader, LoaderConfig, Subsample, Transform};

use crate::data::LabelledSet;
use crate::error::Result;
use crate::eval::evaluate_zero_shot;
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow, ZERO_SHOT};
use crate::train::Backbone;

use super::open_dataset;
use super::sets::split_config;

/// The datasets a zero-shot evaluation covers.
#[derive(Debug, Clone, Copy)]
pub struct ZeroShotSets<'a> {
    /// The data root holding the dataset folders.
    pub root: &'a Path,
    /// The datasets, in order.
    pub datasets: &'a [DatasetName],
    /// Every class of every dataset (the transfer protocols) instead of base and novel.
    pub all_classes: bool,
}

/// Zero-shot CLIP with the reference's per-dataset templates (`trainers/zsclip.py`):
/// base and novel classes (and their HM) for datasets with a train split, all classes
/// for the test-only ones and for every dataset with `sets.all_classes` (the transfer
/// protocols). Writes the summary into `output_dir`.
pub fn zero_shot<B: Backend>(
    backbone: &Backbone<B>,
    sets: ZeroShotSets<'_>,
    test_batch_size: usize,
    output_dir: &Path,
    device: &str,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let _lock = FolderLock::acquire(output_dir)?;
    let mut log = RunLog::new(&output_dir.join("log.txt"), observer);
    let size = backbone.config.image_resolution as u32;
    let mut rows = Vec::new();
    let ZeroShotSets {
        root,
        datasets,
        all_classes,
    } = sets;
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
                ClassSet::from(subsample),
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
        if name.is_test_only() || all_classes {
            let a = eval(Subsample::All, &mut log)?;
            rows.push(SummaryRow::accuracy(name.as_str(), &[], &[a], None));
        } else {
            let b = eval(Subsample::Base, &mut log)?;
            let n = eval(Subsample::New, &mut log)?;
            rows.push(SummaryRow::base_to_novel(name.as_str(), &[], &[b], &[n]));
        }
    }
    let summary = Summary::new(
        Protocol::Zeroshot,
        ZERO_SHOT,
        "zsclip",
        &backbone.origin,
        device,
        rows,
    );
    summary.write(output_dir)?;
    log.line(&summary.table());
    Ok(summary)
}
