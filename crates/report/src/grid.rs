//! Tables laid out as text grids (header, rows, notes), format-neutral: Markdown and HTML
//! are both rendered from these, so the two always show the same cells.

use std::collections::BTreeSet;

use crate::names::dataset_label;
use crate::paper::PaperNumbers;
use crate::stats::Stat;
use crate::tables::{BaseToNovelTable, PaperBaseToNovel, SingleRow, Tables, TransferTable};

/// One section of a report: a heading, explanatory lines, a grid and its plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// Lines of explanation shown above the grid.
    pub intro: Vec<String>,
    /// The table.
    pub grid: Grid,
    /// Notes shown under the grid.
    pub notes: Vec<String>,
    /// File stem of the section's plot (`base_to_novel` for `base_to_novel.png/.svg`).
    pub plot: Option<String>,
}

/// A table of text cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    /// Column titles.
    pub header: Vec<String>,
    /// How many leading columns hold text (left-aligned); the rest hold numbers.
    pub text_columns: usize,
    /// Rows of cells, as many as the header.
    pub rows: Vec<Row>,
}

/// One row of a [`Grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Cells.
    pub cells: Vec<String>,
    /// How the row is shown.
    pub kind: RowKind,
}

/// What a row holds, for styling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Our numbers.
    Ours,
    /// The paper's numbers.
    Paper,
    /// An average of ours.
    Average,
    /// An average of the paper's.
    PaperAverage,
}

const DASH: &str = "–";

fn cell(s: &Option<Stat>) -> String {
    s.as_ref().map_or(DASH.into(), Stat::display)
}

fn num(v: Option<f64>) -> String {
    v.map_or(DASH.into(), |v| format!("{v:.2}"))
}

fn delta(ours: Option<f64>, paper: Option<f64>) -> String {
    match (ours, paper) {
        (Some(o), Some(p)) => format!("{:+.2}", o - p),
        _ => String::new(),
    }
}

