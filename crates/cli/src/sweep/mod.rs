//! `maple sweep`: a grid of protocol runs (protocol x method x dataset x seed) as independent
//! jobs, each the ordinary resumable `maple` command with its own output folder, listed in
//! a manifest (`<sweep>/sweep.json`) and run on this machine (`--local`) or as one Slurm
//! job array (`--slurm [--submit]`); `--status` says what each job is doing. Without a
//! runner flag it writes the manifest and prints the commands.
//!
//! A sweep folder accumulates: running a sweep again (with the same grid, a larger one, or
//! no grid flags at all) keeps the jobs and indices of its manifest, adds new ones, skips
//! the jobs that are done and the ones a live process holds, and runs the rest.

mod grid;
mod job;
mod local;
mod manifest;
mod slurm;
mod state;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

pub use grid::GridArgs;
use local::LocalArgs;
use manifest::Manifest;
use slurm::SlurmArgs;
use state::{state, JobState};

/// `maple sweep` arguments.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    maple sweep --dataset all --data-root ~/data --local --devices 0,1\n  \
    maple sweep --dataset all --data-root ~/data --slurm --submit --gpus 1 --time 4:00:00 --partition gpu\n  \
    maple sweep --status --out output/sweep\n  \
    maple report output/sweep")]
pub struct SweepArgs {
    /// The sweep folder: manifest, one output folder per job, Slurm script and logs.
    #[arg(long, value_name = "DIR", default_value = "output/sweep")]
    out: PathBuf,
    #[command(flatten)]
    grid: GridArgs,
    /// Run the jobs on this machine.
    #[arg(long, group = "runner")]
    local: bool,
    /// Write a Slurm array script for the jobs left to run (with --submit: submit it).
    #[arg(long, group = "runner")]
    slurm: bool,
    /// Print each job's state: done, running, failed or pending.
    #[arg(long, group = "runner")]
    status: bool,
    /// Run one job of a manifest (what each Slurm array task does).
    #[arg(
        long,
        value_name = "INDEX",
        hide = true,
        group = "runner",
        requires = "manifest"
    )]
    run_task: Option<usize>,
    /// The manifest of --run-task.
    #[arg(long, value_name = "FILE", hide = true)]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    local_args: LocalArgs,
    #[command(flatten)]
    slurm_args: SlurmArgs,
}

/// Runs `maple sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    if let Some(index) = args.run_task {
        let path = args.manifest.clone().expect("clap requires --manifest");
        return run_task(&Manifest::load(&path)?, index);
    }
    if args.slurm_args.submit && !args.slurm {
        bail!("--submit goes with --slurm");
    }
    let root = std::path::absolute(&args.out)?;
    let path = Manifest::path(&root);
    let manifest = if args.status {
        Manifest::load(&path)?
    } else {
        let existing = path.is_file().then(|| Manifest::load(&path)).transpose()?;
        match existing {
            Some(m) if !args.grid.is_given() => m,
            Some(mut m) => {
                let added = m.merge(grid::expand(&args.grid, &root)?)?;
                if added > 0 {
                    eprintln!("added {added} jobs to the sweep in {}", root.display());
                }
                m.save()?;
                m
            }
            None if !args.grid.is_given() => bail!(
                "no sweep in {}: give a grid (--dataset ..., --protocol xd, ...)",
                root.display()
            ),
            None => {
                let m = Manifest::new(root.clone(), grid::expand(&args.grid, &root)?)?;
                m.save()?;
                m
            }
        }
    };
    if args.status {
        return print_status(&manifest);
    }
    if args.local {
        return local::run(&manifest, &args.local_args);
    }
    if args.slurm {
        return slurm::run(&manifest, &args.slurm_args);
    }
    for j in &manifest.jobs {
        println!("{}", j.command_line(&manifest.program));
    }
    eprintln!(
        "wrote {} ({} jobs); run them with --local or --slurm",
        path.display(),
        manifest.jobs.len()
    );
    Ok(())
}

/// One job of a manifest, as a Slurm array task runs it: skipped when done or running
/// elsewhere, else run; a failure is the task's (non-zero exit, log tail on stderr).
fn run_task(manifest: &Manifest, index: usize) -> Result<()> {
    let Some(job) = manifest.jobs.get(index) else {
        bail!(
            "--run-task {index}: the manifest has {} jobs",
            manifest.jobs.len()
        );
    };
    match state(job) {
        JobState::Done => {
            println!("{}: done already", job.name);
            return Ok(());
        }
        JobState::Running => {
            println!("{}: running elsewhere, not started again", job.name);
            return Ok(());
        }
        JobState::Failed | JobState::Pending => {}
    }
    println!("{}: {}", job.name, job.command_line(&manifest.program));
    let program = std::env::current_exe()?;
    let outcome = job::run(job, &program, &manifest.workdir, None)?;
    if !outcome.success {
        bail!(
            "{} failed ({}); log {}:\n{}",
            job.name,
            outcome.status,
            job.log.display(),
            job::tail(&job.log, 20)
        );
    }
    println!(
        "{}: done in {:.1}s (log {})",
        job.name,
        outcome.elapsed.as_secs_f64(),
        job.log.display()
    );
    Ok(())
}

/// `--status`: one line per job, then the counts.
fn print_status(manifest: &Manifest) -> Result<()> {
    let mut counts = [0usize; 4];
    for j in &manifest.jobs {
        let s = state(j);
        counts[s as usize] += 1;
        let extra = if s == JobState::Failed {
            format!("  log: {}", j.log.display())
        } else {
            String::new()
        };
        println!("{:>4}  {:<8} {}{extra}", j.index, s.as_str(), j.name);
    }
    println!(
        "{} jobs: {} done, {} running, {} failed, {} pending",
        manifest.jobs.len(),
        counts[JobState::Done as usize],
        counts[JobState::Running as usize],
        counts[JobState::Failed as usize],
        counts[JobState::Pending as usize]
    );
    Ok(())
}
