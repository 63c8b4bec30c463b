//! `maple sweep --local`: the jobs on this machine, in a bounded pool (`--jobs N` at a
//! time, or one per device index of `--devices`). Jobs already done are skipped, jobs a
//! live process holds are reported as running and skipped, the others run (an interrupted
//! one continues where it stopped). A failing job does not stop the others; the sweep then
//! fails with a summary naming the failed jobs and their logs.

use std::collections::VecDeque;
use std::sync::Mutex;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::job;
use super::manifest::Manifest;
use super::state::{state, JobState};

/// `--local` options.
#[derive(Args, Debug, Clone, Default)]
pub struct LocalArgs {
    /// Jobs run at a time (--local). Default: 1, or one per device of --devices.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Device indices (--local, comma separated): one job per device at a time, passed to
    /// it as --device.
    #[arg(long, value_name = "N", num_args = 1.., value_delimiter = ',', conflicts_with = "jobs")]
    pub devices: Option<Vec<usize>>,
}

/// A line above the bar (or on stderr when the bar is hidden).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Runs the manifest's jobs that are not done or running.
pub fn run(manifest: &Manifest, args: &LocalArgs) -> Result<()> {
    let slots: Vec<Option<usize>> = match (&args.devices, args.jobs) {
        (Some(d), _) if d.is_empty() => bail!("--devices needs at least one index"),
        (Some(d), _) => d.iter().copied().map(Some).collect(),
        (None, n) => vec![None; n.unwrap_or(1) as usize],
    };
    let mut queue = VecDeque::new();
    let (mut done, mut running) = (0, Vec::new());
    for j in &manifest.jobs {
        match state(j) {
            JobState::Done => done += 1,
            JobState::Running => running.push(j),
            JobState::Failed | JobState::Pending => queue.push_back(j),
        }
    }
    eprintln!(
        "sweep {}: {} jobs, {done} done, {} running elsewhere, {} to run ({} at a time)",
        manifest.root.display(),
        manifest.jobs.len(),
        running.len(),
        queue.len(),
        slots.len().min(queue.len().max(1))
    );
    for j in &running {
        eprintln!("  running elsewhere (skipped): {}", j.name);
    }
    let bar = ProgressBar::new(queue.len() as u64).with_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} jobs ({elapsed}<{eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix("sweep");
    let queue = Mutex::new(queue);
    let failed = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for device in &slots {
            scope.spawn(|| loop {
                let Some(j) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                // Another sweep may have started it since the list was made.
                if state(j) == JobState::Running {
                    say(&bar, &format!("running elsewhere (skipped): {}", j.name));
                    bar.inc(1);
                    continue;
                }
                bar.set_message(j.name.clone());
                match job::run(j, &manifest.program, &manifest.workdir, *device) {
                    Ok(o) if o.success => say(
                        &bar,
                        &format!("done    {} ({:.1}s)", j.name, o.elapsed.as_secs_f64()),
                    ),
                    Ok(o) => {
                        say(
                            &bar,
                            &format!(
                                "FAILED  {} ({}), log: {}",
                                j.name,
                                o.status,
                                j.log.display()
                            ),
                        );
                        failed.lock().expect("failed lock").push(j);
                    }
                    Err(e) => {
                        say(&bar, &format!("FAILED  {}: {e:#}", j.name));
                        errors
                            .lock()
                            .expect("errors lock")
                            .push((j, format!("{e:#}")));
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let failed = failed.into_inner().expect("failed lock");
    let errors = errors.into_inner().expect("errors lock");
    if failed.is_empty() && errors.is_empty() {
        eprintln!(
            "sweep {}: every job is done{}; `maple report {}` tabulates them",
            manifest.root.display(),
            if running.is_empty() {
                String::new()
            } else {
                format!(" except {} running elsewhere", running.len())
            },
            manifest.root.display()
        );
        return Ok(());
    }
    let mut msg = format!(
        "{} of {} jobs failed:",
        failed.len() + errors.len(),
        manifest.jobs.len()
    );
    for j in &failed {
        msg.push_str(&format!("\n  {} (log: {})", j.name, j.log.display()));
    }
    for (j, e) in &errors {
        msg.push_str(&format!("\n  {}: {e}", j.name));
    }
    msg.push_str("\nthe others are done; run the same sweep again to retry the failed ones");
    bail!(msg)
}
