//! The report end to end on small generated result folders (written in the trainer's
//! formats) and on the procedural example's real output: the numbers in the tables, which
//! files count, the paper's numbers alongside, and every output file well-formed.

use std::path::{Path, PathBuf};

use maple_report::{collect, write_report, Provenance, ReportError, Tables};
use serde_json::{json, Value};

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A per-seed `result.json` as the trainer writes it (plus `method` when given).
fn seed_result(
    protocol: &str,
    dataset: &str,
    seed: u64,
    config: &str,
    method: Option<&str>,
    evals: &[(&str, &str, f64)],
) -> Value {
    let mut v = json!({
        "format": "maple-burn/seed-result/v1",
        "protocol": protocol,
        "dataset": dataset,
        "seed": seed,
        "config": {
            "name": config, "description": "", "weights": "w",
            "maple": {"n_ctx": 2, "ctx_init": "a photo of a", "depth": 9},
            "optim": {"lr": 0.0035, "max_epoch": 5, "warmup_epochs": 1, "warmup_lr": 1e-5,
                      "momentum": 0.9, "weight_decay": 5e-4},
            "batch_size": 4, "test_batch_size": 100, "shots": 16, "seeds": [1, 2, 3],
            "image_size": null, "train_augment": true
        },
        "weights": "hub:openai/clip-vit-base-patch16",
        "learner": null,
        "train": {"images": 80, "num_classes": 5, "resumed_epochs": 0, "history": [],
                  "checkpoint": "checkpoints/learner-epoch5.safetensors"},
        "evals": evals.iter().map(|(d, c, a)| json!({
            "dataset": d, "classes": c, "num_classes": 5, "correct": 1, "total": 2, "accuracy": a
        })).collect::<Vec<_>>(),
    });
    if let Some(m) = method {
        v["method"] = json!(m);
    }
    v
}

fn stat(values: &[f64]) -> Value {
    json!({"values": values, "mean": 0.0, "std": 0.0})
}

/// A summary `results.json` (its mean/std fields are not read, so they are left 0).
fn summary(protocol: &str, method: &str, config: &str, rows: Vec<Value>) -> Value {
    json!({
        "format": "maple-burn/summary/v1", "protocol": protocol, "method": method,
        "config": config, "weights": "w", "device": "d", "rows": rows, "average": null
    })
}

const B2N_CFG: &str = "vit_b16_c2_ep5_batch4_2ctx";

/// MaPLe base-to-novel on eurosat and dtd (3 seeds), CoOp on eurosat (1 seed, `method`
/// field), zero-shot CLIP (summary only, with a test-only dataset), MaPLe cross-dataset
/// from ImageNet (2 seeds), and a single train run known only by its summary.
fn sweep(root: &Path) {
    let b2n = root.join("b2n");
    let eurosat = [(94.071, 73.2), (97.5, 80.1), (96.0, 75.0)];
    let dtd = [(80.0, 59.0), (81.0, 60.0), (82.0, 61.0)];
    for (name, values) in [("eurosat", eurosat), ("dtd", dtd)] {
        for (i, (b, n)) in values.iter().enumerate() {
            let seed = i as u64 + 1;
            write(
                &b2n.join(name).join(format!("seed{seed}/result.json")),
                &seed_result(
                    "base2novel",
                    name,
                    seed,
                    B2N_CFG,
                    None,
                    &[(name, "base", *b), (name, "novel", *n)],
                ),
            );
        }
    }
    // The command's summary next to its seeds: superseded. Its (stale) values must not count.
    write(
        &b2n.join("results.json"),
        &summary(
            "base2novel",
            "MaPLe",
            B2N_CFG,
            vec![
                json!({"dataset": "eurosat", "seeds": [1], "base": stat(&[1.0]), "novel": stat(&[1.0])}),
            ],
        ),
    );
    write(
        &root.join("coop/eurosat/seed1/result.json"),
        &seed_result(
            "base2novel",
            "eurosat",
            1,
            "coop_ep200",
            Some("coop"),
            &[("eurosat", "base", 91.0), ("eurosat", "novel", 50.0)],
        ),
    );
    write(
        &root.join("zeroshot/results.json"),
        &summary(
            "zeroshot",
            "CLIP (zero-shot)",
            "zsclip",
            vec![
                json!({"dataset": "eurosat", "seeds": [], "base": stat(&[56.0]), "novel": stat(&[64.0])}),
                json!({"dataset": "dtd", "seeds": [], "base": stat(&[53.0]), "novel": stat(&[60.0])}),
                json!({"dataset": "imagenet_a", "seeds": [], "accuracy": stat(&[47.5])}),
            ],
        ),
    );
    for (seed, accs) in [(1u64, [70.0, 93.0, 45.0]), (2, [71.0, 94.0, 46.0])] {
        write(
            &root.join(format!("xd/imagenet/seed{seed}/result.json")),
            &seed_result(
                "xd",
                "imagenet",
                seed,
                "vit_b16_c2_ep5_batch4_2ctx_cross_datasets",
                None,
                &[
                    ("imagenet", "all", accs[0]),
                    ("caltech101", "all", accs[1]),
                    ("dtd", "all", accs[2]),
                ],
            ),
        );
    }
    write(
        &root.join("train/results.json"),
        &summary(
            "train",
            "MaPLe",
            B2N_CFG,
            vec![json!({"dataset": "eurosat (base)", "seeds": [1], "accuracy": stat(&[90.0])})],
        ),
    );
}

