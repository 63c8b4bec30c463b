//! Result records and summaries: per-seed results, seed means, the harmonic mean, the
//! multi-dataset average, and their JSON and text-table forms, written atomically.
//!
//! Averaging follows the reference's `parse_test_res.py` and the paper's tables
//! (`docs/PROTOCOL.md` §6): each seed's accuracy is taken with 2 decimals (as logged),
//! a dataset's value is the mean over seeds with 2 decimals (std is the population std),
//! HM = 2·B·N/(B+N) is computed from those seed-averaged B and N, and the
//! multi-dataset average is the plain mean of the per-dataset B and N, with its HM
//! computed from the two means (not the mean of per-dataset HMs).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::Result;
use crate::stats::{Accuracy, EpochStats};

/// Value of the `format` field of a [`SeedResult`].
pub const SEED_RESULT_FORMAT: &str = "maple-burn/seed-result/v2";
/// Value of the `format` field of a [`Summary`].
pub const SUMMARY_FORMAT: &str = "maple-burn/summary/v2";

/// The method identifier of zero-shot CLIP in results (the prompt methods use
/// [`maple_prompts::Method::as_str`]).
pub const ZERO_SHOT: &str = "zsclip";

/// The paper's name of a method identifier (`maple` -> `MaPLe`, `zsclip` -> `CLIP`).
pub fn method_display_name(id: &str) -> String {
    if id == ZERO_SHOT {
        return "CLIP".into();
    }
    id.parse::<maple_prompts::Method>()
        .map(|m| m.display_name().to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// A protocol, as written in result files and output paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Base-to-novel generalisation.
    Base2novel,
    /// One dataset, one class subsample: train and test.
    Train,
    /// Cross-dataset transfer.
    Xd,
    /// Domain generalisation.
    Dg,
    /// Evaluation of saved or imported checkpoints.
    Eval,
    /// Zero-shot CLIP.
    Zeroshot,
}

impl Protocol {
    /// The name in files and paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Base2novel => "base2novel",
            Protocol::Train => "train",
            Protocol::Xd => "xd",
            Protocol::Dg => "dg",
            Protocol::Eval => "eval",
            Protocol::Zeroshot => "zeroshot",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which classes an evaluation chose among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassSet {
    /// The first half of the labels.
    Base,
    /// The second half.
    Novel,
    /// Every class.
    All,
}

impl ClassSet {
    /// The word in files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassSet::Base => "base",
            ClassSet::Novel => "novel",
            ClassSet::All => "all",
        }
    }
}

impl std::fmt::Display for ClassSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<datasets::Subsample> for ClassSet {
    fn from(s: datasets::Subsample) -> Self {
        match s {
            datasets::Subsample::All => ClassSet::All,
            datasets::Subsample::Base => ClassSet::Base,
            datasets::Subsample::New => ClassSet::Novel,
        }
    }
}

/// Rounds to 2 decimals (half away from zero), as `{:.2f}` prints for these values.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The harmonic mean of base and novel accuracy, `2·B·N/(B+N)` (0 when both are 0).
pub fn harmonic_mean(base: f64, novel: f64) -> f64 {
    if base + novel == 0.0 {
        0.0
    } else {
        2.0 * base * novel / (base + novel)
    }
}

/// One evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Dataset evaluated.
    pub dataset: String,
    /// Which classes.
    pub classes: ClassSet,
    /// Number of classes the model chose among.
    pub num_classes: usize,
    /// Images classified correctly.
    pub correct: usize,
    /// Images evaluated.
    pub total: usize,
    /// `100 * correct / total`, full precision.
    pub accuracy: f64,
}

impl EvalRecord {
    /// A record from an accuracy.
    pub fn new(dataset: &str, classes: ClassSet, num_classes: usize, acc: &Accuracy) -> Self {
        EvalRecord {
            dataset: dataset.into(),
            classes,
            num_classes,
            correct: acc.correct,
            total: acc.total,
            accuracy: acc.percent(),
        }
    }
}

