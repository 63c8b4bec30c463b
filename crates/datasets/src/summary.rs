//! The JSON listing printed by `maple data`: class names and every split's items after sampling.

use std::path::Path;

use serde_json::{json, Value};

use crate::dataset::{Dataset, SplitConfig, Splits};
use crate::datum::Datum;
use crate::error::Result;
use crate::name::DatasetName;
use crate::subsample::Subsample;

impl Splits {
    /// `{"dataset", "shots", "seed", "subsample", "classnames", "train", "val", "test"}`, each
    /// split a list of `[path relative to the dataset folder, label, classname]`.
    pub fn to_json(&self) -> Value {
        let list = |items: &[Datum]| -> Value {
            Value::Array(
                items
                    .iter()
                    .map(|d| json!([d.path, d.label, self.classnames[d.label]]))
                    .collect(),
            )
        };
        json!({
            "dataset": self.dataset.as_str(),
            "shots": self.config.shots,
            "seed": self.config.seed,
            "subsample": self.config.subsample.as_str(),
            "classnames": self.classnames,
            "train": list(&self.train),
            "val": list(&self.val),
            "test": list(&self.test),
        })
    }
}

/// What `maple data --dataset NAME --root DIR [--shots K] [--seed S] [--subsample all|base|new]`
/// prints: the dataset opened (and checked), sampled and subsampled, as [`Splits::to_json`].
/// `shots` of `None` or negative (the reference's `-1`) keeps the full splits; `Some(0)` is
/// [`crate::DatasetError::InvalidArgument`].
pub fn data_json(
    name: DatasetName,
    root: &Path,
    shots: Option<i64>,
    seed: u64,
    subsample: Subsample,
) -> Result<Value> {
    let dataset = Dataset::open(name, root)?;
    Ok(dataset
        .splits(&SplitConfig::new(shots, seed, subsample))?
        .to_json())
}
