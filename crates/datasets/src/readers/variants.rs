//! The test-only ImageNet variants: V2 (numbered folders) and Sketch, A, R (wnid folders).
//!
//! The reference passes the test list as its `train_x` only to derive the
//! class names; here the train and val lists are empty and the names come
//! from the same folders.

use std::path::Path;

use super::classes::read_wnid_names;
use super::imagenet::{class_names, list_labelled};
use super::FullSplits;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::listing::{list_sorted, require_dir, require_file};
use crate::name::DatasetName;

/// Entries of the image folder that the reference skips (ImageNet-A and -R ship a README).
fn ignored(name: DatasetName) -> &'static [&'static str] {
    match name {
        DatasetName::ImageNetA | DatasetName::ImageNetR => &["README.txt"],
        _ => &[],
    }
}

fn names_and_digest(
    name: DatasetName,
    dir: &Path,
) -> Result<(super::classes::WnidNames, SourceDigest)> {
    let ds = name.as_str();
    let file = dir.join("classnames.txt");
    require_file(
        ds,
        &file,
        "ImageNet's classnames.txt (\"<wnid> <class name>\" per line), copied into this folder",
    )?;
    let bytes = std::fs::read(&file).map_err(|source| DatasetError::Io {
        dataset: ds.into(),
        path: file.clone(),
        source,
    })?;
    Ok((
        read_wnid_names(ds, &file)?,
        SourceDigest::of_bytes("classnames.txt", &bytes),
    ))
}

/// ImageNet-Sketch, -A, -R: sorted `<wnid>` folders, label = position.
pub(crate) fn read_wnid(name: DatasetName, dir: &Path) -> Result<FullSplits> {
    let ds = name.as_str();
    let (names, digest) = names_and_digest(name, dir)?;
    let image_dir = dir.join(name.image_root());
    require_dir(ds, &image_dir, "one folder per wnid")?;
    let mut folders = Vec::new();
    for e in list_sorted(ds, &image_dir)? {
        if ignored(name).contains(&e.name.as_str()) {
            continue;
        }
        if !e.is_dir {
            return Err(DatasetError::BadEntry {
                dataset: ds.into(),
                file: image_dir.clone(),
                entry: e.name,
                reason: "not a class folder".into(),
            });
        }
        folders.push(e.name);
    }
    if folders.is_empty() {
        return Err(DatasetError::EmptySplit {
            dataset: ds.into(),
            file: image_dir,
            split: "test".into(),
        });
    }
    let classnames = class_names(ds, &names, &image_dir, &folders)?;
    let test = list_labelled(ds, &image_dir, name.image_root(), &folders)?;
    let listing = SourceDigest::of_listing(format!("listing:{}", name.image_root()), &test);
    Ok(FullSplits {
        classnames,
        train: Vec::new(),
        val: None,
        test,
        sources: vec![digest, listing],
    })
}

/// ImageNetV2: folders `0..n` for the `n` lines of `classnames.txt`, label =
/// folder number, name = that line's class name. A missing numbered folder or
/// an unexpected entry is an error.
pub(crate) fn read_numbered(name: DatasetName, dir: &Path) -> Result<FullSplits> {
    let ds = name.as_str();
    let (names, digest) = names_and_digest(name, dir)?;
    let image_dir = dir.join(name.image_root());
    require_dir(ds, &image_dir, "folders 0..999, one per ImageNet class")?;
    let n = names.order.len();
    let folders: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    for f in &folders {
        require_dir(
            ds,
            &image_dir.join(f),
            "ImageNetV2 needs one numbered folder per line of classnames.txt",
        )?;
    }
    for e in list_sorted(ds, &image_dir)? {
        let known = e
            .name
            .parse::<usize>()
            .map(|i| i < n && i.to_string() == e.name)
            .unwrap_or(false);
        if !known {
            return Err(DatasetError::BadEntry {
                dataset: ds.into(),
                file: image_dir.clone(),
                entry: e.name,
                reason: format!(
                    "expected only the folders 0..{} (one per line of classnames.txt)",
                    n.saturating_sub(1)
                ),
            });
        }
    }
    let classnames = names.order.iter().map(|w| names.names[w].clone()).collect();
    let test = list_labelled(ds, &image_dir, name.image_root(), &folders)?;
    let listing = SourceDigest::of_listing(format!("listing:{}", name.image_root()), &test);
    Ok(FullSplits {
        classnames,
        train: Vec::new(),
        val: None,
        test,
        sources: vec![digest, listing],
    })
}
