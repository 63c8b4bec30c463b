//! One labelled image, as the readers list it.

use serde::{Deserialize, Serialize};

/// One labelled image of a split.
///
/// `path` is relative to the dataset's folder (`$ROOT/<dir>`), with `/`
/// separators, e.g. `2750/AnnualCrop/AnnualCrop_1.jpg` for EuroSAT; the class
/// name is looked up from the label in the split's class-name table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Datum {
    /// Image path relative to the dataset folder.
    pub path: String,
    /// Class label, 0-based.
    pub label: usize,
}

impl Datum {
    /// A datum from a relative path and a label.
    pub fn new(path: impl Into<String>, label: usize) -> Self {
        Datum {
            path: path.into(),
            label,
        }
    }
}
