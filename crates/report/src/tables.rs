//! The paper-style tables built from a [`Collection`]: base-to-novel (per dataset and
//! average), cross-dataset and domain-generalisation transfer, and single evaluations,
//! each with the paper's published numbers alongside where the paper has them.
//!
//! Which accuracy goes where:
//! - **base-to-novel**: `base` / `novel` accuracies of protocols `base2novel` and
//!   `zeroshot`;
//! - **transfer**: protocols `xd` and `dg`, one table per protocol and training dataset;
//!   zero-shot CLIP's all-class accuracies on the ImageNet variants join the
//!   domain-generalisation tables (the paper's CLIP row there is zero-shot CLIP);
//! - **single evaluations**: everything else (`train`, `eval`, other zero-shot rows).
//!
//! A *series* is one method with one config: two configs of one method are two series,
//! labelled `MaPLe [config]` where a table holds both.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::input::{Collection, Observation};
use crate::names::{
    dataset_rank, method_label, method_rank, BASE_TO_NOVEL_DATASETS, DOMAIN_GENERALISATION_TARGETS,
};
use crate::paper::{PaperNumbers, Provenance};
use crate::stats::{harmonic_mean, mean2, round2, Stat};

/// One method with one config, as a table shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Series {
    /// Canonical method key.
    pub method: String,
    /// Config name.
    pub config: String,
    /// Display label (the method's, with the config where needed to tell series apart).
    pub label: String,
}

/// All tables of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tables {
    /// Base-to-novel generalisation, when any base or novel accuracy was found.
    pub base_to_novel: Option<BaseToNovelTable>,
    /// Cross-dataset (`xd`) and domain-generalisation (`dg`) tables.
    pub transfer: Vec<TransferTable>,
    /// Every other accuracy.
    pub single: Vec<SingleRow>,
}

/// The paper's base / novel / HM for one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperBaseToNovel {
    /// Base accuracy, %.
    pub base: f64,
    /// Novel accuracy, %.
    pub novel: f64,
    /// Harmonic mean, %.
    pub hm: f64,
    /// How the numbers reached this repository.
    pub provenance: Provenance,
    /// How they were derived, when not read as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Base-to-novel: one row per dataset and series, and one average per series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseToNovelTable {
    /// The series, in the paper's method order.
    pub series: Vec<Series>,
    /// Datasets, in the paper's order.
    pub datasets: Vec<String>,
    /// Rows, by dataset then series.
    pub rows: Vec<BaseToNovelRow>,
    /// Per-series averages over the datasets with both base and novel (two or more).
    pub averages: Vec<BaseToNovelAverage>,
}

/// One dataset's base-to-novel numbers for one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseToNovelRow {
    /// The dataset.
    pub dataset: String,
    /// The series.
    pub series: Series,
    /// Base accuracy over seeds.
    pub base: Option<Stat>,
    /// Novel accuracy over seeds.
    pub novel: Option<Stat>,
    /// HM of the seed-mean base and novel, with 2 decimals.
    pub hm: Option<f64>,
    /// The paper's numbers for this method and dataset.
    pub paper: Option<PaperBaseToNovel>,
}

/// One series' average over datasets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseToNovelAverage {
    /// The series.
    pub series: Series,
    /// The datasets averaged.
    pub datasets: Vec<String>,
    /// Mean of the per-dataset base means, with 2 decimals.
    pub base: f64,
    /// Mean of the per-dataset novel means, with 2 decimals.
    pub novel: f64,
    /// HM of the two means, with 2 decimals.
    pub hm: f64,
    /// The paper's average over the same datasets: the README's when they are the 11
    /// datasets, else the mean of the paper's per-dataset numbers (transcribed).
    pub paper: Option<PaperBaseToNovel>,
}

/// A transfer table (train on one dataset, test on others with all classes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferTable {
    /// `xd` (cross-dataset) or `dg` (domain generalisation).
    pub protocol: String,
    /// The dataset trained on, when known.
    pub source: Option<String>,
    /// Columns: the source first, then the targets in the paper's order.
    pub datasets: Vec<String>,
    /// One row per series.
    pub rows: Vec<TransferRow>,
    /// The paper's rows for the methods shown.
    pub paper: Vec<PaperTransfer>,
}

/// One series' transfer accuracies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferRow {
    /// The series.
    pub series: Series,
    /// All-class accuracy over seeds, per dataset.
    pub accuracy: BTreeMap<String, Stat>,
    /// Mean of the target means (two or more targets), with 2 decimals.
    pub target_average: Option<f64>,
    /// Targets in `target_average`.
    pub targets_averaged: usize,
}

