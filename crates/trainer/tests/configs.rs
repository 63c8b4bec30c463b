//! The configuration files under `configs/` hold the reference's settings, equal to the presets.

use testkit::trees as common;

use maple_prompts::{MapleConfig, MethodConfig};
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
    for preset in [RunConfig::base_to_novel(), RunConfig::cross_dataset()] {
        let path = dir.join(format!("{}.json", preset.name));
        let loaded = RunConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(loaded, preset, "{}", path.display());
    }
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
