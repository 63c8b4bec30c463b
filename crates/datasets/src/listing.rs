//! Sorted directory listings and file-existence checks shared by the readers.
//!
//! Every listing is sorted by name in byte order (the reference sorts class
//! folders but not the files inside them; sorting both makes the few-shot
//! draws reproducible) and skips hidden entries, like Dassl's `listdir_nohidden`.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DatasetError, Result};

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file name.
    pub name: String,
    /// Whether it is (or links to) a folder.
    pub is_dir: bool,
}

/// Lists `dir` sorted by name, skipping names that start with `.`.
pub(crate) fn list_sorted(dataset: &str, dir: &Path) -> Result<Vec<Entry>> {
    let io = |source| DatasetError::Io {
        dataset: dataset.to_string(),
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|raw| DatasetError::BadEntry {
                dataset: dataset.to_string(),
                file: dir.to_path_buf(),
                entry: format!("{raw:?}"),
                reason: "file name is not valid UTF-8".into(),
            })?;
        if name.starts_with('.') {
            continue;
        }
        let ft = entry.file_type().map_err(io)?;
        let is_dir = if ft.is_symlink() {
            fs::metadata(entry.path())
                .map(|m| m.is_dir())
                .unwrap_or(false)
        } else {
            ft.is_dir()
        };
        out.push(Entry { name, is_dir });
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

/// Lists the images of one class folder: every non-hidden entry, sorted; a
/// sub-folder is an error (the reference would fail on it too).
pub(crate) fn list_class_files(dataset: &str, dir: &Path) -> Result<Vec<String>> {
    list_sorted(dataset, dir)?
        .into_iter()
        .map(|e| {
            if e.is_dir {
                Err(DatasetError::BadEntry {
                    dataset: dataset.to_string(),
                    file: dir.to_path_buf(),
                    entry: e.name,
                    reason: "a folder where images were expected".into(),
                })
            } else {
                Ok(e.name)
            }
        })
        .collect()
}

/// Fails with [`DatasetError::MissingFolder`] unless `dir` is a folder.
pub(crate) fn require_dir(dataset: &str, dir: &Path, what: &str) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(DatasetError::MissingFolder {
            dataset: dataset.to_string(),
            path: dir.to_path_buf(),
            what: what.into(),
        })
    }
}

/// Fails with [`DatasetError::MissingFile`] unless `file` is a file.
pub(crate) fn require_file(dataset: &str, file: &Path, what: &str) -> Result<()> {
    if file.is_file() {
        Ok(())
    } else {
        Err(DatasetError::MissingFile {
            dataset: dataset.to_string(),
            path: file.to_path_buf(),
            what: what.into(),
        })
    }
}

/// Why a path read from a list file may not be used: it is empty, absolute, or climbs out of
/// the folder it is relative to (a `..` component); `None` when it is confined.
///
/// Both `/` and `\\` count as separators, so the check means the same on every platform.
/// Symbolic links inside the dataset folder are followed on purpose: the folder's owner put
/// them there (ImageNet trees often link their image folders to another disk).
pub fn path_escape_reason(rel: &str) -> Option<&'static str> {
    if rel.is_empty() {
        return Some("the path is empty");
    }
    if rel.starts_with(['/', '\\']) || rel.as_bytes().get(1) == Some(&b':') {
        return Some("the path is absolute; paths must be relative to the dataset folder");
    }
    if rel.contains('\0') {
        return Some("the path contains a NUL byte");
    }
    if rel.split(['/', '\\']).any(|c| c == "..") {
        return Some("the path has a `..` component and would leave the dataset folder");
    }
    None
}

/// Fails with [`DatasetError::BadEntry`] naming the file, the entry and the path when a
/// listed path is not confined to the dataset folder ([`path_escape_reason`]).
pub(crate) fn check_confined(
    dataset: &str,
    listed_in: &Path,
    paths: &[&str],
    entry: impl Fn(usize) -> String,
) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        if let Some(reason) = path_escape_reason(p) {
            return Err(DatasetError::BadEntry {
                dataset: dataset.to_string(),
                file: listed_in.to_path_buf(),
                entry: entry(i),
                reason: format!("{reason}: {p:?}"),
            });
        }
    }
    Ok(())
}

/// Checks that every listed path is confined to `base` ([`check_confined`]), then, in
/// parallel, that every listed image is a file under `base`; reports the first missing one
/// (in list order) and how many are missing.
///
/// `entry` names an item for the message, e.g. `|i| format!("train[{i}]")`.
pub(crate) fn check_files_exist(
    dataset: &str,
    listed_in: &Path,
    base: &Path,
    paths: &[&str],
    entry: impl Fn(usize) -> String,
) -> Result<()> {
    check_confined(dataset, listed_in, paths, &entry)?;
    let missing: Vec<usize> = paths
        .par_iter()
        .enumerate()
        .filter(|(_, p)| !base.join(p).is_file())
        .map(|(i, _)| i)
        .collect();
    match missing.first() {
        None => Ok(()),
        Some(&i) => Err(DatasetError::MissingImage {
            dataset: dataset.to_string(),
            file: listed_in.to_path_buf(),
            entry: entry(i),
            path: base.join(paths[i]),
            missing: missing.len(),
        }),
    }
}

/// Joins path components with `/`, skipping empty ones.
pub(crate) fn join_rel(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads a text file as a string, naming the dataset on failure.
pub(crate) fn read_text(dataset: &str, path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| DatasetError::Io {
        dataset: dataset.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// `PathBuf` of `dir/name`.
pub(crate) fn child(dir: &Path, name: &str) -> PathBuf {
    if name.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(name)
    }
}
