//! Progress reporting and control: training and evaluation tell an [`Observer`] what
//! they do, and the observer may ask training to stop at an epoch boundary.
//!
//! The library never prints; the `maple` binary draws progress bars from these events,
//! tests use closures to stop a run after some epoch, and [`RunLog`] writes the plain
//! `log.txt` of a run folder.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::stats::{Accuracy, EpochStats};

/// What training and evaluation report.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A free-form status line (run started, resumed, skipped, ...).
    Message(&'a str),
    /// A training epoch starts.
    EpochStart {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs in the run.
        epochs: usize,
        /// Batches in this epoch.
        batches: usize,
        /// Learning rate of this epoch.
        lr: f64,
    },
    /// One training step is done.
    TrainBatch {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch.
        batch: usize,
        /// This batch's loss.
        loss: f64,
        /// Mean loss so far in the epoch.
        mean_loss: f64,
        /// Training accuracy so far in the epoch, in percent.
        accuracy: f64,
    },
    /// A training epoch ended and its checkpoint is written. Returning
    /// [`ControlFlow::Break`] here stops training (resumable).
    EpochEnd(&'a EpochStats),
    /// An evaluation starts.
    EvalStart {
        /// What is evaluated, e.g. `eurosat seed 1 novel`.
        name: &'a str,
        /// Batches.
        batches: usize,
        /// Images.
        items: usize,
    },
    /// An evaluation batch is done.
    EvalBatch {
        /// 0-based batch.
        batch: usize,
        /// Accuracy so far, in percent.
        accuracy: f64,
    },
    /// An evaluation ended.
    EvalEnd {
        /// What was evaluated.
        name: &'a str,
        /// Its result.
        accuracy: &'a Accuracy,
    },
}

/// Receives [`Event`]s. Only [`Event::EpochEnd`]'s return value is used.
pub trait Observer {
    /// Handles one event.
    fn event(&mut self, event: &Event<'_>) -> ControlFlow<()>;
}

impl<F: FnMut(&Event<'_>) -> ControlFlow<()>> Observer for F {
    fn event(&mut self, event: &Event<'_>) -> ControlFlow<()> {
        self(event)
    }
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _: &Event<'_>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Writes the epoch and evaluation events to a plain log file (appending, so a resumed
/// run's log shows both parts), and passes every event on to `inner`.
///
/// Accuracy lines use the reference's `* accuracy: X%` form (2 decimals), so its
/// `parse_test_res.py`-style tools can read them.
pub struct RunLog<'a> {
    path: PathBuf,
    inner: &'a mut dyn Observer,
}

impl<'a> RunLog<'a> {
    /// Logs to `path` (created with its folder when missing) and forwards to `inner`.
    pub fn new(path: &Path, inner: &'a mut dyn Observer) -> Self {
        RunLog {
            path: path.to_path_buf(),
            inner,
        }
    }

    /// Appends one line, prefixed with the time since the Unix epoch. Logging is best
    /// effort: a failure is reported through `log` and otherwise ignored.
    pub fn line(&mut self, text: &str) {
        log::info!("{text}");
        if let Err(e) = append(&self.path, text) {
            log::warn!("cannot write {}: {e}", self.path.display());
        }
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for l in text.lines() {
        writeln!(f, "[{}] {l}", timestamp(secs))?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds, without a date library.
pub fn timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Observer for RunLog<'_> {
    fn event(&mut self, event: &Event<'_>) -> ControlFlow<()> {
        match *event {
            Event::Message(m) => self.line(m),
            Event::EpochStart { epoch, epochs, batches, lr } => {
                self.line(&format!("epoch [{epoch}/{epochs}] starts: {batches} batches, lr {lr:.6e}"))
            }
            Event::EpochEnd(s) => self.line(&format!(
                "epoch [{}/{}] done: loss {:.4}, train acc {:.2}%, lr {:.6e}, {:.1}s; checkpoint written",
                s.epoch, s.epochs, s.mean_loss, s.accuracy, s.lr, s.seconds
            )),
            Event::EvalEnd { name, accuracy } => self.line(&format!(
                "=> result: {name}\n* total: {}\n* correct: {}\n* accuracy: {:.2}%\n* error: {:.2}%",
                accuracy.total,
                accuracy.correct,
                accuracy.percent(),
                100.0 - accuracy.percent()
            )),
            Event::TrainBatch { .. } | Event::EvalStart { .. } | Event::EvalBatch { .. } => {}
        }
        self.inner.event(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14 22:13:20");
    }
}
