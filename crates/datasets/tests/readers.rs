//! Every reader on a small tree in the dataset's real layout: class names, labels, item order, split contents.

mod common;

use common::{entries, imagenet, write_image, write_json_split, write_text, Entry, Root};
use datasets::{data_json, Dataset, DatasetName, Datum, SplitConfig, Subsample};

fn paths(items: &[Datum]) -> Vec<&str> {
    items.iter().map(|d| d.path.as_str()).collect()
}

fn labels(items: &[Datum]) -> Vec<usize> {
    items.iter().map(|d| d.label).collect()
}

/// Writes a json-split dataset and checks that opening it returns exactly its lists.
fn check_json_dataset(
    name: DatasetName,
    train: Vec<Entry>,
    val: Vec<Entry>,
    test: Vec<Entry>,
    classnames: &[&str],
) {
    let root = Root::new();
    let dir = root.join(name.dir());
    let datasets::SplitSource::Json(file) = name.split_source() else {
        panic!("{name} is not a json dataset")
    };
    write_json_split(&dir, file, name.image_root(), &train, &val, &test);
    let ds = Dataset::open(name, root.path()).unwrap();
    assert_eq!(ds.classnames(), classnames, "{name}");
    let prefixed = |xs: &[Entry]| -> Vec<Datum> {
        xs.iter()
            .map(|(p, l, _)| {
                let rel = if name.image_root().is_empty() {
                    p.clone()
                } else {
                    format!("{}/{p}", name.image_root())
                };
                Datum::new(rel, *l)
            })
            .collect()
    };
    assert_eq!(ds.train(), prefixed(&train), "{name} train");
    assert_eq!(ds.val().unwrap(), prefixed(&val), "{name} val");
    assert_eq!(ds.test(), prefixed(&test), "{name} test");
    assert_eq!(ds.sources().len(), 1);
    assert_eq!(ds.sources()[0].name, file);
}

#[test]
fn caltech101_reads_its_split_file_with_renamed_classes() {
    let classes = [
        ("airplanes", "airplane"),
        ("Faces", "face"),
        ("accordion", "accordion"),
    ];
    let p = |f: &str, i: usize| format!("{f}/image_{:04}.jpg", i + 1);
    let all = entries(&classes, 6, p);
    check_json_dataset(
        DatasetName::Caltech101,
        all[..9].to_vec(),
        all[9..12].to_vec(),
        all[12..].to_vec(),
        &["airplane", "face", "accordion"],
    );
}

#[test]
fn oxford_pets_reads_flat_images_with_lowercase_breeds() {
    let classes = [
        ("Abyssinian", "abyssinian"),
        ("american_bulldog", "american_bulldog"),
    ];
    let all = entries(&classes, 4, |f, i| format!("{f}_{}.jpg", 100 + i));
    check_json_dataset(
        DatasetName::OxfordPets,
        all[..4].to_vec(),
        all[4..6].to_vec(),
        all[6..].to_vec(),
        &["abyssinian", "american_bulldog"],
    );
}

#[test]
fn stanford_cars_paths_are_relative_to_the_dataset_folder_itself() {
    let classes = [
        ("x", "2012 Tesla Model S"),
        ("y", "2000 AM General Hummer SUV"),
    ];
    let mut n = 0;
    let all = entries(&classes, 4, |_, _| {
        n += 1;
        format!(
            "{}/{n:05}.jpg",
            if n <= 6 { "cars_train" } else { "cars_test" }
        )
    });
    check_json_dataset(
        DatasetName::StanfordCars,
        all[..4].to_vec(),
        all[4..6].to_vec(),
        all[6..].to_vec(),
        &["2012 Tesla Model S", "2000 AM General Hummer SUV"],
    );
    let root = Root::new();
    write_json_split(
        &root.join("stanford_cars"),
        "split_zhou_StanfordCars.json",
        "",
        &all[..4],
        &all[4..6],
        &all[6..],
    );
    let json = data_json(
        DatasetName::StanfordCars,
        root.path(),
        None,
        1,
        Subsample::All,
    )
    .unwrap();
    assert_eq!(json["test"][0][0], "cars_test/00007.jpg");
}

