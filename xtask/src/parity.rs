//! `cargo xtask parity DIR [--f64]`: one line per check, a summary, non-zero exit on failure.

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use maple_burn::backend::{self, TrainBackend};
use testkit::parity::{self as checks, Fixture};

/// Runs every check; returns whether all passed. `f64` runs them on the CPU backend in
/// double precision (isolates rounding from logic: see ARCHITECTURE.md, "Parity").
pub fn run(dir: &Path, f64: bool) -> Result<bool> {
    let fx = Fixture::open(dir)?;
    if f64 {
        #[cfg(feature = "ndarray")]
        {
            println!("parity checks in {} on ndarray (cpu) f64", dir.display());
            report::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(&fx, &Default::default())
        }
        #[cfg(not(feature = "ndarray"))]
        anyhow::bail!("--f64 runs on ndarray: build the xtask with `--features ndarray`")
    } else {
        let device = backend::device(0);
        println!(
            "parity checks in {} on {} f32",
            dir.display(),
            backend::describe(&device)
        );
        report::<TrainBackend>(&fx, &device)
    }
}

fn report<B: AutodiffBackend>(fx: &Fixture, device: &B::Device) -> Result<bool> {
    let results = checks::all_checks::<B>(fx, device)?;
    let mut failed = 0;
    for r in &results {
        println!("{}", r.line());
        failed += usize::from(!r.passed());
    }
    println!(
        "summary: {} checks, {} passed, {} failed",
        results.len(),
        results.len() - failed,
        failed
    );
    Ok(failed == 0)
}
