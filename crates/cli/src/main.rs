//! `maple`: train and evaluate MaPLe (multi-modal prompt learning) on a frozen CLIP, with
//! the reference implementation's protocols. Run `maple --help` for the commands.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use maple_burn::backend::{self, TrainBackend};
use maple_burn::datasets::{self, DatasetName, Subsample};
use maple_burn::trainer::protocol::{
    self, Context, ImportSpec, CROSS_DATASET_TARGETS, DOMAIN_GENERALISATION_TARGETS,
};
use maple_burn::trainer::{self, Backbone, Protocol, RunConfig, Summary, TrainerError};
use maple_ui::Bars;

#[derive(Parser)]
#[command(
    name = "maple",
    version,
    about = "MaPLe (multi-modal prompt learning, CVPR 2023) on CLIP, in Rust on Burn",
    long_about = "MaPLe (multi-modal prompt learning, CVPR 2023) on CLIP, in Rust on Burn.\n\n\
        Runs the reference implementation's protocols on the datasets in their usual layout \
        (CoOp/MaPLe DATASETS.md): base-to-novel generalisation, cross-dataset transfer and \
        domain generalisation, plus zero-shot CLIP. Every run writes checkpoints after each \
        epoch into its output folder: a run that is stopped or killed continues where it \
        left off when the same command is given again.",
    after_help = "Examples:\n  \
        maple base2novel --dataset eurosat --data-root ~/data\n  \
        maple base2novel --dataset all --data-root ~/data --import ~/maple-weights/{dataset}\n  \
        maple xd --data-root ~/data            # ImageNet -> 10 datasets\n  \
        maple xd --dg --data-root ~/data       # ImageNet -> V2, Sketch, A, R\n  \
        maple zeroshot --dataset eurosat --data-root ~/data\n  \
        maple data --dataset eurosat --root ~/data --shots 16 --seed 1 --subsample base"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train MaPLe on one dataset (few-shot, one class subsample) and test it, per seed.
    Train(TrainArgs),
    /// Evaluate checkpoints (this tool's or the reference's model.pth.tar-N) on a dataset.
    Eval(EvalArgs),
    /// Base-to-novel generalisation: train on the base classes, test on base and novel.
    #[command(name = "base2novel")]
    Base2Novel(Base2NovelArgs),
    /// Cross-dataset transfer (ImageNet -> 10 datasets), or with --dg domain generalisation.
    Xd(XdArgs),
    /// Zero-shot CLIP with the reference's per-dataset prompt templates.
    Zeroshot(ZeroshotArgs),
    /// Print a dataset's splits as JSON, after few-shot sampling and class subsampling.
    Data(DataArgs),
}

