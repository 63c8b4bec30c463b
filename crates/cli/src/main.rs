//! `maple`: train and evaluate MaPLe and its comparison methods (CoOp, Co-CoOp, IVLP, VPT,
//! zero-shot CLIP) on a frozen CLIP, with the reference implementation's protocols; classify
//! images with a trained learner; write reports. Run `maple --help` for the commands.

mod args;
mod predict;
mod report;
mod run;
mod sweep;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use maple_burn::datasets::{self, DatasetName, Subsample};
use maple_burn::trainer::protocol::{
    ImportSpec, CROSS_DATASET_TARGETS, DOMAIN_GENERALISATION_TARGETS,
};
use maple_burn::trainer::Protocol;

use args::{parse_dataset_list, Common, DatasetArg};
use run::{with_context, Job};

#[derive(Parser)]
#[command(
    name = "maple",
    version,
    about = "MaPLe (multi-modal prompt learning, CVPR 2023) and its comparison methods on CLIP, in Rust on Burn",
    long_about = "MaPLe (multi-modal prompt learning, CVPR 2023) and the methods of its comparison \
        (CoOp, Co-CoOp, IVLP, VPT, zero-shot CLIP) on a frozen CLIP, in Rust on Burn.\n\n\
        Runs the reference implementation's protocols on the datasets in their usual layout \
        (CoOp/MaPLe DATASETS.md), or on the built-in procedural world (--dataset procedural, \
        offline with the toy CLIP): base-to-novel generalisation, cross-dataset transfer and \
        domain generalisation. Every run writes checkpoints after each epoch into its output \
        folder: a run that is stopped or killed continues where it left off when the same \
        command is given again.",
    after_help = "Examples:\n  \
        maple base2novel --dataset procedural --method coop\n  \
        maple base2novel --dataset eurosat --data-root ~/data --method cocoop\n  \
        maple base2novel --dataset all --data-root ~/data --import ~/maple-weights/{dataset}\n  \
        maple xd --data-root ~/data            # ImageNet -> 10 datasets\n  \
        maple xd --dg --data-root ~/data       # ImageNet -> V2, Sketch, A, R\n  \
        maple zeroshot --dataset eurosat --data-root ~/data\n  \
        maple predict --checkpoint output/base2novel/maple/toy_vit_b16_c2_ep5_batch4_2ctx/procedural/seed1 \\\n      \
        --classes \"red striped triangle,blue dotted circle\" img.png\n  \
        maple report output/\n  \
        maple data --dataset eurosat --root ~/data --shots 16 --seed 1 --subsample base"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a method on one dataset (few-shot, one class subsample) and test it, per seed.
    Train(TrainArgs),
    /// Evaluate checkpoints (this tool's, or the reference's model.pth.tar-N) on a dataset.
    Eval(EvalArgs),
    /// Base-to-novel generalisation: train on the base classes, test on base and novel.
    #[command(name = "base2novel")]
    Base2Novel(Base2NovelArgs),
    /// Cross-dataset transfer (ImageNet -> 10 datasets), or with --dg domain generalisation.
    Xd(XdArgs),
    /// Zero-shot CLIP with the reference's per-dataset prompt templates.
    Zeroshot(ZeroshotArgs),
    /// Classify images with a trained learner: top classes with probabilities.
    Predict(predict::PredictArgs),
    /// Tables, plots and an HTML page from every result under a folder, with the paper's numbers.
    Report(report::ReportArgs),
    /// A grid of runs as independent jobs: on this machine (--local) or a Slurm array (--slurm).
    Sweep(Box<sweep::SweepArgs>),
    /// Print a dataset's splits as JSON, after few-shot sampling and class subsampling.
    Data(DataArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset to train and test on (a benchmark dataset, or procedural).
    #[arg(long, value_name = "NAME")]
    dataset: DatasetArg,
    /// Classes to use: all, base (first half of the labels) or new.
    #[arg(long, value_name = "all|base|new", default_value = "all", value_parser = parse_subsample)]
    subsample: Subsample,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct EvalArgs {
    /// Dataset to evaluate on (a benchmark dataset, or procedural).
    #[arg(long, value_name = "NAME")]
    dataset: DatasetArg,
    /// Classes to evaluate: all, base or new (procedural: base evaluates base and novel).
    #[arg(long, value_name = "all|base|new", default_value = "all", value_parser = parse_subsample)]
    subsample: Subsample,
    /// Checkpoint file, or a folder holding one per seed (reference layout
    /// [<dataset>/][base/]seed<S>/<trainer>/model.pth.tar-N, or this tool's output
    /// folders); {dataset} and {seed} are substituted. The method is recognised from the
    /// checkpoint and must agree with --method.
    #[arg(long, value_name = "PATH")]
    checkpoint: std::path::PathBuf,
    /// Epoch of the checkpoint to load. Default: the highest found.
    #[arg(long, value_name = "N")]
    load_epoch: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Base2NovelArgs {
    /// Datasets (repeat the flag or separate by commas); `all` for the 11 of the
    /// benchmark; `procedural` for the built-in procedural world.
    #[arg(long, value_name = "NAME", required = true, num_args = 1.., value_delimiter = ',')]
    dataset: Vec<String>,
    /// Evaluate released weights instead of training: a folder with one checkpoint per
    /// seed (reference layout [<dataset>/]base/seed<S>/<trainer>/model.pth.tar-N;
    /// {dataset} and {seed} are substituted).
    #[arg(long = "import", value_name = "DIR")]
    import: Option<std::path::PathBuf>,
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
    /// seed (reference layout seed<S>/<trainer>/model.pth.tar-N).
    #[arg(long = "import", value_name = "DIR")]
    import: Option<std::path::PathBuf>,
    /// Epoch of the imported checkpoints. Default: the highest found.
    #[arg(long, value_name = "N", requires = "import")]
    load_epoch: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ZeroshotArgs {
    /// Datasets (repeat or comma separated); `all` for the 11 base-to-novel datasets;
    /// `procedural` for the procedural world.
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
    root: std::path::PathBuf,
    /// Shots per class for train (val gets min(K, 4)); at least 1. Default: the full splits.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(i64).range(1..))]
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

fn import_spec(path: Option<std::path::PathBuf>, epoch: Option<usize>) -> Option<ImportSpec> {
    path.map(|path| ImportSpec { path, epoch })
}

fn run(cli: Cli) -> Result<()> {
    let mut bars = maple_ui::terminal();
    match cli.command {
        Command::Data(a) => {
            let json = datasets::data_json(a.dataset, &a.root, a.shots, a.seed, a.subsample)?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        Command::Predict(a) => predict::run(a, &mut bars),
        Command::Report(a) => report::run(a, &mut bars),
        Command::Sweep(a) => sweep::run(*a),
        Command::Train(a) => {
            let job = match a.dataset {
                DatasetArg::Procedural => Job::ProceduralTrain {
                    subsample: a.subsample,
                    import: None,
                },
                DatasetArg::Named(d) => Job::Train {
                    root: args::data_root(&a.common)?,
                    dataset: d,
                    subsample: a.subsample,
                },
            };
            with_context(&a.common, Protocol::Train, "train", job, &mut bars)
        }
        Command::Eval(a) => {
            let spec = ImportSpec {
                path: a.checkpoint.clone(),
                epoch: a.load_epoch,
            };
            let job = match a.dataset {
                DatasetArg::Procedural if a.subsample == Subsample::Base => {
                    Job::ProceduralBaseToNovel { import: Some(spec) }
                }
                DatasetArg::Procedural => Job::ProceduralTrain {
                    subsample: a.subsample,
                    import: Some(spec),
                },
                DatasetArg::Named(d) => Job::Eval {
                    root: args::data_root(&a.common)?,
                    dataset: d,
                    subsample: a.subsample,
                    import: spec,
                },
            };
            with_context(&a.common, Protocol::Eval, "eval", job, &mut bars)
        }
        Command::Base2Novel(a) => {
            let datasets = parse_dataset_list(&a.dataset)?;
            let import = import_spec(a.import.clone(), a.load_epoch);
            let job = if datasets == [DatasetArg::Procedural] {
                Job::ProceduralBaseToNovel { import }
            } else {
                let named = named(&datasets);
                Job::BaseToNovel {
                    root: args::data_root(&a.common)?,
                    datasets: named,
                    import,
                }
            };
            with_context(
                &a.common,
                Protocol::Base2novel,
                "base2novel",
                job,
                &mut bars,
            )
        }
        Command::Xd(a) => {
            let (protocol, default_targets): (Protocol, &[DatasetName]) = if a.dg {
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
            let job = Job::Transfer {
                protocol,
                root: args::data_root(&a.common)?,
                source: a.source,
                targets,
                import: import_spec(a.import.clone(), a.load_epoch),
            };
            with_context(&a.common, protocol, protocol.as_str(), job, &mut bars)
        }
        Command::Zeroshot(a) => {
            let datasets = parse_dataset_list(&a.dataset)?;
            let mut common = a.common.clone();
            common.method = Some(args::MethodArg::ZeroShot);
            let job = if datasets == [DatasetArg::Procedural] {
                Job::ProceduralBaseToNovel { import: None }
            } else {
                Job::BaseToNovel {
                    root: args::data_root(&common)?,
                    datasets: named(&datasets),
                    import: None,
                }
            };
            with_context(&common, Protocol::Zeroshot, "zeroshot", job, &mut bars)
        }
    }
}

fn named(datasets: &[DatasetArg]) -> Vec<DatasetName> {
    datasets
        .iter()
        .filter_map(|d| match d {
            DatasetArg::Named(n) => Some(*n),
            DatasetArg::Procedural => None,
        })
        .collect()
}

fn main() -> Result<()> {
    run(Cli::parse())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
