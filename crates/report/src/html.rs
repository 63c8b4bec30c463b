//! `report.html`: one self-contained page (inline CSS, tables, the plots as inline SVG);
//! it loads nothing from anywhere.

use crate::grid::{Grid, RowKind, Section};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f3f3f3;border-bottom:2px solid #bbb}
.t{text-align:left}
tr.paper td{color:#666;font-style:italic}
tr.average td{font-weight:bold;border-top:2px solid #bbb}
tr.paper-average td{color:#666;font-style:italic}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
p.note,li{font-size:.9em;color:#444}
";

/// The class of a text (left-aligned) column's cells.
fn align(column: usize, grid: &Grid) -> &'static str {
    if column < grid.text_columns {
        " class=\"t\""
    } else {
        ""
    }
}

/// A grid as an HTML table.
pub fn table(grid: &Grid) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for (i, h) in grid.header.iter().enumerate() {
        out.push_str(&format!("<th{}>{}</th>", align(i, grid), escape(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &grid.rows {
        let class = match row.kind {
            RowKind::Ours => "ours",
            RowKind::Paper => "paper",
            RowKind::Average => "average",
            RowKind::PaperAverage => "paper-average",
        };
        out.push_str(&format!("<tr class=\"{class}\">"));
        for (i, c) in row.cells.iter().enumerate() {
            out.push_str(&format!("<td{}>{}</td>", align(i, grid), escape(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Strips an XML declaration so an SVG document can be inlined into HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// The whole page: preamble, sections (each with its SVG plot inline), warnings.
/// `plots` pairs each drawn plot's file stem with its SVG text.
pub fn render(
    preamble: &[String],
    sections: &[Section],
    plots: &[(String, String)],
    warnings: &[String],
) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>maple-burn report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>maple-burn report</h1>\n"
    );
    for p in preamble {
        out.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    for s in sections {
        out.push_str(&format!("<h2>{}</h2>\n", escape(&s.heading)));
        for line in &s.intro {
            out.push_str(&format!("<p>{}</p>\n", escape(line)));
        }
        out.push_str(&table(&s.grid));
        for n in &s.notes {
            out.push_str(&format!("<p class=\"note\">{}</p>\n", escape(n)));
        }
        if let Some((_, svg)) = s
            .plot
            .as_ref()
            .and_then(|stem| plots.iter().find(|(p, _)| p == stem))
        {
            out.push_str("<figure>\n");
            out.push_str(inline_svg(svg));
            out.push_str("\n</figure>\n");
        }
    }
    if !warnings.is_empty() {
        out.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in warnings {
            out.push_str(&format!("<li>{}</li>\n", escape(w)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_in_cells() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn svg_inlining_drops_the_xml_declaration() {
        assert_eq!(
            inline_svg("<?xml version=\"1.0\"?>\n<svg a>x</svg>"),
            "<svg a>x</svg>"
        );
    }
}
