//! `cargo xtask gpu-check`: the one-command check of a GPU backend on a GPU machine.
//!
//! Meant for an xtask built here with `--no-default-features --features cuda` (Burn's CUDA
//! runtime loads the driver and NVRTC at run time, so the binary runs on a machine with
//! only the NVIDIA driver and CUDA; `scripts/gpu-check-bundle.sh` packs it with the files
//! it reads). A WGPU build runs the same steps on a Vulkan device. In order, stopping at the
//! first error:
//!
//! 1. preflight: the binary must have a GPU backend, and [`maple_burn::backend::probe`]
//!    must run a computation on the device. On a machine without a usable GPU this fails
//!    at once (exit 2) with a message naming the backend, the device and what is missing;
//! 2. the parity report on `tests/fixtures/maple-tiny` and, when present,
//!    `tests/fixtures/methods-tiny` (f32), with the `precision.f16.*` checks where the
//!    device computes in f16;
//! 3. a short MaPLe base-to-novel training on the procedural world with the toy CLIP
//!    (`weights/toy-clip.safetensors`), the procedural example's equivalent, in f32 and in
//!    every half precision the device computes in (`--precisions`); it fails when base
//!    accuracy is not above 25% (three times chance) or a half precision ends more than one
//!    point below f32 (base or novel); time and device memory of each are printed;
//! 4. unless `--skip-torch`, `bench --compare` against `bench/torch_maple.py` on the
//!    same GPU with the reference in fp16 (its default `PREC`), bf16 and fp32: ratios and
//!    peak memory as `cargo xtask bench` prints them.
//!
//! Every path is relative to `--root` (default: the current folder), so the check runs
//! from an unpacked bundle without the repository.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Parser as _;
use maple_burn::backend::{self, TrainBackend};
use maple_burn::clip_model::Precision;
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::protocol::{self, Context};
use maple_burn::trainer::{Backbone, RunConfig};

use crate::{bench, parity};

/// `bench`'s arguments with their command-line defaults (parsed, not hand-built).
#[derive(clap::Parser)]
struct BenchCli {
    #[command(flatten)]
    args: bench::Args,
}

/// Arguments of `gpu-check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder holding `tests/fixtures/`, `weights/` and `bench/` (the repository or an
    /// unpacked bundle).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// GPU ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Epochs of the procedural training.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Training shots per class of the procedural training (default: the demo's 16).
    #[arg(long)]
    pub shots: Option<usize>,
    /// Precisions of the procedural training, comma-separated (default: f32 and every
    /// half precision the backend computes in). Each half precision must end within one
    /// point of f32's base and novel accuracy.
    #[arg(long, value_delimiter = ',')]
    pub precisions: Option<Vec<Precision>>,
    /// Skip the parity reports (e.g. CI, which runs `parity` itself, uses gpu-check's
    /// training step alone on WGPU).
    #[arg(long)]
    pub skip_parity: bool,
    /// Skip the PyTorch comparison (no Python with torch on the machine).
    #[arg(long)]
    pub skip_torch: bool,
    /// Python interpreter with torch for the comparison (default: as `bench --compare`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Reference precisions of the comparison (PyTorch spelling).
    #[arg(long, value_delimiter = ',', default_value = "fp16,bf16,fp32")]
    pub torch_precisions: Vec<String>,
}

/// Whether this binary was built with a GPU backend; the error says how to build one.
pub fn require_gpu_backend() -> Result<()> {
    if cfg!(any(feature = "cuda", feature = "wgpu")) {
        Ok(())
    } else {
        bail!(
            "gpu-check needs a GPU backend, and this xtask was built with {}: build it with \
             `cargo build --release -p xtask --no-default-features --features cuda` \
             (or `--features wgpu`), or use scripts/gpu-check-bundle.sh",
            backend::NAME
        )
    }
}

