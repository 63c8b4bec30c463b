//! The FGVC Aircraft reader: `variants.txt` and `images_variant_{train,val,test}.txt`.
//!
//! Labels are line positions in `variants.txt`; each list line is
//! `"<image id> <variant name...>"` and names `images/<id>.jpg`.

use std::collections::HashMap;
use std::path::Path;

use super::classes::{check_against_table, table_from_train, NamedSplit};
use super::FullSplits;
use crate::datum::Datum;
use crate::digest::SourceDigest;
use crate::error::{DatasetError, Result};
use crate::listing::{check_files_exist, read_text, require_dir, require_file};
use crate::name::DatasetName;

const LISTS: [(&str, &str); 3] = [
    ("train", "images_variant_train.txt"),
    ("val", "images_variant_val.txt"),
    ("test", "images_variant_test.txt"),
];

pub(crate) fn read(name: DatasetName, dir: &Path) -> Result<FullSplits> {
    let ds = name.as_str();
    let variants_file = dir.join("variants.txt");
    require_file(
        ds,
        &variants_file,
        "the variant names, one per line (label = line position)",
    )?;
    require_dir(ds, &dir.join(name.image_root()), "the aircraft images")?;
    let variants_text = read_text(ds, &variants_file)?;
    // As the reference's dict comprehension: a repeated name takes its last position.
    let cname2lab: HashMap<&str, usize> = variants_text
        .lines()
        .enumerate()
        .map(|(i, l)| (l.trim(), i))
        .collect();
    let mut sources = vec![SourceDigest::of_bytes(
        "variants.txt",
        variants_text.as_bytes(),
    )];

    let mut paths = Vec::new();
    for (_, file) in LISTS {
        paths.push(dir.join(file));
    }
    let mut splits = Vec::new();
    for ((split, file), path) in LISTS.iter().zip(&paths) {
        require_file(ds, path, "an FGVC Aircraft split list")?;
        let text = read_text(ds, path)?;
        sources.push(SourceDigest::of_bytes(*file, text.as_bytes()));
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let (id, variant) = line.split_once(' ').unwrap_or((line, ""));
            let label = *cname2lab
                .get(variant)
                .ok_or_else(|| DatasetError::UnknownClass {
                    dataset: ds.into(),
                    file: path.clone(),
                    entry: format!("line {}", i + 1),
                    class: variant.into(),
                    table: variants_file.clone().into_boxed_path(),
                })?;
            items.push((
                Datum::new(format!("{}/{id}.jpg", name.image_root()), label),
                variant.to_string(),
            ));
        }
        splits.push(NamedSplit {
            split,
            file: path,
            items,
            entry: Box::new(|i| format!("line {}", i + 1)),
        });
    }
    let test = splits.pop().expect("three lists");
    let val = splits.pop().expect("three lists");
    let train = splits.pop().expect("three lists");
    let classnames = table_from_train(ds, &train)?;
    check_against_table(ds, &val, &classnames)?;
    check_against_table(ds, &test, &classnames)?;
    if test.items.is_empty() {
        return Err(DatasetError::EmptySplit {
            dataset: ds.into(),
            file: test.file.into(),
            split: "test".into(),
        });
    }
    for s in [&train, &val, &test] {
        let p: Vec<&str> = s.items.iter().map(|(d, _)| d.path.as_str()).collect();
        check_files_exist(ds, s.file, dir, &p, |i| (s.entry)(i))?;
    }
    Ok(FullSplits {
        classnames,
        train: train.into_data(),
        val: Some(val.into_data()),
        test: test.into_data(),
        sources,
    })
}