fn tables_of(root: &Path) -> Tables {
    collect(root).unwrap().tables()
}

#[test]
fn base_to_novel_means_stds_hms_and_averages_follow_the_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    sweep(tmp.path());
    let t = tables_of(tmp.path()).base_to_novel.unwrap();
    let labels: Vec<&str> = t.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["CLIP (zero-shot)", "CoOp", "MaPLe"]);
    assert_eq!(t.datasets, ["dtd", "eurosat"]);

    let row = |d: &str, m: &str| {
        t.rows
            .iter()
            .find(|r| r.dataset == d && r.series.method == m)
            .unwrap()
    };
    let e = row("eurosat", "maple");
    let (b, n) = (e.base.as_ref().unwrap(), e.novel.as_ref().unwrap());
    assert_eq!(b.seeds, [1, 2, 3]);
    // Seeds taken with 2 decimals as logged: 94.071 -> 94.07.
    assert_eq!(b.values, [94.07, 97.5, 96.0]);
    assert_eq!((b.mean, b.std), (95.86, 1.40));
    assert_eq!((n.mean, n.std), (76.10, 2.92));
    assert_eq!(e.hm, Some(84.84));
    let d = row("dtd", "maple");
    assert_eq!(
        (
            d.base.as_ref().unwrap().mean,
            d.novel.as_ref().unwrap().mean,
            d.hm
        ),
        (81.0, 60.0, Some(68.94))
    );
    assert_eq!(d.base.as_ref().unwrap().std, 0.82);

    // The paper's per-dataset numbers (transcribed) for the same method and dataset.
    let p = e.paper.as_ref().unwrap();
    assert_eq!((p.base, p.novel, p.hm), (94.07, 73.23, 82.35));
    assert_eq!(p.provenance, Provenance::Transcribed);
    let c = row("eurosat", "coop");
    assert_eq!(c.hm, Some(64.54));
    assert_eq!(c.paper.as_ref().unwrap().hm, 68.69);
    // Zero-shot: one seed-less value, no spread.
    let z = row("eurosat", "zsclip");
    assert_eq!(z.base.as_ref().unwrap().seeds, Vec::<u64>::new());
    assert_eq!((z.hm, z.base.as_ref().unwrap().std), (Some(59.73), 0.0));

    // Average: plain means of the per-dataset B and N, HM from those (not mean of HMs).
    let avg = t
        .averages
        .iter()
        .find(|a| a.series.method == "maple")
        .unwrap();
    assert_eq!(avg.datasets, ["dtd", "eurosat"]);
    assert_eq!((avg.base, avg.novel, avg.hm), (88.43, 68.05, 76.91));
    // Paper average over the same two datasets, from its per-dataset numbers.
    let pa = avg.paper.as_ref().unwrap();
    assert_eq!((pa.base, pa.novel, pa.hm), (87.22, 66.21, 75.28));
    assert_eq!(pa.provenance, Provenance::Transcribed);
    assert!(pa.note.as_deref().unwrap().contains("same 2 datasets"));
    let za = t
        .averages
        .iter()
        .find(|a| a.series.method == "zsclip")
        .unwrap();
    assert_eq!((za.base, za.novel, za.hm), (54.5, 62.0, 58.01));
    // CoOp has one dataset: no average.
    assert!(t.averages.iter().all(|a| a.series.method != "coop"));
}

