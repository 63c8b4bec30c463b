//! Bad data is an error naming the dataset, the file and the entry, found when the dataset is opened.

mod common;

use common::{imagenet, write_image, write_json_split, write_text, Entry, Root};
use datasets::{Dataset, DatasetError, DatasetName};

fn e(p: &str, l: usize, c: &str) -> Entry {
    (p.to_string(), l, c.to_string())
}

fn open_err(name: DatasetName, root: &Root) -> String {
    let err = Dataset::open(name, root.path()).unwrap_err().to_string();
    assert!(
        err.contains(name.as_str()),
        "error does not name the dataset: {err}"
    );
    err
}

fn dtd(root: &Root, train: &[Entry], test: &[Entry]) {
    write_json_split(
        &root.join("dtd"),
        "split_zhou_DescribableTextures.json",
        "images",
        train,
        &[],
        test,
    );
}

#[test]
fn a_missing_dataset_folder_is_reported() {
    let root = Root::new();
    let err = open_err(DatasetName::Caltech101, &root);
    assert!(err.contains("caltech-101"), "{err}");
    let err = Dataset::open(DatasetName::Dtd, &root.join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data root"), "{err}");
}

#[test]
fn a_missing_split_file_says_it_is_required() {
    let root = Root::new();
    write_image(&root.join("oxford_pets/images/a_1.jpg"), 4, 4, 0);
    let err = open_err(DatasetName::OxfordPets, &root);
    assert!(
        err.contains("split_zhou_OxfordPets.json") && err.contains("required"),
        "{err}"
    );
}

#[test]
fn a_listed_but_absent_image_names_the_entry_and_counts_the_missing() {
    let root = Root::new();
    dtd(
        &root,
        &[e("a/1.jpg", 0, "a"), e("b/1.jpg", 1, "b")],
        &[e("a/2.jpg", 0, "a"), e("b/2.jpg", 1, "b")],
    );
    std::fs::remove_file(root.join("dtd/images/b/2.jpg")).unwrap();
    std::fs::remove_file(root.join("dtd/images/a/2.jpg")).unwrap();
    let err = Dataset::open(DatasetName::Dtd, root.path()).unwrap_err();
    assert!(
        matches!(err, DatasetError::MissingImage { missing: 2, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("test[0]") && msg.contains("images/a/2.jpg") && msg.contains("split_zhou"),
        "{msg}"
    );
}

#[test]
fn a_test_label_outside_the_train_classes_is_out_of_range() {
    let root = Root::new();
    dtd(
        &root,
        &[e("a/1.jpg", 0, "a"), e("b/1.jpg", 1, "b")],
        &[e("c/1.jpg", 2, "c")],
    );
    let err = open_err(DatasetName::Dtd, &root);
    assert!(
        err.contains("test[0]") && err.contains("label 2 is out of range"),
        "{err}"
    );
}

#[test]
fn a_class_without_train_images_is_an_empty_class() {
    let root = Root::new();
    dtd(
        &root,
        &[e("a/1.jpg", 0, "a"), e("c/1.jpg", 2, "c")],
        &[e("a/2.jpg", 0, "a")],
    );
    let err = open_err(DatasetName::Dtd, &root);
    assert!(
        err.contains("class 1") && err.contains("no train images"),
        "{err}"
    );
}

#[test]
fn one_label_with_two_train_names_is_refused() {
    let root = Root::new();
    dtd(
        &root,
        &[e("a/1.jpg", 0, "a"), e("a/3.jpg", 0, "aa")],
        &[e("a/2.jpg", 0, "a")],
    );
    let err = open_err(DatasetName::Dtd, &root);
    assert!(err.contains("train[1]") && err.contains("\"aa\""), "{err}");
}

#[test]
fn a_malformed_entry_is_named() {
    let root = Root::new();
    dtd(&root, &[e("a/1.jpg", 0, "a")], &[e("a/2.jpg", 0, "a")]);
    let file = root.join("dtd/split_zhou_DescribableTextures.json");
    std::fs::write(
        &file,
        r#"{"train": [["a/1.jpg", 0, "a"]], "val": [["a/1.jpg", 0]], "test": []}"#,
    )
    .unwrap();
    let err = open_err(DatasetName::Dtd, &root);
    assert!(
        err.contains("val[0]") && err.contains("[path, label, classname]"),
        "{err}"
    );
    std::fs::write(&file, "{not json").unwrap();
    let err = open_err(DatasetName::Dtd, &root);
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn an_empty_imagenet_class_folder_is_an_error() {
    let root = Root::new();
    imagenet(root.path());
    std::fs::create_dir_all(root.join("imagenet/images/train/n01491362")).unwrap();
    let err = open_err(DatasetName::ImageNet, &root);
    assert!(err.contains("n01491362"), "{err}");
}

#[test]
fn an_imagenet_folder_missing_from_classnames_is_an_unknown_class() {
    let root = Root::new();
    imagenet(root.path());
    for split in ["train", "val"] {
        write_image(
            &root.join(&format!("imagenet/images/{split}/n00000001/x.JPEG")),
            3,
            3,
            0,
        );
    }
    let err = open_err(DatasetName::ImageNet, &root);
    assert!(
        err.contains("n00000001") && err.contains("classnames.txt"),
        "{err}"
    );
}

#[test]
fn imagenet_val_folders_must_match_train_folders() {
    let root = Root::new();
    imagenet(root.path());
    std::fs::remove_dir_all(root.join("imagenet/images/val/n01443537")).unwrap();
    let err = open_err(DatasetName::ImageNet, &root);
    assert!(
        err.contains("images/val") && err.contains("same wnids"),
        "{err}"
    );
}

#[test]
fn an_aircraft_line_with_an_unknown_variant_names_the_line() {
    let root = Root::new();
    let dir = root.join("fgvc_aircraft");
    write_text(&dir.join("variants.txt"), "A300B4\n");
    write_text(
        &dir.join("images_variant_train.txt"),
        "0000001 A300B4\n0000002 A380\n",
    );
    write_text(&dir.join("images_variant_val.txt"), "");
    write_text(&dir.join("images_variant_test.txt"), "0000001 A300B4\n");
    write_image(&dir.join("images/0000001.jpg"), 3, 3, 0);
    write_image(&dir.join("images/0000002.jpg"), 3, 3, 0);
    let err = open_err(DatasetName::FgvcAircraft, &root);
    assert!(
        err.contains("images_variant_train.txt") && err.contains("line 2") && err.contains("A380"),
        "{err}"
    );
}
