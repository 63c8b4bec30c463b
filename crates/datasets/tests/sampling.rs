//! The whole reference flow on an opened dataset: `random.seed`, k-shot train, min(k,4)-shot val,
//! base/new subsampling and relabelling, against CPython vectors (`data/gen_random_vectors.py`).

mod common;

use common::{write_json_split, Entry, Root};
use datasets::{Dataset, DatasetName, Datum, SplitConfig, Subsample};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/random_vectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn labels(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn split_entries(split: &str, labels: &[usize]) -> Vec<Entry> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| (format!("c{y}/{split}_{i:03}.png"), y, format!("class {y}")))
        .collect()
}

#[test]
fn splits_match_the_reference_pipeline_for_every_seed_shots_and_subsample() {
    let v = vectors();
    let p = &v["pipeline"];
    let (train, val, test) = (
        labels(&p["train_labels"]),
        labels(&p["val_labels"]),
        labels(&p["test_labels"]),
    );
    let root = Root::new();
    let dir = root.join("eurosat");
    let (tr, va, te) = (
        split_entries("train", &train),
        split_entries("val", &val),
        split_entries("test", &test),
    );
    write_json_split(&dir, "split_zhou_EuroSAT.json", "2750", &tr, &va, &te);
    let ds = Dataset::open(DatasetName::EuroSat, root.path()).unwrap();

    let expect = |list: &Value, src: &[Entry]| -> Vec<Datum> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let i = pair[0].as_u64().unwrap() as usize;
                Datum::new(
                    format!("2750/{}", src[i].0),
                    pair[1].as_u64().unwrap() as usize,
                )
            })
            .collect()
    };
    let runs = p["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 27);
    for run in runs {
        let seed = run["seed"].as_u64().unwrap();
        let k = run["k"].as_i64().unwrap();
        let sub: Subsample = run["subsample"].as_str().unwrap().parse().unwrap();
        let s = ds.splits(&SplitConfig::new(Some(k), seed, sub)).unwrap();
        let ctx = format!("seed {seed} k {k} {sub}");
        assert_eq!(s.train, expect(&run["train"], &tr), "train, {ctx}");
        assert_eq!(s.val, expect(&run["val"], &va), "val, {ctx}");
        assert_eq!(s.test, expect(&run["test"], &te), "test, {ctx}");
        let n = s.original_labels.len();
        assert_eq!(s.classnames.len(), n);
        for (new, &old) in s.original_labels.iter().enumerate() {
            assert_eq!(s.classnames[new], format!("class {old}"));
        }
    }
}

#[test]
fn base_and_new_partition_the_classes_with_base_taking_the_odd_one() {
    let root = Root::new();
    let labels: Vec<usize> = (0..5).flat_map(|y| [y, y]).collect();
    let tr = split_entries("train", &labels);
    write_json_split(
        &root.join("dtd"),
        "split_zhou_DescribableTextures.json",
        "images",
        &tr,
        &tr[..5],
        &tr,
    );
    let ds = Dataset::open(DatasetName::Dtd, root.path()).unwrap();
    let base = ds
        .splits(&SplitConfig::new(Some(1), 1, Subsample::Base))
        .unwrap();
    let new = ds
        .splits(&SplitConfig::new(Some(1), 1, Subsample::New))
        .unwrap();
    assert_eq!(base.original_labels, [0, 1, 2]);
    assert_eq!(new.original_labels, [3, 4]);
    assert_eq!(base.test.len() + new.test.len(), 10);
    assert!(base.train.iter().chain(&base.test).all(|d| d.label < 3));
    assert!(new.train.iter().chain(&new.test).all(|d| d.label < 2));
}

#[test]
fn full_splits_are_kept_when_shots_is_minus_one() {
    let root = Root::new();
    let labels: Vec<usize> = (0..3).flat_map(|y| [y, y, y]).collect();
    let tr = split_entries("train", &labels);
    write_json_split(
        &root.join("dtd"),
        "split_zhou_DescribableTextures.json",
        "images",
        &tr,
        &tr,
        &tr,
    );
    let ds = Dataset::open(DatasetName::Dtd, root.path()).unwrap();
    let s = ds
        .splits(&SplitConfig::new(Some(-1), 1, Subsample::All))
        .unwrap();
    assert_eq!(s.train, ds.train());
    assert_eq!(s.val, ds.val().unwrap());
}
