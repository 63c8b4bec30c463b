//! The paper's published numbers (MaPLe, CVPR 2023), embedded from
//! `data/paper_numbers.json`, with how far each table is verified.
//!
//! `docs/paper-numbers.md` is the human-readable copy with the full provenance; the test
//! `tests/paper_numbers.rs` checks that the two agree and that each table is
//! arithmetically consistent (HM = 2BN/(B+N), averages = means of the rows).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The embedded JSON text.
pub const PAPER_NUMBERS_JSON: &str = include_str!("../data/paper_numbers.json");

/// How a published number reached this repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Read verbatim from the official MaPLe README.
    Verbatim,
    /// Transcribed from the paper without a verbatim source at hand: arithmetically
    /// consistent, otherwise unverified.
    Transcribed,
}

impl Provenance {
    /// The label the report's tables use.
    pub fn label(self) -> &'static str {
        match self {
            Provenance::Verbatim => "paper (README)",
            Provenance::Transcribed => "paper (transcribed)",
        }
    }
}

/// All published tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperNumbers {
    /// `maple-burn/paper-numbers/v1`.
    pub format: String,
    /// The paper.
    pub paper: String,
    /// The setting every number is for (backbone, shots, seeds).
    pub setting: String,
    /// What each [`Provenance`] means, in words.
    pub provenance_labels: BTreeMap<String, String>,
    /// Base-to-novel averages over the 11 datasets (verbatim, README).
    pub base_to_novel_average: AverageTable,
    /// Base-to-novel per dataset (transcribed).
    pub base_to_novel: PerDatasetTable,
    /// Cross-dataset transfer from ImageNet (transcribed).
    pub cross_dataset: PaperTransferTable,
    /// Domain generalisation from ImageNet (transcribed).
    pub domain_generalisation: PaperTransferTable,
}

/// The base-to-novel averages table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageTable {
    /// How the table was obtained.
    pub provenance: Provenance,
    /// Where it was read.
    pub source: String,
    /// One row per method.
    pub rows: Vec<AverageRow>,
}

/// One method's 11-dataset base-to-novel average.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageRow {
    /// Canonical method key (see [`crate::names::method_key`]).
    pub method: String,
    /// The README's name of the method.
    pub label: String,
    /// Base accuracy, %.
    pub base: f64,
    /// Novel accuracy, %.
    pub novel: f64,
    /// Harmonic mean, %.
    pub hm: f64,
    /// Training epochs, where the README lists them.
    pub epochs: Option<u32>,
}

/// The per-dataset base-to-novel table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerDatasetTable {
    /// How the table was obtained.
    pub provenance: Provenance,
    /// Where it was read.
    pub source: String,
    /// Checks passed and caveats.
    pub note: String,
    /// One row per dataset and method.
    pub rows: Vec<PerDatasetRow>,
}

/// One method's base-to-novel numbers on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerDatasetRow {
    /// The trainer's dataset name (`oxford_flowers`, not `Flowers102`).
    pub dataset: String,
    /// Canonical method key.
    pub method: String,
    /// Base accuracy, %.
    pub base: f64,
    /// Novel accuracy, %.
    pub novel: f64,
    /// Harmonic mean, %.
    pub hm: f64,
}

/// A cross-dataset or domain-generalisation table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperTransferTable {
    /// How the table was obtained.
    pub provenance: Provenance,
    /// Where it was read.
    pub source: String,
    /// The training dataset (the trainer's name).
    pub source_dataset: String,
    /// One row per method.
    pub rows: Vec<PaperTransferRow>,
}

/// One method's row of a transfer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperTransferRow {
    /// Canonical method key.
    pub method: String,
    /// All-class accuracy per dataset (source and targets), %.
    pub accuracy: BTreeMap<String, f64>,
    /// The published mean over the targets, %.
    pub target_average: f64,
    /// Where this row was read, when it differs from the table's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PaperNumbers {
    /// The embedded numbers.
    pub fn get() -> &'static PaperNumbers {
        static NUMBERS: OnceLock<PaperNumbers> = OnceLock::new();
        NUMBERS.get_or_init(|| {
            // The file is part of the crate and parsed by its tests: a failure is a
            // broken build, not bad input.
            serde_json::from_str(PAPER_NUMBERS_JSON).expect("data/paper_numbers.json parses")
        })
    }

    /// The per-dataset base-to-novel numbers of `method` on `dataset`.
    pub fn base_to_novel(&self, dataset: &str, method: &str) -> Option<&PerDatasetRow> {
        self.base_to_novel
            .rows
            .iter()
            .find(|r| r.dataset == dataset && r.method == method)
    }

    /// The 11-dataset base-to-novel average of `method`.
    pub fn base_to_novel_average(&self, method: &str) -> Option<&AverageRow> {
        self.base_to_novel_average
            .rows
            .iter()
            .find(|r| r.method == method)
    }

    /// The transfer table of a protocol: `xd` (cross-dataset) or `dg` (domain
    /// generalisation).
    pub fn transfer(&self, protocol: &str) -> Option<&PaperTransferTable> {
        match protocol {
            "xd" => Some(&self.cross_dataset),
            "dg" => Some(&self.domain_generalisation),
            _ => None,
        }
    }
}

impl PaperTransferTable {
    /// The row of `method`.
    pub fn row(&self, method: &str) -> Option<&PaperTransferRow> {
        self.rows.iter().find(|r| r.method == method)
    }

    /// The targets of this table (every column but the source).
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| r.accuracy.keys().cloned())
            .filter(|d| *d != self.source_dataset)
            .collect();
        t.sort_by_key(|d| crate::names::dataset_rank(d));
        t.dedup();
        t
    }
}
