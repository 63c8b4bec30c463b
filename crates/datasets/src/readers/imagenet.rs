//! The ImageNet reader: `images/train/<wnid>/*` and `images/val/<wnid>/*`, names from `classnames.txt`.
//!
//! Labels are the positions of the sorted wnid folders of `images/train`;
//! `images/val` is the test set (and the reference's val). The reference
//! labels the val folders by their own sorted order, so they must be the same
//! folders as train's; that is checked.

use std::path::Path;

use rayon::prelude::*;

use super::classes::{read_wnid_names, WnidNames};
use super::FullSplits;
use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::listing::{list_class_files, list_sorted, require_dir, require_file};
use crate::name::DatasetName;

pub(crate) fn read(name: DatasetName, dir: &Path) -> Result<FullSplits> {
    let ds = name.as_str();
    let names_file = dir.join("classnames.txt");
    require_file(
        ds,
        &names_file,
        "one \"<wnid> <class name>\" per line (CLIP's ImageNet names)",
    )?;
    let names = read_wnid_names(ds, &names_file)?;
    let bytes = std::fs::read(&names_file).map_err(|source| DatasetError::Io {
        dataset: ds.into(),
        path: names_file.clone(),
        source,
    })?;

    let (train_folders, train) = read_folders(name, dir, "train")?;
    let (test_folders, test) = read_folders(name, dir, "val")?;
    if train_folders != test_folders {
        let first = train_folders
            .iter()
            .zip(&test_folders)
            .position(|(a, b)| a != b)
            .unwrap_or(train_folders.len().min(test_folders.len()));
        return Err(DatasetError::BadEntry {
            dataset: ds.into(),
            file: dir.join("images/val"),
            entry: format!("class folder #{first}"),
            reason: format!(
                "images/val has {} class folders and images/train {}; they must be the same wnids (labels are folder positions); first difference: {:?} vs {:?}",
                test_folders.len(),
                train_folders.len(),
                test_folders.get(first),
                train_folders.get(first)
            ),
        });
    }
    let classnames = class_names(ds, &names, &dir.join("images/train"), &train_folders)?;
    log::info!(
        "{ds}: {} train and {} test images in {} classes",
        train.len(),
        test.len(),
        classnames.len()
    );
    let sources = vec![
        SourceDigest::of_bytes("classnames.txt", &bytes),
        SourceDigest::of_listing("listing:images/train", &train),
        SourceDigest::of_listing("listing:images/val", &test),
    ];
    Ok(FullSplits {
        classnames,
        train,
        val: None,
        test,
        sources,
    })
}

/// Lists `images/<split>`: the sorted class folders and every image, labelled by folder position.
fn read_folders(name: DatasetName, dir: &Path, split: &str) -> Result<(Vec<String>, Vec<Datum>)> {
    let ds = name.as_str();
    let split_dir = dir.join("images").join(split);
    require_dir(ds, &split_dir, "one folder per wnid")?;
    let mut folders = Vec::new();
    for e in list_sorted(ds, &split_dir)? {
        if e.is_dir {
            folders.push(e.name);
        } else {
            log::warn!(
                "{ds}: ignoring {} (not a class folder)",
                split_dir.join(&e.name).display()
            );
        }
    }
    let data = list_labelled(ds, &split_dir, &format!("images/{split}"), &folders)?;
    Ok((folders, data))
}

/// Lists the files of each class folder in parallel; label = folder position.
/// An empty class folder is an error.
pub(crate) fn list_labelled(
    ds: &str,
    base: &Path,
    rel_base: &str,
    folders: &[String],
) -> Result<Vec<Datum>> {
    let per_class: Vec<Vec<Datum>> = folders
        .par_iter()
        .enumerate()
        .map(|(label, folder)| {
            let files = list_class_files(ds, &base.join(folder))?;
            if files.is_empty() {
                return Err(DatasetError::EmptyClass {
                    dataset: ds.into(),
                    file: base.join(folder),
                    split: rel_base.into(),
                    label,
                    classname: folder.clone(),
                });
            }
            Ok(files
                .into_iter()
                .map(|f| Datum::new(format!("{rel_base}/{folder}/{f}"), label))
                .collect())
        })
        .collect::<Result<_>>()?;
    Ok(per_class.into_iter().flatten().collect())
}

/// Names for sorted wnid folders through `classnames.txt`.
pub(crate) fn class_names(
    ds: &str,
    names: &WnidNames,
    listed_in: &Path,
    folders: &[String],
) -> Result<Vec<String>> {
    folders
        .iter()
        .map(|f| names.name_of(ds, listed_in, f))
        .collect()
}