/// What training did in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    /// Training images.
    pub images: usize,
    /// Classes trained on.
    pub num_classes: usize,
    /// Epochs loaded from a checkpoint instead of run by the last invocation.
    pub resumed_epochs: usize,
    /// Every epoch.
    pub history: Vec<EpochStats>,
    /// The final learner checkpoint (relative to the run folder when inside it).
    pub checkpoint: Option<String>,
}

/// Everything one seed of a protocol produced; `result.json` in the run folder. Its
/// presence marks the run as complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// [`SEED_RESULT_FORMAT`].
    pub format: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The method identifier (`maple`, `coop`, `cocoop`, `ivlp`, `vpt`).
    pub method: String,
    /// The dataset trained on (or evaluated, without training).
    pub dataset: String,
    /// The seed.
    pub seed: u64,
    /// The settings.
    pub config: RunConfig,
    /// Where the CLIP weights came from.
    pub weights: String,
    /// Where the learner came from when it was not trained here (an imported checkpoint).
    #[serde(default)]
    pub learner: Option<String>,
    /// Training, when the run trained.
    pub train: Option<TrainRecord>,
    /// Evaluations, in order.
    pub evals: Vec<EvalRecord>,
}

impl SeedResult {
    /// The accuracy of the evaluation of `dataset` on `classes`, if it was made.
    pub fn accuracy(&self, dataset: &str, classes: ClassSet) -> Option<f64> {
        self.evals
            .iter()
            .find(|e| e.dataset == dataset && e.classes == classes)
            .map(|e| e.accuracy)
    }

    /// Reads a result file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        serde_json::from_str(&text).map_err(|e| crate::error::TrainerError::Config {
            path: path.to_path_buf(),
            message: format!("not a seed result: {e}"),
        })
    }
}

/// Mean and spread of one quantity over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedStat {
    /// Per-seed values with 2 decimals, in seed order.
    pub values: Vec<f64>,
    /// Mean of `values`, with 2 decimals.
    pub mean: f64,
    /// Population standard deviation of `values`, with 2 decimals.
    pub std: f64,
}

impl SeedStat {
    /// Statistics of per-seed accuracies (rounded to 2 decimals first, as logged).
    pub fn of(values: &[f64]) -> Self {
        let values: Vec<f64> = values.iter().map(|&v| round2(v)).collect();
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        SeedStat {
            mean: round2(mean),
            std: round2(var.sqrt()),
            values,
        }
    }
}

/// One row of a summary: a dataset's seed statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Dataset (or `procedural`).
    pub dataset: String,
    /// Seeds averaged.
    pub seeds: Vec<u64>,
    /// Base-class accuracy (base-to-novel).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub base: Option<SeedStat>,
    /// Novel-class accuracy (base-to-novel).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub novel: Option<SeedStat>,
    /// HM of the mean base and novel accuracies, with 2 decimals.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hm: Option<f64>,
    /// All-class accuracy (cross-dataset, domain generalisation, single evaluations).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<SeedStat>,
    /// `source` or `target` in transfer protocols.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
}

impl SummaryRow {
    /// A base-to-novel row from per-seed base and novel accuracies.
    pub fn base_to_novel(dataset: &str, seeds: &[u64], base: &[f64], novel: &[f64]) -> Self {
        let (b, n) = (SeedStat::of(base), SeedStat::of(novel));
        SummaryRow {
            dataset: dataset.into(),
            seeds: seeds.to_vec(),
            hm: Some(round2(harmonic_mean(b.mean, n.mean))),
            base: Some(b),
            novel: Some(n),
            accuracy: None,
            role: None,
        }
    }

    /// A single-accuracy row.
    pub fn accuracy(dataset: &str, seeds: &[u64], acc: &[f64], role: Option<&str>) -> Self {
        SummaryRow {
            dataset: dataset.into(),
            seeds: seeds.to_vec(),
            base: None,
            novel: None,
            hm: None,
            accuracy: Some(SeedStat::of(acc)),
            role: role.map(Into::into),
        }
    }
}

