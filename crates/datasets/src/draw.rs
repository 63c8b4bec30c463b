//! Saving a run's drawn splits as JSON, and reusing a saved draw only while its sources are unchanged.
//!
//! The reference caches few-shot draws as pickles keyed by shots and seed
//! only, with absolute paths, so they go stale silently. A [`SavedDraw`]
//! records the dataset, root, settings and the sha256 of every source the
//! full split was read from; loading refuses a draw whose sources changed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, SplitConfig, Splits};
use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::listing::check_files_exist;

/// The version of the [`SavedDraw`] format.
pub const DRAW_FORMAT: u32 = 1;

/// A run's drawn splits as saved next to its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedDraw {
    /// [`DRAW_FORMAT`].
    pub format: u32,
    /// The dataset's command-line name.
    pub dataset: String,
    /// The data root it was drawn from (informative: paths are relative to the dataset folder).
    pub root: String,
    /// Shots per class (`None`: full split).
    pub shots: Option<usize>,
    /// The `random.seed` seed.
    pub seed: u64,
    /// `all`, `base` or `new`.
    pub subsample: String,
    /// The sha256 of each source of the full split at drawing time.
    pub sources: Vec<SourceDigest>,
    /// Class names by label.
    pub classnames: Vec<String>,
    /// The original label of each label.
    pub original_labels: Vec<usize>,
    /// The drawn train items, relabelled.
    pub train: Vec<Datum>,
    /// The drawn val items, relabelled.
    pub val: Vec<Datum>,
    /// Test-set size (the test split is not sampled, so it is not stored).
    pub test_len: usize,
}

impl SavedDraw {
    /// The record of `splits`, drawn from `dataset`.
    pub fn new(dataset: &Dataset, splits: &Splits) -> Self {
        SavedDraw {
            format: DRAW_FORMAT,
            dataset: dataset.name().as_str().into(),
            root: dataset.root().display().to_string(),
            shots: splits.config.shots,
            seed: splits.config.seed,
            subsample: splits.config.subsample.as_str().into(),
            sources: dataset.sources().to_vec(),
            classnames: splits.classnames.clone(),
            original_labels: splits.original_labels.clone(),
            train: splits.train.clone(),
            val: splits.val.clone(),
            test_len: splits.test.len(),
        }
    }

    /// Writes the draw as pretty JSON, creating parent folders.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| DatasetError::Io {
            dataset: self.dataset.clone(),
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("a SavedDraw always serialises");
        std::fs::write(path, text).map_err(io)
    }

    /// Reads a saved draw.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            dataset: "draw".into(),
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| DatasetError::Json {
            dataset: "draw".into(),
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Dataset {
    /// The splits of a saved draw, after checking that it was made for this
    /// dataset and `config` and that every source is unchanged.
    ///
    /// # Errors
    /// [`DatasetError::DrawMismatch`] for other settings,
    /// [`DatasetError::StaleDraw`] when a source's sha256 changed, and the
    /// usual listing errors if a drawn image is missing.
    pub fn load_draw(&self, path: &Path, config: &SplitConfig) -> Result<Splits> {
        let draw = SavedDraw::load(path)?;
        let mismatch = |field: &str, recorded: String, requested: String| {
            Err(DatasetError::DrawMismatch {
                path: path.to_path_buf(),
                field: field.into(),
                recorded,
                requested,
            })
        };
        if draw.format != DRAW_FORMAT {
            return mismatch("format", draw.format.to_string(), DRAW_FORMAT.to_string());
        }
        if draw.dataset != self.name().as_str() {
            return mismatch("dataset", draw.dataset, self.name().to_string());
        }
        if draw.shots != config.shots {
            return mismatch(
                "shots",
                format!("{:?}", draw.shots),
                format!("{:?}", config.shots),
            );
        }
        if draw.seed != config.seed {
            return mismatch("seed", draw.seed.to_string(), config.seed.to_string());
        }
        if draw.subsample != config.subsample.as_str() {
            return mismatch("subsample", draw.subsample, config.subsample.to_string());
        }
        for current in self.sources() {
            let recorded = draw.sources.iter().find(|s| s.name == current.name);
            if recorded.map(|s| &s.sha256) != Some(&current.sha256) {
                return Err(DatasetError::StaleDraw {
                    path: path.to_path_buf(),
                    source_name: current.name.clone(),
                    recorded: recorded.map_or_else(|| "(absent)".into(), |s| s.sha256.clone()),
                    current: current.sha256.clone(),
                });
            }
        }
        let n = self.classnames().len();
        if let Some(&bad) = draw.original_labels.iter().find(|&&y| y >= n) {
            return Err(DatasetError::LabelOutOfRange {
                dataset: draw.dataset,
                file: path.to_path_buf(),
                entry: "original_labels".into(),
                label: bad,
                num_classes: n,
            });
        }
        // The saved lists are relabelled; map them back so `finish` applies the saved selection.
        let k = draw.original_labels.len();
        let back = |items: &[Datum], split: &str| -> Result<Vec<Datum>> {
            items
                .iter()
                .enumerate()
                .map(|(i, d)| match draw.original_labels.get(d.label) {
                    Some(&y) => Ok(Datum::new(d.path.clone(), y)),
                    None => Err(DatasetError::LabelOutOfRange {
                        dataset: draw.dataset.clone(),
                        file: path.to_path_buf(),
                        entry: format!("{split}[{i}]"),
                        label: d.label,
                        num_classes: k,
                    }),
                })
                .collect()
        };
        let train = back(&draw.train, "train")?;
        let val = back(&draw.val, "val")?;
        for (split, items) in [("train", &train), ("val", &val)] {
            let paths: Vec<&str> = items.iter().map(|d| d.path.as_str()).collect();
            check_files_exist(&draw.dataset, path, self.dir(), &paths, |i| {
                format!("{split}[{i}]")
            })?;
        }
        let own_val = self.name().has_val().then_some(val);
        let splits = self.finish(config, train, own_val, Some(&draw.original_labels))?;
        if splits.test.len() != draw.test_len {
            return mismatch(
                "test_len",
                draw.test_len.to_string(),
                splits.test.len().to_string(),
            );
        }
        Ok(splits)
    }

    /// The splits for `config`, reusing the draw saved at `path` if there is
    /// one (refusing it if stale) or drawing and saving it there otherwise.
    pub fn splits_saved_at(&self, path: &Path, config: &SplitConfig) -> Result<Splits> {
        if path.exists() {
            log::info!("{}: reusing the saved draw {}", self.name(), path.display());
            return self.load_draw(path, config);
        }
        let splits = self.splits(config)?;
        SavedDraw::new(self, &splits).save(path)?;
        log::info!("{}: saved the draw to {}", self.name(), path.display());
        Ok(splits)
    }
}
