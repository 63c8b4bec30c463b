//! The grid of a sweep (protocols x methods x datasets x seeds, plus the settings passed to
//! every job) and its expansion into independent jobs: each one ordinary, resumable `maple`
//! command with its own output folder, one seed per job so that no two jobs share a folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::RunConfig;

use super::manifest::JobSpec;
use crate::args::{parse_dataset_list, DatasetArg, MethodArg};

/// A protocol a sweep can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum SweepProtocol {
    /// Base-to-novel generalisation (`maple base2novel`; zero-shot CLIP: `maple zeroshot`).
    #[value(name = "base2novel")]
    Base2novel,
    /// Few-shot training on all classes (`maple train --subsample all`).
    Train,
    /// Cross-dataset transfer, ImageNet -> 10 datasets (`maple xd`).
    Xd,
    /// Domain generalisation, ImageNet -> V2, Sketch, A, R (`maple xd --dg`).
    Dg,
}

impl SweepProtocol {
    /// The name in paths and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepProtocol::Base2novel => "base2novel",
            SweepProtocol::Train => "train",
            SweepProtocol::Xd => "xd",
            SweepProtocol::Dg => "dg",
        }
    }

    /// Whether the jobs of this protocol are per `--dataset` (xd and dg train on ImageNet).
    fn per_dataset(self) -> bool {
        matches!(self, SweepProtocol::Base2novel | SweepProtocol::Train)
    }
}

/// The name of zero-shot CLIP in sweep paths and on the command line.
pub const CLIP: &str = "clip";

/// The grid of a sweep. Every flag is optional so that a sweep can be re-run from its
/// manifest alone (`maple sweep --local --out DIR`).
#[derive(Args, Debug, Clone, Default)]
pub struct GridArgs {
    /// Protocols (comma separated). Default: base2novel.
    #[arg(long, value_name = "base2novel|train|xd|dg", num_args = 1.., value_delimiter = ',')]
    pub protocol: Option<Vec<SweepProtocol>>,
    /// Methods (comma separated): maple, coop, cocoop, ivlp, vpt, clip (zero-shot CLIP, one
    /// job per dataset), or `all` for every method and zero-shot CLIP. Default: all.
    #[arg(long, value_name = "METHOD", num_args = 1.., value_delimiter = ',')]
    pub method: Option<Vec<String>>,
    /// Datasets of base2novel and train (comma separated); `all` for the 11 of the
    /// benchmark; `procedural` for the built-in procedural world (offline, toy CLIP).
    /// xd and dg train on ImageNet and ignore it.
    #[arg(long, value_name = "NAME", num_args = 1.., value_delimiter = ',')]
    pub dataset: Option<Vec<String>>,
    /// Seeds (comma separated): one job per seed. Default: 1,2,3.
    #[arg(long, value_name = "S", num_args = 1.., value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Run configuration of a method (JSON, see configs/); repeat for several methods.
    /// Methods without one use the reference preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<Vec<PathBuf>>,
    /// CLIP weights for every job (see `maple base2novel --help`).
    #[arg(long, value_name = "FILE|DIR|HUB_ID")]
    pub weights: Option<String>,
    /// The data root holding the dataset folders.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Training shots per class, for every learner job.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub shots: Option<u64>,
    /// Training epochs, for every learner job.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Learning rate, for every learner job.
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Evaluation batch size, for every job.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_batch_size: Option<u64>,
}

impl GridArgs {
    /// Whether any grid flag was given (else a sweep re-runs its manifest).
    pub fn is_given(&self) -> bool {
        self.protocol.is_some()
            || self.method.is_some()
            || self.dataset.is_some()
            || self.seeds.is_some()
            || self.config.is_some()
            || self.weights.is_some()
            || self.data_root.is_some()
            || self.shots.is_some()
            || self.epochs.is_some()
            || self.lr.is_some()
            || self.test_batch_size.is_some()
    }
}

