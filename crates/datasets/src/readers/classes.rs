//! Class-name tables: from a labelled train list (json and Aircraft) or from `classnames.txt` (ImageNet family).

use std::collections::HashMap;
use std::path::Path;

use crate::datum::Datum;
use crate::error::{DatasetError, Result};

/// A split whose entries carry their own class name, as in the split files.
pub(crate) struct NamedSplit<'a> {
    /// `train`, `val` or `test`.
    pub split: &'static str,
    /// The file the split was read from.
    pub file: &'a Path,
    /// Items with their class names.
    pub items: Vec<(Datum, String)>,
    /// Names entry `i` for messages, e.g. `train[3]` or `line 4`.
    pub entry: Box<dyn Fn(usize) -> String + 'a>,
}

impl NamedSplit<'_> {
    /// The items without their names.
    pub fn into_data(self) -> Vec<Datum> {
        self.items.into_iter().map(|(d, _)| d).collect()
    }
}

/// The label -> name table of a train split, as Dassl's `get_lab2cname`:
/// `max(label) + 1` classes, names by label. Every label must occur and carry
/// one name (the reference would pick one of two names arbitrarily).
pub(crate) fn table_from_train(dataset: &str, train: &NamedSplit) -> Result<Vec<String>> {
    if train.items.is_empty() {
        return Err(DatasetError::EmptySplit {
            dataset: dataset.into(),
            file: train.file.into(),
            split: train.split.into(),
        });
    }
    // Every label below the largest must occur. Find the first missing one from the sorted
    // distinct labels (memory in proportion to the items) before sizing the table by the
    // largest label, so that a huge label in a file never sizes an allocation.
    let mut distinct: Vec<usize> = train.items.iter().map(|(d, _)| d.label).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if let Some(label) = (0..distinct.len()).find(|&i| distinct[i] != i) {
        let next = distinct[label];
        let row = train.items.iter().position(|(d, _)| d.label == next);
        return Err(DatasetError::EmptyClass {
            dataset: dataset.into(),
            file: train.file.into(),
            split: train.split.into(),
            label,
            classname: format!(
                "none: the labels jump from {} to {next} at {}",
                label.saturating_sub(1),
                row.map_or_else(String::new, |i| (train.entry)(i))
            ),
        });
    }
    let n = train.items.iter().map(|(d, _)| d.label).max().unwrap_or(0) + 1;
    let mut names: Vec<Option<&str>> = vec![None; n];
    for (i, (d, name)) in train.items.iter().enumerate() {
        match names[d.label] {
            None => names[d.label] = Some(name),
            Some(first) if first != name => {
                return Err(DatasetError::InconsistentClassname {
                    dataset: dataset.into(),
                    file: train.file.into(),
                    entry: (train.entry)(i),
                    label: d.label,
                    first: first.into(),
                    found: name.as_str().into(),
                })
            }
            Some(_) => {}
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(label, name)| {
            name.map(str::to_string)
                .ok_or_else(|| DatasetError::EmptyClass {
                    dataset: dataset.into(),
                    file: train.file.into(),
                    split: train.split.into(),
                    label,
                    classname: String::new(),
                })
        })
        .collect()
}

/// Checks a val/test split against the train table: labels in range; a
/// differing class name is logged (the reference only uses train's names).
pub(crate) fn check_against_table(
    dataset: &str,
    split: &NamedSplit,
    classnames: &[String],
) -> Result<()> {
    let mut warned = vec![false; classnames.len()];
    for (i, (d, name)) in split.items.iter().enumerate() {
        let Some(expected) = classnames.get(d.label) else {
            return Err(DatasetError::LabelOutOfRange {
                dataset: dataset.into(),
                file: split.file.into(),
                entry: (split.entry)(i),
                label: d.label,
                num_classes: classnames.len(),
            });
        };
        if expected != name && !warned[d.label] {
            warned[d.label] = true;
            log::warn!(
                "{dataset}: {}, {}: label {} is named {name:?} in {} but {expected:?} in train; using the train name",
                split.file.display(),
                (split.entry)(i),
                d.label,
                split.split
            );
        }
    }
    Ok(())
}

/// Reads ImageNet's `classnames.txt` (`"<wnid> <name words...>"` per line) as
/// the reference's `read_classnames`: an ordered map from folder to name.
/// Every line counts, in file order; a repeated key keeps its first position
/// and takes the later name, as Python's `OrderedDict` does.
pub(crate) fn read_wnid_names(dataset: &str, path: &Path) -> Result<WnidNames> {
    let text = crate::listing::read_text(dataset, path)?;
    let mut order: Vec<String> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let (wnid, name) = line.split_once(' ').unwrap_or((line, ""));
        if let Some(old) = names.insert(wnid.to_string(), name.to_string()) {
            log::warn!("{dataset}: {}, line {}: {wnid:?} listed twice ({old:?}, then {name:?}); the later name wins", path.display(), i + 1);
        } else {
            order.push(wnid.to_string());
        }
    }
    Ok(WnidNames {
        file: path.to_path_buf(),
        order,
        names,
    })
}

/// The contents of a `classnames.txt`.
pub(crate) struct WnidNames {
    /// The file read.
    pub file: std::path::PathBuf,
    /// Keys in file order.
    pub order: Vec<String>,
    /// Key -> class name.
    pub names: HashMap<String, String>,
}

impl WnidNames {
    /// The name of folder `wnid`, or an [`DatasetError::UnknownClass`] naming `listed_in`.
    pub fn name_of(&self, dataset: &str, listed_in: &Path, wnid: &str) -> Result<String> {
        self.names
            .get(wnid)
            .cloned()
            .ok_or_else(|| DatasetError::UnknownClass {
                dataset: dataset.into(),
                file: listed_in.to_path_buf(),
                entry: format!("folder {wnid}"),
                class: wnid.into(),
                table: self.file.clone().into_boxed_path(),
            })
    }
}
