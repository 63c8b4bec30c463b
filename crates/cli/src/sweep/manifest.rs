//! The manifest of a sweep, `<sweep>/sweep.json`: the program, the working folder and every
//! job (its `maple` arguments, output folder and log file). Runners read nothing else, so a
//! Slurm array task and the local pool run exactly the same command for a job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// The `format` field of a manifest.
pub const FORMAT: &str = "maple-burn/sweep/v1";
/// File name of the manifest in the sweep folder.
pub const MANIFEST: &str = "sweep.json";
/// File name of a job's log (its command's stdout and stderr) in its output folder.
pub const JOB_LOG: &str = "sweep-job.log";

/// One job: an ordinary `maple` command with its own output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Position in the manifest (the Slurm array index).
    pub index: usize,
    /// `<protocol>/<method>/<dataset>[/seed<S>]`, the output folder under the sweep's.
    pub name: String,
    /// `base2novel`, `train`, `xd` or `dg`.
    pub protocol: String,
    /// A learner's name, or `clip` (zero-shot CLIP).
    pub method: String,
    /// The dataset trained on (`imagenet` for xd and dg).
    pub dataset: String,
    /// The seed (none for zero-shot CLIP).
    pub seed: Option<u64>,
    /// The job's output folder (`--output-dir`).
    pub output_dir: PathBuf,
    /// The job's log file.
    pub log: PathBuf,
    /// The arguments after the program name.
    pub args: Vec<String>,
}

impl JobSpec {
    /// The command as a shell line, for people.
    pub fn command_line(&self, program: &Path) -> String {
        std::iter::once(program.display().to_string())
            .chain(self.args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A sweep's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The `maple` binary that wrote it (and runs the jobs unless told otherwise).
    pub program: PathBuf,
    /// The folder the jobs run in (the one the sweep was started from).
    pub workdir: PathBuf,
    /// The sweep folder.
    pub root: PathBuf,
    /// The jobs, `jobs[i].index == i`.
    pub jobs: Vec<JobSpec>,
}

impl Manifest {
    /// A manifest for `jobs` under `root`, run by this binary from the current folder.
    pub fn new(root: PathBuf, jobs: Vec<JobSpec>) -> Result<Self> {
        Ok(Manifest {
            format: FORMAT.into(),
            program: std::env::current_exe().context("locating the maple binary")?,
            workdir: std::env::current_dir().context("reading the current folder")?,
            root,
            jobs,
        })
    }

    /// The manifest file of a sweep folder.
    pub fn path(root: &Path) -> PathBuf {
        root.join(MANIFEST)
    }

    /// Reads a manifest, checking its format and indices.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the sweep manifest {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("parsing the sweep manifest {}", path.display()))?;
        if m.format != FORMAT {
            bail!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                m.format
            );
        }
        if let Some(j) = m.jobs.iter().enumerate().find(|(i, j)| j.index != *i) {
            bail!(
                "{}: job {} has index {}, expected {}",
                path.display(),
                j.1.name,
                j.1.index,
                j.0
            );
        }
        Ok(m)
    }

    /// Writes the manifest into its sweep folder, atomically.
    pub fn save(&self) -> Result<PathBuf> {
        let path = Self::path(&self.root);
        let json = serde_json::to_string_pretty(self)?;
        maple_burn::clip_model::atomic::write_atomic(&path, json.as_bytes())
            .map_err(|(p, e)| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        Ok(path)
    }

    /// Adds the jobs of `jobs` this manifest lacks, after its own: indices never change, so
    /// a Slurm array submitted earlier still finds its jobs. Returns how many were added.
    ///
    /// # Errors
    /// When a job of `jobs` has the output folder of one of this manifest's with another
    /// command (see [`Manifest::check_compatible`]).
    pub fn merge(&mut self, jobs: Vec<JobSpec>) -> Result<usize> {
        self.check_compatible(&jobs)?;
        let mut added = 0;
        for mut job in jobs {
            if !self.jobs.iter().any(|o| o.output_dir == job.output_dir) {
                job.index = self.jobs.len();
                self.jobs.push(job);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Refuses a grid that gives an output folder of this manifest another command: the
    /// folder's results would belong to the old one.
    pub fn check_compatible(&self, jobs: &[JobSpec]) -> Result<()> {
        for new in jobs {
            if let Some(old) = self.jobs.iter().find(|o| o.output_dir == new.output_dir) {
                if old.args != new.args {
                    bail!(
                        "the sweep in {} already has job {} with other settings:\n  was: maple {}\n  now: maple {}\n\
                         use another --out folder for other settings",
                        self.root.display(),
                        new.name,
                        old.args.join(" "),
                        new.args.join(" ")
                    );
                }
            }
        }
        Ok(())
    }
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--seeds"), "--seeds");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
