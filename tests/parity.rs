//! Parity with the reference PyTorch implementation on `tests/fixtures/maple-tiny`:
//! every check of `parity` (the same ones `cargo xtask parity` prints) must
//! pass on the CPU backend. Tolerances are stated in `parity::Tolerances`
//! (fp32: activations/features/logits 1e-4 absolute; loss 1e-5 relative; gradients 1e-4
//! of the tensor's largest gradient; parameters after steps 1e-5; learning rates 1e-12;
//! token ids exact) and justified by the reference's own fp32-vs-fp64 noise recorded in
//! the fixture's `config.json` (≤ 1.4e-5 on logits, ≤ 2.2e-5 relative on gradients).
//!
//! The f64 run lives in `parity_f64.rs`: Burn keeps one default float dtype per device
//! per process, and `NdArray<f32>` and `NdArray<f64>` share `NdArrayDevice::Cpu`, so the
//! two precisions cannot be tested in one process.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use testkit::parity::{self, CheckResult, Fixture};

type B = Autodiff<NdArray<f32>>;

fn fixture() -> Fixture {
    Fixture::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/maple-tiny"))
        .expect("fixture folder")
}

fn assert_all_pass(results: &[CheckResult], topic: &str) {
    let relevant: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.name.starts_with(topic))
        .collect();
    assert!(!relevant.is_empty(), "no `{topic}` checks ran");
    let failed: Vec<String> = relevant
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.line())
        .collect();
    assert!(
        failed.is_empty(),
        "failing `{topic}` checks:\n{}",
        failed.join("\n")
    );
}

#[test]
fn tokenizer_matches_reference_on_every_case() {
    let results = parity::tokenizer_checks(&fixture()).unwrap();
    assert_all_pass(&results, "tokenizer.");
    assert!(results.len() >= 6);
}

#[test]
fn zero_shot_clip_matches_reference_in_both_namings() {
    let results =
        parity::zero_shot_checks::<NdArray<f32>>(&fixture(), &Default::default()).unwrap();
    assert_all_pass(&results, "zero-shot.");
    // Per-block outputs of both towers, features, logits, classifier and HF naming.
    assert!(results.iter().filter(|r| r.name.contains(".block")).count() >= 8);
    assert!(results.iter().any(|r| r.name == "zero-shot.hf.logits"));
}

/// In f32 (the precision users train in), every MaPLe check: forward activations, loss,
/// the gradients of all three steps, the parameters after each step (from the reference's
/// previous state and free running from the initial parameters), momentum, the schedule
/// and checkpoints.
#[test]
fn maple_every_check_matches_reference_in_f32() {
    let results = parity::maple::maple_checks::<B>(&fixture(), &Default::default()).unwrap();
    for topic in [
        "maple.",
        "step1.",
        "step2.",
        "step3.",
        "grad.step1.",
        "grad.step2.",
        "grad.step3.",
        "step.free-running.",
        "step.",
        "lr.",
        "checkpoint.",
    ] {
        assert_all_pass(&results, topic);
    }
    assert!(results.iter().all(|r| r.passed()));
}

#[test]
fn a_wrong_tolerance_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::write(
        dir.path().join("tolerances.json"),
        "{\"activation\": \"x\"}",
    )
    .unwrap();
    let err = Fixture::open(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("tolerances.json"), "{err:#}");
}