#[test]
fn summaries_count_only_where_their_per_seed_results_are_absent() {
    let tmp = tempfile::tempdir().unwrap();
    sweep(tmp.path());
    let c = collect(tmp.path()).unwrap();
    let used = |p: &str| {
        c.files
            .iter()
            .find(|f| f.path == tmp.path().join(p))
            .unwrap()
            .used
    };
    assert!(!used("b2n/results.json"));
    assert!(used("zeroshot/results.json"));
    assert!(used("train/results.json"));
    assert!(c.observations.iter().all(|o| o.accuracy != 1.0));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn transfer_tables_have_source_first_target_averages_and_the_paper_row() {
    let tmp = tempfile::tempdir().unwrap();
    sweep(tmp.path());
    let tables = tables_of(tmp.path());
    assert_eq!(tables.transfer.len(), 2);
    let xd = &tables.transfer[0];
    assert_eq!(
        (xd.protocol.as_str(), xd.source.as_deref()),
        ("xd", Some("imagenet"))
    );
    assert_eq!(xd.datasets, ["imagenet", "caltech101", "dtd"]);
    let r = &xd.rows[0];
    assert_eq!(r.series.label, "MaPLe");
    let src = &r.accuracy["imagenet"];
    assert_eq!(
        (src.mean, src.std, src.seeds.clone()),
        (70.5, 0.5, vec![1, 2])
    );
    assert_eq!(r.accuracy["caltech101"].mean, 93.5);
    // Targets only: (93.5 + 45.5) / 2.
    assert_eq!((r.target_average, r.targets_averaged), (Some(69.5), 2));
    let p = &xd.paper[0];
    assert_eq!(p.accuracy["imagenet"], 70.72);
    assert_eq!(p.accuracy["dtd"], 46.49);
    // Not all 10 targets shown: the paper's mean on the two shown, said so.
    assert_eq!(p.target_average, Some(70.01));
    assert!(p.note.as_deref().unwrap().contains("2 targets shown"));

    // Zero-shot CLIP on ImageNet-A forms the domain-generalisation table's CLIP row.
    let dg = &tables.transfer[1];
    assert_eq!((dg.protocol.as_str(), dg.source.as_deref()), ("dg", None));
    assert_eq!(dg.rows[0].accuracy["imagenet_a"].mean, 47.5);
    assert_eq!(dg.paper[0].accuracy["imagenet_a"], 47.77);
    assert_eq!(dg.rows[0].target_average, None);

    // The train run's summary row `eurosat (base)` is a single evaluation.
    let s = &tables.single;
    assert_eq!(s.len(), 1);
    assert_eq!(
        (
            s[0].protocol.as_str(),
            s[0].dataset.as_str(),
            s[0].classes.as_str()
        ),
        ("train", "eurosat", "base")
    );
    assert_eq!(s[0].accuracy.mean, 90.0);
}

#[test]
fn the_same_seed_in_two_files_counts_once_and_a_conflict_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, acc) in [("a", 60.0), ("b", 61.0)] {
        write(
            &tmp.path().join(dir).join("dtd/seed1/result.json"),
            &seed_result(
                "base2novel",
                "dtd",
                1,
                B2N_CFG,
                None,
                &[("dtd", "base", acc)],
            ),
        );
    }
    let c = collect(tmp.path()).unwrap();
    assert_eq!(c.observations.len(), 1);
    assert_eq!(c.observations[0].accuracy, 60.0);
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("different values"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        collect(tmp.path()),
        Err(ReportError::NoResults { .. })
    ));
    assert!(matches!(
        collect(&tmp.path().join("missing")),
        Err(ReportError::NotADirectory { .. })
    ));

    let bad = tmp.path().join("x/result.json");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, "{ not json").unwrap();
    let e = collect(tmp.path()).unwrap_err();
    assert!(
        matches!(e, ReportError::Parse { ref path, .. } if *path == bad),
        "{e}"
    );

    std::fs::write(&bad, r#"{"format": "maple-burn/seed-result/v9"}"#).unwrap();
    let e = collect(tmp.path()).unwrap_err();
    assert!(matches!(e, ReportError::UnsupportedFormat { ref path, .. } if *path == bad));
    assert!(e.to_string().contains("v9") && e.to_string().contains("result.json"));

    std::fs::write(
        &bad,
        r#"{"format": "maple-burn/seed-result/v1", "protocol": "x"}"#,
    )
    .unwrap();
    let e = collect(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("result.json") && e.contains("dataset"), "{e}");

    // Another tool's results.json is skipped, with a warning.
    std::fs::write(&bad, r#"{"accuracy": 3}"#).unwrap();
    write(
        &tmp.path().join("y/results.json"),
        &summary(
            "train",
            "MaPLe",
            "c",
            vec![json!({"dataset": "dtd", "seeds": [1], "accuracy": stat(&[50.0])})],
        ),
    );
    let c = collect(tmp.path()).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("skipped"));
}

#[test]
fn the_procedural_example_output_gives_the_trainers_own_summary_numbers() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procedural-example");
    let c = collect(&root).unwrap();
    let t = c.tables().base_to_novel.unwrap();
    let trainer: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("results.json")).unwrap()).unwrap();
    let row = &trainer["rows"][0];
    let maple = t.rows.iter().find(|r| r.series.method == "maple").unwrap();
    assert_eq!(maple.dataset, "procedural");
    for (ours, key) in [(&maple.base, "base"), (&maple.novel, "novel")] {
        let s = ours.as_ref().unwrap();
        assert_eq!(json!(s.values), row[key]["values"]);
        assert_eq!(json!(s.mean), row[key]["mean"]);
        assert_eq!(json!(s.std), row[key]["std"]);
    }
    assert_eq!(json!(maple.hm), row["hm"]);
    // No paper numbers for the procedural world.
    assert!(maple.paper.is_none());
    let zs = t.rows.iter().find(|r| r.series.method == "zsclip").unwrap();
    assert_eq!(zs.hm, Some(56.25));
    assert_eq!(t.series[0].config, "zsclip");
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

