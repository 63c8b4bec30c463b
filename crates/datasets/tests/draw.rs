//! Saved draws: they round-trip, and a draw whose split file changed (or whose settings differ) is refused.

mod common;

use common::{write_json_split, Entry, Root};
use datasets::{Dataset, DatasetError, DatasetName, SavedDraw, SplitConfig, Subsample};

fn tree() -> Root {
    let root = Root::new();
    let e: Vec<Entry> = (0..24)
        .map(|i| {
            (
                format!("c{}/{i}.png", i % 4),
                i % 4,
                format!("class {}", i % 4),
            )
        })
        .collect();
    write_json_split(
        &root.join("food-101"),
        "split_zhou_Food101.json",
        "images",
        &e[..16],
        &e[16..20],
        &e[20..],
    );
    root
}

#[test]
fn a_saved_draw_reloads_to_the_same_splits() {
    let root = tree();
    let ds = Dataset::open(DatasetName::Food101, root.path()).unwrap();
    let cfg = SplitConfig::new(Some(2), 3, Subsample::New);
    let path = root.join("run/split_draw.json");
    let first = ds.splits_saved_at(&path, &cfg).unwrap();
    assert!(path.is_file());
    let saved = SavedDraw::load(&path).unwrap();
    assert_eq!(saved.dataset, "food101");
    assert_eq!(saved.shots, Some(2));
    assert_eq!(saved.seed, 3);
    assert_eq!(saved.subsample, "new");
    assert_eq!(saved.sources[0].name, "split_zhou_Food101.json");
    assert_eq!(saved.sources[0].sha256.len(), 64);
    assert_eq!(ds.load_draw(&path, &cfg).unwrap(), first);
    assert_eq!(ds.splits_saved_at(&path, &cfg).unwrap(), first);
}

#[test]
fn a_draw_from_a_changed_split_file_is_refused_as_stale() {
    let root = tree();
    let ds = Dataset::open(DatasetName::Food101, root.path()).unwrap();
    let cfg = SplitConfig::new(Some(2), 1, Subsample::All);
    let path = root.join("draw.json");
    ds.splits_saved_at(&path, &cfg).unwrap();
    let split = root.join("food-101/split_zhou_Food101.json");
    let text = std::fs::read_to_string(&split).unwrap();
    std::fs::write(&split, text.replacen("\"c0/0.png\"", "\"c0/4.png\"", 1)).unwrap();
    let ds = Dataset::open(DatasetName::Food101, root.path()).unwrap();
    let err = ds.load_draw(&path, &cfg).unwrap_err();
    assert!(matches!(err, DatasetError::StaleDraw { .. }), "{err}");
    assert!(err.to_string().contains("split_zhou_Food101.json"), "{err}");
    assert!(ds.splits_saved_at(&path, &cfg).is_err());
}

#[test]
fn a_draw_made_with_other_settings_is_refused() {
    let root = tree();
    let ds = Dataset::open(DatasetName::Food101, root.path()).unwrap();
    let path = root.join("draw.json");
    ds.splits_saved_at(&path, &SplitConfig::new(Some(2), 1, Subsample::Base))
        .unwrap();
    for cfg in [
        SplitConfig::new(Some(4), 1, Subsample::Base),
        SplitConfig::new(Some(2), 2, Subsample::Base),
        SplitConfig::new(Some(2), 1, Subsample::New),
    ] {
        let err = ds.load_draw(&path, &cfg).unwrap_err();
        assert!(matches!(err, DatasetError::DrawMismatch { .. }), "{err}");
    }
}