/// The average row of a multi-dataset summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageRow {
    /// Datasets averaged.
    pub datasets: usize,
    /// Mean of the per-dataset base means.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub base: Option<f64>,
    /// Mean of the per-dataset novel means.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub novel: Option<f64>,
    /// HM of the two means.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hm: Option<f64>,
    /// Mean of the per-dataset accuracies (targets only in transfer protocols).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
}

/// A protocol's summary over datasets: `results.json` (and `results.txt`) in the output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SUMMARY_FORMAT`].
    pub format: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The method identifier: `maple`, `coop`, `cocoop`, `ivlp`, `vpt`, or [`ZERO_SHOT`].
    pub method: String,
    /// Config name.
    pub config: String,
    /// Where the CLIP weights came from.
    pub weights: String,
    /// Backend and device.
    pub device: String,
    /// One row per dataset.
    pub rows: Vec<SummaryRow>,
    /// The average over rows (targets only in transfer protocols), when there are two or more.
    pub average: Option<AverageRow>,
}

impl Summary {
    /// A summary of `rows`, with the average computed as the module docs say.
    pub fn new(
        protocol: Protocol,
        method: &str,
        config: &str,
        weights: &str,
        device: &str,
        rows: Vec<SummaryRow>,
    ) -> Self {
        let average = average(&rows);
        Summary {
            format: SUMMARY_FORMAT.into(),
            protocol,
            method: method.into(),
            config: config.into(),
            weights: weights.into(),
            device: device.into(),
            rows,
            average,
        }
    }

    /// The human-readable table (paper style: accuracies in percent, 2 decimals).
    pub fn table(&self) -> String {
        let mut t = Table::default();
        let b2n = self.rows.iter().any(|r| r.base.is_some());
        let transfer = self.rows.iter().any(|r| r.role.is_some());
        let multi_seed = self.rows.iter().any(|r| r.seeds.len() > 1);
        let mut header = vec!["Dataset".to_string()];
        if transfer {
            header.push("Role".into());
        }
        if b2n {
            header.extend(["Base".into(), "Novel".into(), "HM".into()]);
        } else {
            header.push("Accuracy".into());
        }
        if multi_seed {
            header.push("Std (B / N)".into());
        }
        header.push("Seeds".into());
        t.row(header);
        for r in &self.rows {
            let mut cells = vec![r.dataset.clone()];
            if transfer {
                cells.push(r.role.clone().unwrap_or_default());
            }
            if b2n {
                cells.push(fmt_stat(&r.base));
                cells.push(fmt_stat(&r.novel));
                cells.push(r.hm.map_or("-".into(), |h| format!("{h:.2}")));
            } else {
                cells.push(fmt_stat(&r.accuracy));
            }
            if multi_seed {
                cells.push(match (&r.base, &r.novel, &r.accuracy) {
                    (Some(b), Some(n), _) => format!("{:.2} / {:.2}", b.std, n.std),
                    (_, _, Some(a)) => format!("{:.2}", a.std),
                    _ => "-".into(),
                });
            }
            cells.push(
                r.seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
            t.row(cells);
        }
        if let Some(a) = &self.average {
            let mut cells = vec![format!("Average ({} datasets)", a.datasets)];
            if transfer {
                cells.push("target".into());
            }
            if b2n {
                for v in [a.base, a.novel, a.hm] {
                    cells.push(v.map_or("-".into(), |v| format!("{v:.2}")));
                }
            } else {
                cells.push(a.accuracy.map_or("-".into(), |v| format!("{v:.2}")));
            }
            if multi_seed {
                cells.push(String::new());
            }
            cells.push(String::new());
            t.separator();
            t.row(cells);
        }
        format!(
            "{} — {} ({}), weights {}, {}\n{}",
            self.protocol,
            method_display_name(&self.method),
            self.config,
            self.weights,
            self.device,
            t.render()
        )
    }

    /// Writes `results.json` and `results.txt` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("results.json"), self)?;
        write_text(&dir.join("results.txt"), &self.table())
    }
}

