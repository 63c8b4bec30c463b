//! Reading results: every `result.json` (one seed of one run) and `results.json` (a
//! command's summary) under a folder, turned into one flat list of accuracies
//! ([`Observation`]s) tagged with method, config, protocol, dataset, classes and seed.
//!
//! The formats are mirrored here with serde rather than taken from the `trainer` crate:
//! a report reads every format version the trainer ever wrote (v1 files, from before
//! methods were recorded, are MaPLe's), and mirroring only the fields read keeps the
//! reader tolerant of fields added later. What is read:
//!
//! - **Per-seed results** (`format` = [`SEED_RESULT_FORMAT`]): `protocol`, `dataset` (the
//!   dataset trained on), `seed`, `config.name`, and each of `evals[]`'s `dataset`,
//!   `classes` (`base`, `novel`, `all`) and `accuracy` (percent, full precision).
//! - **Summaries** (`format` = [`SUMMARY_FORMAT`]): `protocol`, `method`, `config`, and
//!   each of `rows[]`'s `dataset`, `seeds`, `role` and the per-seed `values` of `base`,
//!   `novel` or `accuracy`. A row named `D (W)` (single train / eval runs) is dataset `D`,
//!   classes `W`.
//! - **The method**: a `method` string field at the top level of either file (then
//!   `config.method`), spelled as a key (`maple`, `coop`, `cocoop`, `ivlp`, `vpt`,
//!   `zsclip`) or a label (`MaPLe`, `CLIP (zero-shot)`, ...; see
//!   [`crate::names::method_key`]); files without one are MaPLe's.
//!
//! A summary is used only where its own seed results are absent: a summary in folder `D`
//! is *superseded* when some per-seed result lies under `D` with no other summary's
//! folder in between (the trainer writes `D/results.json` next to
//! `D/<dataset>/seed<S>/result.json`). So zero-shot summaries (which have no per-seed
//! files) and summaries whose run folders were deleted count; nothing counts twice.
//! `results.txt` is the text rendering of `results.json` and is not read. JSON files of
//! those two names without a maple-burn `format` are skipped with a warning; a
//! maple-burn format of another version is an error.
//!
//! The same accuracy (method, config, protocol, training dataset, evaluated dataset,
//! classes, seed) found in two files counts once, from the first file in path order; a
//! warning says so when the two values differ.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io, ReportError, Result};
use crate::names::{method_key, DEFAULT_METHOD};
use crate::stats::round2;

/// The `format` of the trainer's per-seed `result.json` (the current version; `v1` files
/// are read too).
pub const SEED_RESULT_FORMAT: &str = "maple-burn/seed-result/v2";
/// The `format` of the trainer's `results.json` summaries (the current version; `v1`
/// files are read too).
pub const SUMMARY_FORMAT: &str = "maple-burn/summary/v2";
const SEED_RESULT_FORMATS: [&str; 2] = ["maple-burn/seed-result/v1", SEED_RESULT_FORMAT];
const SUMMARY_FORMATS: [&str; 2] = ["maple-burn/summary/v1", SUMMARY_FORMAT];

/// File names searched for.
const RESULT_FILE_NAMES: [&str; 2] = ["result.json", "results.json"];

/// What kind of result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A per-seed `result.json`.
    SeedResult,
    /// A command's `results.json`.
    Summary,
}

/// One file read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputFile {
    /// The file.
    pub path: PathBuf,
    /// Per-seed result or summary.
    pub kind: FileKind,
    /// Its `protocol`.
    pub protocol: String,
    /// Canonical method key.
    pub method: String,
    /// Config name.
    pub config: String,
    /// Whether its accuracies are used (`false` for a superseded summary).
    pub used: bool,
}

