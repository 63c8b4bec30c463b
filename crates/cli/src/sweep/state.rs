//! The state of a job, read from its output folder: done (the command's `results.json`
//! exists), running (a live process holds the folder's lock), failed (the last attempt
//! exited non-zero and left a marker), or pending (never started, or interrupted: running
//! the command again continues it).

use std::path::{Path, PathBuf};

use anyhow::Result;
use maple_burn::trainer::lock::FolderLock;

use super::manifest::JobSpec;

/// File name of the marker a failed attempt leaves in the job's output folder (removed
/// when the job is started again).
pub const FAILED_MARKER: &str = "sweep-failed.txt";

/// What a job's output folder says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobState {
    /// Its `results.json` exists: nothing left to do.
    Done,
    /// A live process holds its output folder.
    Running,
    /// The last attempt failed (see its log).
    Failed,
    /// Not started, or interrupted (it resumes).
    Pending,
}

impl JobState {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Done => "done",
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Pending => "pending",
        }
    }
}

/// The state of `job` now.
pub fn state(job: &JobSpec) -> JobState {
    let dir = &job.output_dir;
    if dir.join("results.json").is_file() {
        JobState::Done
    } else if FolderLock::is_held_elsewhere(dir) {
        JobState::Running
    } else if failed_marker(dir).is_file() {
        JobState::Failed
    } else {
        JobState::Pending
    }
}

/// The failure marker of an output folder.
pub fn failed_marker(dir: &Path) -> PathBuf {
    dir.join(FAILED_MARKER)
}

/// Records a failed attempt (exit status and log) in the job's output folder.
pub fn mark_failed(job: &JobSpec, status: &str) -> Result<()> {
    let text = format!("{status}\nlog: {}\n", job.log.display());
    maple_burn::clip_model::atomic::write_atomic(&failed_marker(&job.output_dir), text.as_bytes())
        .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))
}
