//! `cargo xtask parity DIR [--f64]`: one line per check, a summary, non-zero exit on failure.
//!
//! DIR is a fixture folder (`tests/fixtures/maple-tiny`, `tests/fixtures/methods-tiny/coop`)
//! or a folder of fixture folders (`tests/fixtures/methods-tiny`): each subfolder holding a
//! `config.json` is checked in name order, then a total is printed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use maple_burn::backend::{self, TrainBackend};
use testkit::parity::{self as checks, Fixture};

/// The fixture folders under `dir`: `dir` itself when it holds a `config.json`, else its
/// subfolders that do, sorted by name.
fn fixture_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("config.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "{}: no config.json, and no subfolder with one: not a fixture folder",
            dir.display()
        );
    }
    Ok(dirs)
}

/// Runs every check; returns whether all passed. `f64` runs them on the CPU backend in
/// double precision (isolates rounding from logic: see ARCHITECTURE.md, "Parity").
pub fn run(dir: &Path, f64: bool) -> Result<bool> {
    let dirs = fixture_dirs(dir)?;
    let (mut total, mut failed) = (0, 0);
    for d in &dirs {
        let fx = Fixture::open(d)?;
        let (n, f) = if f64 {
            #[cfg(feature = "ndarray")]
            {
                println!("parity checks in {} on ndarray (cpu) f64", d.display());
                report::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(
                    &fx,
                    &Default::default(),
                )?
            }
            #[cfg(not(feature = "ndarray"))]
            bail!("--f64 runs on ndarray: build the xtask with `--features ndarray`")
        } else {
            let device = backend::device(0);
            backend::probe(&device)?;
            println!(
                "parity checks in {} on {} f32",
                d.display(),
                backend::describe(&device)
            );
            report::<TrainBackend>(&fx, &device)?
        };
        total += n;
        failed += f;
    }
    if dirs.len() > 1 {
        println!(
            "total: {} folders, {total} checks, {} passed, {failed} failed",
            dirs.len(),
            total - failed
        );
    }
    Ok(failed == 0)
}

/// Prints every check of one folder and its summary; returns (checks, failures).
fn report<B: AutodiffBackend>(fx: &Fixture, device: &B::Device) -> Result<(usize, usize)> {
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
    Ok((results.len(), failed))
}