fn seeds_of<'a>(stats: impl IntoIterator<Item = &'a Stat>) -> String {
    let seeds: BTreeSet<u64> = stats
        .into_iter()
        .flat_map(|s| s.seeds.iter().copied())
        .collect();
    if seeds.is_empty() {
        DASH.into()
    } else {
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn paper_label(p: &PaperBaseToNovel) -> String {
    p.provenance.label().to_string()
}

/// The sections of a report, in order.
pub fn sections(tables: &Tables) -> Vec<Section> {
    let mut out = Vec::new();
    if let Some(t) = &tables.base_to_novel {
        out.push(base_to_novel(t));
    }
    for t in &tables.transfer {
        out.push(transfer(t));
    }
    if !tables.single.is_empty() {
        out.push(single(&tables.single));
    }
    out
}

fn base_to_novel(t: &BaseToNovelTable) -> Section {
    let mut grid = Grid {
        header: [
            "Dataset",
            "Method",
            "Numbers",
            "Base",
            "Novel",
            "HM",
            "Δ HM vs paper",
            "Seeds",
        ]
        .map(String::from)
        .to_vec(),
        text_columns: 3,
        rows: Vec::new(),
    };
    let mut notes = Vec::new();
    for r in &t.rows {
        let hm_paper = r.paper.as_ref().map(|p| p.hm);
        grid.rows.push(Row {
            cells: vec![
                dataset_label(&r.dataset),
                r.series.label.clone(),
                "ours".into(),
                cell(&r.base),
                cell(&r.novel),
                num(r.hm),
                delta(r.hm, hm_paper),
                seeds_of(r.base.iter().chain(r.novel.iter())),
            ],
            kind: RowKind::Ours,
        });
        if let Some(p) = &r.paper {
            grid.rows.push(Row {
                cells: vec![
                    dataset_label(&r.dataset),
                    r.series.label.clone(),
                    paper_label(p),
                    format!("{:.2}", p.base),
                    format!("{:.2}", p.novel),
                    format!("{:.2}", p.hm),
                    String::new(),
                    String::new(),
                ],
                kind: RowKind::Paper,
            });
        }
    }
    for a in &t.averages {
        let name = format!("Average ({} datasets)", a.datasets.len());
        grid.rows.push(Row {
            cells: vec![
                name.clone(),
                a.series.label.clone(),
                "ours".into(),
                format!("{:.2}", a.base),
                format!("{:.2}", a.novel),
                format!("{:.2}", a.hm),
                delta(Some(a.hm), a.paper.as_ref().map(|p| p.hm)),
                String::new(),
            ],
            kind: RowKind::Average,
        });
        if let Some(p) = &a.paper {
            let mut label = paper_label(p);
            if let Some(n) = &p.note {
                label = format!("{label} †");
                let note = format!("† {}: {n}.", a.series.label);
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            grid.rows.push(Row {
                cells: vec![
                    name,
                    a.series.label.clone(),
                    label,
                    format!("{:.2}", p.base),
                    format!("{:.2}", p.novel),
                    format!("{:.2}", p.hm),
                    String::new(),
                    String::new(),
                ],
                kind: RowKind::PaperAverage,
            });
        }
    }
    Section {
        heading: "Base-to-novel generalisation".into(),
        intro: vec![
            "Trained on the base classes of each dataset, tested on its base and its novel classes. \
             Base and novel: mean ± population std over seeds; HM = 2·B·N/(B+N) from the seed means. \
             Average: plain mean of the per-dataset B and N over the datasets listed, HM from those two means."
                .into(),
        ],
        grid,
        notes,
        plot: Some("base_to_novel".into()),
    }
}

/// The file stem of a transfer table's plot.
pub fn transfer_stem(t: &TransferTable) -> String {
    let kind = match t.protocol.as_str() {
        "xd" => "cross_dataset".to_string(),
        "dg" => "domain_generalisation".to_string(),
        p => p.to_string(),
    };
    match &t.source {
        Some(s) if s != "imagenet" => format!("{kind}_{s}"),
        _ => kind,
    }
}

/// The heading of a transfer table.
pub fn transfer_heading(t: &TransferTable) -> String {
    let kind = match t.protocol.as_str() {
        "xd" => "Cross-dataset transfer",
        "dg" => "Domain generalisation",
        p => p,
    };
    match &t.source {
        Some(s) => format!("{kind} (trained on {})", dataset_label(s)),
        None => kind.to_string(),
    }
}

fn transfer(t: &TransferTable) -> Section {
    let is_source = |d: &str| t.source.as_deref() == Some(d);
    let mut header = vec!["Method".to_string(), "Numbers".to_string()];
    for d in &t.datasets {
        header.push(if is_source(d) {
            format!("{} (source)", dataset_label(d))
        } else {
            dataset_label(d)
        });
    }
    header.extend(["Target avg".to_string(), "Seeds".to_string()]);
    let mut grid = Grid {
        header,
        text_columns: 2,
        rows: Vec::new(),
    };
    let mut notes = Vec::new();
    for r in &t.rows {
        let mut cells = vec![r.series.label.clone(), "ours".into()];
        for d in &t.datasets {
            cells.push(cell(&r.accuracy.get(d).cloned()));
        }
        cells.push(num(r.target_average));
        cells.push(seeds_of(r.accuracy.values()));
        grid.rows.push(Row {
            cells,
            kind: RowKind::Ours,
        });
        if let Some(p) = t.paper.iter().find(|p| p.method == r.series.method) {
            let mut label = p.provenance.label().to_string();
            if let Some(n) = &p.note {
                label = format!("{label} †");
                let note = format!("† {}: {n}.", p.label);
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            let mut cells = vec![r.series.label.clone(), label];
            for d in &t.datasets {
                cells.push(num(p.accuracy.get(d).copied()));
            }
            cells.push(num(p.target_average));
            cells.push(String::new());
            grid.rows.push(Row {
                cells,
                kind: RowKind::Paper,
            });
        }
    }
    let mut intro = vec![format!(
        "All-class accuracy on each dataset's full test split: mean ± population std over seeds. \
         Target avg: plain mean over the targets a row has (two or more)."
    )];
    if t.rows.iter().any(|r| r.series.method == "zsclip") {
        intro.push(
            "CLIP (zero-shot) trains nothing: its row is the zero-shot accuracy on each dataset."
                .into(),
        );
    }
    Section {
        heading: transfer_heading(t),
        intro,
        grid,
        notes,
        plot: Some(transfer_stem(t)),
    }
}

fn single(rows: &[SingleRow]) -> Section {
    let mut grid = Grid {
        header: [
            "Protocol", "Dataset", "Classes", "Method", "Config", "Accuracy", "Seeds",
        ]
        .map(String::from)
        .to_vec(),
        text_columns: 5,
        rows: Vec::new(),
    };
    for r in rows {
        grid.rows.push(Row {
            cells: vec![
                r.protocol.clone(),
                dataset_label(&r.dataset),
                r.classes.clone(),
                r.series.label.clone(),
                r.series.config.clone(),
                r.accuracy.display(),
                seeds_of([&r.accuracy]),
            ],
            kind: RowKind::Ours,
        });
    }
    Section {
        heading: "Other evaluations".into(),
        intro: vec![
            "Single train-and-test runs, checkpoint evaluations and other runs outside the paper's tables."
                .into(),
        ],
        grid,
        notes: Vec::new(),
        plot: None,
    }
}

/// Lines describing the paper's numbers and their provenance.
pub fn paper_provenance() -> Vec<String> {
    let p = PaperNumbers::get();
    let mut out = vec![format!(
        "Paper numbers: {} ({}), copied from docs/paper-numbers.md.",
        p.paper, p.setting
    )];
    for (k, v) in &p.provenance_labels {
        let label = match k.as_str() {
            "verbatim" => "paper (README)",
            "transcribed" => "paper (transcribed)",
            other => other,
        };
        out.push(format!("“{label}”: {v}."));
    }
    out
}
