//! Cross-dataset transfer / domain generalisation: train on ImageNet (all classes), test
//! on the source and on targets with all their classes; targets added later are
//! evaluated without retraining.

use testkit::trees as common;

use common::backend::{self, TrainBackend};
use datasets::DatasetName;
use trainer::protocol::{self, Context};
use trainer::{Backbone, SeedResult, Silent};

#[test]
fn imagenet_source_transfers_to_targets_and_new_targets_reuse_the_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    common::imagenet_tree(&data, 3, 2);
    common::imagenet_r_tree(&data, 2);
    common::eurosat_tree(&data, 1, 1, 2);
    let mut config = common::tiny_config();
    config.optim.max_epoch = 2;
    config.shots = 2;
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = Context {
        backbone: &backbone,
        config: &config,
        output_dir: out.clone(),
        stop_after: None,
        device: "test".into(),
    };

    let s = protocol::cross_dataset(
        &ctx,
        trainer::Protocol::Xd,
        &data,
        DatasetName::ImageNet,
        &[DatasetName::ImageNetR],
        &[1],
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(s.rows.len(), 2);
    assert_eq!(
        (s.rows[0].dataset.as_str(), s.rows[0].role.as_deref()),
        ("imagenet", Some("source"))
    );
    assert_eq!(
        (s.rows[1].dataset.as_str(), s.rows[1].role.as_deref()),
        ("imagenet_r", Some("target"))
    );
    let r = SeedResult::load(&out.join("imagenet/seed1/result.json")).unwrap();
    // 2 shots x 3 classes; ImageNet test 2 x 3 with 3 classes; ImageNet-R 2 x 2 with its 2 classes.
    assert_eq!(r.train.as_ref().unwrap().images, 6);
    assert_eq!((r.evals[0].num_classes, r.evals[0].total), (3, 6));
    assert_eq!((r.evals[1].num_classes, r.evals[1].total), (2, 4));
    let history = r.train.unwrap().history;

    // Another target: evaluated with the saved learner, no new training.
    let s2 = protocol::cross_dataset(
        &ctx,
        trainer::Protocol::Xd,
        &data,
        DatasetName::ImageNet,
        &[DatasetName::ImageNetR, DatasetName::EuroSat],
        &[1],
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(s2.rows[1], s.rows[1]);
    assert_eq!(
        (
            s2.rows[2].dataset.as_str(),
            s2.average.as_ref().unwrap().datasets
        ),
        ("eurosat", 2)
    );
    let r2 = SeedResult::load(&out.join("imagenet/seed1/result.json")).unwrap();
    assert_eq!(r2.train.unwrap().history, history);
    assert_eq!(
        (
            r2.evals[2].dataset.as_str(),
            r2.evals[2].num_classes,
            r2.evals[2].total
        ),
        ("eurosat", 4, 8)
    );

    // Imported learners need no ImageNet: a data root with the target only is enough.
    let targets_only = tmp.path().join("targets");
    common::imagenet_r_tree(&targets_only, 2);
    let ctx3 = Context {
        output_dir: tmp.path().join("imported"),
        ..ctx
    };
    let spec = trainer::ImportSpec {
        path: out.clone(),
        epoch: None,
    };
    let s3 = protocol::cross_dataset(
        &ctx3,
        trainer::Protocol::Dg,
        &targets_only,
        DatasetName::ImageNet,
        &[DatasetName::ImageNetR],
        &[1],
        Some(&spec),
        &mut Silent,
    )
    .unwrap();
    assert_eq!(s3.rows.len(), 1);
    assert_eq!(s3.rows[0].accuracy, s.rows[1].accuracy);
}