/// Preflight: a GPU backend, and a device that computes.
pub fn preflight(device_index: usize) -> Result<backend::Device> {
    require_gpu_backend()?;
    let device = backend::device(device_index);
    backend::probe(&device).context("gpu-check stopped before any work")?;
    Ok(device)
}

/// Runs the check; returns whether every step passed.
pub fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    let device = preflight(args.device)?;
    println!("gpu-check on {}", backend::describe(&device));
    let mut ok = true;
    let mut times = Vec::new();
    let halves: Vec<Precision> = [Precision::F16, Precision::Bf16]
        .into_iter()
        .filter(|p| p.supported::<TrainBackend>(&device))
        .collect();
    // The parity report's precision checks: f16 where the device computes in it (bf16's
    // logits miss the reference's autocast error on flex: docs/PRECISION.md).
    let half = parity::HalfSelection::Auto;

    let fixtures = args.root.join("tests/fixtures");
    let parity_sets: &[&str] = if args.skip_parity {
        &[]
    } else {
        &["maple-tiny", "methods-tiny"]
    };
    for &name in parity_sets {
        let dir = fixtures.join(name);
        if !dir.exists() {
            if name == "maple-tiny" {
                bail!("{}: missing (see --root)", dir.display());
            }
            println!("{}: absent, skipped", dir.display());
            continue;
        }
        let t = Instant::now();
        let passed = parity::run(&dir, false, &half)?;
        times.push((format!("parity {name}"), t.elapsed().as_secs_f64(), passed));
        ok &= passed;
    }

    let precisions = args.precisions.clone().unwrap_or_else(|| {
        std::iter::once(Precision::F32)
            .chain(halves.iter().copied())
            .collect()
    });
    let mut trained_at: Vec<(Precision, Trained)> = Vec::new();
    for &precision in &precisions {
        let t = Instant::now();
        let run = train_procedural(&args.root, args.epochs, args.shots, precision, &device)?;
        println!(
            "procedural MaPLe in {precision}, seed 1, {} epochs: base {:.2}%, novel {:.2}% \
             ({:.1} s{})",
            args.epochs,
            run.base,
            run.novel,
            run.seconds,
            run.memory
                .map(|m| format!(
                    ", device memory in use after the run {:.1} MiB, pool reserved so far \
                     {:.1} MiB",
                    m.in_use as f64 / 1048576.0,
                    m.reserved as f64 / 1048576.0
                ))
                .unwrap_or_default()
        );
        // A broken backend (NaN, garbage kernels) lands near chance (1/12 of the base
        // classes, 8.3%); WGPU on lavapipe measured 57.17% base / 50.50% novel after 2
        // epochs. Three times chance separates the two without depending on the last digits.
        let trained = run.base > 25.0;
        times.push((
            format!("procedural training {precision}"),
            t.elapsed().as_secs_f64(),
            trained,
        ));
        ok &= trained;
        trained_at.push((precision, run));
    }
    if let Some((_, full)) = trained_at.iter().find(|(p, _)| *p == Precision::F32) {
        for (p, run) in trained_at.iter().filter(|(p, _)| p.is_half()) {
            let (db, dn) = (run.base - full.base, run.novel - full.novel);
            let close = db >= -1.0 && dn >= -1.0;
            println!(
                "{p} vs f32: base {db:+.2}, novel {dn:+.2} points (at most 1 below: {}); \
                 time x{:.2}{}",
                if close { "ok" } else { "FAILED" },
                run.seconds / full.seconds,
                // The pool keeps what an earlier run reserved, so compare what stays in
                // use (CLIP's weights, the learner, cached tensors).
                match (run.memory, full.memory) {
                    (Some(a), Some(b)) if b.in_use > 0 => format!(
                        ", device memory in use x{:.2}",
                        a.in_use as f64 / b.in_use as f64
                    ),
                    _ => String::new(),
                }
            );
            times.push((format!("{p} within 1 point of f32"), 0.0, close));
            ok &= close;
        }
    }

    if !args.skip_torch {
        for precision in &args.torch_precisions {
            let t = Instant::now();
            let script = args.root.join("bench/torch_maple.py");
            let mut argv = vec![
                "bench".to_string(),
                "--compare".into(),
                "--script".into(),
                script.display().to_string(),
                "--torch-device".into(),
                format!("cuda:{}", args.device),
                "--torch-precision".into(),
                precision.clone(),
            ];
            if let Some(p) = &args.python {
                argv.extend(["--python".into(), p.display().to_string()]);
            }
            println!(
                "bench --compare, reference in {precision}: {}",
                argv.join(" ")
            );
            bench::run(BenchCli::parse_from(argv).args)?;
            times.push((
                format!("bench vs torch {precision}"),
                t.elapsed().as_secs_f64(),
                true,
            ));
        }
    }

    println!("\ngpu-check summary on {}:", backend::describe(&device));
    for (step, s, passed) in &times {
        println!(
            "  {step:<28} {:>8.1} s  {}",
            s,
            if *passed { "ok" } else { "FAILED" }
        );
    }
    println!(
        "  total {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        if ok { "passed" } else { "FAILED" }
    );
    Ok(ok)
}

