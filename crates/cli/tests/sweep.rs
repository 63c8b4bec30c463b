//! `maple sweep`: the grid expands into one independent `maple` command per job with its own
//! output folder, listed in a manifest; the Slurm script covers the jobs left to run with
//! the requested resources; the local runner skips done jobs, resumes interrupted ones,
//! leaves jobs held by a live process alone, and reports failures with their logs. Slurm
//! itself is exercised by ci/slurm-check.sh, not here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use maple_burn::maple_prompts::Method;
use maple_burn::trainer::lock::FolderLock;
use serde_json::Value;

fn maple_in(dir: &Path, args: &[&str], path_env: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maple"));
    c.args(args)
        .current_dir(dir)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUST_LOG");
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    c.output().expect("the maple binary runs")
}

fn maple(dir: &Path, args: &[&str]) -> Output {
    maple_in(dir, args, None)
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = maple(dir, args);
    assert!(o.status.success(), "{args:?} failed:\n{}", text(&o));
    o
}

fn manifest(sweep: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep.json")).unwrap()).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn args_of(job: &Value) -> Vec<String> {
    job["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The tiny procedural sweep of the runner tests: `methods` x `seeds`, `epochs` epochs.
fn tiny_sweep(sweep: &Path, methods: &str, seeds: &str, epochs: &str) -> Vec<String> {
    [
        "sweep",
        "--out",
        sweep.to_str().unwrap(),
        "--dataset",
        "procedural",
        "--method",
        methods,
        "--seeds",
        seeds,
        "--epochs",
        epochs,
    ]
    .map(String::from)
    .to_vec()
}

fn with<'a>(base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect()
}

#[test]
fn the_grid_expands_into_one_command_per_job_with_its_own_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sweep = tmp.path().join("sweep");
    let o = ok(
        tmp.path(),
        &[
            "sweep",
            "--out",
            "sweep",
            "--protocol",
            "base2novel,xd",
            "--method",
            "maple,clip",
            "--dataset",
            "eurosat,dtd",
            "--seeds",
            "1,2,3",
            "--epochs",
            "7",
            "--data-root",
            "data",
        ],
    );
    let m = manifest(&sweep);
    assert_eq!(m["format"], "maple-burn/sweep/v1");
    let jobs = m["jobs"].as_array().unwrap();
    // base2novel: MaPLe 2 datasets x 3 seeds + CLIP 2 datasets; xd: MaPLe 3 seeds + CLIP 1.
    assert_eq!(jobs.len(), 6 + 2 + 3 + 1);
    let root = std::path::absolute(&sweep).unwrap();
    let data = std::path::absolute(&data).unwrap();
    let mut folders = std::collections::BTreeSet::new();
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j["index"], i);
        let args = args_of(j);
        let out = PathBuf::from(j["output_dir"].as_str().unwrap());
        assert_eq!(out, root.join(j["name"].as_str().unwrap()));
        assert!(folders.insert(out.clone()), "two jobs share {out:?}");
        // The command ends with its own output folder, and reads the absolute data root.
        assert_eq!(
            args[args.len() - 2..],
            ["--output-dir", out.to_str().unwrap()]
        );
        let root_at = args.iter().position(|a| a == "--data-root").unwrap();
        assert_eq!(args[root_at + 1], data.to_str().unwrap());
        let learner = j["method"] == "maple";
        assert_eq!(args.contains(&"--epochs".to_string()), learner, "{args:?}");
        assert_eq!(j["seed"].is_u64(), learner);
    }
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "base2novel/maple/eurosat/seed1");
    assert!(names.contains(&"base2novel/clip/dtd"));
    assert!(names.contains(&"xd/maple/imagenet/seed3"));
    assert!(names.contains(&"xd/clip/imagenet"));
    let seed2 = &jobs[1];
    assert_eq!(
        args_of(seed2)[..9],
        [
            "base2novel",
            "--dataset",
            "eurosat",
            "--method",
            "maple",
            "--seeds",
            "2",
            "--epochs",
            "7"
        ]
    );
    let clip = jobs
        .iter()
        .find(|j| j["name"] == "base2novel/clip/dtd")
        .unwrap();
    assert_eq!(args_of(clip)[..3], ["zeroshot", "--dataset", "dtd"]);
    let xd = jobs
        .iter()
        .find(|j| j["name"] == "xd/maple/imagenet/seed1")
        .unwrap();
    assert_eq!(args_of(xd)[..3], ["xd", "--method", "maple"]);
    // Without a runner the commands are printed, one per job.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        jobs.len()
    );

    // `all` is every method that exists and zero-shot CLIP.
    let o = ok(
        tmp.path(),
        &[
            "sweep",
            "--out",
            "all",
            "--dataset",
            "procedural",
            "--seeds",
            "1,2",
        ],
    );
    let all = manifest(&tmp.path().join("all"));
    let jobs = all["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), Method::ALL.len() * 2 + 1, "{}", text(&o));
    for m in Method::ALL {
        assert!(
            jobs.iter().any(|j| j["method"] == m.as_str()),
            "{m} missing"
        );
    }
}