/// Settings shared by the commands that load CLIP.
#[derive(Args, Clone)]
struct Common {
    /// Run configuration (JSON, see configs/). Default: the reference's settings for the command.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CLIP weights: a safetensors file, a folder holding one, or a Hugging Face hub id
    /// owner/name (cached; HF_HUB_OFFLINE=1 forbids downloads). Default: the config's.
    #[arg(long, value_name = "FILE|DIR|HUB_ID")]
    weights: Option<String>,
    /// The data root holding the dataset folders (eurosat/, imagenet/, ...).
    #[arg(long, value_name = "DIR", alias = "root")]
    data_root: Option<PathBuf>,
    /// Where outputs go. Default: output/<command>/<config name>.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Seeds of the repeated runs (space or comma separated). Default: the config's (1 2 3).
    #[arg(long, value_name = "S", num_args = 1.., value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Training shots per class. Default: the config's (16).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    shots: Option<u64>,
    /// Training epochs. Default: the config's (5 base-to-novel, 2 cross-dataset).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Evaluation batch size. Default: the config's (100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    test_batch_size: Option<u64>,
    /// Device index (GPU ordinal for cuda/wgpu; ignored on CPU backends).
    #[arg(long, value_name = "N", default_value_t = 0)]
    device: usize,
    /// Stop once this many epochs of a run are done (the same command without it continues).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    stop_after: Option<u64>,
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset to train and test on.
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    dataset: DatasetName,
    /// Classes to use: all, base (first half of the labels) or new.
    #[arg(long, value_name = "all|base|new", default_value = "all", value_parser = parse_subsample)]
    subsample: Subsample,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct EvalArgs {
    /// Dataset to evaluate on.
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    dataset: DatasetName,
    /// Classes to evaluate: all, base or new.
    #[arg(long, value_name = "all|base|new", default_value = "all", value_parser = parse_subsample)]
    subsample: Subsample,
    /// Checkpoint file, or a folder holding one per seed (reference layout
    /// [<dataset>/][base/]seed<S>/MultiModalPromptLearner/model.pth.tar-N, or this tool's
    /// output folders); {dataset} and {seed} are substituted.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Epoch of the checkpoint to load. Default: the highest found.
    #[arg(long, value_name = "N")]
    load_epoch: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Base2NovelArgs {
    /// Datasets (repeat the flag or separate by commas); `all` for the 11 of the benchmark.
    #[arg(long, value_name = "NAME", required = true, num_args = 1.., value_delimiter = ',')]
    dataset: Vec<String>,
    /// Evaluate released weights instead of training: a folder with one checkpoint per
    /// seed (reference layout [<dataset>/]base/seed<S>/MultiModalPromptLearner/model.pth.tar-5;
    /// {dataset} and {seed} are substituted).
    #[arg(long = "import", value_name = "DIR")]
    import: Option<PathBuf>,
    /// Epoch of the imported checkpoints. Default: the highest found.
    #[arg(long, value_name = "N", requires = "import")]
    load_epoch: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct XdArgs {
    /// Domain generalisation: targets ImageNet-V2, -Sketch, -A, -R instead of the 10 datasets.
    #[arg(long)]
    dg: bool,
    /// Training dataset.
    #[arg(long, value_name = "NAME", default_value = "imagenet", value_parser = parse_dataset)]
    source: DatasetName,
    /// Target datasets (comma separated). Default: the 10 datasets, or the 4 variants with --dg.
    #[arg(long, value_name = "NAME", num_args = 1.., value_delimiter = ',', value_parser = parse_dataset)]
    targets: Option<Vec<DatasetName>>,
    /// Evaluate released weights instead of training: a folder with one checkpoint per
    /// seed (reference layout seed<S>/MultiModalPromptLearner/model.pth.tar-2).
    #[arg(long = "import", value_name = "DIR")]
    import: Option<PathBuf>,
    /// Epoch of the imported checkpoints. Default: the highest found.
    #[arg(long, value_name = "N", requires = "import")]
    load_epoch: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ZeroshotArgs {
    /// Datasets (repeat or comma separated); `all` for the 11 base-to-novel datasets.
    #[arg(long, value_name = "NAME", required = true, num_args = 1.., value_delimiter = ',')]
    dataset: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DataArgs {
    /// Dataset name.
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    dataset: DatasetName,
    /// The data root holding the dataset folders.
    #[arg(long, value_name = "DIR", alias = "data-root")]
    root: PathBuf,
    /// Shots per class for train (val gets min(K, 4)). Default: the full splits.
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    shots: Option<i64>,
    /// Seed of the few-shot draw (Python's random.seed).
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Classes to keep: all, base or new.
    #[arg(long, value_name = "all|base|new", default_value = "all", value_parser = parse_subsample)]
    subsample: Subsample,
}

fn parse_dataset(s: &str) -> Result<DatasetName, String> {
    s.parse::<DatasetName>().map_err(|e| e.to_string())
}

fn parse_subsample(s: &str) -> Result<Subsample, String> {
    s.parse::<Subsample>()
        .map_err(|_| format!("expected all, base or new, found {s:?}"))
}

/// `all` or names, comma separated or repeated.
fn parse_dataset_list(values: &[String]) -> Result<Vec<DatasetName>> {
    let mut out = Vec::new();
    for v in values {
        if v.eq_ignore_ascii_case("all") {
            out.extend(DatasetName::BASE_TO_NOVEL);
        } else {
            out.push(
                v.parse::<DatasetName>()
                    .map_err(|e| anyhow::anyhow!("--dataset: {e}"))?,
            );
        }
    }
    out.dedup();
    Ok(out)
}

/// The config for a command: `--config`, else `preset`, with the command-line overrides.
fn load_config(common: &Common, preset: RunConfig) -> Result<RunConfig> {
    let mut config = match &common.config {
        Some(path) => RunConfig::load(path)?,
        None => preset,
    };
    if let Some(w) = &common.weights {
        config.weights = w.clone();
    }
    if let Some(s) = &common.seeds {
        if s.is_empty() {
            bail!("--seeds needs at least one seed");
        }
        config.seeds = s.clone();
    }
    if let Some(k) = common.shots {
        config.shots = k as usize;
    }
    if let Some(e) = common.epochs {
        config.optim.max_epoch = e as usize;
    }
    if let Some(b) = common.test_batch_size {
        config.test_batch_size = b as usize;
    }
    config.validate()?;
    Ok(config)
}

fn data_root(common: &Common) -> Result<PathBuf> {
    let root = common
        .data_root
        .clone()
        .context("--data-root DIR is required: the folder holding the dataset folders (eurosat/, imagenet/, ...)")?;
    if !root.is_dir() {
        bail!("--data-root {}: not a folder", root.display());
    }
    Ok(root)
}

/// Loads CLIP and runs `f` with the run context; prints the summary.
fn with_context(
    common: &Common,
    config: &RunConfig,
    command: &str,
    bars: &mut Bars,
    f: impl FnOnce(&Context<'_, TrainBackend>, &mut Bars) -> trainer::Result<Summary>,
) -> Result<()> {
    let device = backend::device(common.device);
    let described = backend::describe(&device);
    let output_dir = common
        .output_dir
        .clone()
        .unwrap_or_else(|| Path::new("output").join(command).join(&config.name));
    bars.say(&format!(
        "device: {described}; loading CLIP from {}",
        config.weights
    ));
    let started = Instant::now();
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &device)
        .with_context(|| format!("loading CLIP weights {:?}", config.weights))?;
    let ctx = Context {
        backbone: &backbone,
        config,
        output_dir: output_dir.clone(),
        stop_after: common.stop_after.map(|n| n as usize),
        device: described.clone(),
    };
    match f(&ctx, bars) {
        Ok(summary) => {
            println!("{}", summary.table());
            println!(
                "results: {} ({:.1}s on {described})",
                output_dir.join("results.json").display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(TrainerError::Stopped { completed, total }) => {
            bars.say(&format!(
                "stopped after epoch {completed} of {total} as asked (--stop-after); run the same command without it to continue"
            ));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut bars = maple_ui::terminal();
    match cli.command {
        Command::Data(a) => {
            let json = datasets::data_json(a.dataset, &a.root, a.shots, a.seed, a.subsample)?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        Command::Train(a) => {
            let config = load_config(&a.common, RunConfig::base_to_novel())?;
            let root = data_root(&a.common)?;
            let seeds = config.seeds.clone();
            with_context(&a.common, &config, "train", &mut bars, |ctx, obs| {
                protocol::train_and_test(ctx, &root, a.dataset, a.subsample, &seeds, obs)
            })
        }
        Command::Eval(a) => {
            let config = load_config(&a.common, RunConfig::base_to_novel())?;
            let root = data_root(&a.common)?;
            let seeds = config.seeds.clone();
            let spec = ImportSpec {
                path: a.checkpoint.clone(),
                epoch: a.load_epoch,
            };
            with_context(&a.common, &config, "eval", &mut bars, |ctx, obs| {
                protocol::evaluate_checkpoints(
                    ctx,
                    &root,
                    a.dataset,
                    a.subsample,
                    &seeds,
                    &spec,
                    obs,
                )
            })
        }
        Command::Base2Novel(a) => {
            let datasets = parse_dataset_list(&a.dataset)?;
            let config = load_config(&a.common, RunConfig::base_to_novel())?;
            let root = data_root(&a.common)?;
            let seeds = config.seeds.clone();
            let spec = a.import.clone().map(|path| ImportSpec {
                path,
                epoch: a.load_epoch,
            });
            with_context(&a.common, &config, "base2novel", &mut bars, |ctx, obs| {
                protocol::base_to_novel(ctx, &root, &datasets, &seeds, spec.as_ref(), obs)
            })
        }
        Command::Xd(a) => {
            let config = load_config(&a.common, RunConfig::cross_dataset())?;
            let root = data_root(&a.common)?;
            let seeds = config.seeds.clone();
            let (name, default_targets): (Protocol, &[DatasetName]) = if a.dg {
                (Protocol::Dg, &DOMAIN_GENERALISATION_TARGETS)
            } else {
                (Protocol::Xd, &CROSS_DATASET_TARGETS)
            };
            let targets = a
                .targets
                .clone()
                .unwrap_or_else(|| default_targets.to_vec());
            if targets.contains(&a.source) {
                bail!(
                    "--targets: {} is the training source; list other datasets",
                    a.source
                );
            }
            let spec = a.import.clone().map(|path| ImportSpec {
                path,
                epoch: a.load_epoch,
            });
            with_context(&a.common, &config, name.as_str(), &mut bars, |ctx, obs| {
                protocol::cross_dataset(
                    ctx,
                    name,
                    &root,
                    a.source,
                    &targets,
                    &seeds,
                    spec.as_ref(),
                    obs,
                )
            })
        }
        Command::Zeroshot(a) => {
            let datasets = parse_dataset_list(&a.dataset)?;
            let config = load_config(&a.common, RunConfig::base_to_novel())?;
            let root = data_root(&a.common)?;
            with_context(&a.common, &config, "zeroshot", &mut bars, |ctx, obs| {
                let valid = ctx.backbone.valid();
                protocol::zero_shot(
                    &valid,
                    &root,
                    &datasets,
                    config.test_batch_size,
                    &ctx.output_dir,
                    &ctx.device,
                    obs,
                )
            })
        }
    }
}

fn main() -> Result<()> {
    run(Cli::parse())
}
