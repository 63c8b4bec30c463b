//! The files of a training run's checkpoint folder: `learner-epoch<N>.safetensors`, one per
//! completed epoch (older ones are removed once a newer one is written).

use std::path::{Path, PathBuf};

use crate::error::{io, Result};

/// File name of the checkpoint written after `epoch` (1-based) epochs.
pub fn checkpoint_name(epoch: usize) -> String {
    format!("learner-epoch{epoch}.safetensors")
}

/// The epoch of a checkpoint file name, if it is one.
pub fn checkpoint_epoch(file_name: &str) -> Option<usize> {
    file_name
        .strip_prefix("learner-epoch")
        .and_then(|r| r.strip_suffix(".safetensors"))
        .and_then(|n| n.parse::<usize>().ok())
}

/// The checkpoint with the most completed epochs in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(list_checkpoints(dir)?.into_iter().max_by_key(|(e, _)| *e))
}

/// Every checkpoint in `dir` with its epoch, in no particular order.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(epoch) = checkpoint_epoch(name) {
            out.push((epoch, path));
        }
    }
    Ok(out)
}
