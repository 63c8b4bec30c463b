//! The dataset readers: each turns a dataset folder into its full train/val/test lists.
//!
//! - [`split_json`]: the `split_zhou_*.json` datasets (Caltech101, Pets, Cars,
//!   Flowers, Food101, SUN397, DTD, EuroSAT, UCF101).
//! - [`imagenet`]: ImageNet's class folders and `classnames.txt`.
//! - [`aircraft`]: FGVC Aircraft's text lists.
//! - [`variants`]: the test-only ImageNet variants.
//!
//! Every reader checks that each listed image exists before returning.

pub(crate) mod aircraft;
pub(crate) mod classes;
pub(crate) mod imagenet;
pub(crate) mod split_json;
pub(crate) mod variants;

use std::path::Path;

use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::Result;
use crate::name::{DatasetName, SplitSource};

/// A dataset's full split as read from disk, before any sampling.
#[derive(Debug, Clone)]
pub(crate) struct FullSplits {
    /// Class names by label.
    pub classnames: Vec<String>,
    /// The train list (empty for test-only datasets).
    pub train: Vec<Datum>,
    /// The val list, where the dataset has its own.
    pub val: Option<Vec<Datum>>,
    /// The test list.
    pub test: Vec<Datum>,
    /// What the lists were read from.
    pub sources: Vec<SourceDigest>,
}

/// Reads `name` from its folder `dir` (`$ROOT/<name.dir()>`).
pub(crate) fn read(name: DatasetName, dir: &Path) -> Result<FullSplits> {
    crate::listing::require_dir(name.as_str(), dir, "the dataset folder under the data root")?;
    match name.split_source() {
        SplitSource::Json(file) => split_json::read(name, dir, file),
        SplitSource::ImageNetFolders => imagenet::read(name, dir),
        SplitSource::AircraftLists => aircraft::read(name, dir),
        SplitSource::NumberedFolders => variants::read_numbered(name, dir),
        SplitSource::WnidFolders => variants::read_wnid(name, dir),
    }
}
