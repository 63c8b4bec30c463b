//! Every prompt method trains through the `maple` binary on the procedural world with a
//! falling loss, and `maple eval` of its checkpoint gives exactly what the library's own
//! evaluation gives (the protocol function called in-process on the same checkpoint).

use std::path::Path;
use std::process::Command;

use maple_burn::backend::{self, TrainBackend};
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::protocol::{self, Context, ImportSpec};
use maple_burn::trainer::{Backbone, RunConfig, Silent};
use serde_json::Value;

fn maple(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the maple binary runs");
    assert!(
        o.status.success(),
        "maple {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `(class half, correct, total)` of every evaluation in a seed result.
fn evals(result: &Value) -> Vec<(String, u64, u64)> {
    result["evals"]
        .as_array()
        .expect("evals")
        .iter()
        .map(|e| {
            (
                e["classes"].as_str().unwrap().to_string(),
                e["correct"].as_u64().unwrap(),
                e["total"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn toy_weights() -> String {
    testkit::trees::workspace()
        .join("weights/toy-clip.safetensors")
        .to_string_lossy()
        .into_owned()
}

fn check_method(method: Method) {
    let dir = tempfile::tempdir().unwrap();
    let (train, eval, lib) = (
        dir.path().join("t"),
        dir.path().join("e"),
        dir.path().join("l"),
    );
    let weights = toy_weights();
    let m = method.as_str();
    // Three epochs: the constant warm-up epoch at 1e-5, then two that train.
    let common = [
        "--method",
        m,
        "--seeds",
        "1",
        "--epochs",
        "3",
        "--weights",
        &weights,
    ];
    let mut args = vec!["base2novel", "--dataset", "procedural", "--output-dir"];
    args.push(train.to_str().unwrap());
    args.extend(common);
    maple(&args);
    let seed_dir = train.join("procedural/seed1");
    let trained = json(&seed_dir.join("result.json"));
    assert_eq!(trained["method"], m);
    let losses: Vec<f64> = trained["train"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["mean_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 3, "{m}: {losses:?}");
    assert!(
        losses[2] < losses[0] && losses.iter().all(|l| l.is_finite()),
        "{m}: the loss did not fall: {losses:?}"
    );

    // The CLI's evaluation of the saved checkpoint.
    let checkpoint = seed_dir.join("checkpoints/learner-epoch3.safetensors");
    assert!(checkpoint.is_file(), "{}", checkpoint.display());
    let mut args = vec!["eval", "--dataset", "procedural", "--subsample", "base"];
    args.extend(["--checkpoint", checkpoint.to_str().unwrap()]);
    args.extend(["--output-dir", eval.to_str().unwrap()]);
    args.extend(common);
    maple(&args);
    let by_cli = json(&eval.join("procedural/seed1/result.json"));

    // The library's evaluation of the same file, in this process.
    let device = backend::device(0);
    let backbone = Backbone::<TrainBackend>::load(&weights, &device).unwrap();
    let mut config = protocol::demo_config(&RunConfig::preset(method), &backbone, &weights);
    config.seeds = vec![1];
    let ctx = Context {
        backbone: &backbone,
        config: &config,
        output_dir: lib.clone(),
        stop_after: None,
        device: backend::describe(&device),
    };
    let world = protocol::demo_world(&backbone).unwrap();
    let import = ImportSpec {
        path: checkpoint.clone(),
        epoch: None,
    };
    protocol::procedural_base_to_novel(&ctx, &world, &[1], Some(&import), &mut Silent).unwrap();
    let by_lib = json(&lib.join("procedural/seed1/result.json"));

    let (cli, library) = (evals(&by_cli), evals(&by_lib));
    assert_eq!(cli.len(), 2, "{m}: base and novel expected: {cli:?}");
    assert_eq!(cli, library, "{m}: CLI and library evaluations differ");
    // The evaluation of the reloaded checkpoint equals the one at the end of training.
    assert_eq!(
        cli,
        evals(&trained),
        "{m}: reloaded checkpoint evaluates differently"
    );
}

#[test]
fn coop_trains_through_the_cli_and_its_evaluation_equals_the_librarys() {
    check_method(Method::CoOp);
}

#[test]
fn cocoop_trains_through_the_cli_and_its_evaluation_equals_the_librarys() {
    check_method(Method::CoCoOp);
}

#[test]
fn ivlp_trains_through_the_cli_and_its_evaluation_equals_the_librarys() {
    check_method(Method::Ivlp);
}

#[test]
fn vpt_trains_through_the_cli_and_its_evaluation_equals_the_librarys() {
    check_method(Method::Vpt);
}

#[test]
fn maple_trains_through_the_cli_and_its_evaluation_equals_the_librarys() {
    check_method(Method::Maple);
}

#[test]
fn every_method_has_a_test_here() {
    // A method added to `Method::ALL` must get its own test above.
    assert_eq!(Method::ALL.len(), 5);
}