/// One accuracy of one evaluation of one seed (or of a seed-less run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Canonical method key (`maple`, `zsclip`, ...).
    pub method: String,
    /// Config name (`vit_b16_c2_ep5_batch4_2ctx`, `zsclip`, ...); empty when unknown.
    pub config: String,
    /// The trainer's protocol: `base2novel`, `xd`, `dg`, `train`, `eval`, `zeroshot`.
    pub protocol: String,
    /// The dataset trained on, when the file says (per-seed results; transfer summaries).
    pub trained_on: Option<String>,
    /// The dataset evaluated.
    pub dataset: String,
    /// `base`, `novel` or `all`.
    pub classes: String,
    /// `source` or `target` in transfer protocols (`xd`, `dg`).
    pub role: Option<String>,
    /// The seed; `None` for seed-less runs (zero-shot CLIP).
    pub seed: Option<u64>,
    /// Top-1 accuracy in percent, with 2 decimals (as logged).
    pub accuracy: f64,
    /// The file it was read from.
    pub file: PathBuf,
}

/// Everything read from a results folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collection {
    /// The folder read.
    pub root: PathBuf,
    /// Every result file found, in path order.
    pub files: Vec<InputFile>,
    /// The accuracies, deduplicated, in file order.
    pub observations: Vec<Observation>,
    /// Things the reader noticed: skipped files, conflicting duplicates.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct SeedFile {
    protocol: String,
    dataset: String,
    seed: u64,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    config: serde_json::Value,
    #[serde(default)]
    evals: Vec<EvalFile>,
}

#[derive(Deserialize)]
struct EvalFile {
    dataset: String,
    classes: String,
    accuracy: f64,
}

#[derive(Deserialize)]
struct SummaryFile {
    protocol: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    config: serde_json::Value,
    rows: Vec<RowFile>,
}

