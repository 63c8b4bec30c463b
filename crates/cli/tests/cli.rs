//! The `maple` binary: argument errors say what was expected, `data` prints the splits,
//! and a protocol run stopped with `--stop-after` continues when the command is repeated.

use testkit::trees as common;

use std::path::Path;
use std::process::{Command, Output};

fn maple(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the maple binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = maple(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in:\n{err}");
    }
}

#[test]
fn bad_arguments_say_what_was_expected() {
    fails_with(
        &["base2novel", "--dataset", "cifar10", "--data-root", "."],
        &["cifar10", "expected one of", "eurosat"],
    );
    fails_with(&["train", "--dataset", "mnist"], &["mnist", "imagenet_r"]);
    fails_with(
        &[
            "train",
            "--dataset",
            "eurosat",
            "--subsample",
            "half",
            "--data-root",
            ".",
        ],
        &["expected all, base or new"],
    );
    fails_with(
        &["train", "--dataset", "eurosat"],
        &["--data-root DIR is required"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "eurosat",
            "--data-root",
            "/no/such/dir",
        ],
        &["/no/such/dir", "not a folder"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "eurosat",
            "--data-root",
            ".",
            "--shots",
            "0",
        ],
        &["--shots", "0"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "eurosat",
            "--data-root",
            ".",
            "--seeds",
            "x",
        ],
        &["--seeds", "invalid digit"],
    );
    fails_with(
        &["xd", "--data-root", ".", "--targets", "imagenet"],
        &["training source"],
    );
    fails_with(
        &[
            "base2novel",
            "--dataset",
            "eurosat",
            "--data-root",
            ".",
            "--load-epoch",
            "5",
        ],
        &["--import"],
    );
    fails_with(
        &[
            "base2novel",
            "--dataset",
            "imagenet_a",
            "--data-root",
            ".",
            "--weights",
            "/no/such.safetensors",
        ],
        &["/no/such.safetensors"],
    );
    fails_with(&["frobnicate"], &["unrecognized subcommand"]);
    fails_with(&["data", "--dataset", "eurosat"], &["--root"]);
    fails_with(
        &["data", "--dataset", "eurosat", "--root", "/no/such/root"],
        &["/no/such/root", "does not exist"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.json");
    std::fs::write(&cfg, r#"{"name": "x", "learning_rate": 1}"#).unwrap();
    fails_with(
        &[
            "train",
            "--dataset",
            "eurosat",
            "--data-root",
            ".",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &["bad.json", "unknown field"],
    );
}

#[test]
fn every_command_has_help() {
    for cmd in ["train", "eval", "base2novel", "xd", "zeroshot", "data"] {
        let o = maple(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help failed");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("Usage: maple"), "{out}");
    }
    let o = maple(&["--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["train", "eval", "base2novel", "xd", "zeroshot", "data"] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn data_prints_the_sampled_splits_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    common::eurosat_tree(tmp.path(), 4, 2, 3);
    let root = tmp.path().to_str().unwrap();
    let o = maple(&[
        "data",
        "--dataset",
        "eurosat",
        "--root",
        root,
        "--shots",
        "2",
        "--seed",
        "3",
        "--subsample",
        "new",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["classnames"],
        serde_json::json!(["Highway or Road", "Sea or Lake"])
    );
    assert_eq!(v["train"].as_array().unwrap().len(), 4);
    assert_eq!(v["test"].as_array().unwrap().len(), 6);
    assert_eq!(v["seed"], 3);
}

fn write_config(dir: &Path) -> String {
    let path = dir.join("tiny.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&common::tiny_config()).unwrap(),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn base2novel_stopped_with_stop_after_continues_when_repeated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::eurosat_tree(&data, 3, 1, 2);
    let cfg = write_config(tmp.path());
    let out = tmp.path().join("out");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let args = [
        "base2novel",
        "--dataset",
        "eurosat",
        "--data-root",
        d,
        "--config",
        &cfg,
        "--output-dir",
        o,
        "--seeds",
        "1",
    ];

    let mut first = args.to_vec();
    first.extend(["--stop-after", "2"]);
    let r = maple(&first);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("stopped after epoch 2 of 3"),
        "{}",
        stderr(&r)
    );
    assert!(out
        .join("eurosat/seed1/checkpoints/learner-epoch2.safetensors")
        .is_file());
    assert!(!out.join("results.json").exists());

    let r = maple(&args);
    assert!(r.status.success(), "{}", stderr(&r));
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(
        table.contains("eurosat") && table.contains("Base") && table.contains("Novel"),
        "{table}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"][0]["dataset"], "eurosat");
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("eurosat/seed1/result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["train"]["resumed_epochs"], 2);
}
