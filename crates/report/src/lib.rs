//! Reads every result file the trainer wrote under a folder and writes the paper-style
//! report: tables (Markdown and JSON) with the paper's published numbers side by side,
//! grouped bar plots (PNG and SVG), and one self-contained HTML page.
//!
//! ```no_run
//! let collection = maple_report::collect("output".as_ref())?;
//! let written = maple_report::write_report(&collection, "output/report".as_ref())?;
//! for f in written.files() {
//!     println!("{}", f.display());
//! }
//! # Ok::<(), maple_report::ReportError>(())
//! ```
//!
//! # Input
//! Any folder, searched recursively (see [`input`] for the exact fields read):
//! - `result.json` per seed (`<output>/<dataset>/seed<S>/result.json`, format
//!   `maple-burn/seed-result/v1` or `v2`): its evaluations' accuracies;
//! - `results.json` summaries (format `maple-burn/summary/v1` or `v2`) at a command's output
//!   root and under `zeroshot/`: used where no per-seed results sit under the same
//!   folder (zero-shot CLIP writes only a summary).
//!
//! Results are grouped by method (a `method` field; files without one are MaPLe's) and
//! config name, then by protocol: `base2novel` and `zeroshot` base/novel accuracies make
//! the base-to-novel table, `xd` and `dg` the transfer tables, the rest a table of single
//! evaluations.
//!
//! # Output
//! [`write_report`] writes into one folder, each file atomically:
//! - `report.md`: the tables, the paper's numbers alongside, labelled
//!   `paper (README)` (verbatim) or `paper (transcribed)` (unverified), and the plots;
//! - `report.json` (format [`REPORT_FORMAT`]): the same tables with every per-seed value,
//!   the paper's numbers and provenance, the files read and the warnings;
//! - `base_to_novel.png/.svg`, `cross_dataset.png/.svg`, `domain_generalisation.png/.svg`
//!   (those the results allow): bars of base / novel / HM (or accuracy) per dataset and
//!   method with ±1 std error bars and the paper's value as a diamond; text drawn with the
//!   embedded DejaVu Sans;
//! - `report.html`: the tables and the SVG plots inline; no external resources.
//!
//! Numbers follow `docs/PROTOCOL.md` §6 exactly as the trainer's summaries do: per-seed
//! accuracies with 2 decimals, mean and population std over seeds with 2 decimals,
//! HM from the seed-mean B and N, averages as plain means with HM from the means.
//!
//! Nothing here prints; problems that do not stop the report are in
//! [`Collection::warnings`].
#![warn(missing_docs)]

pub mod error;
pub mod grid;
pub mod html;
pub mod input;
pub mod markdown;
pub mod names;
pub mod paper;
pub mod plot;
pub mod stats;
pub mod tables;
pub mod write;

pub use error::{ReportError, Result};
pub use input::{
    collect, Collection, FileKind, InputFile, Observation, SEED_RESULT_FORMAT, SUMMARY_FORMAT,
};
pub use paper::{PaperNumbers, Provenance};
pub use stats::Stat;
pub use tables::{
    BaseToNovelAverage, BaseToNovelRow, BaseToNovelTable, PaperBaseToNovel, PaperTransfer, Series,
    SingleRow, Tables, TransferRow, TransferTable,
};
pub use write::{write_report, Written, REPORT_FORMAT};
