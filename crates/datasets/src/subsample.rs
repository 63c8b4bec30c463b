//! Base/novel class subsampling and relabelling (the reference's `OxfordPets.subsample_classes`).
//!
//! The labels present in the (few-shot) train list are sorted; with `n` of
//! them, `m = ceil(n / 2)`; base is the first `m`, new the rest. Every split
//! is filtered to the chosen labels and relabelled `0..` in that order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::datum::Datum;
use crate::error::DatasetError;

/// Which classes to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subsample {
    /// Every class.
    #[default]
    All,
    /// The first half of the labels (rounded up).
    Base,
    /// The second half.
    New,
}

impl Subsample {
    /// `all`, `base` or `new`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subsample::All => "all",
            Subsample::Base => "base",
            Subsample::New => "new",
        }
    }
}

impl fmt::Display for Subsample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Subsample {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Subsample::All),
            "base" => Ok(Subsample::Base),
            "new" | "novel" => Ok(Subsample::New),
            other => Err(DatasetError::Unsupported {
                dataset: "-".into(),
                reason: format!("unknown class subsample {other:?}; expected all, base or new"),
            }),
        }
    }
}

/// The original labels kept by `which`, in their new label order, from the labels of the train list.
pub fn selected_labels(train: &[Datum], which: Subsample) -> Vec<usize> {
    let mut labels: Vec<usize> = train.iter().map(|d| d.label).collect();
    labels.sort_unstable();
    labels.dedup();
    let m = labels.len().div_ceil(2);
    match which {
        Subsample::All => labels,
        Subsample::Base => labels[..m].to_vec(),
        Subsample::New => labels[m..].to_vec(),
    }
}

/// Keeps the items whose label is in `selected` and relabels them by position in `selected`.
/// Memory is proportional to `selected.len()`, whatever the label values.
pub fn relabel(items: &[Datum], selected: &[usize]) -> Vec<Datum> {
    let mut new_label = std::collections::HashMap::with_capacity(selected.len());
    for (new, &old) in selected.iter().enumerate() {
        new_label.insert(old, new);
    }
    items
        .iter()
        .filter_map(|d| {
            new_label
                .get(&d.label)
                .map(|&y| Datum::new(d.path.clone(), y))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(labels: &[usize]) -> Vec<Datum> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &y)| Datum::new(format!("{i}.jpg"), y))
            .collect()
    }

    #[test]
    fn odd_class_counts_give_base_the_extra_class() {
        let train = data(&[4, 0, 2, 1, 3]);
        assert_eq!(selected_labels(&train, Subsample::Base), vec![0, 1, 2]);
        assert_eq!(selected_labels(&train, Subsample::New), vec![3, 4]);
    }

    #[test]
    fn relabelling_keeps_item_order_and_maps_to_positions() {
        let items = data(&[4, 0, 3, 1, 3]);
        let out = relabel(&items, &[3, 4]);
        assert_eq!(
            out,
            vec![
                Datum::new("0.jpg", 1),
                Datum::new("2.jpg", 0),
                Datum::new("4.jpg", 0)
            ]
        );
    }
}