#[test]
fn contradictory_grids_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let fails = |args: &[&str], needle: &str| {
        let o = maple(tmp.path(), args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(text(&o).contains(needle), "{needle:?} not in\n{}", text(&o));
    };
    fails(
        &[
            "sweep",
            "--out",
            "a",
            "--dataset",
            "procedural",
            "--protocol",
            "xd",
        ],
        "procedural world has no cross-dataset targets",
    );
    fails(
        &[
            "sweep",
            "--out",
            "a",
            "--dataset",
            "procedural",
            "--protocol",
            "train",
            "--method",
            "clip",
        ],
        "zero-shot CLIP does not train",
    );
    fails(
        &[
            "sweep",
            "--out",
            "a",
            "--dataset",
            "procedural",
            "--method",
            "sgd",
        ],
        "unknown method",
    );
    fails(&["sweep", "--out", "a", "--local"], "no sweep in");
    // An output folder keeps its command: other settings need another sweep folder.
    ok(
        tmp.path(),
        &[
            "sweep",
            "--out",
            "b",
            "--dataset",
            "procedural",
            "--method",
            "maple",
            "--seeds",
            "1",
            "--epochs",
            "1",
        ],
    );
    fails(
        &[
            "sweep",
            "--out",
            "b",
            "--dataset",
            "procedural",
            "--method",
            "maple",
            "--seeds",
            "1",
            "--epochs",
            "2",
        ],
        "already has job base2novel/maple/procedural/seed1 with other settings",
    );
    // A larger grid adds jobs after the existing ones, keeping their indices.
    ok(
        tmp.path(),
        &[
            "sweep",
            "--out",
            "b",
            "--dataset",
            "procedural",
            "--method",
            "maple",
            "--seeds",
            "2,1",
            "--epochs",
            "1",
        ],
    );
    let m = manifest(&tmp.path().join("b"));
    let names: Vec<&str> = m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "base2novel/maple/procedural/seed1",
            "base2novel/maple/procedural/seed2"
        ]
    );
}

