//! Parity of the comparison methods with the reference PyTorch implementation on
//! `tests/fixtures/methods-tiny/<method>` (CoOp generic/end and class-specific/middle,
//! Co-CoOp, IVLP, VPT): every check of `parity::methods` (the ones
//! `cargo xtask parity tests/fixtures/methods-tiny` prints) must pass on the CPU backend
//! in f32, at the standard tolerances of `parity::Tolerances` (activations, features and
//! logits 1e-4 absolute; normalised features 1e-5; loss 1e-5 relative; gradients and
//! momentum 1e-4 of the tensor's largest value; parameters after steps 1e-5; learning
//! rates 1e-12; token ids, prompt assembly and the checkpoint import exact), justified by
//! the reference's own fp32-vs-fp64 noise in each folder's `config.json` (logits at most
//! 2.2e-5, gradients at most 9.7e-6 relative, parameters at most 7.7e-7).

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use testkit::parity::{methods, CheckResult, Fixture};

type B = Autodiff<NdArray<f32>>;

fn run(folder: &str) -> Vec<CheckResult> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/methods-tiny")
        .join(folder);
    let fx = Fixture::open(&dir).expect("fixture folder");
    assert!(
        !dir.join("tolerances.json").exists(),
        "copied fixtures carry no tolerances.json: the standard tolerances apply"
    );
    let results = methods::method_checks::<B>(&fx, &Default::default()).unwrap();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.line())
        .collect();
    assert!(
        failed.is_empty(),
        "failing `{folder}` checks:\n{}",
        failed.join("\n")
    );
    assert!(results
        .iter()
        .all(|r| r.name.starts_with(&format!("{folder}."))));
    results
}

/// Asserts that checks of every named family ran (so a silently skipped family fails).
fn assert_ran(results: &[CheckResult], folder: &str, families: &[&str]) {
    for f in families {
        let prefix = format!("{folder}.{f}");
        assert!(
            results.iter().any(|r| r.name.starts_with(&prefix)),
            "no `{prefix}` checks ran"
        );
    }
}

/// Families every folder has: token ids, prompt assembly, both towers, logits, three steps
/// (teacher-forced and free-running), checkpoints and the schedule.
const COMMON: &[&str] = &[
    "init.parameter-shapes",
    "tokenized-prompts",
    "vision.tokens_pre_ln",
    "vision.x0",
    "vision.pooled",
    "image.features_norm",
    "text.features",
    "text.features_norm",
    "forward.logits",
    "step1.logits",
    "step3.loss",
    "grad.step1.",
    "grad.step3.",
    "step3.param.",
    "step3.momentum_buffer.",
    "free-running.step1.params",
    "free-running.step3.params",
    "clip-unchanged-after-steps",
    "checkpoint.learner-roundtrip",
    "checkpoint.reference-import-params",
    "checkpoint.reference-import-epoch",
    "checkpoint.reference-settings-from-tensors",
    "lr.epochs",
    "eval-matches-train-graph",
];

#[test]
fn coop_generic_context_matches_reference_in_f32() {
    let r = run("coop");
    assert_ran(&r, "coop", COMMON);
    assert_ran(
        &r,
        "coop",
        &[
            "text.prompts (exact)",
            "token-suffix",
            "text.x0",
            "text.pooled",
            "name-lens",
        ],
    );
}

#[test]
fn coop_class_specific_middle_matches_reference_in_f32() {
    let r = run("coop-csc-middle");
    assert_ran(&r, "coop-csc-middle", COMMON);
    assert_ran(
        &r,
        "coop-csc-middle",
        &[
            "text.prompts (exact)",
            "grad.step2.ctx (rel. to max|grad|)",
            "checkpoint.reference-num-classes",
        ],
    );
}

#[test]
fn cocoop_per_image_prompts_match_reference_in_f32() {
    let r = run("cocoop");
    assert_ran(&r, "cocoop", COMMON);
    assert_ran(
        &r,
        "cocoop",
        &[
            "init.ctx-from-ctx-init",
            "cocoop.meta_net.hidden",
            "cocoop.ctx_shifted",
            "text.prompts",
            "text.pooled",
            "grad.step3.meta_net.linear1.weight",
        ],
    );
}

#[test]
fn ivlp_per_block_captures_match_reference_in_f32() {
    let r = run("ivlp");
    assert_ran(&r, "ivlp", COMMON);
    assert_ran(
        &r,
        "ivlp",
        &[
            "text.prompts (exact)",
            "text.block3.output",
            "vision.block1.input",
            "vision.block3.output",
            "grad.step2.text_encoder.transformer.resblocks.2.VPT_shallow",
            "grad.step2.image_encoder.VPT",
        ],
    );
}

#[test]
fn vpt_per_block_captures_match_reference_in_f32() {
    let r = run("vpt");
    assert_ran(&r, "vpt", COMMON);
    assert_ran(
        &r,
        "vpt",
        &[
            "text.fixed-embeddings",
            "vision.block0.input",
            "vision.block3.output",
            "grad.step3.image_encoder.transformer.resblocks.3.VPT_shallow",
        ],
    );
}
