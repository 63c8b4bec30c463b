//! `cargo xtask ...`: project tasks that are programs, not tests.
//!
//! - `parity DIR`: every parity check against a reference fixture folder.
//! - `pretrain-toy-clip`: pretrains the small CLIP of the procedural world (weights/).
//! - `bench`: speed of the MaPLe workloads, optionally against the PyTorch baseline.
//! - `gpu-check`: the one-command check of a GPU backend on a GPU machine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod gpu_check;
mod parity;
mod pretrain;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "maple-burn project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every parity check against a fixture folder (maple-tiny layout or one
    /// methods-tiny/<method> folder) or a folder of them (methods-tiny).
    Parity {
        /// The fixture folder (e.g. tests/fixtures/maple-tiny, tests/fixtures/methods-tiny).
        dir: PathBuf,
        /// Run on the CPU backend in double precision instead of the selected backend in f32.
        #[arg(long)]
        f64: bool,
        /// Half-precision checks (`precision.f16.*`, `precision.bf16.*`) of a maple folder:
        /// `auto` runs f16 where the backend computes in it, a list (`f16,bf16`) requires
        /// them (an error where the backend cannot), `none` skips them.
        #[arg(long, default_value = "auto")]
        precision: parity::HalfSelection,
    },
    /// Pretrain the toy CLIP of the procedural world and write it to weights/.
    PretrainToyClip(pretrain::Args),
    /// Time the MaPLe workloads (train-step, encode-images, encode-text) on a random
    /// ViT-B/16; with --compare also the PyTorch baseline, and print ratios ours/pytorch.
    Bench(bench::Args),
    /// On a GPU machine, from a binary built with `--features cuda` (or wgpu): parity
    /// reports, a procedural training and the PyTorch comparison; stops at once with a
    /// clear error (exit 2) when the binary or the machine has no usable GPU.
    GpuCheck(gpu_check::Args),
}

fn main() -> ExitCode {
    let _ui = maple_ui::terminal();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parity {
            dir,
            f64,
            precision,
        } => parity::run(&dir, f64, &precision),
        Command::PretrainToyClip(args) => pretrain::run(args).map(|()| true),
        Command::Bench(args) => bench::run(args).map(|()| true),
        Command::GpuCheck(args) => gpu_check::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