#[test]
fn oxford_flowers_food101_dtd_sun397_ucf101_read_their_split_files() {
    let flowers = entries(
        &[("a", "pink primrose"), ("b", "globe thistle")],
        3,
        |_, i| format!("image_{:05}.jpg", i),
    );
    // Distinct file names per class.
    let flowers: Vec<Entry> = flowers
        .into_iter()
        .enumerate()
        .map(|(k, (_, l, c))| (format!("image_{:05}.jpg", k + 1), l, c))
        .collect();
    check_json_dataset(
        DatasetName::OxfordFlowers,
        flowers[..2].to_vec(),
        flowers[2..4].to_vec(),
        flowers[4..].to_vec(),
        &["pink primrose", "globe thistle"],
    );

    let food = entries(
        &[
            ("apple_pie", "apple_pie"),
            ("baby_back_ribs", "baby_back_ribs"),
        ],
        3,
        |f, i| format!("{f}/{}.jpg", 1000 + i),
    );
    check_json_dataset(
        DatasetName::Food101,
        food[..2].to_vec(),
        food[2..4].to_vec(),
        food[4..].to_vec(),
        &["apple_pie", "baby_back_ribs"],
    );

    let dtd = entries(
        &[("banded", "banded"), ("blotchy", "blotchy")],
        3,
        |f, i| format!("{f}/{f}_{:04}.jpg", i),
    );
    check_json_dataset(
        DatasetName::Dtd,
        dtd[..2].to_vec(),
        dtd[2..4].to_vec(),
        dtd[4..].to_vec(),
        &["banded", "blotchy"],
    );

    let sun = entries(
        &[
            ("a/abbey", "abbey"),
            ("a/apartment_building/outdoor", "outdoor apartment_building"),
        ],
        3,
        |f, i| format!("{f}/sun_{i:04}.jpg"),
    );
    check_json_dataset(
        DatasetName::Sun397,
        sun[..2].to_vec(),
        sun[2..4].to_vec(),
        sun[4..].to_vec(),
        &["abbey", "outdoor apartment_building"],
    );

    let ucf = entries(
        &[
            ("Apply_Eye_Makeup", "Apply_Eye_Makeup"),
            ("Archery", "Archery"),
        ],
        3,
        |f, i| format!("{f}/v_{}_g{:02}_c01.jpg", f.replace('_', ""), i + 1),
    );
    check_json_dataset(
        DatasetName::Ucf101,
        ucf[..2].to_vec(),
        ucf[2..4].to_vec(),
        ucf[4..].to_vec(),
        &["Apply_Eye_Makeup", "Archery"],
    );
}

#[test]
fn eurosat_listing_paths_start_with_the_image_folder() {
    let classes = [
        ("AnnualCrop", "Annual Crop Land"),
        ("Forest", "Forest"),
        ("SeaLake", "Sea or Lake"),
    ];
    let all = entries(&classes, 3, |f, i| format!("{f}/{f}_{}.jpg", i + 1));
    check_json_dataset(
        DatasetName::EuroSat,
        all[..3].to_vec(),
        all[3..6].to_vec(),
        all[6..].to_vec(),
        &["Annual Crop Land", "Forest", "Sea or Lake"],
    );
    let root = Root::new();
    write_json_split(
        &root.join("eurosat"),
        "split_zhou_EuroSAT.json",
        "2750",
        &all[..3],
        &all[3..6],
        &all[6..],
    );
    let json = data_json(DatasetName::EuroSat, root.path(), None, 1, Subsample::All).unwrap();
    assert_eq!(json["classnames"][2], "Sea or Lake");
    assert_eq!(
        json["train"][0],
        serde_json::json!(["2750/AnnualCrop/AnnualCrop_1.jpg", 0, "Annual Crop Land"])
    );
    assert_eq!(json["test"].as_array().unwrap().len(), 3);
}

