//! `cargo xtask parity DIR [--f64] [--precision auto|none|f16,bf16]`: one line per check, a
//! summary, non-zero exit on failure.
//!
//! DIR is a fixture folder (`tests/fixtures/maple-tiny`, `tests/fixtures/methods-tiny/coop`)
//! or a folder of fixture folders (`tests/fixtures/methods-tiny`): each subfolder holding a
//! `config.json` is checked in name order, then a total is printed.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use maple_burn::backend::{self, TrainBackend};
use maple_burn::clip_model::Precision;
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

/// Which half-precision checks to run on a maple fixture folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HalfSelection {
    /// f16 where the backend computes in it (named as skipped otherwise); bf16 only on
    /// request.
    Auto,
    /// None.
    None,
    /// Exactly these; a precision the backend cannot compute in is an error.
    Required(Vec<Precision>),
}

impl FromStr for HalfSelection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            list => list
                .split(',')
                .map(|p| match p.trim().parse::<Precision>() {
                    Ok(Precision::F32) => {
                        Err("f32 is checked by the fp32 checks: list f16 and/or bf16".to_string())
                    }
                    Ok(p) => Ok(p),
                    Err(e) => Err(e.to_string()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Required),
        }
    }
}

/// Runs every check; returns whether all passed. `f64` runs them on the CPU backend in
/// double precision (isolates rounding from logic: see ARCHITECTURE.md, "Parity"), without
/// the half-precision checks; `half` selects those (maple folders only).
pub fn run(dir: &Path, f64: bool, half: &HalfSelection) -> Result<bool> {
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
                    &HalfSelection::None,
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
            report::<TrainBackend>(&fx, &device, half)?
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
fn report<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
    half: &HalfSelection,
) -> Result<(usize, usize)> {
    let mut results = checks::all_checks::<B>(fx, device)?;
    if checks::methods::fixture_method(fx).is_none() {
        let wanted = match half {
            HalfSelection::None => vec![],
            HalfSelection::Required(list) => list.clone(),
            HalfSelection::Auto if Precision::F16.supported::<B>(device) => vec![Precision::F16],
            HalfSelection::Auto => {
                println!(
                    "precision.f16: skipped ({} does not compute in f16)",
                    B::name(device)
                );
                vec![]
            }
        };
        for p in wanted {
            results.extend(checks::precision::precision_checks::<B>(fx, device, p)?);
        }
    }
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
