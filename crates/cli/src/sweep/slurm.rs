//! `maple sweep --slurm`: one `sbatch --array` script over the jobs left to run (done ones
//! skipped, running ones reported), resources from the flags, `%A_%a` in the log names;
//! each array task runs `maple sweep --run-task INDEX --manifest FILE`, the job's command
//! exactly as `--local` runs it. With `--submit` the script is submitted with
//! `sbatch --parsable` and the job id printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::Args;

use super::manifest::{shell_quote, Manifest};
use super::state::{state, JobState};

/// File name of the script in the sweep folder.
pub const SCRIPT: &str = "sweep.sbatch";
/// Folder of the array tasks' logs in the sweep folder.
pub const LOG_DIR: &str = "slurm";
/// File in [`LOG_DIR`] listing the ids of the arrays submitted, one per line.
pub const SUBMITTED: &str = "submitted.txt";

/// `--slurm` options: the resources of each array task.
#[derive(Args, Debug, Clone, Default)]
pub struct SlurmArgs {
    /// Submit the script (sbatch --parsable) and print the job id (--slurm).
    #[arg(long)]
    pub submit: bool,
    /// Slurm partition.
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Time limit of each task (Slurm syntax: 30, 4:00:00, 1-00:00:00).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Account to charge.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Quality of service.
    #[arg(long, value_name = "NAME")]
    pub qos: Option<String>,
    /// GPUs per task (as --gres=gpu:N). Default: none.
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// Generic resources per task, verbatim (--gres), instead of --gpus (e.g. gpu:a100:1).
    #[arg(long, value_name = "SPEC", conflicts_with = "gpus")]
    pub gres: Option<String>,
    /// CPUs per task.
    #[arg(long, value_name = "N")]
    pub cpus_per_task: Option<u32>,
    /// Memory per task (Slurm syntax: 16G).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// At most this many array tasks at once (the array's %N).
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<u32>,
    /// Name of the Slurm job.
    #[arg(long, value_name = "NAME", default_value = "maple-sweep")]
    pub job_name: String,
    /// Another #SBATCH option, verbatim (repeatable), e.g. --sbatch-option=--constraint=a100.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_option: Vec<String>,
    /// The maple binary the tasks run. Default: this one.
    #[arg(long, value_name = "FILE")]
    pub maple_bin: Option<PathBuf>,
}

/// Indices as a Slurm array list: runs of consecutive indices as ranges (`0-3,5,7-9`).
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The `sbatch` script running the manifest entries `indices` as one array.
pub fn script(manifest: &Manifest, indices: &[usize], args: &SlurmArgs, program: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# maple sweep: {} of the {} jobs of {} (one per array task).\n\
         # Written by `maple sweep --slurm`; run the sweep again to resubmit what is left.",
        indices.len(),
        manifest.jobs.len(),
        Manifest::path(&manifest.root).display()
    );
    let mut opt = |o: String| {
        let _ = writeln!(s, "#SBATCH {o}");
    };
    opt(format!("--job-name={}", args.job_name));
    let throttle = args
        .max_parallel
        .map(|n| format!("%{n}"))
        .unwrap_or_default();
    opt(format!("--array={}{throttle}", array_spec(indices)));
    let logs = manifest.root.join(LOG_DIR);
    opt(format!("--output={}", logs.join("%A_%a.log").display()));
    opt(format!("--chdir={}", manifest.workdir.display()));
    opt("--ntasks=1".into());
    if let Some(p) = &args.partition {
        opt(format!("--partition={p}"));
    }
    if let Some(t) = &args.time {
        opt(format!("--time={t}"));
    }
    if let Some(a) = &args.account {
        opt(format!("--account={a}"));
    }
    if let Some(q) = &args.qos {
        opt(format!("--qos={q}"));
    }
    if let Some(g) = args.gpus {
        opt(format!("--gres=gpu:{g}"));
    }
    if let Some(g) = &args.gres {
        opt(format!("--gres={g}"));
    }
    if let Some(c) = args.cpus_per_task {
        opt(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &args.mem {
        opt(format!("--mem={m}"));
    }
    for o in &args.sbatch_option {
        opt(o.clone());
    }
    let _ = writeln!(
        s,
        "\nset -euo pipefail\nexec {} sweep --run-task \"$SLURM_ARRAY_TASK_ID\" --manifest {}",
        shell_quote(&program.display().to_string()),
        shell_quote(&Manifest::path(&manifest.root).display().to_string())
    );
    s
}

/// Writes the script for the jobs left to run and, with `--submit`, submits it.
pub fn run(manifest: &Manifest, args: &SlurmArgs) -> Result<()> {
    let mut todo = Vec::new();
    let mut done = 0;
    for j in &manifest.jobs {
        match state(j) {
            JobState::Done => done += 1,
            JobState::Running => eprintln!("running (not resubmitted): {}", j.name),
            JobState::Failed | JobState::Pending => todo.push(j.index),
        }
    }
    eprintln!(
        "sweep {}: {} jobs, {done} done, {} to run",
        manifest.root.display(),
        manifest.jobs.len(),
        todo.len()
    );
    if todo.is_empty() {
        eprintln!("nothing to submit");
        return Ok(());
    }
    let program = match &args.maple_bin {
        Some(p) => std::path::absolute(p)?,
        None => manifest.program.clone(),
    };
    let logs = manifest.root.join(LOG_DIR);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let path = manifest.root.join(SCRIPT);
    let text = script(manifest, &todo, args, &program);
    maple_burn::clip_model::atomic::write_atomic(&path, text.as_bytes())
        .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    println!("{}", path.display());
    if !args.submit {
        eprintln!("submit it with: sbatch {}", path.display());
        return Ok(());
    }
    refuse_while_queued(&logs.join(SUBMITTED))?;
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .context("running sbatch (is Slurm installed here?)")?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id: {stdout:?}");
    }
    let record = logs.join(SUBMITTED);
    let mut ids = std::fs::read_to_string(&record).unwrap_or_default();
    ids.push_str(&format!("{id}\n"));
    maple_burn::clip_model::atomic::write_atomic(&record, ids.as_bytes())
        .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))?;
    println!("{id}");
    eprintln!(
        "submitted array job {id} ({} tasks); logs: {}; progress: maple sweep --status --out {}",
        todo.len(),
        logs.join(format!("{id}_<index>.log")).display(),
        manifest.root.display()
    );
    Ok(())
}

/// Refuses to submit while an array submitted earlier for this sweep still has tasks in
/// the queue (its pending tasks would run the same jobs twice). Without `squeue` nothing
/// can be checked and the submission goes ahead.
fn refuse_while_queued(record: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Ok(());
    };
    let ids: Vec<&str> = text.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-o", "%i", "-j", &ids.join(",")])
        .output()
    else {
        log::warn!(
            "squeue not found: cannot tell whether earlier arrays of this sweep are still queued"
        );
        return Ok(());
    };
    let queued = String::from_utf8_lossy(&out.stdout);
    let queued: Vec<&str> = queued.split_whitespace().collect();
    if out.status.success() && !queued.is_empty() {
        bail!(
            "an earlier array of this sweep is still in the queue ({}): wait for it (maple sweep --status) \
             or cancel it (scancel), then run the sweep again to submit what is left",
            queued.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_compress_consecutive_indices_into_ranges() {
        assert_eq!(array_spec(&[0]), "0");
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(array_spec(&[2, 4, 6]), "2,4,6");
        assert_eq!(array_spec(&[]), "");
    }
}