fn fmt_stat(s: &Option<SeedStat>) -> String {
    s.as_ref().map_or("-".into(), |s| format!("{:.2}", s.mean))
}

fn average(rows: &[SummaryRow]) -> Option<AverageRow> {
    let rows: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.role.as_deref() != Some("source"))
        .collect();
    if rows.len() < 2 {
        return None;
    }
    let mean = |f: &dyn Fn(&SummaryRow) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = rows.iter().map(|r| f(r)).collect();
        v.map(|v| round2(v.iter().sum::<f64>() / v.len() as f64))
    };
    let base = mean(&|r| r.base.as_ref().map(|s| s.mean));
    let novel = mean(&|r| r.novel.as_ref().map(|s| s.mean));
    let hm = base.zip(novel).map(|(b, n)| round2(harmonic_mean(b, n)));
    let accuracy = mean(&|r| r.accuracy.as_ref().map(|s| s.mean));
    Some(AverageRow {
        datasets: rows.len(),
        base,
        novel,
        hm,
        accuracy,
    })
}

/// Writes pretty JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::error::TrainerError::Invalid(format!("{}: {e}", path.display())))?;
    write_text(path, &format!("{text}\n"))
}

/// Writes text atomically ([`clip_model::atomic::write_atomic`]).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    clip_model::atomic::write_atomic(path, text.as_bytes())
        .map_err(|(path, source)| crate::error::TrainerError::Io { path, source })
}

/// A plain text table with left-aligned first column and right-aligned others.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Option<Vec<String>>>,
}

impl Table {
    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Some(cells));
    }

    /// Adds a horizontal rule.
    pub fn separator(&mut self) {
        self.rows.push(None);
    }

    /// The table, a rule under the first row.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().flatten().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0; cols];
        for r in self.rows.iter().flatten() {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let total = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
        let mut out = String::new();
        for (k, r) in self.rows.iter().enumerate() {
            match r {
                None => out.push_str(&format!("{}\n", "-".repeat(total))),
                Some(r) => {
                    let line: Vec<String> = r
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if i == 0 {
                                format!("{c:<w$}", w = width[i])
                            } else {
                                format!("{c:>w$}", w = width[i])
                            }
                        })
                        .collect();
                    out.push_str(line.join("  ").trim_end());
                    out.push('\n');
                    if k == 0 {
                        out.push_str(&format!("{}\n", "-".repeat(total)));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hm_of_the_paper_average_is_78_55() {
        // The MaPLe paper's 11-dataset average: B 82.28, N 75.14, HM 78.55.
        assert_eq!(round2(harmonic_mean(82.28, 75.14)), 78.55);
    }

    #[test]
    fn seed_means_use_logged_two_decimal_values_and_population_std() {
        let s = SeedStat::of(&[50.004, 60.0, 70.0]);
        assert_eq!(s.values, vec![50.0, 60.0, 70.0]);
        assert_eq!(s.mean, 60.0);
        assert_eq!(s.std, 8.16);
    }

    #[test]
    fn the_average_hm_comes_from_mean_base_and_novel_not_mean_hm() {
        let rows = vec![
            SummaryRow::base_to_novel("a", &[1], &[90.0], &[50.0]),
            SummaryRow::base_to_novel("b", &[1], &[70.0], &[70.0]),
        ];
        let s = Summary::new(Protocol::Base2novel, "maple", "c", "w", "d", rows);
        let a = s.average.clone().unwrap();
        assert_eq!((a.base, a.novel), (Some(80.0), Some(60.0)));
        assert_eq!(a.hm, Some(68.57));
        assert!(s.table().contains("Average (2 datasets)"));
    }
}
