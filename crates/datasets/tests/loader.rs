//! The loader: order, batching, drop_last, per-item augmentation independent of thread count, decode errors.

mod common;

use common::{write_image, Root};
use datasets::{Datum, Loader, LoaderConfig, Transform};

fn items(root: &Root, n: usize) -> Vec<Datum> {
    (0..n)
        .map(|i| {
            let rel = format!("img/{i:02}.{}", if i % 2 == 0 { "png" } else { "jpg" });
            write_image(
                &root.join(&rel),
                20 + i as u32,
                14 + (i as u32 % 5),
                i as u32,
            );
            Datum::new(rel, i % 3)
        })
        .collect()
}

fn config(batch_size: usize, shuffle: bool, drop_last: bool, threads: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle,
        drop_last,
        seed: 5,
        num_threads: threads,
        prefetch: 2,
    }
}

#[test]
fn test_batches_follow_list_order_and_keep_the_last_partial_batch() {
    let root = Root::new();
    let data = items(&root, 7);
    let loader = Loader::new(
        "t",
        "test",
        root.path(),
        data.clone(),
        Transform::test(8),
        config(3, false, false, 2),
    )
    .unwrap();
    assert_eq!(loader.num_batches(), 3);
    let batches: Vec<_> = loader.epoch(0).map(Result::unwrap).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(indices, (0..7).collect::<Vec<_>>());
    assert_eq!(batches[0].labels, [0, 1, 2]);
    assert_eq!(batches[0].images.len(), 3 * 3 * 8 * 8);
    // Same pixels as the transform applied directly.
    let direct = clip_model::preprocess::TestTransform::new(8)
        .apply(&clip_model::preprocess::load_rgb(&root.join("img/01.jpg")).unwrap());
    assert_eq!(&batches[0].images[3 * 64..6 * 64], &direct[..]);
}

#[test]
fn drop_last_drops_the_incomplete_batch() {
    let root = Root::new();
    let loader = Loader::new(
        "t",
        "train",
        root.path(),
        items(&root, 7),
        Transform::test(4),
        config(3, true, true, 2),
    )
    .unwrap();
    assert_eq!(loader.num_batches(), 2);
    let batches: Vec<_> = loader.epoch(0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b.len() == 3));
}

#[test]
fn shuffled_orders_are_permutations_fixed_by_seed_and_epoch() {
    let root = Root::new();
    let loader = Loader::new(
        "t",
        "train",
        root.path(),
        items(&root, 10),
        Transform::test(4),
        config(4, true, false, 1),
    )
    .unwrap();
    let (e0, e1) = (loader.epoch_order(0), loader.epoch_order(1));
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    assert_ne!(e0, e1);
    assert_eq!(e0, loader.epoch_order(0));
    let seen: Vec<usize> = loader.epoch(0).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(seen, e0);
}

#[test]
fn augmented_batches_do_not_depend_on_the_thread_count() {
    let root = Root::new();
    let data = items(&root, 9);
    let run = |threads| -> Vec<Vec<f32>> {
        let l = Loader::new(
            "t",
            "train",
            root.path(),
            data.clone(),
            Transform::train(8),
            config(2, true, true, threads),
        )
        .unwrap();
        (0..2)
            .flat_map(|epoch| {
                l.epoch(epoch)
                    .map(|b| b.unwrap().images)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert_eq!(one.len(), 8);
    // Different epochs draw different crops of the same item.
    let l = Loader::new(
        "t",
        "train",
        root.path(),
        data.clone(),
        Transform::train(8),
        config(9, false, false, 2),
    )
    .unwrap();
    let a = l.epoch(0).next().unwrap().unwrap().images;
    let b = l.epoch(1).next().unwrap().unwrap().images;
    assert_ne!(a, b);
}

#[test]
fn a_corrupt_image_fails_at_decode_time_naming_file_and_entry() {
    let root = Root::new();
    let mut data = items(&root, 5);
    std::fs::write(root.join("img/bad.jpg"), b"not a jpeg at all").unwrap();
    data[3] = Datum::new("img/bad.jpg", 0);
    let loader = Loader::new(
        "eurosat",
        "test",
        root.path(),
        data,
        Transform::test(4),
        config(2, false, false, 2),
    )
    .unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    assert_eq!(results.len(), 2, "the epoch stops at the failing batch");
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("eurosat") && err.contains("img/bad.jpg") && err.contains("test[3]"),
        "{err}"
    );
}

#[test]
fn dropping_an_epoch_early_stops_the_producer() {
    let root = Root::new();
    let loader = Loader::new(
        "t",
        "test",
        root.path(),
        items(&root, 12),
        Transform::test(4),
        config(1, false, false, 2),
    )
    .unwrap();
    let mut it = loader.epoch(0);
    assert!(it.next().unwrap().is_ok());
    drop(it); // joins the producer; must not hang
    assert_eq!(loader.epoch(0).count(), 12);
}
