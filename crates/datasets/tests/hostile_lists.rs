//! Hostile list files and arguments: paths that leave the dataset folder, labels and shot
//! counts far beyond the data, and 0 shots are errors naming the file, the row and the
//! value; nothing allocates in proportion to a number read from a file or an argument.

mod common;

use common::{write_image, write_json_split, write_text, Entry, Root};
use datasets::fewshot::fewshot_indices;
use datasets::subsample::relabel;
use datasets::{
    Dataset, DatasetError, DatasetName, Datum, Loader, LoaderConfig, PyRandom, SplitConfig,
    Subsample, Transform,
};

fn e(p: &str, l: usize, c: &str) -> Entry {
    (p.to_string(), l, c.to_string())
}

/// A valid DTD tree with two classes, two train and two test images each.
fn dtd(root: &Root) {
    write_json_split(
        &root.join("dtd"),
        "split_zhou_DescribableTextures.json",
        "images",
        &[
            e("a/1.jpg", 0, "a"),
            e("b/1.jpg", 1, "b"),
            e("a/2.jpg", 0, "a"),
            e("b/2.jpg", 1, "b"),
        ],
        &[],
        &[e("a/3.jpg", 0, "a"), e("b/3.jpg", 1, "b")],
    );
}

/// Rewrites the DTD split file with one test entry replaced by `[path, label, name]`.
fn dtd_with_test_entry(root: &Root, entry: serde_json::Value) {
    dtd(root);
    let file = root.join("dtd/split_zhou_DescribableTextures.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["test"][1] = entry;
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn split_paths_cannot_leave_the_dataset_folder() {
    for bad in [
        "../../secret.jpg",
        "a/../../../secret.jpg",
        "a/..\\..\\secret.jpg",
        "/etc/passwd",
        "\\\\server\\share\\x.jpg",
        "C:/x.jpg",
    ] {
        let root = Root::new();
        // The target exists, so only confinement can refuse it.
        write_image(&root.join("secret.jpg"), 4, 4, 9);
        dtd_with_test_entry(&root, serde_json::json!([bad, 1, "b"]));
        let err = Dataset::open(DatasetName::Dtd, root.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DatasetError::BadEntry { .. }), "{bad}: {msg}");
        assert!(
            msg.contains("split_zhou_DescribableTextures.json") && msg.contains("test[1]"),
            "{bad}: {msg}"
        );
        assert!(
            msg.contains("dataset folder") || msg.contains("relative"),
            "{bad}: {msg}"
        );
    }
}

#[test]
fn aircraft_list_ids_cannot_leave_the_dataset_folder() {
    let root = Root::new();
    let dir = root.join("fgvc_aircraft");
    write_text(&dir.join("variants.txt"), "707-320\nA300B4\n");
    for (id, tag) in [("1", 1), ("2", 2), ("3", 3), ("4", 4)] {
        write_image(&dir.join(format!("images/{id}.jpg")), 4, 4, tag);
    }
    write_image(&root.join("outside.jpg"), 4, 4, 5);
    write_text(
        &dir.join("images_variant_train.txt"),
        "1 707-320\n2 A300B4\n",
    );
    write_text(&dir.join("images_variant_val.txt"), "3 707-320\n");
    write_text(
        &dir.join("images_variant_test.txt"),
        "4 A300B4\n../../outside 707-320\n",
    );
    let err = Dataset::open(DatasetName::FgvcAircraft, root.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::BadEntry { .. }), "{msg}");
    assert!(
        msg.contains("images_variant_test.txt") && msg.contains("line 2") && msg.contains(".."),
        "{msg}"
    );
}

#[test]
fn a_huge_label_is_refused_without_allocating_for_it() {
    // 10^12 as a train label: the class table would need 10^12 slots.
    let root = Root::new();
    dtd(&root);
    let file = root.join("dtd/split_zhou_DescribableTextures.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["train"][2][1] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = Dataset::open(DatasetName::Dtd, root.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DatasetError::EmptyClass { label: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("1000000000000") && msg.contains("train[2]") && msg.contains("split_zhou"),
        "{msg}"
    );
    // A huge test label is out of range, as before.
    let root = Root::new();
    dtd_with_test_entry(&root, serde_json::json!(["b/3.jpg", 1u64 << 60, "b"]));
    let err = Dataset::open(DatasetName::Dtd, root.path()).unwrap_err();
    assert!(matches!(err, DatasetError::LabelOutOfRange { .. }), "{err}");
}

