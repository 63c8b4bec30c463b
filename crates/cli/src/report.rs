//! `maple report`: tables, plots and an HTML page from every result under a folder, with
//! the paper's published numbers side by side (the `maple-report` crate).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use maple_ui::Bars;

/// `maple report` arguments.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The folder to read: every result.json and results.json under it (for example
    /// `output/`, a sweep folder, or one command's output folder).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Where to write report.md, report.json, report.html and the plots. Default: DIR/report.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `maple report`.
pub fn run(args: ReportArgs, bars: &mut Bars) -> Result<()> {
    let collection = maple_report::collect(&args.dir)
        .with_context(|| format!("reading results under {}", args.dir.display()))?;
    for w in &collection.warnings {
        log::warn!("{w}");
    }
    let out = args.out.unwrap_or_else(|| args.dir.join("report"));
    let written = maple_report::write_report(&collection, &out)?;
    bars.say(&format!(
        "read {} result files under {}",
        collection.files.len(),
        args.dir.display()
    ));
    for f in written.files() {
        println!("{}", f.display());
    }
    Ok(())
}
