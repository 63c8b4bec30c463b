//! The embedded paper numbers: identical to the tables of `docs/paper-numbers.md`, and
//! arithmetically consistent as that document states (HM = 2BN/(B+N) to 0.01; the
//! per-dataset means reproduce the README averages; target averages are row means).

use std::collections::BTreeMap;
use std::path::PathBuf;

use maple_report::names::{dataset_label, method_key};
use maple_report::stats::{harmonic_mean, round2};
use maple_report::{PaperNumbers, Provenance};

/// The Markdown tables under each `## ` heading of docs/paper-numbers.md.
fn doc_tables() -> BTreeMap<String, Vec<Vec<String>>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/paper-numbers.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut heading = String::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.to_string();
        } else if line.starts_with('|') && !line.starts_with("|---") {
            let cells = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            out.entry(heading.clone()).or_default().push(cells);
        }
    }
    out
}

fn table<'a>(tables: &'a BTreeMap<String, Vec<Vec<String>>>, prefix: &str) -> &'a [Vec<String>] {
    tables
        .iter()
        .find(|(h, _)| h.starts_with(prefix))
        .unwrap_or_else(|| panic!("no table {prefix:?}"))
        .1
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

#[test]
fn the_average_table_matches_the_document_and_is_verbatim() {
    let p = PaperNumbers::get();
    assert_eq!(p.base_to_novel_average.provenance, Provenance::Verbatim);
    let docs = doc_tables();
    let rows = &table(&docs, "Base-to-novel, averages")[1..];
    assert_eq!(rows.len(), p.base_to_novel_average.rows.len());
    for (doc, ours) in rows.iter().zip(&p.base_to_novel_average.rows) {
        assert_eq!(method_key(&doc[0]), ours.method);
        assert_eq!(doc[0], ours.label);
        assert_eq!(
            (num(&doc[1]), num(&doc[2]), num(&doc[3])),
            (ours.base, ours.novel, ours.hm)
        );
        assert_eq!(doc[4].parse::<u32>().ok(), ours.epochs);
        assert!((round2(harmonic_mean(ours.base, ours.novel)) - ours.hm).abs() <= 0.011);
    }
}

#[test]
fn the_per_dataset_table_matches_the_document_and_reproduces_the_readme_averages() {
    let p = PaperNumbers::get();
    assert_eq!(p.base_to_novel.provenance, Provenance::Transcribed);
    let docs = doc_tables();
    let t = table(&docs, "Base-to-novel per dataset");
    let methods: Vec<String> = t[0][1..]
        .iter()
        .map(|h| method_key(h.trim_end_matches(" B / N / HM")))
        .collect();
    let mut count = 0;
    for doc in &t[1..] {
        if doc[0].starts_with("**") {
            continue;
        }
        for (m, c) in methods.iter().zip(&doc[1..]) {
            let dataset = p
                .base_to_novel
                .rows
                .iter()
                .map(|r| r.dataset.as_str())
                .find(|d| dataset_label(d) == doc[0])
                .unwrap_or_else(|| panic!("dataset {}", doc[0]));
            let r = p.base_to_novel(dataset, m).unwrap();
            let v: Vec<f64> = c.split(" / ").map(num).collect();
            assert_eq!(v, [r.base, r.novel, r.hm], "{} {m}", doc[0]);
            assert!((round2(harmonic_mean(r.base, r.novel)) - r.hm).abs() <= 0.011);
            count += 1;
        }
    }
    assert_eq!(count, p.base_to_novel.rows.len());
    for m in &methods {
        let rows: Vec<_> = p
            .base_to_novel
            .rows
            .iter()
            .filter(|r| r.method == *m)
            .collect();
        assert_eq!(rows.len(), 11);
        let avg = p.base_to_novel_average(m).unwrap();
        let mean = |f: &dyn Fn(&&maple_report::paper::PerDatasetRow) -> f64| {
            round2(rows.iter().map(f).sum::<f64>() / 11.0)
        };
        assert_eq!(mean(&|r| r.base), avg.base, "{m}");
        assert_eq!(mean(&|r| r.novel), avg.novel, "{m}");
    }
}

#[test]
fn the_transfer_tables_match_the_document_and_their_target_averages() {
    let p = PaperNumbers::get();
    let docs = doc_tables();
    for (prefix, paper) in [
        ("Cross-dataset", &p.cross_dataset),
        ("Domain generalisation", &p.domain_generalisation),
    ] {
        assert_eq!(paper.provenance, Provenance::Transcribed);
        let t = table(&docs, prefix);
        assert_eq!(t.len() - 1, paper.rows.len());
        for (doc, ours) in t[1..].iter().zip(&paper.rows) {
            assert_eq!(method_key(&doc[0]), ours.method);
            let values: Vec<f64> = doc[1..doc.len() - 1].iter().map(|c| num(c)).collect();
            // Columns in the document's order: source, then targets in the paper's order.
            let mut keys = vec![paper.source_dataset.clone()];
            keys.extend(paper.targets());
            let ours_values: Vec<f64> = keys.iter().map(|k| ours.accuracy[k]).collect();
            assert_eq!(values, ours_values, "{prefix} {}", doc[0]);
            assert_eq!(num(doc.last().unwrap()), ours.target_average);
            let targets: Vec<f64> = paper.targets().iter().map(|k| ours.accuracy[k]).collect();
            let mean = targets.iter().sum::<f64>() / targets.len() as f64;
            assert!(
                (mean - ours.target_average).abs() <= 0.011,
                "{prefix} {}",
                doc[0]
            );
        }
    }
}
