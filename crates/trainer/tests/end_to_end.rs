//! End-to-end runs of the protocols with the tiny fixture CLIP on a tiny EuroSAT tree in
//! its real layout (split json + PNGs): training, evaluation, output files, skipping
//! completed runs, and importing a reference checkpoint.

use testkit::trees as common;

use std::path::Path;

use common::backend::{self, TrainBackend};
use datasets::{DatasetName, Subsample};
use trainer::protocol::{self, Context, ImportSpec};
use trainer::{Backbone, RunConfig, SeedResult, Silent, Summary};

fn context<'a>(
    backbone: &'a Backbone<TrainBackend>,
    config: &'a RunConfig,
    out: &Path,
) -> Context<'a, TrainBackend> {
    Context {
        backbone,
        config,
        output_dir: out.to_path_buf(),
        stop_after: None,
        device: backend::describe(&backend::device(0)),
    }
}

#[test]
fn base_to_novel_trains_tests_both_halves_and_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    common::eurosat_tree(&data, 4, 2, 3);
    let config = common::tiny_config();
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = context(&backbone, &config, &out);

    let summary = protocol::base_to_novel(
        &ctx,
        &data,
        &[DatasetName::EuroSat],
        &[1, 2],
        None,
        &mut Silent,
    )
    .unwrap();
    let row = &summary.rows[0];
    assert_eq!(row.dataset, "eurosat");
    assert_eq!(row.seeds, vec![1, 2]);
    let (b, n) = (row.base.as_ref().unwrap(), row.novel.as_ref().unwrap());
    assert_eq!((b.values.len(), n.values.len()), (2, 2));
    assert_eq!(
        row.hm,
        Some(trainer::results::round2(trainer::results::harmonic_mean(
            b.mean, n.mean
        )))
    );

    // Summary files.
    let json: Summary =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json, summary);
    let table = std::fs::read_to_string(out.join("results.txt")).unwrap();
    assert!(table.contains("eurosat") && table.contains("HM"), "{table}");

    // Per-seed folder.
    let run = out.join("eurosat/seed1");
    let r = SeedResult::load(&run.join("result.json")).unwrap();
    assert_eq!(r.format, trainer::results::SEED_RESULT_FORMAT);
    assert_eq!(r.evals.len(), 2);
    // 4 classes: base = 2 classes, novel = 2 classes, 3 test images each.
    for (e, classes) in r.evals.iter().zip(["base", "novel"]) {
        assert_eq!(
            (e.classes.as_str(), e.num_classes, e.total),
            (classes, 2, 6)
        );
    }
    let train = r.train.as_ref().unwrap();
    // 3 shots x 2 base classes = 6 images, batch 2, drop_last: 3 steps per epoch.
    assert_eq!(
        (train.images, train.num_classes, train.history.len()),
        (6, 2, 3)
    );
    assert!(train.history.iter().all(|h| h.batches == 3));
    // The loop times its waits for the loader: part of the epoch, never more.
    assert!(train
        .history
        .iter()
        .all(|h| h.data_wait_seconds >= 0.0 && h.data_wait_seconds <= h.seconds));
    assert_eq!(
        train.checkpoint.as_deref(),
        Some("checkpoints/learner-epoch3.safetensors")
    );
    // Only the last checkpoint is kept (besides the folder's lock file).
    let ckpts: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != trainer::lock::LOCK_FILE)
        .collect();
    assert_eq!(
        ckpts,
        vec![std::ffi::OsString::from("learner-epoch3.safetensors")]
    );
    for f in ["run.json", "split_base.json", "split_novel.json", "log.txt"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(
        log.contains("Finished training") && log.contains("* accuracy: "),
        "{log}"
    );
    assert!(out.join("log.txt").is_file());

    // Running the same command again finds everything done and changes nothing.
    let before = std::fs::read(run.join("result.json")).unwrap();
    let again = protocol::base_to_novel(
        &ctx,
        &data,
        &[DatasetName::EuroSat],
        &[1, 2],
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(again, summary);
    assert_eq!(std::fs::read(run.join("result.json")).unwrap(), before);

    // Other settings in the same folder are refused, naming the difference.
    let mut other = config.clone();
    other.optim.lr = 0.01;
    let ctx2 = context(&backbone, &other, &out);
    let err = protocol::base_to_novel(
        &ctx2,
        &data,
        &[DatasetName::EuroSat],
        &[1],
        None,
        &mut Silent,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("other settings") && err.to_string().contains("0.01"),
        "{err}"
    );
}

#[test]
fn train_and_test_on_all_classes_and_evaluate_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    common::eurosat_tree(&data, 3, 1, 2);
    let mut config = common::tiny_config();
    config.optim.max_epoch = 2;
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = context(&backbone, &config, &out);
    let s = protocol::train_and_test(
        &ctx,
        &data,
        DatasetName::EuroSat,
        Subsample::All,
        &[1],
        &mut Silent,
    )
    .unwrap();
    let trained = s.rows[0].accuracy.as_ref().unwrap().values[0];

    // Evaluating the saved checkpoint (found in the run folder) gives the same accuracy.
    let spec = ImportSpec {
        path: out.clone(),
        epoch: None,
    };
    let ctx_eval = context(&backbone, &config, &tmp.path().join("eval"));
    let e = protocol::evaluate_checkpoints(
        &ctx_eval,
        &data,
        DatasetName::EuroSat,
        Subsample::All,
        &[1],
        &spec,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(e.rows[0].accuracy.as_ref().unwrap().values[0], trained);
    let r = SeedResult::load(&tmp.path().join("eval/eurosat/seed1/result.json")).unwrap();
    assert!(r.learner.unwrap().ends_with("learner-epoch2.safetensors"));
    assert_eq!(r.evals[0].total, 8);
}

#[test]
fn reference_checkpoints_import_in_one_call() {
    // The fixture's model.pth.tar-5 was saved by the reference trainer for the tiny CLIP
    // (depth 3, 2 context tokens), in its MultiModalPromptLearner/ layout.
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    common::eurosat_tree(&data, 2, 1, 2);
    let config = common::tiny_config();
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = context(&backbone, &config, &out);
    let spec = ImportSpec {
        path: common::workspace().join("tests/fixtures/maple-tiny/checkpoint"),
        epoch: Some(5),
    };
    let s = protocol::base_to_novel(
        &ctx,
        &data,
        &[DatasetName::EuroSat],
        &[1],
        Some(&spec),
        &mut Silent,
    )
    .unwrap();
    assert!(s.rows[0].hm.is_some());
    let r = SeedResult::load(&out.join("eurosat/seed1/result.json")).unwrap();
    assert!(r.train.is_none());
    assert!(r
        .learner
        .unwrap()
        .ends_with("MultiModalPromptLearner/model.pth.tar-5"));

    // A missing epoch says where it looked.
    let missing = ImportSpec {
        path: spec.path.clone(),
        epoch: Some(7),
    };
    let err = missing
        .resolve("eurosat", 1, Some(trainer::ClassSet::Base))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.pth.tar-7") && err.contains("seed1"),
        "{err}"
    );
}
