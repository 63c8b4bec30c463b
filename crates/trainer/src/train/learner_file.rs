//! Loading a trained learner from a file: one of this project's checkpoints (the file says
//! which method and settings built it) or a checkpoint of the reference implementation
//! (`model.pth.tar-N`, read without executing anything).

use std::path::Path;

use burn::tensor::backend::Backend;
use maple_prompts::checkpoint::{load_checkpoint, read_reference_checkpoint};
use maple_prompts::{AnyLearner, Method, MethodConfig};

use crate::config::RunConfig;
use crate::error::{io, Result, TrainerError};
use crate::train::Backbone;

/// How a learner checkpoint to evaluate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// This project's learner checkpoint (`learner-epochN.safetensors`).
    Ours,
    /// The reference implementation's `model.pth.tar-N`.
    Reference,
}

/// Whether `path` is a reference (PyTorch) checkpoint or one of ours, by its first bytes.
///
/// Ours is safetensors: an 8-byte little-endian header length that fits the file, then the
/// JSON header (`{`). That is tested first, because the length's low byte may be anything,
/// including a pickle's protocol byte 0x80.
pub fn checkpoint_kind(path: &Path) -> Result<CheckpointKind> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(io(path))?;
    let size = f.metadata().map_err(io(path))?.len();
    let mut head = Vec::with_capacity(9);
    f.take(9).read_to_end(&mut head).map_err(io(path))?;
    if head.len() == 9 && head[8] == b'{' {
        let header = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if header >= 2 && header <= size - 8 {
            return Ok(CheckpointKind::Ours);
        }
    }
    // torch.save writes a zip archive ("PK\x03\x04"); old torch a raw pickle (0x80 protocol byte).
    let torch = head.starts_with(b"PK") || head.first() == Some(&0x80);
    Ok(if torch {
        CheckpointKind::Reference
    } else {
        CheckpointKind::Ours
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(bytes: &[u8]) -> CheckpointKind {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, bytes).unwrap();
        checkpoint_kind(&p).unwrap()
    }

    #[test]
    fn safetensors_whose_header_length_starts_with_0x80_is_ours() {
        // A header of 0x80 = 128 bytes: its length's first byte is a pickle protocol byte.
        let json = format!("{{\"__metadata__\":{{\"a\":\"{}\"}}}}", "x".repeat(103));
        assert_eq!(json.len(), 128);
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend(json.as_bytes());
        assert_eq!(bytes[0], 0x80);
        assert_eq!(kind_of(&bytes), CheckpointKind::Ours);
    }

    #[test]
    fn torch_zip_and_raw_pickles_are_the_references() {
        assert_eq!(kind_of(b"PK\x03\x04rest"), CheckpointKind::Reference);
        assert_eq!(
            kind_of(&[0x80, 0x02, b'}', b'q']),
            CheckpointKind::Reference
        );
        // A length that does not fit the file is not safetensors.
        let mut fake = vec![0x80, 0xff, 0xff, 0, 0, 0, 0, 0];
        fake.extend(b"{}");
        assert_eq!(kind_of(&fake), CheckpointKind::Reference);
    }
}

/// The method of the learner in a checkpoint file (ours: from its settings; the
/// reference's: recognised from its tensor names).
pub fn checkpoint_method(path: &Path) -> Result<Method> {
    match checkpoint_kind(path)? {
        CheckpointKind::Ours => {
            let bytes = std::fs::read(path).map_err(io(path))?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                TrainerError::Config {
                    path: path.to_path_buf(),
                    message: format!("not a learner checkpoint: {e}"),
                }
            })?;
            let settings: serde_json::Value = header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("config"))
                .and_then(|c| serde_json::from_str(c).ok())
                .ok_or_else(|| TrainerError::Config {
                    path: path.to_path_buf(),
                    message: "no readable `config` metadata: not a learner checkpoint".into(),
                })?;
            Ok(MethodConfig::from_settings(&settings)?.method())
        }
        CheckpointKind::Reference => {
            read_reference_checkpoint(path)?
                .detect_method()
                .ok_or_else(|| TrainerError::Config {
                    path: path.to_path_buf(),
                    message: "no prompt-learner tensors of a known method".into(),
                })
        }
    }
}

/// A learner loaded from a file, with what the file says about it.
#[derive(Debug)]
pub struct LoadedLearner<B: Backend> {
    /// The learner.
    pub learner: AnyLearner<B>,
    /// The settings that built it.
    pub settings: MethodConfig,
    /// The epoch recorded in the file.
    pub epoch: Option<usize>,
}

/// Loads a learner to evaluate from `path`: one of our checkpoints (its own method and
/// settings are used) or a reference `model.pth.tar-N` (its method is recognised from the
/// tensor names and must be `config`'s method; sizes are read from the tensors and the
/// context words come from `config`).
///
/// # Errors
/// A file that is neither kind, a method other than `config`'s, tensors that do not fit.
pub fn load_learner<B: Backend>(
    path: &Path,
    backbone: &Backbone<B>,
    config: &RunConfig,
) -> Result<LoadedLearner<B>> {
    let wanted = config.learner.method();
    match checkpoint_kind(path)? {
        CheckpointKind::Ours => {
            let bytes = std::fs::read(path).map_err(io(path))?;
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                TrainerError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "neither a reference checkpoint nor a safetensors learner checkpoint: {e}"
                    ),
                }
            })?;
            let meta = header.metadata().clone().unwrap_or_default();
            let unreadable = |what: &str| TrainerError::Config {
                path: path.to_path_buf(),
                message: format!("no readable `{what}` metadata: not a learner checkpoint"),
            };
            let settings: serde_json::Value = meta
                .get("config")
                .and_then(|c| serde_json::from_str(c).ok())
                .ok_or_else(|| unreadable("config"))?;
            let settings = MethodConfig::from_settings(&settings)?;
            if settings.method() != wanted {
                return Err(TrainerError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "this checkpoint holds a {} learner, but the method is {wanted}",
                        settings.method()
                    ),
                });
            }
            let classes: Vec<String> = meta
                .get("class_names")
                .and_then(|c| serde_json::from_str(c).ok())
                .ok_or_else(|| unreadable("class_names"))?;
            let fresh = settings.init(&backbone.clip, &backbone.tokenizer, classes.len())?;
            let (learner, state) = load_checkpoint::<B, _>(path, fresh)?;
            Ok(LoadedLearner {
                learner,
                settings,
                epoch: Some(state.epoch),
            })
        }
        CheckpointKind::Reference => {
            let r = read_reference_checkpoint(path)?;
            let settings = r
                .settings_for(&config.learner)
                .map_err(|e| TrainerError::Config {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            let fresh = settings.init(&backbone.clip, &backbone.tokenizer, r.num_classes())?;
            let learner = r.load_into::<B>(fresh, path)?;
            Ok(LoadedLearner {
                learner,
                settings,
                epoch: r.epoch.and_then(|e| usize::try_from(e).ok()),
            })
        }
    }
}
