//! The results files: JSON field names and the text table, pinned.

use trainer::results::{Protocol, Summary, SummaryRow, SUMMARY_FORMAT};

fn b2n() -> Summary {
    let rows = vec![
        SummaryRow::base_to_novel(
            "eurosat",
            &[1, 2, 3],
            &[94.071, 97.5, 96.0],
            &[73.2, 80.1, 75.0],
        ),
        SummaryRow::base_to_novel("dtd", &[1, 2, 3], &[80.0, 81.0, 82.0], &[59.0, 60.0, 61.0]),
    ];
    Summary::new(
        Protocol::Base2novel,
        "maple",
        "vit_b16_c2_ep5_batch4_2ctx",
        "hub:openai/clip-vit-base-patch16",
        "ndarray (cpu) Cpu",
        rows,
    )
}

#[test]
fn base_to_novel_summary_json_has_the_documented_fields() {
    let s = b2n();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["format"], SUMMARY_FORMAT);
    assert_eq!(v["protocol"], "base2novel");
    let r = &v["rows"][0];
    assert_eq!(r["dataset"], "eurosat");
    assert_eq!(r["seeds"], serde_json::json!([1, 2, 3]));
    // Per-seed values as logged (2 decimals), mean and population std with 2 decimals.
    assert_eq!(r["base"]["values"], serde_json::json!([94.07, 97.5, 96.0]));
    assert_eq!(r["base"]["mean"], 95.86);
    assert_eq!(r["novel"]["mean"], 76.1);
    assert_eq!(r["hm"], 84.84);
    assert!(r.get("accuracy").is_none() && r.get("role").is_none());
    assert_eq!(v["average"]["datasets"], 2);
    assert_eq!(v["average"]["base"], 88.43);
    assert_eq!(v["average"]["novel"], 68.05);
    assert_eq!(v["average"]["hm"], 76.91);
    let back: Summary = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}

#[test]
fn base_to_novel_table_is_paper_style() {
    let expected = "\
base2novel — MaPLe (vit_b16_c2_ep5_batch4_2ctx), weights hub:openai/clip-vit-base-patch16, ndarray (cpu) Cpu
Dataset                Base  Novel     HM  Std (B / N)  Seeds
-------------------------------------------------------------
eurosat               95.86  76.10  84.84  1.40 / 2.92  1,2,3
dtd                   81.00  60.00  68.94  0.82 / 0.82  1,2,3
-------------------------------------------------------------
Average (2 datasets)  88.43  68.05  76.91
";
    assert_eq!(b2n().table(), expected);
}

#[test]
fn transfer_summaries_average_the_targets_only() {
    let rows = vec![
        SummaryRow::accuracy("imagenet", &[1], &[70.0], Some("source")),
        SummaryRow::accuracy("caltech101", &[1], &[93.0], Some("target")),
        SummaryRow::accuracy("dtd", &[1], &[45.0], Some("target")),
    ];
    let s = Summary::new(Protocol::Xd, "maple", "c", "w", "d", rows);
    assert_eq!(s.average.as_ref().unwrap().accuracy, Some(69.0));
    assert_eq!(s.average.as_ref().unwrap().datasets, 2);
    let t = s.table();
    assert!(
        t.contains("Role") && t.contains("source") && t.contains("Average (2 datasets)"),
        "{t}"
    );
}
