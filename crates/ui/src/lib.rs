//! The terminal UI of the `maple` binary, the examples and the xtask (the libraries print
//! nothing): indicatif progress bars driven by the trainer's [`Event`]s, and an
//! `env_logger` logger routed around the bars by `indicatif-log-bridge`.

use std::ops::ControlFlow;

pub use indicatif::MultiProgress;

use indicatif::{ProgressBar, ProgressStyle};
use trainer::{Event, Observer};

/// Progress bars from the library's events; plain lines when stderr is not a terminal.
pub struct Bars {
    multi: MultiProgress,
    bar: Option<ProgressBar>,
}

impl Bars {
    /// Bars drawn in `multi`.
    pub fn new(multi: MultiProgress) -> Self {
        Bars { multi, bar: None }
    }

    /// Prints a line above the bars (or to stderr when they are hidden).
    pub fn say(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn start(&mut self, len: usize, prefix: String) {
        let style = ProgressStyle::with_template(
            "{prefix:>24} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let bar = self.multi.add(
            ProgressBar::new(len as u64)
                .with_style(style)
                .with_prefix(prefix),
        );
        self.bar = Some(bar);
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }
}

impl Observer for Bars {
    fn event(&mut self, event: &Event<'_>) -> ControlFlow<()> {
        match *event {
            Event::Message(m) => self.say(m),
            Event::EpochStart {
                epoch,
                epochs,
                batches,
                lr,
            } => {
                self.start(batches, format!("epoch {epoch}/{epochs}"));
                if let Some(b) = &self.bar {
                    b.set_message(format!("lr {lr:.2e}"));
                }
            }
            Event::TrainBatch {
                mean_loss,
                accuracy,
                ..
            } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                    b.set_message(format!("loss {mean_loss:.4} acc {accuracy:.1}%"));
                }
            }
            Event::EpochEnd(s) => {
                self.finish();
                self.say(&format!(
                    "epoch {}/{}: loss {:.4}, train acc {:.2}%, lr {:.3e}, {:.1}s",
                    s.epoch, s.epochs, s.mean_loss, s.accuracy, s.lr, s.seconds
                ));
            }
            Event::EvalStart { name, batches, .. } => {
                let short: String = name.chars().take(24).collect();
                self.start(batches, short);
            }
            Event::EvalBatch { accuracy, .. } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                    b.set_message(format!("acc {accuracy:.2}%"));
                }
            }
            Event::EvalEnd { name, accuracy } => {
                self.finish();
                self.say(&format!(
                    "{name}: accuracy {:.2}% ({}/{})",
                    accuracy.percent(),
                    accuracy.correct,
                    accuracy.total
                ));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Installs the `RUST_LOG`-filtered logger (default `warn`) that prints around `multi`.
/// A second call (or another logger already installed) leaves the first in place.
pub fn init_logging(multi: &MultiProgress) {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).build();
    let level = logger.filter();
    if indicatif_log_bridge::LogWrapper::new(multi.clone(), logger)
        .try_init()
        .is_ok()
    {
        log::set_max_level(level);
    }
}

/// Progress bars with the logger installed: what a binary calls first.
pub fn terminal() -> Bars {
    let multi = MultiProgress::new();
    init_logging(&multi);
    Bars::new(multi)
}
