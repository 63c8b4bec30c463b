//! `report.md`: the sections as Markdown tables, with the PNG plots linked.

use crate::grid::{Grid, RowKind, Section};

/// Escapes a cell for a Markdown table.
fn escape(cell: &str) -> String {
    cell.replace('|', "\\|").replace('\n', " ")
}

/// A grid as a Markdown table: paper rows in italics, our averages in bold.
pub fn table(grid: &Grid) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "| {} |\n",
        grid.header
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    let align: Vec<&str> = (0..grid.header.len())
        .map(|i| {
            if i < grid.text_columns {
                ":---"
            } else {
                "---:"
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for row in &grid.rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(|c| {
                let c = escape(c);
                if c.is_empty() {
                    c
                } else {
                    match row.kind {
                        RowKind::Paper | RowKind::PaperAverage => format!("_{c}_"),
                        RowKind::Average => format!("**{c}**"),
                        RowKind::Ours => c,
                    }
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// The whole report: a preamble, the sections (each with its plot linked when drawn),
/// and the warnings.
pub fn render(
    preamble: &[String],
    sections: &[Section],
    plots: &[String],
    warnings: &[String],
) -> String {
    let mut out = String::from("# maple-burn report\n\n");
    for p in preamble {
        out.push_str(p);
        out.push_str("\n\n");
    }
    for s in sections {
        out.push_str(&format!("## {}\n\n", s.heading));
        for line in &s.intro {
            out.push_str(line);
            out.push_str("\n\n");
        }
        out.push_str(&table(&s.grid));
        out.push('\n');
        for n in &s.notes {
            out.push_str(n);
            out.push_str("\n\n");
        }
        if let Some(stem) = s.plot.as_ref().filter(|p| plots.contains(p)) {
            out.push_str(&format!(
                "![{}: bars per dataset and method]({stem}.png)\n\n([SVG]({stem}.svg))\n\n",
                s.heading
            ));
        }
    }
    if !warnings.is_empty() {
        out.push_str("## Warnings\n\n");
        for w in warnings {
            out.push_str(&format!("- {}\n", w.replace('\n', " ")));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Row;

    #[test]
    fn markdown_tables_escape_pipes_and_style_paper_and_average_rows() {
        let grid = Grid {
            header: vec!["A".into(), "B|C".into()],
            text_columns: 1,
            rows: vec![
                Row {
                    cells: vec!["x".into(), "1".into()],
                    kind: RowKind::Ours,
                },
                Row {
                    cells: vec!["p".into(), String::new()],
                    kind: RowKind::Paper,
                },
                Row {
                    cells: vec!["avg".into(), "2".into()],
                    kind: RowKind::Average,
                },
            ],
        };
        assert_eq!(
            table(&grid),
            "| A | B\\|C |\n|:---|---:|\n| x | 1 |\n| _p_ |  |\n| **avg** | **2** |\n"
        );
    }
}
