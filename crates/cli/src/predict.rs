//! `maple predict`: classify image files with a trained learner (ours or the reference's)
//! against class names given on the command line or in a file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use maple_burn::backend::{self, Backend};
use maple_burn::clip_model::preprocess::{load_rgb, TestTransform};
use maple_burn::maple_prompts::PromptedClip;
use maple_burn::trainer::protocol::import::find_checkpoint;
use maple_burn::trainer::train::learner_file::checkpoint_method;
use maple_burn::trainer::train::load_learner;
use maple_burn::trainer::{Backbone, SeedResult};
use maple_ui::Bars;
use serde::Serialize;

use crate::args::{preset, MethodArg};

/// Images classified per forward pass.
const BATCH: usize = 16;

/// `maple predict` arguments.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A learner checkpoint: a file (learner-epochN.safetensors or a reference
    /// model.pth.tar-N) or a run folder holding one (the latest epoch is taken).
    #[arg(long, value_name = "FILE|DIR")]
    checkpoint: PathBuf,
    /// Class names, comma separated, or a text file with one class name per line.
    #[arg(long, value_name = "NAMES|FILE")]
    classes: String,
    /// CLIP weights (file, folder or hub id). Default: the weights the run folder's
    /// result.json records.
    #[arg(long, value_name = "FILE|DIR|HUB_ID")]
    weights: Option<String>,
    /// The method, for a reference checkpoint whose tensors do not say (recognised otherwise).
    #[arg(long, value_name = "METHOD")]
    method: Option<MethodArg>,
    /// How many top classes to print per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,
    /// Print JSON (one object per image) instead of text.
    #[arg(long)]
    json: bool,
    /// Device index (GPU backends).
    #[arg(long, value_name = "N", default_value_t = 0)]
    device: usize,
    /// Precision of the frozen CLIP: f32, f16 (wgpu, cuda, flex) or bf16 (cuda, flex).
    #[arg(long, value_name = "P", default_value = "f32")]
    precision: maple_burn::clip_model::Precision,
    /// Image files (JPEG, PNG, ...).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

/// One image's prediction.
#[derive(Debug, Serialize)]
struct Prediction {
    image: String,
    top: Vec<Scored>,
}

#[derive(Debug, Serialize)]
struct Scored {
    class: String,
    probability: f64,
}

/// Class names from a file (one per line, blank lines and `#` comments skipped) or a
/// comma-separated list.
fn class_names(arg: &str) -> Result<Vec<String>> {
    let path = Path::new(arg);
    let names: Vec<String> = if path.is_file() {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading class names from {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    } else {
        arg.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    if names.is_empty() {
        bail!("--classes {arg:?}: no class names (give names separated by commas, or a file with one per line)");
    }
    Ok(names)
}

/// The weights a run folder's `result.json` records, looking in the checkpoint's folder
/// and up to two folders above it.
fn recorded_weights(checkpoint: &Path) -> Option<String> {
    checkpoint
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("result.json"))
        .find(|p| p.is_file())
        .and_then(|p| SeedResult::load(&p).ok())
        .map(|r| r.config.weights)
}

/// Runs `maple predict`.
pub fn run(args: PredictArgs, bars: &mut Bars) -> Result<()> {
    let classes = class_names(&args.classes)?;
    let path = find_checkpoint(&args.checkpoint, None)?;
    let method = match args.method {
        Some(MethodArg::Learner(m)) => m,
        Some(MethodArg::ZeroShot) => {
            bail!("--method clip has no checkpoint: use the zero_shot example for zero-shot CLIP")
        }
        None => checkpoint_method(&path)?,
    };
    let weights = match args.weights.clone().or_else(|| recorded_weights(&path)) {
        Some(w) => w,
        None => bail!(
            "--weights is required: {} is not inside a run folder whose result.json records its CLIP weights",
            path.display()
        ),
    };
    let device = backend::device(args.device);
    backend::probe(&device)?;
    bars.say(&format!(
        "device: {}; CLIP {weights}; {} learner {}",
        backend::describe(&device),
        method.display_name(),
        path.display()
    ));
    let backbone = Backbone::<Backend>::load(&weights, &device)
        .with_context(|| format!("loading CLIP weights {weights:?}"))?
        .with_precision(args.precision)?;
    let config = preset(method, maple_burn::trainer::Protocol::Base2novel);
    let loaded = load_learner(&path, &backbone, &config)?;
    let model = PromptedClip::new(backbone.clip.clone(), loaded.learner);
    let tokens = model.classes(&backbone.tokenizer, &classes)?;
    let size = backbone.config.image_resolution;
    let transform = TestTransform::new(size as u32);
    let mut out = Vec::new();
    for group in args.images.chunks(BATCH) {
        let mut pixels = Vec::with_capacity(group.len() * 3 * size * size);
        for image in group {
            let rgb = load_rgb(image).with_context(|| format!("reading {}", image.display()))?;
            pixels.extend(transform.apply(&rgb));
        }
        let images = maple_burn::burn::tensor::Tensor::<Backend, 4>::from_data(
            maple_burn::burn::tensor::TensorData::new(pixels, [group.len(), 3, size, size]),
            &device,
        );
        let probs = model
            .probabilities(images, &tokens)?
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading probabilities: {e:?}"))?;
        for (image, row) in group.iter().zip(probs.chunks(classes.len())) {
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                bail!(
                    "{}: a class probability is {v}: the weights or the learner hold NaN/inf",
                    image.display()
                );
            }
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            out.push(Prediction {
                image: image.display().to_string(),
                top: order
                    .into_iter()
                    .take(args.top as usize)
                    .map(|i| Scored {
                        class: classes[i].clone(),
                        probability: f64::from(row[i]),
                    })
                    .collect(),
            });
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &out {
            println!("{}", p.image);
            for s in &p.top {
                println!("  {:>6.2}%  {}", 100.0 * s.probability, s.class);
            }
        }
    }
    Ok(())
}