#[derive(Deserialize)]
struct RowFile {
    dataset: String,
    #[serde(default)]
    seeds: Vec<u64>,
    #[serde(default)]
    base: Option<StatFile>,
    #[serde(default)]
    novel: Option<StatFile>,
    #[serde(default)]
    accuracy: Option<StatFile>,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
struct StatFile {
    values: Vec<f64>,
}

/// A parsed file.
enum Parsed {
    Seed(SeedFile),
    Summary(SummaryFile),
}

/// Reads every result file under `dir` (recursively; symbolic links to folders are not
/// followed). See the module docs for what is read and how duplicates are resolved.
///
/// # Errors
/// [`ReportError::NotADirectory`], [`ReportError::Io`], [`ReportError::Parse`] (a
/// result file that is not JSON or lacks a required field),
/// [`ReportError::UnsupportedFormat`], and [`ReportError::NoResults`] when nothing was
/// found.
pub fn collect(dir: &Path) -> Result<Collection> {
    if !dir.is_dir() {
        return Err(ReportError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let mut warnings = Vec::new();
    let mut parsed: Vec<(PathBuf, Parsed)> = Vec::new();
    for path in paths {
        match read_file(&path)? {
            Some(p) => parsed.push((path, p)),
            None => warnings.push(format!(
                "skipped {}: not a maple-burn result file (no `format` {SEED_RESULT_FORMAT:?} or {SUMMARY_FORMAT:?})",
                path.display()
            )),
        }
    }
    if parsed.is_empty() {
        return Err(ReportError::NoResults {
            path: dir.to_path_buf(),
            seed: SEED_RESULT_FORMAT,
            summary: SUMMARY_FORMAT,
        });
    }
    let superseded = superseded_summaries(&parsed);

    let mut files = Vec::new();
    let mut observations = Vec::new();
    for (path, p) in &parsed {
        match p {
            Parsed::Seed(s) => {
                let (method, config) = method_and_config(s.method.as_deref(), &s.config);
                files.push(InputFile {
                    path: path.clone(),
                    kind: FileKind::SeedResult,
                    protocol: s.protocol.clone(),
                    method: method.clone(),
                    config: config.clone(),
                    used: true,
                });
                let transfer = is_transfer(&s.protocol);
                for e in &s.evals {
                    observations.push(Observation {
                        method: method.clone(),
                        config: config.clone(),
                        protocol: s.protocol.clone(),
                        trained_on: Some(s.dataset.clone()),
                        dataset: e.dataset.clone(),
                        classes: classes_word(&e.classes),
                        role: transfer.then(|| {
                            if e.dataset == s.dataset {
                                "source"
                            } else {
                                "target"
                            }
                            .to_string()
                        }),
                        seed: Some(s.seed),
                        accuracy: round2(e.accuracy),
                        file: path.clone(),
                    });
                }
            }
            Parsed::Summary(s) => {
                let (method, config) = method_and_config(s.method.as_deref(), &s.config);
                let used = !superseded.contains(path.parent().unwrap_or(Path::new("")));
                files.push(InputFile {
                    path: path.clone(),
                    kind: FileKind::Summary,
                    protocol: s.protocol.clone(),
                    method: method.clone(),
                    config: config.clone(),
                    used,
                });
                if used {
                    summary_observations(
                        path,
                        s,
                        &method,
                        &config,
                        &mut observations,
                        &mut warnings,
                    );
                }
            }
        }
    }
    let observations = deduplicate(observations, &mut warnings);
    Ok(Collection {
        root: dir.to_path_buf(),
        files,
        observations,
        warnings,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(io(&path))?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() || (ty.is_symlink() && path.is_file()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if RESULT_FILE_NAMES.contains(&name) {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Parses one file; `Ok(None)` for JSON that is not a maple-burn result.
fn read_file(path: &Path) -> Result<Option<Parsed>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        message: format!("not JSON: {e}"),
    })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    let bad = |what: &str, e: serde_json::Error| ReportError::Parse {
        path: path.to_path_buf(),
        message: format!("not a {what}: {e}"),
    };
    match format {
        f if SEED_RESULT_FORMATS.contains(&f) => Ok(Some(Parsed::Seed(
            serde_json::from_value(value).map_err(|e| bad("per-seed result", e))?,
        ))),
        f if SUMMARY_FORMATS.contains(&f) => Ok(Some(Parsed::Summary(
            serde_json::from_value(value).map_err(|e| bad("summary", e))?,
        ))),
        f if f.starts_with("maple-burn/seed-result/") || f.starts_with("maple-burn/summary/") => {
            Err(ReportError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: f.to_string(),
                known: [SEED_RESULT_FORMATS, SUMMARY_FORMATS].concat().join(", "),
            })
        }
        _ => Ok(None),
    }
}

/// Folders whose summary is superseded by per-seed results under them (see module docs).
fn superseded_summaries(parsed: &[(PathBuf, Parsed)]) -> BTreeSet<PathBuf> {
    let summary_dirs: BTreeSet<&Path> = parsed
        .iter()
        .filter(|(_, p)| matches!(p, Parsed::Summary(_)))
        .filter_map(|(path, _)| path.parent())
        .collect();
    let mut out = BTreeSet::new();
    for (path, p) in parsed {
        if let Parsed::Seed(_) = p {
            if let Some(d) = path.ancestors().skip(1).find(|a| summary_dirs.contains(a)) {
                out.insert(d.to_path_buf());
            }
        }
    }
    out
}

fn method_and_config(method: Option<&str>, config: &serde_json::Value) -> (String, String) {
    let from_config = config.get("method").and_then(|m| m.as_str());
    let method = method_key(method.or(from_config).unwrap_or(DEFAULT_METHOD));
    let config = match config {
        serde_json::Value::String(s) => s.clone(),
        v => v
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string(),
    };
    (method, config)
}

fn is_transfer(protocol: &str) -> bool {
    matches!(protocol, "xd" | "dg")
}

/// `new` (the reference's word) is `novel` here.
fn classes_word(w: &str) -> String {
    match w {
        "new" => "novel".into(),
        w => w.to_string(),
    }
}

/// `eurosat (base)` is dataset `eurosat`, classes `base`; other names are all classes.
fn split_row_name(name: &str) -> (String, String) {
    if let Some((d, rest)) = name.rsplit_once(" (") {
        if let Some(w) = rest.strip_suffix(')') {
            if matches!(w, "base" | "novel" | "new" | "all") {
                return (d.to_string(), classes_word(w));
            }
        }
    }
    (name.to_string(), "all".into())
}

fn summary_observations(
    path: &Path,
    s: &SummaryFile,
    method: &str,
    config: &str,
    out: &mut Vec<Observation>,
    warnings: &mut Vec<String>,
) {
    let source = s
        .rows
        .iter()
        .find(|r| r.role.as_deref() == Some("source"))
        .map(|r| r.dataset.clone());
    for row in &s.rows {
        let stats: Vec<(&StatFile, String, String)> = match (&row.base, &row.novel, &row.accuracy) {
            (b, n, _) if b.is_some() || n.is_some() => [(b, "base"), (n, "novel")]
                .into_iter()
                .filter_map(|(s, w)| s.as_ref().map(|s| (s, row.dataset.clone(), w.to_string())))
                .collect(),
            (_, _, Some(a)) => {
                let (d, w) = split_row_name(&row.dataset);
                vec![(a, d, w)]
            }
            _ => Vec::new(),
        };
        for (stat, dataset, classes) in stats {
            let seeds: Vec<Option<u64>> = if row.seeds.len() == stat.values.len() {
                row.seeds.iter().copied().map(Some).collect()
            } else {
                if !row.seeds.is_empty() {
                    warnings.push(format!(
                        "{}: row {:?} lists {} seeds for {} values; its values are taken as seed-less",
                        path.display(),
                        row.dataset,
                        row.seeds.len(),
                        stat.values.len()
                    ));
                }
                vec![None; stat.values.len()]
            };
            for (&v, seed) in stat.values.iter().zip(seeds) {
                out.push(Observation {
                    method: method.to_string(),
                    config: config.to_string(),
                    protocol: s.protocol.clone(),
                    trained_on: is_transfer(&s.protocol).then(|| source.clone()).flatten(),
                    dataset: dataset.clone(),
                    classes: classes.clone(),
                    role: row.role.clone(),
                    seed,
                    accuracy: round2(v),
                    file: path.to_path_buf(),
                });
            }
        }
    }
}

type DedupKey = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<u64>,
);

fn deduplicate(obs: Vec<Observation>, warnings: &mut Vec<String>) -> Vec<Observation> {
    let mut seen: HashMap<DedupKey, usize> = HashMap::new();
    let mut out: Vec<Observation> = Vec::new();
    // Conflicts are reported once per pair of files.
    let mut conflicts: BTreeMap<(PathBuf, PathBuf), usize> = BTreeMap::new();
    for o in obs {
        let key = (
            o.method.clone(),
            o.config.clone(),
            o.protocol.clone(),
            o.trained_on.clone(),
            o.dataset.clone(),
            o.classes.clone(),
            o.seed,
        );
        match seen.get(&key) {
            Some(&i) => {
                if out[i].accuracy != o.accuracy {
                    *conflicts
                        .entry((out[i].file.clone(), o.file.clone()))
                        .or_default() += 1;
                }
            }
            None => {
                seen.insert(key, out.len());
                out.push(o);
            }
        }
    }
    for ((kept, dropped), n) in conflicts {
        warnings.push(format!(
            "{} and {} hold {n} accuracies of the same method, config, dataset and seed with different values; the first file's are used",
            kept.display(),
            dropped.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_run_row_names_split_into_dataset_and_classes() {
        assert_eq!(
            split_row_name("eurosat (base)"),
            ("eurosat".into(), "base".into())
        );
        assert_eq!(split_row_name("dtd (new)"), ("dtd".into(), "novel".into()));
        assert_eq!(
            split_row_name("imagenet_a"),
            ("imagenet_a".into(), "all".into())
        );
        assert_eq!(
            split_row_name("world (v2)"),
            ("world (v2)".into(), "all".into())
        );
    }

    #[test]
    fn method_comes_from_the_file_then_the_config_then_defaults_to_maple() {
        let cfg = serde_json::json!({"name": "c", "method": "CoOp"});
        assert_eq!(
            method_and_config(Some("ivlp"), &cfg),
            ("ivlp".into(), "c".into())
        );
        assert_eq!(method_and_config(None, &cfg), ("coop".into(), "c".into()));
        let plain = serde_json::json!("zsclip");
        assert_eq!(
            method_and_config(None, &plain),
            ("maple".into(), "zsclip".into())
        );
    }
}
