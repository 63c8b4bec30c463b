//! `cargo xtask parity DIR`: one line per check, a summary, non-zero exit on failure.

use std::path::Path;

use anyhow::Result;
use maple_burn::backend::{self, Backend};
use maple_burn::parity::{self, Fixture};

/// Runs every check; returns whether all passed.
pub fn run(dir: &Path) -> Result<bool> {
    let fx = Fixture::open(dir)?;
    let device = backend::device(0);
    println!("parity checks in {} on {}", dir.display(), backend::describe(&device));
    let results = parity::all_checks::<Backend>(&fx, &device)?;
    let mut failed = 0;
    for r in &results {
        println!("{}", r.line());
        failed += usize::from(!r.passed());
    }
    println!("summary: {} checks, {} passed, {} failed", results.len(), results.len() - failed, failed);
    Ok(failed == 0)
}
