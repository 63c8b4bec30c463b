//! Resolving a weights argument: a local file or folder, or a Hugging Face hub model id
//! (through `hf-hub`, honouring the local cache and offline mode).
//!
//! **The rule** ([`parse_weights_spec`]): an argument that exists is a path; so is one with a
//! path separator other than the single `/` of `owner/name`, or with a file extension (a final
//! `.` followed by letters and digits only, e.g. `.safetensors`, `.bin`). A path that does not
//! exist is a "no such file" error naming it, never a hub request. Only `owner/name`
//! (optionally `@revision`) goes to the hub; `hub:owner/name` forces the hub for the rare
//! repository whose name looks like a file (`hub:timm/vit_base_patch16_clip_224.openai`).

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

/// What a weights argument names, by [`parse_weights_spec`]'s rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSpec {
    /// A local file or folder (which may not exist).
    Path(PathBuf),
    /// A hub model `owner/name` at `revision` (`main` when not given).
    Hub {
        /// `owner/name`.
        id: String,
        /// Branch, tag or commit hash.
        revision: String,
    },
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

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`; `None` when none of these can be determined.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = var("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = var("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    WEIGHT_FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether `s` is a hub name component: letters, digits, `-`, `_`, `.`, not starting with
/// `.` or `-`, at most 96 characters (the hub's own limit).
fn is_hub_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && !s.starts_with(['.', '-'])
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether `s` is an acceptable revision: a branch, tag or commit hash, without `..`
/// components or a leading `/` (it becomes a path inside the cache).
fn is_revision(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !s.starts_with('/')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Whether the last component ends in a file extension: `.` then only letters and digits.
fn has_extension(s: &str) -> bool {
    let last = s.rsplit(['/', '\\']).next().unwrap_or(s);
    match last.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty() && !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Classifies a weights argument (see the module documentation for the rule).
///
/// `Err` only for `hub:` followed by something that is not `owner/name[@revision]`.
pub fn parse_weights_spec(spec: &str) -> Result<WeightsSpec> {
    let hub = |s: &str| -> Option<WeightsSpec> {
        let (id, revision) = match s.split_once('@') {
            Some((id, rev)) => (id, is_revision(rev).then_some(rev)?),
            None => (s, "main"),
        };
        let (owner, name) = id.split_once('/')?;
        (is_hub_component(owner) && is_hub_component(name)).then(|| WeightsSpec::Hub {
            id: id.to_string(),
            revision: revision.to_string(),
        })
    };
    if let Some(forced) = spec.strip_prefix("hub:") {
        return hub(forced).ok_or_else(|| {
            ClipError::Invalid(format!(
                "`{spec}`: after `hub:` expected a hub id `owner/name[@revision]`"
            ))
        });
    }
    let path = Path::new(spec);
    let looks_like_path = path.exists()
        || spec.contains('\\')
        || spec.starts_with(['/', '.', '~'])
        || spec.split('@').next().unwrap_or(spec).matches('/').count() != 1
        || has_extension(spec.split('@').next().unwrap_or(spec));
    if looks_like_path {
        return Ok(WeightsSpec::Path(path.to_path_buf()));
    }
    Ok(hub(spec).unwrap_or_else(|| WeightsSpec::Path(path.to_path_buf())))
}

/// Resolves `spec`: an existing file, a folder holding one of [`WEIGHT_FILE_NAMES`], or a
/// hub id `owner/name[@revision]` ([`parse_weights_spec`]'s rule). Hub files are taken from
/// the cache ([`hub_cache_dir`]) when present; otherwise they are downloaded, unless
/// [`hub_offline`] is set.
///
/// # Errors
/// [`ClipError::Io`] (not found) naming the path when a path does not exist; a folder
/// without weights; [`ClipError::Hub`] for hub failures.
pub fn resolve_weights(spec: &str) -> Result<ResolvedWeights> {
    match parse_weights_spec(spec)? {
        WeightsSpec::Path(path) => resolve_path(&path, spec),
        WeightsSpec::Hub { .. } => {
            let cache = hub_cache_dir().ok_or_else(|| ClipError::Hub {
                repo: spec.to_string(),
                message: "no hub cache folder: set HF_HUB_CACHE, HF_HOME or HOME".into(),
            })?;
            resolve_hub(spec, &cache, hub_offline())
        }
    }
}

fn resolve_path(path: &Path, spec: &str) -> Result<ResolvedWeights> {
    if path.is_dir() {
        return find_in_dir(path)
            .map(|weights| ResolvedWeights {
                weights,
                origin: spec.to_string(),
            })
            .ok_or_else(|| {
                ClipError::Invalid(format!(
                    "folder {} holds none of {WEIGHT_FILE_NAMES:?}",
                    path.display()
                ))
            });
    }
    if path.exists() {
        return Ok(ResolvedWeights {
            weights: path.to_path_buf(),
            origin: spec.to_string(),
        });
    }
    Err(ClipError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file or folder (a hub model is written `owner/name`)",
        ),
    })
}

/// Resolves a hub id `owner/name[@revision]` (or `hub:owner/name[@revision]`) against an
/// explicit cache folder (see [`resolve_weights`]). A revision that is a commit hash is looked
/// up in the cache's snapshots directly; a branch or tag through the cache's `refs/`.
pub fn resolve_hub(spec: &str, cache_dir: &Path, offline: bool) -> Result<ResolvedWeights> {
    let hub_err = |message: String| ClipError::Hub {
        repo: spec.to_string(),
        message,
    };
    let forced = format!("hub:{}", spec.strip_prefix("hub:").unwrap_or(spec));
    // With the `hub:` prefix the parse is a hub id or an error, never a path.
    let WeightsSpec::Hub { id, revision } = parse_weights_spec(&forced)? else {
        return Err(hub_err("not a hub id `owner/name[@revision]`".into()));
    };
    let repo = hf_hub::Repo::with_revision(id.clone(), hf_hub::RepoType::Model, revision.clone());
    let origin = format!("hub:{}", spec.trim_start_matches("hub:"));
    let cached = || -> Option<PathBuf> {
        let cache = hf_hub::Cache::new(cache_dir.to_path_buf()).repo(repo.clone());
        if let Some(found) = WEIGHT_FILE_NAMES.iter().find_map(|n| cache.get(n)) {
            return Some(found);
        }
        // A commit hash names a snapshot folder directly.
        let is_hash = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
        if is_hash {
            let snap = cache_dir
                .join(repo.folder_name())
                .join("snapshots")
                .join(&revision);
            return find_in_dir(&snap);
        }
        None
    };
    if let Some(weights) = cached() {
        log::info!("using cached {} for {spec}", weights.display());
        return Ok(ResolvedWeights { weights, origin });
    }
    if offline {
        return Err(hub_err(format!(
            "not in the local cache {} and HF_HUB_OFFLINE is set (looked for {:?})",
            cache_dir.display(),
            WEIGHT_FILE_NAMES
        )));
    }
    download(spec, repo, cache_dir).map(|weights| ResolvedWeights { weights, origin })
}

/// Downloads the weights file of `repo` into the cache (the `hub` feature); errors are
/// [`ClipError::Hub`] naming `spec`.
#[cfg(feature = "hub")]
fn download(spec: &str, repo: hf_hub::Repo, cache_dir: &Path) -> Result<PathBuf> {
    let hub_err = |message: String| ClipError::Hub {
        repo: spec.to_string(),
        message,
    };
    let api =
        hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(cache_dir.to_path_buf()))
            .with_progress(true)
            .build()
            .map_err(|e| hub_err(format!("cannot start the hub client: {e}")))?;
    api.repo(repo)
        .get(WEIGHT_FILE_NAMES[0])
        .map_err(|e| hub_err(format!("download of {} failed: {e}", WEIGHT_FILE_NAMES[0])))
}

/// Without the `hub` feature nothing is downloaded: only the local cache is read.
#[cfg(not(feature = "hub"))]
fn download(spec: &str, _repo: hf_hub::Repo, cache_dir: &Path) -> Result<PathBuf> {
    Err(ClipError::Hub {
        repo: spec.to_string(),
        message: format!(
            "not in the local cache {} and this build cannot download (enable the `hub` cargo \
             feature, or pass a local file)",
            cache_dir.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(id: &str, rev: &str) -> WeightsSpec {
        WeightsSpec::Hub {
            id: id.into(),
            revision: rev.into(),
        }
    }

    #[test]
    fn only_owner_slash_name_goes_to_the_hub() {
        let p = |s: &str| WeightsSpec::Path(PathBuf::from(s));
        let cases = [
            (
                "openai/clip-vit-base-patch16",
                hub("openai/clip-vit-base-patch16", "main"),
            ),
            (
                "openai/clip-vit-base-patch16@v1.0",
                hub("openai/clip-vit-base-patch16", "v1.0"),
            ),
            ("Qwen/Qwen2.5-7B", hub("Qwen/Qwen2.5-7B", "main")),
            (
                "hub:timm/vit_b16.openai",
                hub("timm/vit_b16.openai", "main"),
            ),
            // File extensions, separators, relative and absolute forms are paths.
            ("weights/clip.safetensors", p("weights/clip.safetensors")),
            ("weights/clip.safetensor", p("weights/clip.safetensor")),
            ("clip.safetensors", p("clip.safetensors")),
            ("a/b/c", p("a/b/c")),
            ("./openai/clip", p("./openai/clip")),
            ("/abs/model", p("/abs/model")),
            ("~/model", p("~/model")),
            ("dir\\model", p("dir\\model")),
            ("clip", p("clip")),
            ("owner/na me", p("owner/na me")),
            ("owner/name@../../etc", p("owner/name@../../etc")),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_weights_spec(spec).unwrap(), want, "{spec}");
        }
        assert!(parse_weights_spec("hub:not a repo").is_err());
    }

    #[test]
    fn a_missing_path_is_no_such_file_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [
            dir.path().join("clip.safetensor"),
            dir.path().join("weights/model.safetensors"),
        ] {
            let spec = spec.to_str().unwrap();
            let err = resolve_weights(spec).unwrap_err();
            assert!(
                matches!(&err, ClipError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
                "{err:?}"
            );
            assert!(err.to_string().contains(spec), "{err}");
        }
        // A relative typo with a separator and an extension: a path, never the hub.
        let err = resolve_weights("wieghts/clip.safetensors").unwrap_err();
        assert!(matches!(err, ClipError::Io { .. }), "{err:?}");
        // An existing folder without weights names the folder.
        let err = resolve_weights(dir.path().to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("holds none of"), "{err}");
    }

    /// A cache laid out like `huggingface_hub`'s: refs/<rev> -> hash, snapshots/<hash>/file.
    fn fake_cache(root: &Path, id: &str, rev: &str, hash: &str, file: &str) -> PathBuf {
        let repo = root.join(format!("models--{}", id.replace('/', "--")));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join(rev), hash).unwrap();
        let snap = repo.join("snapshots").join(hash);
        std::fs::create_dir_all(&snap).unwrap();
        let f = snap.join(file);
        std::fs::write(&f, b"weights").unwrap();
        f
    }

    #[test]
    fn hub_ids_resolve_through_a_local_cache_offline() {
        let cache = tempfile::tempdir().unwrap();
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let main = fake_cache(
            cache.path(),
            "acme/tiny-clip",
            "main",
            hash,
            "model.safetensors",
        );
        let r = resolve_hub("acme/tiny-clip", cache.path(), true).unwrap();
        assert_eq!(r.weights, main);
        assert_eq!(r.origin, "hub:acme/tiny-clip");
        // The `hub:` form resolves the same.
        let r = resolve_hub("hub:acme/tiny-clip", cache.path(), true).unwrap();
        assert_eq!(r.weights, main);
        // A commit hash names its snapshot directly.
        let r = resolve_hub(&format!("acme/tiny-clip@{hash}"), cache.path(), true).unwrap();
        assert_eq!(r.weights, main);
        // A branch through refs/, with the second-choice file name.
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        let v2 = fake_cache(
            cache.path(),
            "acme/tiny-clip",
            "v2",
            other,
            "clip.safetensors",
        );
        let r = resolve_hub("acme/tiny-clip@v2", cache.path(), true).unwrap();
        assert_eq!(r.weights, v2);
        // Not cached and offline: a hub error naming the repo and the cache, no network.
        let err = resolve_hub("acme/other", cache.path(), true).unwrap_err();
        assert!(matches!(err, ClipError::Hub { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("acme/other") && msg.contains("HF_HUB_OFFLINE"),
            "{msg}"
        );
        // Not a hub id at all.
        assert!(resolve_hub("weights/clip.safetensors", cache.path(), true).is_err());
    }
}
