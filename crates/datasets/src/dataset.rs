//! An opened dataset (its full split, checked on disk) and the few-shot, base/novel view a run uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::fewshot::generate_fewshot;
use crate::name::DatasetName;
use crate::pyrandom::PyRandom;
use crate::readers;
use crate::subsample::{relabel, selected_labels, Subsample};

/// A dataset's full split, read from `$ROOT/<dir>` and checked: every listed
/// image exists, labels are in range, no class is empty.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: DatasetName,
    root: PathBuf,
    dir: PathBuf,
    full: readers::FullSplits,
}

/// How to derive a run's splits from the full split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Shots per class for train (val gets `min(shots, 4)`); `None` keeps the full splits.
    pub shots: Option<usize>,
    /// The seed of Python's `random.seed` before sampling.
    pub seed: u64,
    /// Which classes to keep after sampling.
    pub subsample: Subsample,
}

impl SplitConfig {
    /// A config from the reference's conventions: negative shots (the reference's `-1`) mean
    /// the full split. `Some(0)` is kept, and refused by [`Dataset::splits`]: 0 shots is a
    /// mistake, not a request for everything.
    pub fn new(shots: Option<i64>, seed: u64, subsample: Subsample) -> Self {
        let shots = shots.and_then(|k| usize::try_from(k).ok());
        SplitConfig {
            shots,
            seed,
            subsample,
        }
    }
}

/// The splits a run uses: few-shot sampled, then subsampled to base or new classes and relabelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Which dataset.
    pub dataset: DatasetName,
    /// How they were derived.
    pub config: SplitConfig,
    /// Class names by (new) label; prompts are built from these.
    pub classnames: Vec<String>,
    /// The original label of each (new) label.
    pub original_labels: Vec<usize>,
    /// Training items (empty for test-only datasets).
    pub train: Vec<Datum>,
    /// Validation items; for ImageNet the test set, as in the reference; empty for test-only datasets.
    pub val: Vec<Datum>,
    /// Test items.
    pub test: Vec<Datum>,
}

impl Dataset {
    /// Reads and checks dataset `name` under the data root `root` (its folder is `root/name.dir()`).
    ///
    /// # Errors
    /// A missing folder or split file, a listed image that is absent, an
    /// unknown class, a label out of range or an empty class, each naming the
    /// dataset, the file and the entry.
    pub fn open(name: DatasetName, root: &Path) -> Result<Self> {
        let dir = root.join(name.dir());
        if !root.is_dir() {
            return Err(DatasetError::MissingFolder {
                dataset: name.as_str().into(),
                path: root.to_path_buf(),
                what: "the data root".into(),
            });
        }
        let full = readers::read(name, &dir)?;
        Ok(Dataset {
            name,
            root: root.to_path_buf(),
            dir,
            full,
        })
    }

    /// Which dataset.
    pub fn name(&self) -> DatasetName {
        self.name
    }

    /// The data root it was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The dataset folder, `root/<dir>`; every [`Datum::path`] is relative to it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Class names of the full split, by label.
    pub fn classnames(&self) -> &[String] {
        &self.full.classnames
    }

    /// The full train list (empty for test-only datasets).
    pub fn train(&self) -> &[Datum] {
        &self.full.train
    }

    /// The full val list, where the dataset has one of its own.
    pub fn val(&self) -> Option<&[Datum]> {
        self.full.val.as_deref()
    }

    /// The full test list.
    pub fn test(&self) -> &[Datum] {
        &self.full.test
    }

    /// The sha256 of each source the lists were read from.
    pub fn sources(&self) -> &[SourceDigest] {
        &self.full.sources
    }

    /// The splits for `config`, as the reference derives them: `random.seed(seed)`;
    /// train = `k`-shot draw; val = `min(k, 4)`-shot draw (datasets with their
    /// own val only); then base/new subsampling on all splits.
    ///
    /// # Errors
    /// [`DatasetError::Unsupported`] for base/new classes of a test-only dataset
    /// (the reference ignores the setting there); [`DatasetError::InvalidArgument`] for
    /// `shots: Some(0)`.
    pub fn splits(&self, config: &SplitConfig) -> Result<Splits> {
        let (train, val) = self.draw(config)?;
        self.finish(config, train, val, None)
    }

    fn draw(&self, config: &SplitConfig) -> Result<(Vec<Datum>, Option<Vec<Datum>>)> {
        let full_val = self.full.val.clone();
        match config.shots {
            Some(0) => Err(crate::fewshot::zero_shots(self.name.as_str())),
            Some(k) if !self.name.is_test_only() => {
                let mut rng = PyRandom::new(config.seed);
                let train = generate_fewshot(&self.full.train, k, &mut rng)?;
                let val = match full_val {
                    Some(v) => Some(generate_fewshot(&v, k.min(4), &mut rng)?),
                    None => None,
                };
                Ok((train, val))
            }
            _ => Ok((self.full.train.clone(), full_val)),
        }
    }

    /// Subsamples drawn train/val lists (or checks a saved selection) and builds the [`Splits`].
    pub(crate) fn finish(
        &self,
        config: &SplitConfig,
        train: Vec<Datum>,
        val: Option<Vec<Datum>>,
        saved_selection: Option<&[usize]>,
    ) -> Result<Splits> {
        if self.name.is_test_only() {
            if config.subsample != Subsample::All {
                return Err(DatasetError::Unsupported {
                    dataset: self.name.as_str().into(),
                    reason: format!(
                        "is test-only; base/new subsampling needs a train split (asked for {})",
                        config.subsample
                    ),
                });
            }
            return Ok(Splits {
                dataset: self.name,
                config: *config,
                classnames: self.full.classnames.clone(),
                original_labels: (0..self.full.classnames.len()).collect(),
                train: Vec::new(),
                val: Vec::new(),
                test: self.full.test.clone(),
            });
        }
        let selected = match saved_selection {
            Some(s) => s.to_vec(),
            None => selected_labels(&train, config.subsample),
        };
        let val = match val {
            Some(v) => relabel(&v, &selected),
            // ImageNet: the reference's val is its test set.
            None => relabel(&self.full.test, &selected),
        };
        Ok(Splits {
            dataset: self.name,
            config: *config,
            classnames: selected
                .iter()
                .map(|&y| self.full.classnames[y].clone())
                .collect(),
            train: relabel(&train, &selected),
            val,
            test: relabel(&self.full.test, &selected),
            original_labels: selected,
        })
    }
}

impl Splits {
    /// Number of classes the model discriminates.
    pub fn num_classes(&self) -> usize {
        self.classnames.len()
    }

    /// The class name of a (new) label.
    pub fn classname(&self, label: usize) -> &str {
        &self.classnames[label]
    }
}