/// One procedural training: accuracies in percent, wall time, device memory after it.
#[derive(Debug, Clone, Copy)]
pub struct Trained {
    /// Base-class accuracy.
    pub base: f64,
    /// Novel-class accuracy.
    pub novel: f64,
    /// Wall time of the training and its evaluations.
    pub seconds: f64,
    /// The device pool after the run (GPU backends).
    pub memory: Option<backend::DeviceMemory>,
}

/// MaPLe base-to-novel on the procedural world (seed 1, `epochs` epochs, `shots` or the
/// demo's shots) with the toy CLIP under `root`, CLIP in `precision`.
pub fn train_procedural(
    root: &Path,
    epochs: usize,
    shots: Option<usize>,
    precision: Precision,
    device: &backend::Device,
) -> Result<Trained> {
    let started = Instant::now();
    let weights = root.join("weights/toy-clip.safetensors");
    let weights = weights.display().to_string();
    let backbone = Backbone::<TrainBackend>::load(&weights, device)
        .with_context(|| format!("loading the toy CLIP {weights}"))?
        .with_precision(precision)?;
    let world = protocol::demo_world(&backbone)?;
    let reference = RunConfig::preset(Method::Maple);
    let mut config = protocol::demo_config(&reference, &backbone, &weights);
    config.seeds = vec![1];
    config.optim.max_epoch = epochs;
    config.precision = precision;
    if let Some(k) = shots {
        config.shots = k;
    }
    config.validate()?;
    backbone.check(&config)?;
    let out = std::env::temp_dir().join(format!("maple-gpu-check-{}", std::process::id()));
    let ctx = Context {
        backbone: &backbone,
        config: &config,
        output_dir: out.join(format!("maple-{precision}")),
        stop_after: None,
        device: backend::describe(device),
    };
    let summary =
        protocol::procedural_base_to_novel(&ctx, &world, &[1], None, &mut maple_ui::terminal());
    // Outputs are not kept: only the accuracies matter here.
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary?;
    let row = summary
        .rows
        .first()
        .context("the procedural summary has no row")?;
    match (&row.base, &row.novel) {
        (Some(b), Some(n)) => Ok(Trained {
            base: b.mean,
            novel: n.mean,
            seconds: started.elapsed().as_secs_f64(),
            memory: backend::device_memory(device),
        }),
        _ => bail!("the procedural summary has no base/novel accuracy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CPU build refuses at once, naming its backend and how to build a GPU one.
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    #[test]
    fn cpu_build_refuses_with_build_instructions() {
        let err = preflight(0).unwrap_err().to_string();
        assert!(err.contains(backend::NAME), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
    }
}