/// The methods of `--method`: `all` is every learner of [`Method::ALL`] and zero-shot CLIP.
fn methods(values: Option<&[String]>) -> Result<Vec<MethodArg>> {
    let all = || {
        Method::ALL
            .into_iter()
            .map(MethodArg::Learner)
            .chain(std::iter::once(MethodArg::ZeroShot))
    };
    let mut out: Vec<MethodArg> = Vec::new();
    match values {
        None => out.extend(all()),
        Some(values) => {
            for v in values {
                if v.eq_ignore_ascii_case("all") {
                    out.extend(all());
                } else {
                    out.push(
                        v.parse::<MethodArg>()
                            .map_err(|e| anyhow::anyhow!("--method: {e}"))?,
                    );
                }
            }
        }
    }
    let mut seen = Vec::new();
    out.retain(|m| {
        let new = !seen.contains(m);
        seen.push(*m);
        new
    });
    Ok(out)
}

/// An absolute form of a path given on the command line (jobs may run in another folder).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn method_name(m: MethodArg) -> &'static str {
    match m {
        MethodArg::Learner(m) => m.as_str(),
        MethodArg::ZeroShot => CLIP,
    }
}

/// Expands the grid into jobs whose output folders lie under `root`
/// (`<root>/<protocol>/<method>/<dataset>/seed<S>`; zero-shot CLIP
/// `<root>/<protocol>/clip/<dataset>`), in a fixed order: protocol, method, dataset, seed.
///
/// Every setting is checked here, before any job runs: unknown names, config files (each
/// names its method, at most one per method, for a method of the grid), procedural only
/// with base2novel and train, zero-shot CLIP not with train.
pub fn expand(grid: &GridArgs, root: &Path) -> Result<Vec<JobSpec>> {
    let protocols = grid
        .protocol
        .clone()
        .unwrap_or_else(|| vec![SweepProtocol::Base2novel]);
    let methods = methods(grid.method.as_deref())?;
    let mut seeds = grid.seeds.clone().unwrap_or_else(|| vec![1, 2, 3]);
    // A repeated seed would give two jobs one folder.
    let mut seen = Vec::new();
    seeds.retain(|s| {
        let new = !seen.contains(s);
        seen.push(*s);
        new
    });
    if seeds.is_empty() {
        bail!("--seeds needs at least one seed");
    }
    let datasets = match &grid.dataset {
        Some(d) => parse_dataset_list(d)?,
        None if protocols.iter().any(|p| p.per_dataset()) => {
            bail!("--dataset is required for base2novel and train (names, `all`, or `procedural`)")
        }
        None => Vec::new(),
    };
    let procedural = datasets.contains(&DatasetArg::Procedural);
    if procedural {
        if let Some(p) = protocols.iter().find(|p| !p.per_dataset()) {
            bail!(
                "--protocol {}: the procedural world has no cross-dataset targets; use base2novel or train",
                p.as_str()
            );
        }
    }
    let needs_root = !procedural;
    let data_root = match &grid.data_root {
        Some(r) if !r.is_dir() => bail!("--data-root {}: not a folder", r.display()),
        Some(r) => Some(absolute(r)?),
        None if needs_root => bail!(
            "--data-root DIR is required: the folder holding the dataset folders (eurosat/, imagenet/, ...)"
        ),
        None => None,
    };
    // One config file per method, named by the file itself.
    let mut configs: BTreeMap<Method, PathBuf> = BTreeMap::new();
    for path in grid.config.iter().flatten() {
        let config =
            RunConfig::load(path).with_context(|| format!("--config {}", path.display()))?;
        let m = config.learner.method();
        if !methods.contains(&MethodArg::Learner(m)) {
            bail!(
                "--config {} configures {m}, which is not among the sweep's methods",
                path.display()
            );
        }
        if let Some(other) = configs.insert(m, absolute(path)?) {
            bail!(
                "--config: two files configure {m} ({} and {}); a sweep runs one config per method",
                other.display(),
                path.display()
            );
        }
    }
    let weights = match &grid.weights {
        // A file or folder given relative to here; anything else (a hub id) as given.
        Some(w) if Path::new(w).exists() => Some(absolute(Path::new(w))?.display().to_string()),
        other => other.clone(),
    };

    // Settings every job gets, then those only learners get.
    let mut shared: Vec<String> = Vec::new();
    if let Some(w) = &weights {
        shared.extend(["--weights".into(), w.clone()]);
    }
    if let Some(r) = &data_root {
        shared.extend(["--data-root".into(), r.display().to_string()]);
    }
    if let Some(b) = grid.test_batch_size {
        shared.extend(["--test-batch-size".into(), b.to_string()]);
    }
    let mut training: Vec<String> = Vec::new();
    if let Some(k) = grid.shots {
        training.extend(["--shots".into(), k.to_string()]);
    }
    if let Some(e) = grid.epochs {
        training.extend(["--epochs".into(), e.to_string()]);
    }
    if let Some(lr) = grid.lr {
        training.extend(["--lr".into(), lr.to_string()]);
    }

    let mut jobs = Vec::new();
    for &protocol in &protocols {
        let targets: Vec<String> = if protocol.per_dataset() {
            datasets.iter().map(dataset_name).collect()
        } else {
            // Trained on the source; the targets are the command's defaults.
            vec!["imagenet".to_string()]
        };
        for &method in &methods {
            if protocol == SweepProtocol::Train && method == MethodArg::ZeroShot {
                if grid.method.is_some()
                    && grid
                        .method
                        .iter()
                        .flatten()
                        .any(|m| m.parse::<MethodArg>() == Ok(MethodArg::ZeroShot))
                {
                    bail!("--method clip with --protocol train: zero-shot CLIP does not train (its base2novel jobs test every class)");
                }
                continue;
            }
            for dataset in &targets {
                let seeds: Vec<Option<u64>> = match method {
                    MethodArg::ZeroShot => vec![None],
                    MethodArg::Learner(_) => seeds.iter().copied().map(Some).collect(),
                };
                for seed in seeds {
                    let mut dir = root
                        .join(protocol.as_str())
                        .join(method_name(method))
                        .join(dataset);
                    let mut name =
                        format!("{}/{}/{}", protocol.as_str(), method_name(method), dataset);
                    if let Some(s) = seed {
                        dir = dir.join(format!("seed{s}"));
                        name = format!("{name}/seed{s}");
                    }
                    let mut args = command(protocol, method, dataset);
                    if let (MethodArg::Learner(m), Some(s)) = (method, seed) {
                        args.extend(["--seeds".into(), s.to_string()]);
                        if let Some(c) = configs.get(&m) {
                            args.extend(["--config".into(), c.display().to_string()]);
                        }
                        args.extend(training.iter().cloned());
                    }
                    args.extend(shared.iter().cloned());
                    args.extend(["--output-dir".into(), dir.display().to_string()]);
                    jobs.push(JobSpec {
                        index: jobs.len(),
                        name,
                        protocol: protocol.as_str().into(),
                        method: method_name(method).into(),
                        dataset: dataset.clone(),
                        seed,
                        log: dir.join(super::manifest::JOB_LOG),
                        output_dir: dir,
                        args,
                    });
                }
            }
        }
    }
    if jobs.is_empty() {
        bail!("the grid is empty: no job to run");
    }
    Ok(jobs)
}

fn dataset_name(d: &DatasetArg) -> String {
    match d {
        DatasetArg::Named(n) => n.as_str().to_string(),
        DatasetArg::Procedural => "procedural".to_string(),
    }
}

/// The subcommand and the arguments naming the protocol, method and dataset.
fn command(protocol: SweepProtocol, method: MethodArg, dataset: &str) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match (protocol, method) {
        (SweepProtocol::Base2novel, MethodArg::ZeroShot) => s(&["zeroshot", "--dataset", dataset]),
        (SweepProtocol::Base2novel, MethodArg::Learner(m)) => {
            s(&["base2novel", "--dataset", dataset, "--method", m.as_str()])
        }
        (SweepProtocol::Train, _) => s(&[
            "train",
            "--dataset",
            dataset,
            "--subsample",
            "all",
            "--method",
            method_name(method),
        ]),
        (SweepProtocol::Xd, _) => s(&["xd", "--method", method_name(method)]),
        (SweepProtocol::Dg, _) => s(&["xd", "--dg", "--method", method_name(method)]),
    }
}
