//! Resuming: a run stopped after any epoch (by `stop_after` or by an observer), even with
//! debris of a killed checkpoint write and a stale older checkpoint, ends with the same
//! prompts, momentum and accuracies, bit for bit, as a run that was never stopped.

use testkit::trees as common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use common::backend::{self, TrainBackend};
use datasets::DatasetName;
use trainer::protocol::{self, Context};
use trainer::{Backbone, Event, SeedResult, Silent, TrainerError};

fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.data().to_vec()))
        .collect()
}

#[test]
fn a_stopped_run_resumes_to_the_same_prompts_and_accuracies_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::eurosat_tree(&data, 4, 1, 3);
    let mut config = common::tiny_config();
    config.optim.max_epoch = 4;
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &backend::device(0)).unwrap();
    let ctx = |out: &Path, stop_after| Context {
        backbone: &backbone,
        config: &config,
        output_dir: out.to_path_buf(),
        stop_after,
        device: "test".into(),
    };
    let ds = [DatasetName::EuroSat];

    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let full =
        protocol::base_to_novel(&ctx(&a, None), &data, &ds, &[1], None, &mut Silent).unwrap();

    // Stopped by the limit after epoch 1.
    let err = protocol::base_to_novel(&ctx(&b, Some(1)), &data, &ds, &[1], None, &mut Silent)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TrainerError::Stopped {
                completed: 1,
                total: 4
            }
        ),
        "{err}"
    );
    let ckpt_dir = b.join("eurosat/seed1/checkpoints");
    let epoch1 = std::fs::read(ckpt_dir.join("learner-epoch1.safetensors")).unwrap();
    assert!(
        !b.join("eurosat/seed1/result.json").exists()
            || SeedResult::load(&b.join("eurosat/seed1/result.json"))
                .unwrap()
                .evals
                .is_empty()
    );

    // A write killed half-way leaves a temporary file; then an observer stops after epoch 3.
    std::fs::write(
        ckpt_dir.join(".learner-epoch2.safetensors.k1ll3d.tmp"),
        b"partial",
    )
    .unwrap();
    let mut stop_at_3 = |e: &Event<'_>| match e {
        Event::EpochEnd(s) if s.epoch == 3 => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    };
    let err = protocol::base_to_novel(&ctx(&b, None), &data, &ds, &[1], None, &mut stop_at_3)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TrainerError::Stopped {
                completed: 3,
                total: 4
            }
        ),
        "{err}"
    );
    assert!(
        !ckpt_dir
            .join(".learner-epoch2.safetensors.k1ll3d.tmp")
            .exists(),
        "stale temporary kept"
    );

    // A kill between writing epoch 3 and deleting the older checkpoint leaves both.
    std::fs::write(ckpt_dir.join("learner-epoch1.safetensors"), epoch1).unwrap();
    let resumed =
        protocol::base_to_novel(&ctx(&b, None), &data, &ds, &[1], None, &mut Silent).unwrap();

    assert_eq!(resumed, full);
    let (ra, rb) = (
        SeedResult::load(&a.join("eurosat/seed1/result.json")).unwrap(),
        SeedResult::load(&b.join("eurosat/seed1/result.json")).unwrap(),
    );
    assert_eq!(ra.evals, rb.evals);
    let (ta, tb) = (ra.train.unwrap(), rb.train.unwrap());
    assert_eq!(tb.resumed_epochs, 3);
    assert_eq!(ta.history.len(), tb.history.len());
    for (x, y) in ta.history.iter().zip(&tb.history) {
        assert_eq!(
            (x.epoch, x.lr, x.mean_loss, x.accuracy, x.batches),
            (y.epoch, y.lr, y.mean_loss, y.accuracy, y.batches)
        );
    }
    // Parameters and momentum, bit for bit.
    let last = "eurosat/seed1/checkpoints/learner-epoch4.safetensors";
    let (pa, pb) = (tensors(&a.join(last)), tensors(&b.join(last)));
    assert!(pa.keys().any(|k| k.starts_with("momentum.")) && pa.keys().any(|k| k == "param.ctx"));
    assert_eq!(pa, pb);
    let left: Vec<_> = std::fs::read_dir(&ckpt_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != trainer::lock::LOCK_FILE)
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("learner-epoch4.safetensors")]
    );
    let log = std::fs::read_to_string(b.join("eurosat/seed1/log.txt")).unwrap();
    assert!(
        log.contains("resuming from") && log.contains("(3 of 4 epochs done)"),
        "{log}"
    );

    // Killed during the novel evaluation: the result holds training and the base
    // accuracy only; the repeated command evaluates the novel classes alone.
    let path = b.join("eurosat/seed1/result.json");
    let mut partial = SeedResult::load(&path).unwrap();
    partial.evals.truncate(1);
    std::fs::write(&path, serde_json::to_string(&partial).unwrap()).unwrap();
    let mut epochs_run = 0;
    let mut count = |e: &Event<'_>| {
        if matches!(e, Event::EpochStart { .. }) {
            epochs_run += 1;
        }
        ControlFlow::Continue(())
    };
    let again =
        protocol::base_to_novel(&ctx(&b, None), &data, &ds, &[1], None, &mut count).unwrap();
    assert_eq!(again, full);
    assert_eq!(epochs_run, 0);
    assert_eq!(SeedResult::load(&path).unwrap().evals, ra.evals);
}