/// The paper's row of a transfer table, restricted to the columns shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperTransfer {
    /// Canonical method key.
    pub method: String,
    /// Display label.
    pub label: String,
    /// Accuracy per dataset shown, %.
    pub accuracy: BTreeMap<String, f64>,
    /// The published target average when all the paper's targets are shown, else the
    /// mean of the paper's values on the targets shown.
    pub target_average: Option<f64>,
    /// Targets in `target_average`.
    pub targets_averaged: usize,
    /// How the numbers reached this repository.
    pub provenance: Provenance,
    /// Where the row was read, and how the average was derived when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One accuracy of a run outside the paper's tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleRow {
    /// The trainer's protocol.
    pub protocol: String,
    /// The dataset evaluated.
    pub dataset: String,
    /// `base`, `novel` or `all`.
    pub classes: String,
    /// The series.
    pub series: Series,
    /// Accuracy over seeds.
    pub accuracy: Stat,
}

impl Collection {
    /// The report's tables (see the module docs of [`crate::tables`]).
    pub fn tables(&self) -> Tables {
        build(&self.observations)
    }
}

/// Builds the tables from observations.
pub fn build(observations: &[Observation]) -> Tables {
    let mut b2n = Vec::new();
    let mut transfer = Vec::new();
    let mut zero_shot_dg = Vec::new();
    let mut single = Vec::new();
    for o in observations {
        let base_novel = matches!(o.classes.as_str(), "base" | "novel");
        match o.protocol.as_str() {
            "base2novel" | "zeroshot" if base_novel => b2n.push(o),
            "xd" | "dg" => transfer.push(o),
            "zeroshot" if DOMAIN_GENERALISATION_TARGETS.contains(&o.dataset.as_str()) => {
                zero_shot_dg.push(o)
            }
            _ => single.push(o),
        }
    }
    Tables {
        base_to_novel: base_to_novel(&b2n),
        transfer: transfer_tables(&transfer, &zero_shot_dg),
        single: single_rows(&single),
    }
}

/// Key of a series before labelling.
type SeriesKey = (String, String);

fn series_key(o: &Observation) -> SeriesKey {
    (o.method.clone(), o.config.clone())
}

/// Labels the series of one table, in method order.
fn label_series(keys: impl IntoIterator<Item = SeriesKey>) -> BTreeMap<SeriesKey, Series> {
    let mut keys: Vec<SeriesKey> = keys
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by_key(|(m, c)| (method_rank(m), c.clone()));
    let mut per_method: BTreeMap<&str, usize> = BTreeMap::new();
    for (m, _) in &keys {
        *per_method.entry(m.as_str()).or_default() += 1;
    }
    keys.iter()
        .map(|(m, c)| {
            let mut label = method_label(m);
            if per_method[m.as_str()] > 1 {
                label = format!("{label} [{}]", if c.is_empty() { "?" } else { c });
            }
            (
                (m.clone(), c.clone()),
                Series {
                    method: m.clone(),
                    config: c.clone(),
                    label,
                },
            )
        })
        .collect()
}

fn ordered(series: &BTreeMap<SeriesKey, Series>) -> Vec<Series> {
    let mut s: Vec<Series> = series.values().cloned().collect();
    s.sort_by_key(|s| (method_rank(&s.method), s.config.clone()));
    s
}

/// Seed statistics of a set of observations (sorted by seed).
fn stat_of(obs: &[&Observation]) -> Option<Stat> {
    let mut v: Vec<(Option<u64>, f64)> = obs.iter().map(|o| (o.seed, o.accuracy)).collect();
    v.sort_by_key(|a| a.0);
    let seeds: Vec<u64> = v.iter().filter_map(|(s, _)| *s).collect();
    let values: Vec<f64> = v.iter().map(|(_, a)| *a).collect();
    Stat::of(&seeds, &values)
}

fn sorted_datasets<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut d: Vec<String> = names
        .into_iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    d.sort_by_key(|n| dataset_rank(n));
    d
}