#[test]
fn huge_shots_and_labels_allocate_in_proportion_to_the_items_only() {
    let labels = [0usize, 1, 0, 1, 2];
    // 10^15 shots: every class is smaller, so everything is kept, nothing drawn.
    let out = fewshot_indices(&labels, 1_000_000_000_000_000, &mut PyRandom::new(1));
    assert_eq!(out, vec![0, 2, 1, 3, 4]);
    let items: Vec<Datum> = [5usize, 1 << 62, 7]
        .iter()
        .map(|&y| Datum::new(format!("{y}.jpg"), y))
        .collect();
    let kept = relabel(&items, &[1 << 62, 5]);
    assert_eq!(
        kept,
        vec![
            Datum::new("5.jpg", 1),
            Datum::new(format!("{}.jpg", 1u64 << 62), 0)
        ]
    );

    let root = Root::new();
    dtd(&root);
    let ds = Dataset::open(DatasetName::Dtd, root.path()).unwrap();
    let splits = ds
        .splits(&SplitConfig::new(
            Some(1_000_000_000_000_000),
            1,
            Subsample::All,
        ))
        .unwrap();
    assert_eq!(splits.train.len(), 4);
}

#[test]
fn zero_shots_is_an_error_and_negative_shots_mean_the_full_split() {
    let root = Root::new();
    dtd(&root);
    let ds = Dataset::open(DatasetName::Dtd, root.path()).unwrap();
    let err = ds
        .splits(&SplitConfig::new(Some(0), 1, Subsample::All))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::InvalidArgument { .. }), "{msg}");
    assert!(
        msg.contains("shots") && msg.contains('0') && msg.contains("dtd"),
        "{msg}"
    );
    let full = ds
        .splits(&SplitConfig::new(Some(-1), 1, Subsample::All))
        .unwrap();
    assert_eq!(full.train.len(), 4);
    assert!(
        datasets::data_json(DatasetName::Dtd, root.path(), Some(0), 1, Subsample::All).is_err()
    );
    assert!(datasets::generate_fewshot(ds.train(), 0, &mut PyRandom::new(1)).is_err());
}

#[test]
fn loaders_refuse_escaping_items_and_impossible_batches() {
    let root = Root::new();
    dtd(&root);
    let dir = root.join("dtd");
    let new = |items: Vec<Datum>, size: u32, batch: usize| {
        Loader::new(
            "dtd",
            "train",
            &dir,
            items,
            Transform::test(size),
            LoaderConfig::test(batch),
        )
    };
    let ok = vec![Datum::new("images/a/1.jpg", 0)];
    assert!(new(ok.clone(), 8, 2).is_ok());
    let escaping = vec![ok[0].clone(), Datum::new("images/../../x.jpg", 0)];
    let err = new(escaping, 8, 2).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::BadEntry { .. }), "{msg}");
    assert!(msg.contains("train[1]") && msg.contains(".."), "{msg}");
    for (size, batch, what) in [
        (8, 0, "batch_size"),
        (0, 2, "image size"),
        (1 << 20, 1 << 20, "GiB"),
    ] {
        let err = new(ok.clone(), size, batch).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn a_truncated_image_is_a_decode_error_naming_it() {
    let root = Root::new();
    dtd(&root);
    let img = root.join("dtd/images/a/1.jpg");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let loader = Loader::new(
        "dtd",
        "train",
        &root.join("dtd"),
        vec![Datum::new("images/a/1.jpg", 0)],
        Transform::test(8),
        LoaderConfig::test(1),
    )
    .unwrap();
    let err = loader.epoch(0).next().unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Decode { .. }), "{msg}");
    assert!(
        msg.contains("a/1.jpg") && msg.contains("truncated"),
        "{msg}"
    );
}
