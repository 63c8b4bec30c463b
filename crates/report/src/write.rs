//! [`write_report`]: the tables, plots and page of a [`Collection`], written atomically
//! into one folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Writes `bytes` to `path` atomically (the workspace's one implementation).
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> crate::error::Result<()> {
    clip_model::atomic::write_atomic(path, bytes)
        .map_err(|(path, source)| crate::error::ReportError::Io { path, source })
}
use crate::error::Result;
use crate::grid::{paper_provenance, sections, transfer_heading, transfer_stem};
use crate::input::{Collection, FileKind, InputFile};
use crate::paper::PaperNumbers;
use crate::plot::{base_to_novel_figure, png, svg, transfer_figure, Figure};
use crate::tables::Tables;
use crate::{html, markdown};

/// The `format` of `report.json`.
pub const REPORT_FORMAT: &str = "maple-burn/report/v1";

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The output folder.
    pub dir: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// The plots, `<stem>.png` and `<stem>.svg` per figure.
    pub plots: Vec<PathBuf>,
}

impl Written {
    /// Every file written.
    pub fn files(&self) -> Vec<&Path> {
        let mut f: Vec<&Path> = vec![&self.markdown, &self.json, &self.html];
        f.extend(self.plots.iter().map(PathBuf::as_path));
        f
    }
}

/// `report.json`.
#[derive(Serialize)]
struct ReportJson<'a> {
    format: &'static str,
    generated_by: String,
    root: &'a Path,
    tables: &'a Tables,
    paper: PaperMeta<'a>,
    plots: Vec<String>,
    warnings: &'a [String],
    files: &'a [InputFile],
}

#[derive(Serialize)]
struct PaperMeta<'a> {
    paper: &'a str,
    setting: &'a str,
    provenance: &'a BTreeMap<String, String>,
}

/// The figures of a report with their file stems.
fn figures(tables: &Tables) -> Vec<(String, Figure)> {
    let mut out = Vec::new();
    if let Some(t) = &tables.base_to_novel {
        out.push(("base_to_novel".to_string(), base_to_novel_figure(t)));
    }
    for t in &tables.transfer {
        out.push((transfer_stem(t), transfer_figure(t, &transfer_heading(t))));
    }
    out
}

fn preamble(c: &Collection) -> Vec<String> {
    let count = |k: FileKind| c.files.iter().filter(|f| f.kind == k).count();
    let superseded = c.files.iter().filter(|f| !f.used).count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut p = vec![
        format!(
            "Results read from {}: {} and {}; {} superseded by the per-seed results under {} folder and not counted again.",
            c.root.display(),
            plural(count(FileKind::SeedResult), "per-seed result", "per-seed results"),
            plural(count(FileKind::Summary), "summary", "summaries"),
            plural(superseded, "summary", "summaries"),
            if superseded == 1 { "its" } else { "their" },
        ),
        "Accuracy: top-1 on the test split, in percent. Each seed's accuracy is taken with 2 decimals (as logged); \
         mean ± population std over seeds; HM and averages as in the paper (docs/PROTOCOL.md §6)."
            .to_string(),
    ];
    p.extend(paper_provenance());
    p
}

/// Writes `report.md`, `report.json`, `report.html` and one PNG and one SVG per figure
/// (`base_to_novel`, `cross_dataset`, `domain_generalisation`, as the results allow) into
/// `out_dir`, each atomically. Prints nothing.
///
/// # Errors
/// [`crate::ReportError::Io`] naming the file that could not be written, or
/// [`crate::ReportError::Plot`] naming the plot that could not be drawn.
pub fn write_report(collection: &Collection, out_dir: &Path) -> Result<Written> {
    let tables = collection.tables();
    let sections = sections(&tables);
    let preamble = preamble(collection);

    let mut plots = Vec::new();
    let mut svgs = Vec::new();
    for (stem, fig) in figures(&tables) {
        let png_path = out_dir.join(format!("{stem}.png"));
        let svg_path = out_dir.join(format!("{stem}.svg"));
        write_atomic(&png_path, &png(&fig, &png_path)?)?;
        let svg_text = svg(&fig, &svg_path)?;
        write_atomic(&svg_path, svg_text.as_bytes())?;
        plots.push(png_path);
        plots.push(svg_path);
        svgs.push((stem, svg_text));
    }
    let stems: Vec<String> = svgs.iter().map(|(s, _)| s.clone()).collect();

    let markdown_path = out_dir.join("report.md");
    write_atomic(
        &markdown_path,
        markdown::render(&preamble, &sections, &stems, &collection.warnings).as_bytes(),
    )?;

    let paper = PaperNumbers::get();
    let json = ReportJson {
        format: REPORT_FORMAT,
        generated_by: format!("maple-report {}", env!("CARGO_PKG_VERSION")),
        root: &collection.root,
        tables: &tables,
        paper: PaperMeta {
            paper: &paper.paper,
            setting: &paper.setting,
            provenance: &paper.provenance_labels,
        },
        plots: plots
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        warnings: &collection.warnings,
        files: &collection.files,
    };
    let json_path = out_dir.join("report.json");
    // Serialising these plain structs cannot fail (string keys, finite or null numbers).
    let text = serde_json::to_string_pretty(&json).expect("report serialises");
    write_atomic(&json_path, format!("{text}\n").as_bytes())?;

    let html_path = out_dir.join("report.html");
    write_atomic(
        &html_path,
        html::render(&preamble, &sections, &svgs, &collection.warnings).as_bytes(),
    )?;

    Ok(Written {
        dir: out_dir.to_path_buf(),
        markdown: markdown_path,
        json: json_path,
        html: html_path,
        plots,
    })
}
