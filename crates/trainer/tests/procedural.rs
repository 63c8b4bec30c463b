//! The procedural world as batch sources: epochs are a pure function of (seed, epoch),
//! the base/novel sets follow the protocol, and the whole protocol runs on it.

use testkit::trees as common;

use std::sync::Arc;

use common::backend::{self, TrainBackend};
use datasets::procedural::{Downstream, DownstreamConfig};
use trainer::procedural::{base_to_novel_sets, ProceduralSplit};
use trainer::protocol::{self, Context};
use trainer::{Backbone, BatchSource, Silent};

fn world() -> Arc<Downstream> {
    let cfg = DownstreamConfig {
        classes_per_half: 6,
        train_per_class: 4,
        test_per_class: 2,
        side: 32,
        seed: 1,
    };
    Arc::new(Downstream::new(&cfg).unwrap())
}

fn split(seed: u64) -> ProceduralSplit {
    ProceduralSplit {
        shots: 2,
        seed,
        batch_size: 4,
        test_batch_size: 5,
        image_size: 32,
        augment: true,
    }
}

fn epoch(source: &dyn BatchSource, e: usize) -> Vec<datasets::Batch> {
    source.epoch(e).map(Result::unwrap).collect()
}

#[test]
fn epochs_are_a_function_of_seed_and_epoch_only() {
    let w = world();
    let (train, base, novel) = base_to_novel_sets(&w, &split(1)).unwrap();
    assert_eq!(train.class_names, w.class_names[..6].to_vec());
    assert_eq!(novel.class_names, w.class_names[6..].to_vec());
    // 2 shots x 6 base classes; 2 test images x 6 classes per half.
    assert_eq!(
        (train.source.num_items(), train.source.num_batches()),
        (12, 3)
    );
    assert_eq!(
        (
            base.source.num_items(),
            novel.source.num_items(),
            base.source.num_batches()
        ),
        (12, 12, 3)
    );

    let again = base_to_novel_sets(&w, &split(1)).unwrap().0;
    assert_eq!(epoch(&*train.source, 2), epoch(&*again.source, 2));
    let (e0, e1) = (epoch(&*train.source, 0), epoch(&*train.source, 1));
    assert_ne!(e0, e1, "epochs must differ in order or augmentation");
    assert!(e0
        .iter()
        .all(|b| b.images.len() == 4 * 3 * 32 * 32 && b.labels.iter().all(|&y| y < 6)));
    let other_seed = base_to_novel_sets(&w, &split(2)).unwrap().0;
    assert_ne!(epoch(&*other_seed.source, 0), e0);
    // Test sets are in list order with labels relabelled from 0 in each half.
    let labels: Vec<usize> = epoch(&*novel.source, 0)
        .iter()
        .flat_map(|b| b.labels.clone())
        .collect();
    assert_eq!(labels, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
}

#[test]
fn the_protocol_runs_on_the_procedural_world() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = common::tiny_config();
    config.optim.max_epoch = 1;
    config.shots = 2;
    config.batch_size = 4;
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = Context {
        backbone: &backbone,
        config: &config,
        output_dir: tmp.path().to_path_buf(),
        stop_after: None,
        device: "test".into(),
    };
    let world = world();
    let maple = protocol::procedural_base_to_novel(&ctx, &world, &[1], None, &mut Silent).unwrap();
    let zs = protocol::procedural_zero_shot(
        &backbone.valid(),
        &config,
        &world,
        &tmp.path().join("zeroshot"),
        "test",
        &mut Silent,
    )
    .unwrap();
    for s in [&maple, &zs] {
        let r = &s.rows[0];
        assert_eq!(r.dataset, "procedural");
        assert!(r.base.is_some() && r.novel.is_some() && r.hm.is_some());
    }
    assert_eq!(
        (maple.method.as_str(), zs.method.as_str()),
        ("maple", "zsclip")
    );
    assert!(
        tmp.path().join("results.json").is_file()
            && tmp.path().join("zeroshot/results.json").is_file()
    );
    assert!(tmp
        .path()
        .join("procedural/seed1/checkpoints/learner-epoch1.safetensors")
        .is_file());
}
