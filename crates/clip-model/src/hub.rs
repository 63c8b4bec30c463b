//! Resolving a weights argument: a local file or folder, or a Hugging Face hub model id
//! (through `hf-hub`, honouring the local cache and offline mode).

use std::path::{Path, PathBuf};

use crate::error::{ClipError, Result};

/// File names looked for in a folder or hub repository, in order.
pub const WEIGHT_FILE_NAMES: [&str; 4] = [
    "model.safetensors",
    "clip.safetensors",
    "clip_hf.safetensors",
    "open_clip_model.safetensors",
];

/// Where weights were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedWeights {
    /// The safetensors file.
    pub weights: PathBuf,
    /// Where it came from, for display (`path` or `hub:owner/name`).
    pub origin: String,
}

/// True when `HF_HUB_OFFLINE` asks for no network access (as `huggingface_hub` reads it).
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "on" | "yes" | "true"
            )
        })
        .unwrap_or(false)
}

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    hf_hub::Cache::from_env().path().clone()
}

fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Resolves `spec`: an existing file, a folder holding one of [`WEIGHT_FILE_NAMES`], or a
/// hub id `owner/name[@revision]`. Hub files are taken from the cache when present;
/// otherwise they are downloaded, unless [`hub_offline`] is set.
pub fn resolve_weights(spec: &str) -> Result<ResolvedWeights> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(ResolvedWeights {
            weights: path.to_path_buf(),
            origin: spec.to_string(),
        });
    }
    if path.is_dir() {
        return find_in_dir(path)
            .map(|weights| ResolvedWeights {
                weights,
                origin: spec.to_string(),
            })
            .ok_or_else(|| {
                ClipError::Invalid(format!("folder {spec} holds none of {WEIGHT_FILE_NAMES:?}"))
            });
    }
    let looks_like_id =
        spec.matches('/').count() == 1 && !spec.starts_with('.') && !spec.ends_with(".safetensors");
    if !looks_like_id {
        return Err(ClipError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file, and not a hub id owner/name",
            ),
        });
    }
    resolve_hub(spec, &hub_cache_dir(), hub_offline())
}

/// Resolves a hub id against an explicit cache folder (see [`resolve_weights`]).
pub fn resolve_hub(spec: &str, cache_dir: &Path, offline: bool) -> Result<ResolvedWeights> {
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let repo = hf_hub::Repo::with_revision(
        id.to_string(),
        hf_hub::RepoType::Model,
        revision.to_string(),
    );
    let cache = hf_hub::Cache::new(cache_dir.to_path_buf()).repo(repo.clone());
    let origin = format!("hub:{spec}");
    if let Some(weights) = WEIGHT_FILE_NAMES.iter().find_map(|n| cache.get(n)) {
        log::info!("using cached {} for {spec}", weights.display());
        return Ok(ResolvedWeights { weights, origin });
    }
    if offline {
        return Err(ClipError::Hub {
            repo: spec.to_string(),
            message: format!(
                "not in the local cache {} and HF_HUB_OFFLINE is set (looked for {:?})",
                cache_dir.display(),
                WEIGHT_FILE_NAMES
            ),
        });
    }
    let api =
        hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(cache_dir.to_path_buf()))
            .with_progress(true)
            .build()
            .map_err(|e| ClipError::Hub {
                repo: spec.to_string(),
                message: e.to_string(),
            })?;
    let weights = api
        .repo(repo)
        .get(WEIGHT_FILE_NAMES[0])
        .map_err(|e| ClipError::Hub {
            repo: spec.to_string(),
            message: format!("download of {} failed: {e}", WEIGHT_FILE_NAMES[0]),
        })?;
    Ok(ResolvedWeights { weights, origin })
}