fn base_to_novel(obs: &[&Observation]) -> Option<BaseToNovelTable> {
    if obs.is_empty() {
        return None;
    }
    let paper = PaperNumbers::get();
    let series = label_series(obs.iter().map(|o| series_key(o)));
    let datasets = sorted_datasets(obs.iter().map(|o| &o.dataset));
    let mut rows = Vec::new();
    for d in &datasets {
        for s in ordered(&series) {
            let pick = |classes: &str| -> Vec<&Observation> {
                obs.iter()
                    .copied()
                    .filter(|o| {
                        o.dataset == *d
                            && o.classes == classes
                            && o.method == s.method
                            && o.config == s.config
                    })
                    .collect()
            };
            let (base, novel) = (stat_of(&pick("base")), stat_of(&pick("novel")));
            if base.is_none() && novel.is_none() {
                continue;
            }
            let hm = base
                .as_ref()
                .zip(novel.as_ref())
                .map(|(b, n)| round2(harmonic_mean(b.mean, n.mean)));
            let p = paper.base_to_novel(d, &s.method).map(|r| PaperBaseToNovel {
                base: r.base,
                novel: r.novel,
                hm: r.hm,
                provenance: paper.base_to_novel.provenance,
                note: None,
            });
            rows.push(BaseToNovelRow {
                dataset: d.clone(),
                series: s.clone(),
                base,
                novel,
                hm,
                paper: p,
            });
        }
    }
    let averages = ordered(&series)
        .into_iter()
        .filter_map(|s| {
            let complete: Vec<&BaseToNovelRow> = rows
                .iter()
                .filter(|r| r.series == s && r.hm.is_some())
                .collect();
            if complete.len() < 2 {
                return None;
            }
            let means = |f: &dyn Fn(&BaseToNovelRow) -> f64| {
                mean2(&complete.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let base = means(&|r| r.base.as_ref().map_or(0.0, |b| b.mean))?;
            let novel = means(&|r| r.novel.as_ref().map_or(0.0, |n| n.mean))?;
            let names: Vec<String> = complete.iter().map(|r| r.dataset.clone()).collect();
            Some(BaseToNovelAverage {
                paper: paper_average(&s.method, &names),
                series: s,
                datasets: names,
                base,
                novel,
                hm: round2(harmonic_mean(base, novel)),
            })
        })
        .collect();
    Some(BaseToNovelTable {
        series: ordered(&series),
        datasets,
        rows,
        averages,
    })
}

/// The paper's base-to-novel average of `method` over `datasets` (see
/// [`BaseToNovelAverage::paper`]).
fn paper_average(method: &str, datasets: &[String]) -> Option<PaperBaseToNovel> {
    let paper = PaperNumbers::get();
    let all: BTreeSet<&str> = BASE_TO_NOVEL_DATASETS.into_iter().collect();
    let ours: BTreeSet<&str> = datasets.iter().map(String::as_str).collect();
    if ours == all {
        if let Some(r) = paper.base_to_novel_average(method) {
            return Some(PaperBaseToNovel {
                base: r.base,
                novel: r.novel,
                hm: r.hm,
                provenance: paper.base_to_novel_average.provenance,
                note: None,
            });
        }
    }
    let rows: Option<Vec<_>> = datasets
        .iter()
        .map(|d| paper.base_to_novel(d, method))
        .collect();
    let rows = rows?;
    let base = mean2(&rows.iter().map(|r| r.base).collect::<Vec<_>>())?;
    let novel = mean2(&rows.iter().map(|r| r.novel).collect::<Vec<_>>())?;
    Some(PaperBaseToNovel {
        base,
        novel,
        hm: round2(harmonic_mean(base, novel)),
        provenance: paper.base_to_novel.provenance,
        note: Some(format!(
            "mean of the paper's per-dataset numbers on the same {} datasets",
            datasets.len()
        )),
    })
}

fn transfer_tables(obs: &[&Observation], zero_shot_dg: &[&Observation]) -> Vec<TransferTable> {
    let mut groups: BTreeMap<(String, Option<String>), Vec<&Observation>> = BTreeMap::new();
    for o in obs {
        groups
            .entry((o.protocol.clone(), o.trained_on.clone()))
            .or_default()
            .push(o);
    }
    if !zero_shot_dg.is_empty() {
        let dg_keys: Vec<_> = groups.keys().filter(|(p, _)| p == "dg").cloned().collect();
        if dg_keys.is_empty() {
            groups.insert(("dg".into(), None), zero_shot_dg.to_vec());
        } else {
            for k in dg_keys {
                groups
                    .entry(k)
                    .or_default()
                    .extend(zero_shot_dg.iter().copied());
            }
        }
    }
    let mut keys: Vec<_> = groups.keys().cloned().collect();
    // Cross-dataset before domain generalisation, as in the paper.
    keys.sort_by_key(|(p, s)| (p != "xd", s.clone()));
    keys.into_iter()
        .map(|k| transfer_table(&k.0, k.1.clone(), &groups[&k]))
        .collect()
}

fn transfer_table(protocol: &str, source: Option<String>, obs: &[&Observation]) -> TransferTable {
    let series = label_series(obs.iter().map(|o| series_key(o)));
    let is_source = |d: &str| source.as_deref() == Some(d);
    let mut datasets = sorted_datasets(obs.iter().map(|o| &o.dataset));
    datasets.sort_by_key(|d| !is_source(d)); // stable: source first, then the paper's order
    let rows: Vec<TransferRow> = ordered(&series)
        .into_iter()
        .map(|s| {
            let accuracy: BTreeMap<String, Stat> = datasets
                .iter()
                .filter_map(|d| {
                    let mine: Vec<&Observation> = obs
                        .iter()
                        .copied()
                        .filter(|o| o.dataset == *d && o.method == s.method && o.config == s.config)
                        .collect();
                    stat_of(&mine).map(|st| (d.clone(), st))
                })
                .collect();
            let targets: Vec<f64> = accuracy
                .iter()
                .filter(|(d, _)| !is_source(d))
                .map(|(_, st)| st.mean)
                .collect();
            TransferRow {
                series: s,
                target_average: (targets.len() >= 2).then(|| mean2(&targets)).flatten(),
                targets_averaged: if targets.len() >= 2 { targets.len() } else { 0 },
                accuracy,
            }
        })
        .collect();
    let paper = paper_transfer(protocol, source.as_deref(), &datasets, &rows);
    TransferTable {
        protocol: protocol.to_string(),
        source,
        datasets,
        rows,
        paper,
    }
}

fn paper_transfer(
    protocol: &str,
    source: Option<&str>,
    datasets: &[String],
    rows: &[TransferRow],
) -> Vec<PaperTransfer> {
    let Some(table) = PaperNumbers::get().transfer(protocol) else {
        return Vec::new();
    };
    if source.is_some_and(|s| s != table.source_dataset) {
        return Vec::new();
    }
    let all_targets = table.targets();
    let methods: BTreeSet<&str> = rows.iter().map(|r| r.series.method.as_str()).collect();
    let mut out = Vec::new();
    for m in methods {
        let Some(row) = table.row(m) else { continue };
        let accuracy: BTreeMap<String, f64> = datasets
            .iter()
            .filter_map(|d| row.accuracy.get(d).map(|v| (d.clone(), *v)))
            .collect();
        let shown: Vec<f64> = all_targets
            .iter()
            .filter_map(|t| accuracy.get(t).copied())
            .collect();
        let everything = shown.len() == all_targets.len();
        let (target_average, derived) = if everything {
            (Some(row.target_average), false)
        } else if shown.len() >= 2 {
            (mean2(&shown), true)
        } else {
            (None, false)
        };
        let mut notes: Vec<String> = row.note.iter().cloned().collect();
        if derived {
            notes.push(format!(
                "target average = mean of the paper's values on the {} targets shown",
                shown.len()
            ));
        }
        out.push(PaperTransfer {
            method: m.to_string(),
            label: method_label(m),
            accuracy,
            target_average,
            targets_averaged: if target_average.is_some() {
                shown.len()
            } else {
                0
            },
            provenance: table.provenance,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }
    out
}

fn single_rows(obs: &[&Observation]) -> Vec<SingleRow> {
    let mut groups: BTreeMap<(String, String, String, SeriesKey), Vec<&Observation>> =
        BTreeMap::new();
    for o in obs {
        groups
            .entry((
                o.protocol.clone(),
                o.dataset.clone(),
                o.classes.clone(),
                series_key(o),
            ))
            .or_default()
            .push(o);
    }
    let series = label_series(obs.iter().map(|o| series_key(o)));
    let mut rows: Vec<SingleRow> = groups
        .into_iter()
        .filter_map(|((protocol, dataset, classes, key), v)| {
            Some(SingleRow {
                accuracy: stat_of(&v)?,
                protocol,
                dataset,
                classes,
                series: series[&key].clone(),
            })
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r.protocol.clone(),
            dataset_rank(&r.dataset),
            r.classes.clone(),
            method_rank(&r.series.method),
            r.series.config.clone(),
        )
    });
    rows
}
