//! Arguments shared by the commands: the method, the dataset (a benchmark dataset or the
//! procedural world), the run configuration and its command-line overrides.

use maple_burn::clip_model::Precision;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use maple_burn::datasets::DatasetName;
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::{Protocol, RunConfig};

/// A method on the command line: a prompt learner, or zero-shot CLIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    /// A prompt-learning method.
    Learner(Method),
    /// Zero-shot CLIP with the reference's templates (`clip`).
    ZeroShot,
}

impl std::str::FromStr for MethodArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if ["clip", "zsclip", "zeroshot", "zero-shot"]
            .iter()
            .any(|z| z.eq_ignore_ascii_case(s))
        {
            return Ok(MethodArg::ZeroShot);
        }
        s.parse::<Method>().map(MethodArg::Learner).map_err(|_| {
            format!(
                "unknown method {s:?}: expected one of {}, clip",
                method_names()
            )
        })
    }
}

/// The learner methods, comma separated.
pub fn method_names() -> String {
    Method::ALL.map(Method::as_str).join(", ")
}

/// A dataset on the command line: a benchmark dataset or the procedural world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetArg {
    /// One of the 15 benchmark datasets (read from `--data-root`).
    Named(DatasetName),
    /// The procedural world (rendered on the fly; the toy CLIP by default).
    Procedural,
}

impl std::str::FromStr for DatasetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("procedural") {
            return Ok(DatasetArg::Procedural);
        }
        s.parse::<DatasetName>()
            .map(DatasetArg::Named)
            .map_err(|e| format!("{e}, or procedural"))
    }
}

/// `all` (the 11 base-to-novel datasets), `procedural`, or names; comma separated or repeated.
pub fn parse_dataset_list(values: &[String]) -> Result<Vec<DatasetArg>> {
    let mut out = Vec::new();
    for v in values {
        if v.eq_ignore_ascii_case("all") {
            out.extend(DatasetName::BASE_TO_NOVEL.map(DatasetArg::Named));
        } else {
            out.push(
                v.parse::<DatasetArg>()
                    .map_err(|e| anyhow::anyhow!("--dataset: {e}"))?,
            );
        }
    }
    out.dedup();
    if out.contains(&DatasetArg::Procedural) && out.len() > 1 {
        bail!("--dataset procedural runs alone (it uses the toy CLIP and its own settings)");
    }
    Ok(out)
}

/// Settings shared by the commands that load CLIP.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Prompt method: maple, coop, cocoop, ivlp, vpt, or clip (zero-shot CLIP).
    /// Default: the config file's, else maple.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<MethodArg>,
    /// Run configuration (JSON, see configs/). Default: the reference's settings for the
    /// method and the command.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// CLIP weights: a safetensors file, a folder holding one, or a Hugging Face hub id
    /// owner/name (cached; HF_HUB_OFFLINE=1 forbids downloads). Default: the config's
    /// (the toy CLIP for --dataset procedural).
    #[arg(long, value_name = "FILE|DIR|HUB_ID")]
    pub weights: Option<String>,
    /// The data root holding the dataset folders (eurosat/, imagenet/, ...).
    #[arg(long, value_name = "DIR", alias = "root")]
    pub data_root: Option<PathBuf>,
    /// Where outputs go. Default: output/<command>/<method>/<config name>.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Seeds of the repeated runs (space or comma separated). Default: the config's (1 2 3).
    #[arg(long, value_name = "S", num_args = 1.., value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Training shots per class. Default: the config's (16).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub shots: Option<u64>,
    /// Training epochs. Default: the config's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Learning rate. Default: the config's.
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Evaluation batch size. Default: the config's (100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_batch_size: Option<u64>,
    /// Device index (GPU ordinal for cuda/wgpu; ignored on CPU backends).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub device: usize,
    /// Precision of the frozen CLIP: f32, f16 (wgpu, cuda, flex) or bf16 (cuda, flex).
    /// Half runs CLIP's blocks in half; prompts, optimizer and loss stay f32.
    /// Default: the config's (f32).
    #[arg(long, value_name = "P")]
    pub precision: Option<Precision>,
    /// Stop once this many epochs of a run are done (the same command without it continues).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_after: Option<u64>,
}

/// The reference preset of `method` for `protocol`.
pub fn preset(method: Method, protocol: Protocol) -> RunConfig {
    match (method, protocol) {
        (Method::Maple, Protocol::Xd | Protocol::Dg) => RunConfig::cross_dataset(),
        (m, _) => RunConfig::preset(m),
    }
}

/// The config of a command: `--config` (whose method must be `--method`'s when both are
/// given), else the reference preset of the method and protocol; then the overrides.
/// Everything is validated before any model is loaded.
pub fn load_config(common: &Common, protocol: Protocol) -> Result<RunConfig> {
    let mut config = match (&common.config, common.method) {
        (Some(path), method) => {
            let c = RunConfig::load(path)?;
            if let Some(MethodArg::Learner(m)) = method {
                if c.learner.method() != m {
                    bail!(
                        "--config {} configures {}, but --method is {m}",
                        path.display(),
                        c.learner.method()
                    );
                }
            }
            c
        }
        (None, Some(MethodArg::Learner(m))) => preset(m, protocol),
        (None, _) => preset(Method::Maple, protocol),
    };
    apply_overrides(common, &mut config)?;
    Ok(config)
}

/// Applies the command-line overrides to `config` and validates it.
pub fn apply_overrides(common: &Common, config: &mut RunConfig) -> Result<()> {
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
        config.shots = usize::try_from(k).context("--shots")?;
    }
    if let Some(e) = common.epochs {
        config.optim.max_epoch = usize::try_from(e).context("--epochs")?;
    }
    if let Some(lr) = common.lr {
        config.optim.lr = lr;
    }
    if let Some(b) = common.test_batch_size {
        config.test_batch_size = usize::try_from(b).context("--test-batch-size")?;
    }
    if let Some(p) = common.precision {
        config.precision = p;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    Ok(())
}

/// The `--data-root`, which must be a folder.
pub fn data_root(common: &Common) -> Result<PathBuf> {
    let root = common.data_root.clone().context(
        "--data-root DIR is required: the folder holding the dataset folders (eurosat/, imagenet/, ...)",
    )?;
    if !root.is_dir() {
        bail!("--data-root {}: not a folder", root.display());
    }
    Ok(root)
}

/// The project's toy CLIP: `weights/toy-clip.safetensors` in the working folder when it is
/// there, else in the source tree this binary was built from.
pub fn toy_weights() -> String {
    let local = Path::new("weights/toy-clip.safetensors");
    if local.is_file() {
        return local.display().to_string();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights/toy-clip.safetensors")
        .display()
        .to_string()
}

/// The default output folder of a command: `output/<command>/<method>/<config>`.
pub fn default_output(command: &str, method: &str, config: &RunConfig) -> PathBuf {
    Path::new("output")
        .join(command)
        .join(method)
        .join(&config.name)
}