#[test]
fn a_local_sweep_skips_done_jobs_resumes_interrupted_ones_and_leaves_running_ones_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    let base = tiny_sweep(&sweep, "maple", "1,2", "2");
    ok(tmp.path(), &with(&base, &[]));
    let m = manifest(&sweep);
    let jobs = m["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    let dir = |i: usize| PathBuf::from(jobs[i]["output_dir"].as_str().unwrap());

    // Seed 2 interrupted after its first epoch: its own command, stopped early.
    let mut interrupted = args_of(&jobs[1]);
    interrupted.extend(["--stop-after".into(), "1".into()]);
    ok(
        tmp.path(),
        &interrupted.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(!dir(1).join("results.json").exists());

    // Seed 1 held by a live process: reported as running, not started.
    let lock = FolderLock::acquire(&dir(0)).unwrap();
    let o = ok(tmp.path(), &with(&base, &["--local", "--jobs", "2"]));
    assert!(
        text(&o).contains("running elsewhere (skipped): base2novel/maple/procedural/seed1"),
        "{}",
        text(&o)
    );
    assert!(!dir(0).join("results.json").exists());
    let seed2 = json(&dir(1).join("procedural/seed2/result.json"));
    assert_eq!(
        seed2["train"]["resumed_epochs"], 1,
        "seed 2 continued from epoch 1"
    );
    assert!(std::fs::read_to_string(dir(1).join("sweep-job.log"))
        .unwrap()
        .contains("--seeds 2"));
    let status = ok(
        tmp.path(),
        &["sweep", "--status", "--out", sweep.to_str().unwrap()],
    );
    let s = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        s.contains("running  base2novel/maple/procedural/seed1"),
        "{s}"
    );
    assert!(
        s.contains("2 jobs: 1 done, 1 running, 0 failed, 0 pending"),
        "{s}"
    );
    // Slurm gets neither the done job nor the running one.
    let o = ok(
        tmp.path(),
        &["sweep", "--out", sweep.to_str().unwrap(), "--slurm"],
    );
    assert!(
        text(&o).contains("running (not resubmitted): base2novel/maple/procedural/seed1"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));
    assert!(!sweep.join("sweep.sbatch").exists());
    drop(lock);

    // Without the lock seed 1 runs; seed 2, done, is skipped (its results untouched).
    let before = std::fs::metadata(dir(1).join("results.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = ok(
        tmp.path(),
        &["sweep", "--out", sweep.to_str().unwrap(), "--local"],
    );
    assert!(
        text(&o).contains("2 jobs, 1 done, 0 running elsewhere, 1 to run"),
        "{}",
        text(&o)
    );
    let after = std::fs::metadata(dir(1).join("results.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let seed1 = json(&dir(0).join("procedural/seed1/result.json"));
    assert_eq!(seed1["seed"], 1);
    assert_eq!(seed1["train"]["resumed_epochs"], 0);
    let o = ok(
        tmp.path(),
        &["sweep", "--status", "--out", sweep.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("2 jobs: 2 done, 0 running, 0 failed, 0 pending"));
    // Nothing left for Slurm.
    let o = ok(
        tmp.path(),
        &[
            "sweep",
            "--out",
            sweep.to_str().unwrap(),
            "--slurm",
            "--submit",
        ],
    );
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));
}

#[test]
fn a_failing_job_does_not_stop_the_others_and_the_sweep_fails_naming_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    let base = tiny_sweep(&sweep, "maple", "1,2", "1");
    ok(tmp.path(), &with(&base, &[]));
    let jobs = manifest(&sweep)["jobs"].as_array().unwrap().clone();
    let dir = |i: usize| PathBuf::from(jobs[i]["output_dir"].as_str().unwrap());
    // Seed 1 cannot create its run folder: a file is in the way.
    std::fs::create_dir_all(dir(0)).unwrap();
    std::fs::write(dir(0).join("procedural"), "in the way").unwrap();

    let o = maple(tmp.path(), &with(&base, &["--local"]));
    assert!(!o.status.success(), "{}", text(&o));
    let log = dir(0).join("sweep-job.log");
    let t = text(&o);
    assert!(t.contains("1 of 2 jobs failed"), "{t}");
    assert!(
        t.contains(&format!(
            "base2novel/maple/procedural/seed1 (log: {})",
            log.display()
        )),
        "{t}"
    );
    assert!(
        dir(1).join("results.json").is_file(),
        "seed 2 ran despite seed 1's failure"
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("exit status"));
    let s = ok(
        tmp.path(),
        &["sweep", "--status", "--out", sweep.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("failed   base2novel/maple/procedural/seed1")
    );

    // A Slurm array task of the failed job fails too, with the log's tail.
    let manifest_path = sweep.join("sweep.json");
    let o = maple(
        tmp.path(),
        &[
            "sweep",
            "--run-task",
            "0",
            "--manifest",
            manifest_path.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("base2novel/maple/procedural/seed1 failed"),
        "{}",
        text(&o)
    );

    // Once the obstacle is gone, the task runs the job, as --local would.
    std::fs::remove_file(dir(0).join("procedural")).unwrap();
    let o = ok(
        tmp.path(),
        &[
            "sweep",
            "--run-task",
            "0",
            "--manifest",
            manifest_path.to_str().unwrap(),
        ],
    );
    assert!(text(&o).contains("done in"), "{}", text(&o));
    assert!(dir(0).join("results.json").is_file());
    assert!(!dir(0).join("sweep-failed.txt").exists());
}

#[test]
fn the_sbatch_script_runs_the_jobs_left_as_one_array_with_the_requested_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    let base = tiny_sweep(&sweep, "maple,clip", "1,2,3", "1");
    ok(tmp.path(), &with(&base, &[]));
    let jobs = manifest(&sweep)["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 4);
    // Job 1 done: a results.json in its folder.
    let done = PathBuf::from(jobs[1]["output_dir"].as_str().unwrap());
    std::fs::create_dir_all(&done).unwrap();
    std::fs::write(done.join("results.json"), "{}").unwrap();

    // A stand-in sbatch on PATH records its arguments and answers like `--parsable`.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sbatch");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}/sbatch-args\necho '4242;cluster'\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = maple_in(
        tmp.path(),
        &[
            "sweep",
            "--out",
            sweep.to_str().unwrap(),
            "--slurm",
            "--submit",
            "--partition",
            "gpu",
            "--time",
            "4:00:00",
            "--account",
            "proj1",
            "--gpus",
            "1",
            "--cpus-per-task",
            "8",
            "--mem",
            "32G",
            "--max-parallel",
            "2",
            "--sbatch-option=--constraint=a100",
        ],
        Some(&path),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().last(),
        Some("4242")
    );
    let script_path = sweep.join("sweep.sbatch");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("sbatch-args"))
            .unwrap()
            .trim(),
        format!("--parsable {}", script_path.display())
    );
    let script = std::fs::read_to_string(&script_path).unwrap();
    let root = std::path::absolute(&sweep).unwrap();
    for line in [
        "#!/bin/bash\n".to_string(),
        "#SBATCH --array=0,2-3%2\n".into(),
        format!("#SBATCH --output={}/slurm/%A_%a.log\n", root.display()),
        format!("#SBATCH --chdir={}\n", tmp.path().display()),
        "#SBATCH --partition=gpu\n".into(),
        "#SBATCH --time=4:00:00\n".into(),
        "#SBATCH --account=proj1\n".into(),
        "#SBATCH --gres=gpu:1\n".into(),
        "#SBATCH --cpus-per-task=8\n".into(),
        "#SBATCH --mem=32G\n".into(),
        "#SBATCH --constraint=a100\n".into(),
        format!(
            "exec {} sweep --run-task \"$SLURM_ARRAY_TASK_ID\" --manifest {}/sweep.json\n",
            env!("CARGO_BIN_EXE_maple"),
            root.display()
        ),
    ] {
        assert!(script.contains(&line), "{line:?} not in\n{script}");
    }
    assert!(
        root.join("slurm").is_dir(),
        "the log folder exists before the tasks start"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("slurm/submitted.txt")).unwrap(),
        "4242\n"
    );

    // While that array still has tasks in the queue, nothing is submitted again.
    let squeue = bin.join("squeue");
    std::fs::write(&squeue, "#!/bin/sh\necho 4242_2\necho 4242_3\n").unwrap();
    std::fs::set_permissions(&squeue, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(tmp.path().join("sbatch-args")).unwrap();
    let again = [
        "sweep",
        "--out",
        sweep.to_str().unwrap(),
        "--slurm",
        "--submit",
    ];
    let o = maple_in(tmp.path(), &again, Some(&path));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("still in the queue (4242_2, 4242_3)"),
        "{}",
        text(&o)
    );
    assert!(
        !tmp.path().join("sbatch-args").exists(),
        "sbatch was called"
    );
    // Once the queue is empty the jobs left are submitted again.
    std::fs::write(&squeue, "#!/bin/sh\nexit 0\n").unwrap();
    let o = maple_in(tmp.path(), &again, Some(&path));
    assert!(o.status.success(), "{}", text(&o));
    assert!(tmp.path().join("sbatch-args").exists());
}