#[test]
fn every_output_file_is_written_and_well_formed() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    sweep(&results);
    let out = tmp.path().join("report");
    let c = collect(&results).unwrap();
    let w = write_report(&c, &out).unwrap();
    let names: Vec<String> = w
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.md",
            "report.json",
            "report.html",
            "base_to_novel.png",
            "base_to_novel.svg",
            "cross_dataset.png",
            "cross_dataset.svg",
            "domain_generalisation.png",
            "domain_generalisation.svg",
        ]
    );
    // Nothing else (no temporaries) in the folder.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), names.len());

    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("| Dataset | Method | Numbers | Base | Novel | HM | Δ HM vs paper | Seeds |")
    );
    assert!(
        md.contains(
            "| EuroSAT | MaPLe | ours | 95.86 ± 1.40 | 76.10 ± 2.92 | 84.84 | +2.49 | 1,2,3 |"
        ),
        "{md}"
    );
    assert!(md
        .contains("| _EuroSAT_ | _MaPLe_ | _paper (transcribed)_ | _94.07_ | _73.23_ | _82.35_ |"));
    assert!(md.contains("| **Average (2 datasets)** | **MaPLe** | **ours** | **88.43** | **68.05** | **76.91** | **+1.63** |"));
    assert!(md.contains(
        "![Base-to-novel generalisation: bars per dataset and method](base_to_novel.png)"
    ));
    assert!(md.contains("## Cross-dataset transfer (trained on ImageNet)"));
    assert!(
        md.contains("| MaPLe | ours | 70.50 ± 0.50 | 93.50 ± 0.50 | 45.50 ± 0.50 | 69.50 | 1,2 |"),
        "{md}"
    );

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&w.json).unwrap()).unwrap();
    assert_eq!(json["format"], "maple-burn/report/v1");
    let rows = json["tables"]["base_to_novel"]["rows"].as_array().unwrap();
    let e = rows
        .iter()
        .find(|r| r["dataset"] == "eurosat" && r["series"]["method"] == "maple")
        .unwrap();
    assert_eq!(e["base"]["values"], json!([94.07, 97.5, 96.0]));
    assert_eq!(e["paper"]["provenance"], "transcribed");
    assert_eq!(json["files"].as_array().unwrap().len(), 12);

    for stem in ["base_to_novel", "cross_dataset", "domain_generalisation"] {
        let (w, h) = png_size(&out.join(format!("{stem}.png")));
        assert!(w >= 900 && h >= 400, "{stem}: {w}x{h}");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let method = if stem == "domain_generalisation" {
            "CLIP (zero-shot)"
        } else {
            "MaPLe"
        };
        assert!(
            svg.contains("Accuracy (%)") && svg.contains(method),
            "{stem}"
        );
    }
    // The base-to-novel figure: three panels, the legend, the datasets.
    let svg = std::fs::read_to_string(out.join("base_to_novel.svg")).unwrap();
    for text in [
        "Base classes",
        "Novel classes",
        "Harmonic mean",
        "EuroSAT",
        "DTD",
        "Average",
        "CLIP (zero-shot)",
        "CoOp",
        "paper",
        "std over seeds",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }

    let html = std::fs::read_to_string(&w.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), 3);
    assert_eq!(html.matches("<table>").count(), 4);
    assert!(html.contains("<td>95.86 ± 1.40</td>"));
    // Self-contained: nothing fetched.
    for external in ["src=", "<link", "<script", "url(", "@import", "<img"] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn the_example_output_folder_is_reportable() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procedural-example");
    let tmp = tempfile::tempdir().unwrap();
    let w = write_report(&collect(&root).unwrap(), tmp.path()).unwrap();
    assert_eq!(w.plots.len(), 2);
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("| procedural | MaPLe | ours | 54.09 ± 0.41 | 52.92 ± 0.41 | 53.50 |  | 1,2 |"),
        "{md}"
    );
    assert!(
        md.contains("| procedural | CLIP (zero-shot) | ours | 56.33 | 56.17 | 56.25 |  | – |"),
        "{md}"
    );
    assert_eq!(
        png_size(&w.plots[0]),
        maple_report::plot::base_to_novel_figure(
            collect(&root)
                .unwrap()
                .tables()
                .base_to_novel
                .as_ref()
                .unwrap()
        )
        .size()
    );
}