#[test]
fn json_labels_written_as_strings_are_read_like_int() {
    let root = Root::new();
    let dir = root.join("dtd");
    let e = |p: &str, l: usize, c: &str| (p.to_string(), l, c.to_string());
    write_json_split(
        &dir,
        "split_zhou_DescribableTextures.json",
        "images",
        &[e("a/1.jpg", 0, "a"), e("b/1.jpg", 1, "b")],
        &[],
        &[e("a/2.jpg", 0, "a")],
    );
    let text = std::fs::read_to_string(dir.join("split_zhou_DescribableTextures.json")).unwrap();
    std::fs::write(
        dir.join("split_zhou_DescribableTextures.json"),
        text.replace(",1,", ",\"1\","),
    )
    .unwrap();
    let ds = Dataset::open(DatasetName::Dtd, root.path()).unwrap();
    assert_eq!(labels(ds.train()), vec![0, 1]);
}

#[test]
fn imagenet_labels_follow_sorted_wnid_folders_and_files_sort_by_bytes() {
    let root = Root::new();
    imagenet(root.path());
    let ds = Dataset::open(DatasetName::ImageNet, root.path()).unwrap();
    assert_eq!(
        ds.classnames(),
        ["tench", "goldfish", "great white shark", "tiger shark"]
    );
    assert_eq!(
        paths(&ds.train()[..3]),
        [
            "images/train/n01440764/n01440764_B_1.JPEG",
            "images/train/n01440764/n01440764_a_3.JPEG",
            "images/train/n01440764/n01440764_b_2.JPEG",
        ]
    );
    assert_eq!(labels(ds.train()), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    assert_eq!(
        ds.test()[0].path,
        "images/val/n01440764/ILSVRC2012_val_00000001.JPEG"
    );
    assert_eq!(labels(ds.test()), [0, 0, 1, 1, 2, 2, 3, 3]);
    assert!(ds.val().is_none());
    let splits = ds
        .splits(&SplitConfig::new(None, 1, Subsample::New))
        .unwrap();
    assert_eq!(splits.classnames, ["great white shark", "tiger shark"]);
    assert_eq!(
        splits.val, splits.test,
        "ImageNet's val is its test set, as in the reference"
    );
    assert_eq!(
        splits.test[0],
        Datum::new("images/val/n01484850/ILSVRC2012_val_00000001.JPEG", 0)
    );
}

#[test]
fn fgvc_aircraft_reads_variant_lists_with_spaces_and_slashes() {
    let root = Root::new();
    let dir = root.join("fgvc_aircraft");
    write_text(&dir.join("variants.txt"), "707-320\nCessna 172\nF/A-18\n");
    let lines = |ids: &[(&str, &str)]| {
        ids.iter()
            .map(|(i, v)| format!("{i} {v}\n"))
            .collect::<String>()
    };
    let train = [
        ("1025794", "F/A-18"),
        ("0034309", "707-320"),
        ("1340192", "Cessna 172"),
        ("0056978", "707-320"),
    ];
    let val = [("2000001", "Cessna 172")];
    let test = [("3000001", "F/A-18"), ("3000002", "707-320")];
    write_text(&dir.join("images_variant_train.txt"), &lines(&train));
    write_text(&dir.join("images_variant_val.txt"), &lines(&val));
    write_text(&dir.join("images_variant_test.txt"), &lines(&test));
    for (k, (id, _)) in train.iter().chain(&val).chain(&test).enumerate() {
        write_image(&dir.join(format!("images/{id}.jpg")), 9, 6, k as u32);
    }
    let ds = Dataset::open(DatasetName::FgvcAircraft, root.path()).unwrap();
    assert_eq!(ds.classnames(), ["707-320", "Cessna 172", "F/A-18"]);
    assert_eq!(ds.train()[0], Datum::new("images/1025794.jpg", 2));
    assert_eq!(labels(ds.train()), [2, 0, 1, 0]);
    assert_eq!(labels(ds.val().unwrap()), [1]);
    assert_eq!(labels(ds.test()), [2, 0]);
    assert_eq!(ds.sources().len(), 4);
}

fn wnid_variant(name: DatasetName, with_readme: bool) -> Root {
    let root = Root::new();
    let dir = root.join(name.dir());
    write_text(
        &dir.join("classnames.txt"),
        "n01440764 tench\nn01443537 goldfish\nn01498041 stingray\n",
    );
    let img = dir.join(name.image_root());
    for (k, wnid) in ["n01498041", "n01443537"].iter().enumerate() {
        for f in ["2.jpg", "10.jpg"] {
            write_image(&img.join(wnid).join(f), 5, 5, k as u32);
        }
    }
    if with_readme {
        write_text(&img.join("README.txt"), "about the dataset");
    }
    root
}

#[test]
fn imagenet_a_and_r_label_their_200_class_subset_by_sorted_folder() {
    for name in [DatasetName::ImageNetA, DatasetName::ImageNetR] {
        let root = wnid_variant(name, true);
        let ds = Dataset::open(name, root.path()).unwrap();
        assert_eq!(ds.classnames(), ["goldfish", "stingray"], "{name}");
        let sub = name.image_root();
        assert_eq!(
            paths(ds.test()),
            [
                format!("{sub}/n01443537/10.jpg"),
                format!("{sub}/n01443537/2.jpg"),
                format!("{sub}/n01498041/10.jpg"),
                format!("{sub}/n01498041/2.jpg"),
            ]
        );
        assert_eq!(labels(ds.test()), [0, 0, 1, 1]);
        assert!(ds.train().is_empty() && ds.val().is_none());
    }
}

#[test]
fn imagenet_sketch_labels_sorted_wnid_folders() {
    let root = wnid_variant(DatasetName::ImageNetSketch, false);
    let ds = Dataset::open(DatasetName::ImageNetSketch, root.path()).unwrap();
    assert_eq!(ds.classnames(), ["goldfish", "stingray"]);
    assert_eq!(ds.test()[0].path, "images/n01443537/10.jpg");
}

#[test]
fn test_only_datasets_refuse_base_new_subsampling_and_ignore_shots() {
    let root = wnid_variant(DatasetName::ImageNetA, true);
    let ds = Dataset::open(DatasetName::ImageNetA, root.path()).unwrap();
    let err = ds
        .splits(&SplitConfig::new(None, 1, Subsample::Base))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("imagenet_a") && err.contains("test-only"),
        "{err}"
    );
    let s = ds
        .splits(&SplitConfig::new(Some(16), 1, Subsample::All))
        .unwrap();
    assert_eq!(s.test.len(), 4);
    assert!(s.train.is_empty() && s.val.is_empty());
}

#[test]
fn imagenetv2_labels_are_folder_numbers_named_in_file_order() {
    let root = Root::new();
    let dir = root.join("imagenetv2");
    write_text(
        &dir.join("classnames.txt"),
        "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n",
    );
    let img = dir.join("imagenetv2-matched-frequency-format-val");
    for label in 0..3 {
        write_image(&img.join(format!("{label}/f{label}b.jpeg")), 4, 4, label);
        write_image(&img.join(format!("{label}/f{label}a.jpeg")), 4, 4, label);
    }
    let ds = Dataset::open(DatasetName::ImageNetV2, root.path()).unwrap();
    assert_eq!(ds.classnames(), ["tench", "goldfish", "great white shark"]);
    assert_eq!(labels(ds.test()), [0, 0, 1, 1, 2, 2]);
    assert_eq!(
        ds.test()[1].path,
        "imagenetv2-matched-frequency-format-val/0/f0b.jpeg"
    );

    std::fs::remove_dir_all(img.join("1")).unwrap();
    let err = Dataset::open(DatasetName::ImageNetV2, root.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("imagenetv2") && err.contains("format-val/1"),
        "{err}"
    );
}
