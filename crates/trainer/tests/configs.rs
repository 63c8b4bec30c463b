//! The configuration files under `configs/` hold the reference's settings, equal to the presets.

use testkit::trees as common;

use maple_prompts::{MapleConfig, Method, MethodConfig};
use trainer::RunConfig;

fn maple(c: &RunConfig) -> &MapleConfig {
    match &c.learner {
        MethodConfig::Maple(m) => m,
        #[allow(unreachable_patterns)]
        other => panic!("expected MaPLe, found {other:?}"),
    }
}

#[test]
fn config_files_equal_the_reference_presets() {
    let dir = common::workspace().join("configs");
    let presets = Method::ALL
        .into_iter()
        .map(RunConfig::preset)
        .chain([RunConfig::cross_dataset()]);
    let mut names = Vec::new();
    for preset in presets {
        let path = dir.join(format!("{}.json", preset.name));
        let loaded = RunConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded, preset, "{}", path.display());
        names.push(preset.name);
    }
    // One file per preset, and no stale file beside them.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    files.sort();
    names.sort();
    assert_eq!(files, names);
    assert_eq!(RunConfig::preset(Method::Maple), RunConfig::base_to_novel());
    let b2n = RunConfig::base_to_novel();
    assert_eq!(
        (
            maple(&b2n).n_ctx,
            maple(&b2n).depth,
            b2n.optim.lr,
            b2n.optim.max_epoch
        ),
        (2, 9, 0.0035, 5)
    );
    assert_eq!(
        (
            b2n.batch_size,
            b2n.test_batch_size,
            b2n.shots,
            b2n.seeds.clone()
        ),
        (4, 100, 16, vec![1, 2, 3])
    );
    let xd = RunConfig::cross_dataset();
    assert_eq!(
        (maple(&xd).depth, xd.optim.lr, xd.optim.max_epoch),
        (3, 0.0026, 2)
    );
}

#[test]
fn method_presets_carry_the_reference_schedules() {
    let get = |m: Method| {
        let c = RunConfig::preset(m);
        assert_eq!(c.learner.method(), m);
        assert_eq!(c.learner, MethodConfig::reference(m));
        assert_eq!((c.optim.momentum, c.optim.weight_decay), (0.9, 5e-4));
        assert_eq!((c.optim.warmup_epochs, c.optim.warmup_lr), (1, 1e-5));
        assert_eq!((c.shots, c.test_batch_size), (16, 100));
        (c.optim.lr, c.optim.max_epoch, c.batch_size)
    };
    assert_eq!(get(Method::CoOp), (0.002, 200, 32));
    assert_eq!(get(Method::CoCoOp), (0.002, 10, 1));
    assert_eq!(get(Method::Ivlp), (0.0035, 5, 4));
    assert_eq!(get(Method::Vpt), (0.0025, 5, 4));
    assert_eq!(get(Method::Maple), (0.0035, 5, 4));
}

#[test]
fn scaling_keeps_training_after_the_warm_up_and_the_same_rule_for_every_method() {
    let clip = clip_model::ClipConfig::vit_b16();
    let epochs = |m: Method, factor: f64| {
        let c = RunConfig::preset(m).scaled_to(&clip, 50.0, factor);
        // The learning rate scales with 100 / logit scale for every method alike.
        assert!((c.optim.lr - RunConfig::preset(m).optim.lr * 2.0).abs() < 1e-12);
        c.optim.max_epoch
    };
    let all = |factor: f64| Method::ALL.map(|m| epochs(m, factor));
    // CoOp, Co-CoOp, IVLP, VPT, MaPLe.
    assert_eq!(all(1.0), [200, 10, 5, 5, 5]);
    assert_eq!(all(0.5), [100, 5, 3, 3, 3]);
    assert_eq!(all(0.001), [3, 3, 3, 3, 3]);
    assert_eq!(all(2.0), [400, 20, 10, 10, 10]);
    // A reference shorter than warm-up + 2 is never lengthened by a reducing factor.
    let xd = RunConfig::cross_dataset().scaled_to(&clip, 100.0, 0.5);
    assert_eq!(xd.optim.max_epoch, 2);
}
