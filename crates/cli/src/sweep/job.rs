//! Running one job: its `maple` command in the sweep's working folder, stdout and stderr
//! appended to the job's log, a failure recorded in its output folder. The local pool and
//! the Slurm array tasks both run jobs through [`run`].

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::manifest::JobSpec;
use super::state::{failed_marker, mark_failed};

/// How a job's attempt ended.
#[derive(Debug)]
pub struct Outcome {
    /// Whether the command exited with status 0.
    pub success: bool,
    /// The exit status, in words.
    pub status: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs `job` with `program` in `workdir` (with `--device N` when a device is given) and
/// waits for it. An error means the command could not be started; a command that fails
/// is an [`Outcome`] with `success == false`.
pub fn run(
    job: &JobSpec,
    program: &Path,
    workdir: &Path,
    device: Option<usize>,
) -> Result<Outcome> {
    std::fs::create_dir_all(&job.output_dir)
        .with_context(|| format!("creating {}", job.output_dir.display()))?;
    let marker = failed_marker(&job.output_dir);
    if marker.exists() {
        std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.log)
        .with_context(|| format!("opening the job log {}", job.log.display()))?;
    let mut args = job.args.clone();
    if let Some(d) = device {
        args.extend(["--device".into(), d.to_string()]);
    }
    let mut shown = job.clone();
    shown.args = args.clone();
    writeln!(
        log,
        "== maple sweep job {} on {}: {}",
        job.name,
        hostname(),
        shown.command_line(program)
    )?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(&args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()
        .with_context(|| format!("starting {}", program.display()))?;
    let elapsed = started.elapsed();
    let words = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => format!("{status}"),
    };
    writeln!(
        log,
        "== {} after {:.1}s",
        if status.success() { "finished" } else { &words },
        elapsed.as_secs_f64()
    )?;
    if !status.success() {
        mark_failed(job, &words)?;
    }
    Ok(Outcome {
        success: status.success(),
        status: words,
        elapsed,
    })
}

/// This machine's name (for the log), or `?`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "?".into())
}

/// The last `n` lines of a log, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
