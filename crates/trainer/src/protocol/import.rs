//! Where a checkpoint to import (instead of training) is found: a file, or a folder in the
//! reference's release layout or this project's output layout.

use std::path::{Path, PathBuf};

use crate::error::{io, Result, TrainerError};
use crate::results::ClassSet;

/// Sub-folders the reference's trainers save their `model.pth.tar-N` in: MaPLe's, CoOp's,
/// Co-CoOp's and VPT's (`prompt_learner`), IVLP's.
pub const REFERENCE_SUBFOLDERS: [&str; 3] = [
    "MultiModalPromptLearner",
    "prompt_learner",
    "VLPromptLearner",
];

/// A reference (or our own) checkpoint location to evaluate instead of training.
///
/// `path` is a checkpoint file, or a folder searched, for dataset `D`, seed `S` and
/// class half `H` (`base` for base-to-novel, nothing for cross-dataset), in
/// `path/D/H/seedS`, `path/H/seedS`, `path/D/seedS`, `path/seedS`, `path`, for
/// `<trainer folder>/model.pth.tar-E` (see [`REFERENCE_SUBFOLDERS`]) or `model.pth.tar-E`
/// (the reference's layout, E = `epoch` or the highest present) or our
/// `learner-epochE.safetensors` (also under `checkpoints/`). `{dataset}` and `{seed}` in
/// `path` are replaced first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSpec {
    /// File, folder or pattern.
    pub path: PathBuf,
    /// Epoch to load; `None` takes the highest found.
    pub epoch: Option<usize>,
}

impl ImportSpec {
    /// The checkpoint file for `dataset`, `seed` and class half `half`.
    pub fn resolve(&self, dataset: &str, seed: u64, half: Option<ClassSet>) -> Result<PathBuf> {
        let p = self
            .path
            .to_string_lossy()
            .replace("{dataset}", dataset)
            .replace("{seed}", &seed.to_string());
        let root = PathBuf::from(p);
        if root.is_file() {
            return Ok(root);
        }
        let s = format!("seed{seed}");
        let mut dirs = Vec::new();
        if let Some(h) = half {
            dirs.push(root.join(dataset).join(h.as_str()).join(&s));
            dirs.push(root.join(h.as_str()).join(&s));
        }
        dirs.push(root.join(dataset).join(&s));
        dirs.push(root.join(&s));
        dirs.push(root.clone());
        for dir in &dirs {
            let subs = REFERENCE_SUBFOLDERS
                .iter()
                .map(|f| dir.join(f))
                .chain([dir.clone(), dir.join("checkpoints")]);
            for sub in subs {
                if let Some(found) = find_epoch_file(&sub, self.epoch)? {
                    return Ok(found);
                }
            }
        }
        let e = self.epoch.map_or("N".into(), |e| e.to_string());
        Err(TrainerError::Invalid(format!(
            "no checkpoint for {dataset} seed {seed} under {}: looked for \
             {{{}}}/model.pth.tar-{e} or learner-epoch{e}.safetensors in {}",
            root.display(),
            REFERENCE_SUBFOLDERS.join(","),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// The learner checkpoint in a run folder or file: `path` itself when it is a file, else
/// the one with the highest epoch (or `epoch`) in `path`, `path/checkpoints` or a
/// reference trainer sub-folder (see [`REFERENCE_SUBFOLDERS`]).
pub fn find_checkpoint(path: &Path, epoch: Option<usize>) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(TrainerError::Invalid(format!(
            "{}: no such checkpoint file or run folder",
            path.display()
        )));
    }
    let subs = REFERENCE_SUBFOLDERS
        .iter()
        .map(|f| path.join(f))
        .chain([path.join("checkpoints"), path.to_path_buf()]);
    for sub in subs {
        if let Some(found) = find_epoch_file(&sub, epoch)? {
            return Ok(found);
        }
    }
    Err(TrainerError::Invalid(format!(
        "{}: no learner-epochN.safetensors or model.pth.tar-N in it, its checkpoints/ or {{{}}}/",
        path.display(),
        REFERENCE_SUBFOLDERS.join(",")
    )))
}

fn find_epoch_file(dir: &Path, epoch: Option<usize>) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let e = name
            .strip_prefix("model.pth.tar-")
            .and_then(|n| n.parse::<usize>().ok())
            .or_else(|| crate::train::files::checkpoint_epoch(name));
        if let Some(e) = e {
            if epoch.is_none_or(|want| want == e) && best.as_ref().is_none_or(|(b, _)| e > *b) {
                best = Some((e, path));
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}
