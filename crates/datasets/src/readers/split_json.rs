//! The `split_zhou_<Name>.json` reader (Caltech101, Pets, Cars, Flowers, Food101, SUN397, DTD, EuroSAT, UCF101).
//!
//! The file is `{"train": [...], "val": [...], "test": [...]}`, each entry
//! `[path relative to the image root, label, classname]`. Only this path is
//! implemented: the reference's fallbacks that rebuild a missing split with
//! `random.shuffle` are not, and a missing split file is an error.

use std::path::Path;

use serde_json::Value;

use super::classes::{check_against_table, table_from_train, NamedSplit};
use super::FullSplits;
use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::listing::{
    check_files_exist, child, join_rel, path_escape_reason, require_dir, require_file,
};
use crate::name::DatasetName;

pub(crate) fn read(name: DatasetName, dir: &Path, file: &str) -> Result<FullSplits> {
    let ds = name.as_str();
    let path = dir.join(file);
    require_file(
        ds,
        &path,
        "the split file is required; this project does not rebuild missing splits (get it from the CoOp/MaPLe dataset instructions)",
    )?;
    let image_root = child(dir, name.image_root());
    require_dir(
        ds,
        &image_root,
        "the image folder the split file's paths are relative to",
    )?;
    let bytes = std::fs::read(&path).map_err(|source| DatasetError::Io {
        dataset: ds.into(),
        path: path.clone(),
        source,
    })?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|source| DatasetError::Json {
        dataset: ds.into(),
        path: path.clone(),
        source,
    })?;

    let mut splits = Vec::with_capacity(3);
    for split in ["train", "val", "test"] {
        splits.push(parse_split(name, &path, &json, split)?);
    }
    let test = splits.pop().expect("three splits");
    let val = splits.pop().expect("three splits");
    let train = splits.pop().expect("three splits");

    let classnames = table_from_train(ds, &train)?;
    check_against_table(ds, &val, &classnames)?;
    check_against_table(ds, &test, &classnames)?;
    if test.items.is_empty() {
        return Err(DatasetError::EmptySplit {
            dataset: ds.into(),
            file: path.clone(),
            split: "test".into(),
        });
    }
    for s in [&train, &val, &test] {
        let paths: Vec<&str> = s.items.iter().map(|(d, _)| d.path.as_str()).collect();
        check_files_exist(ds, &path, dir, &paths, |i| (s.entry)(i))?;
    }
    log::info!(
        "{ds}: read {} ({} train, {} val, {} test, {} classes)",
        path.display(),
        train.items.len(),
        val.items.len(),
        test.items.len(),
        classnames.len()
    );
    Ok(FullSplits {
        classnames,
        train: train.into_data(),
        val: Some(val.into_data()),
        test: test.into_data(),
        sources: vec![SourceDigest::of_bytes(file, &bytes)],
    })
}

fn parse_split<'a>(
    name: DatasetName,
    path: &'a Path,
    json: &Value,
    split: &'static str,
) -> Result<NamedSplit<'a>> {
    let ds = name.as_str();
    let bad = |entry: String, reason: String| DatasetError::BadEntry {
        dataset: ds.into(),
        file: path.into(),
        entry,
        reason,
    };
    let list = json
        .get(split)
        .ok_or_else(|| bad(split.into(), format!("no {split:?} key")))?
        .as_array()
        .ok_or_else(|| bad(split.into(), "not a list".into()))?;
    let mut items = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let entry = || format!("{split}[{i}]");
        let fields = item.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
            bad(
                entry(),
                format!("expected [path, label, classname], found {item}"),
            )
        })?;
        let rel = fields[0]
            .as_str()
            .ok_or_else(|| bad(entry(), format!("path is not a string: {}", fields[0])))?;
        if let Some(reason) = path_escape_reason(rel) {
            return Err(bad(entry(), format!("{reason}: {rel:?}")));
        }
        // The reference applies int() to the label, so "3" is accepted too.
        let label = match &fields[1] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            bad(
                entry(),
                format!("label is not a non-negative integer: {}", fields[1]),
            )
        })?;
        let classname = fields[2]
            .as_str()
            .ok_or_else(|| bad(entry(), format!("classname is not a string: {}", fields[2])))?;
        items.push((
            Datum::new(join_rel(&[name.image_root(), rel]), label as usize),
            classname.to_string(),
        ));
    }
    Ok(NamedSplit {
        split,
        file: path,
        items,
        entry: Box::new(move |i| format!("{split}[{i}]")),
    })
}
