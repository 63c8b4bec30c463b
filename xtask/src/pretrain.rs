//! `cargo xtask pretrain-toy-clip`: contrastive pretraining of the small CLIP of the
//! procedural world (`datasets::procedural`), written to `weights/toy-clip.*`.
//!
//! The recipe is CLIP's: symmetric InfoNCE over a batch of (image, caption) pairs with a
//! learnable logit scale (clamped at 100), AdamW with linear warm-up and cosine decay.
//! Batches hold pairwise different classes in the pretraining style (see the
//! `procedural` module docs for why every class, but only that style, is pretrained on).
//! At the end the saved (f16) file is loaded back and scored zero-shot on the
//! downstream dataset, base and novel classes separately, in both styles.
//!
//! The defaults are the recipe that produced the shipped weights: about 6 to 8 minutes
//! on 2 CPU cores in release with the ndarray backend (0.35 to 0.45 s per step).
//! Burn's CPU training is not bitwise deterministic (summation order), so a rerun gives
//! a slightly different file (sha256) with the same accuracies to about a point.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend as BackendTrait;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use maple_burn::backend::{self, Backend, TrainBackend};
use maple_burn::clip_model::export::{save_openai_safetensors, ExportDtype};
use maple_burn::clip_model::preprocess::{extend_chw_normalized, Normalize};
use maple_burn::clip_model::tokenizer::Tokenizer;
use maple_burn::clip_model::{l2_normalize, Clip, ClipConfig, ZeroShotClassifier};
use maple_burn::datasets::procedural::{self, Downstream, DownstreamConfig, Item, Style};
use maple_burn::datasets::SourceDigest;
use serde::Serialize;

/// Arguments of `pretrain-toy-clip`; the defaults are the documented recipe.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct Args {
    /// Seed of the initial weights and of every pretraining batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Image-caption pairs per step (all of different classes up to 144).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear warm-up steps before the cosine decay.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Image side in pixels.
    #[arg(long, default_value_t = procedural::DEFAULT_SIDE as usize)]
    pub image_size: usize,
    /// ViT patch side in pixels.
    #[arg(long, default_value_t = 8)]
    pub patch: usize,
    /// Residual width of the image tower (a multiple of 64; heads = width / 64).
    #[arg(long, default_value_t = 64)]
    pub vision_width: usize,
    /// Residual blocks of the image tower.
    #[arg(long, default_value_t = 4)]
    pub vision_layers: usize,
    /// Residual width of the text tower (a multiple of 64; heads = width / 64).
    #[arg(long, default_value_t = 64)]
    pub text_width: usize,
    /// Residual blocks of the text tower.
    #[arg(long, default_value_t = 2)]
    pub text_layers: usize,
    /// Joint embedding dimension.
    #[arg(long, default_value_t = 64)]
    pub embed_dim: usize,
    /// Downstream classes per half for the zero-shot evaluation.
    #[arg(long, default_value_t = 12)]
    pub classes_per_half: usize,
    /// Downstream test images per class for the zero-shot evaluation.
    #[arg(long, default_value_t = 50)]
    pub test_per_class: usize,
    /// Also evaluate zero-shot every this many steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Output folder (relative paths are relative to the workspace root).
    #[arg(long, default_value = "weights")]
    pub out_dir: PathBuf,
    /// Base name of the written files.
    #[arg(long, default_value = "toy-clip")]
    pub name: String,
    /// Only score this weights file zero-shot (no training, nothing written).
    #[arg(long)]
    #[serde(skip)]
    pub evaluate: Option<PathBuf>,
}

/// Pretrains the toy CLIP, evaluates it and writes it with its metadata.
pub fn run(args: Args) -> Result<()> {
    let device = backend::device(0);
    let out_dir = workspace_path(&args.out_dir);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let config = ClipConfig::new(
        args.embed_dim,
        args.image_size,
        args.vision_layers,
        args.vision_width,
        args.vision_width / 64,
        args.patch,
        77,
        49408,
        args.text_width,
        args.text_width / 64,
        args.text_layers,
    );
    anyhow::ensure!(
        [args.vision_width, args.text_width]
            .iter()
            .all(|w| *w > 0 && w.is_multiple_of(64)),
        "widths must be positive multiples of 64 (heads = width / 64)"
    );
    anyhow::ensure!(
        args.patch > 0 && args.image_size.is_multiple_of(args.patch),
        "--image-size must be a multiple of --patch"
    );
    let tokenizer = Tokenizer::new();
    let downstream = Downstream::new(&DownstreamConfig {
        classes_per_half: args.classes_per_half,
        train_per_class: 0,
        test_per_class: args.test_per_class,
        side: args.image_size as u32,
        seed: args.seed.wrapping_add(1),
    })?;
    println!("backend: {}", backend::describe(&device));
    if let Some(path) = &args.evaluate {
        let (clip, file_config) = Clip::<Backend>::from_safetensors(path, &device)?;
        let downstream = Downstream::new(&DownstreamConfig {
            side: file_config.image_resolution as u32,
            ..downstream.config.clone()
        })?;
        let scores = evaluate(&clip, &tokenizer, &downstream)?;
        println!("{}: {}", path.display(), scores.summary());
        return Ok(());
    }
    println!(
        "model: image {}px/{} vision {}x{} text {}x{} embed {}; {} steps x {} pairs, lr {}, seed {}",
        args.image_size,
        args.patch,
        args.vision_layers,
        args.vision_width,
        args.text_layers,
        args.text_width,
        args.embed_dim,
        args.steps,
        args.batch,
        args.lr,
        args.seed
    );

    TrainBackend::seed(&device, args.seed);
    let mut clip = Clip::<TrainBackend>::init(&config, &device).map(&mut Trainable);
    // CLIP's AdamW settings (beta2 0.98, eps 1e-6): steadier than 0.999 for small batches.
    let mut optim = AdamWConfig::new()
        .with_beta_2(0.98)
        .with_epsilon(1e-6)
        .with_weight_decay(args.weight_decay as f32)
        .init::<TrainBackend, Clip<TrainBackend>>();
    let loss_fn = CrossEntropyLossConfig::new().init::<TrainBackend>(&device);

    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let mut smoothed = None::<f64>;
    for step in 0..args.steps {
        let lr = learning_rate(&args, step);
        let batch =
            procedural::pretrain_batch(args.seed, step as u64, args.batch, args.image_size as u32);
        let captions: Vec<&str> = batch.iter().map(|b| b.caption.as_str()).collect();
        let rows = tokenizer.tokenize_batch(&captions, 77, false)?;
        let mut pixels = Vec::new();
        for item in &batch {
            extend_chw_normalized(&item.image, &Normalize::default(), &mut pixels);
        }
        let images = images_tensor::<TrainBackend>(pixels, args.image_size, &device);

        let image_features = l2_normalize(clip.visual.forward(images));
        let text_features = l2_normalize(clip.text.forward(&rows, &device));
        // CLIP clamps the learnable temperature so that logits stay below 100.
        let scale = clip
            .logit_scale
            .val()
            .clamp_max(100f32.ln())
            .exp()
            .unsqueeze_dim::<2>(0);
        let logits = image_features.matmul(text_features.transpose()) * scale;
        let n = batch.len();
        let targets = Tensor::<TrainBackend, 1, Int>::arange(0..n as i64, &device);
        let loss = (loss_fn.forward(logits.clone(), targets.clone())
            + loss_fn.forward(logits.transpose(), targets))
            / 2.0;

        let value: f64 = loss.clone().into_scalar().elem();
        anyhow::ensure!(value.is_finite(), "loss diverged at step {step}: {value}");
        let grads = GradientsParams::from_grads(loss.backward(), &clip);
        clip = optim.step(lr, clip, grads);

        let ema = smoothed.map_or(value, |s| 0.95 * s + 0.05 * value);
        smoothed = Some(ema);
        bar.set_message(format!("loss {ema:.3} lr {lr:.1e}"));
        bar.inc(1);
        if bar.is_hidden() && (step + 1) % 100 == 0 {
            // No terminal (a log file, CI): a line every 100 steps instead of the bar.
            println!(
                "step {}/{}: loss {ema:.3} ({:.0} s)",
                step + 1,
                args.steps,
                start.elapsed().as_secs_f64()
            );
        }
        if args.eval_every > 0 && ((step + 1) % args.eval_every == 0 || step + 1 == args.steps) {
            let scores = evaluate(&clip.valid(), &tokenizer, &downstream)?;
            // `suspend` rather than `println`: the latter is silent when stdout is not a terminal.
            bar.suspend(|| println!("step {}: loss {ema:.3}  {}", step + 1, scores.summary()));
        }
    }
    bar.finish();
    let train_seconds = start.elapsed().as_secs_f64();
    let final_loss = smoothed.unwrap_or(f64::NAN);
    println!("pretrained in {train_seconds:.0} s, final loss (EMA) {final_loss:.4}");

    let weights = out_dir.join(format!("{}.safetensors", args.name));
    save_openai_safetensors(&clip.valid(), &weights, ExportDtype::F16)?;
    // Score what ships: the f16 file, loaded back as any user would.
    let (loaded, loaded_config) = Clip::<Backend>::from_safetensors(&weights, &device)?;
    anyhow::ensure!(
        loaded_config == config,
        "the saved file infers {loaded_config:?}, not {config:?}"
    );
    let scores = evaluate(&loaded, &tokenizer, &downstream)?;
    let bytes = std::fs::read(&weights)?;
    let sha256 = SourceDigest::of_bytes("", &bytes).sha256;

    println!();
    println!(
        "zero-shot accuracy (\"{}\", {} test images per class)",
        procedural::ZERO_SHOT_TEMPLATE,
        args.test_per_class
    );
    println!("| style      | base  | novel | HM    |");
    println!("|------------|-------|-------|-------|");
    for (name, s) in [
        ("downstream", scores.downstream),
        ("pretrain", scores.pretrain),
    ] {
        println!(
            "| {name:<10} | {:5.1} | {:5.1} | {:5.1} |",
            100.0 * s.base,
            100.0 * s.novel,
            100.0 * s.hm()
        );
    }
    println!(
        "wrote {} ({} bytes, sha256 {sha256})",
        weights.display(),
        bytes.len()
    );

    let meta = serde_json::json!({
        "file": weights.file_name().map(|f| f.to_string_lossy().into_owned()),
        "sha256": sha256,
        "bytes": bytes.len(),
        "dtype": "f16",
        "naming": "openai",
        "command": "cargo xtask pretrain-toy-clip",
        "recipe": &args,
        "seed": args.seed,
        "clip_config": {
            "embed_dim": config.embed_dim,
            "image_resolution": config.image_resolution,
            "vision_layers": config.vision_layers,
            "vision_width": config.vision_width,
            "vision_heads": config.vision_heads,
            "vision_patch_size": config.vision_patch_size,
            "context_length": config.context_length,
            "vocab_size": config.vocab_size,
            "transformer_width": config.transformer_width,
            "transformer_heads": config.transformer_heads,
            "transformer_layers": config.transformer_layers,
        },
        "final_loss": final_loss,
        "logit_scale": loaded.logit_scale.val().exp().into_scalar().elem::<f64>(),
        "train_seconds": train_seconds,
        "backend": backend::describe(&device),
        "zero_shot": {
            "template": procedural::ZERO_SHOT_TEMPLATE,
            "classes_per_half": args.classes_per_half,
            "test_per_class": args.test_per_class,
            "downstream_seed": downstream.config.seed,
            "downstream_style": scores.downstream.json(),
            "pretrain_style": scores.pretrain.json(),
        },
    });
    let json_path = out_dir.join(format!("{}.json", args.name));
    write_atomic(
        &json_path,
        format!("{}\n", serde_json::to_string_pretty(&meta)?).as_bytes(),
    )?;
    update_readme(
        &out_dir.join("README.md"),
        &args,
        &config,
        &scores,
        &sha256,
        bytes.len(),
        train_seconds,
        final_loss,
    )?;
    println!(
        "wrote {} and the {} section of {}",
        json_path.display(),
        args.name,
        out_dir.join("README.md").display()
    );
    Ok(())
}

/// Makes every float parameter trainable (clip-model creates them frozen).
struct Trainable;

impl<B: BackendTrait> ModuleMapper<B> for Trainable {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

/// Linear warm-up to `lr`, then cosine decay to zero at the last step.
fn learning_rate(args: &Args, step: usize) -> f64 {
    if step < args.warmup {
        return args.lr * (step + 1) as f64 / args.warmup as f64;
    }
    let span = args.steps.saturating_sub(args.warmup).max(1) as f64;
    let t = (step - args.warmup) as f64 / span;
    args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Normalised `[3, side, side]` images, concatenated, as a tensor.
///
/// # Shapes
/// - `pixels`: `n * 3 * side * side` values → `[n, 3, side, side]`
fn images_tensor<B: BackendTrait>(
    pixels: Vec<f32>,
    side: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let n = pixels.len() / (3 * side * side);
    Tensor::from_data(TensorData::new(pixels, [n, 3, side, side]), device)
}

#[derive(Debug, Clone, Copy)]
struct HalfScores {
    base: f64,
    novel: f64,
    /// How often the predicted class has the right colour, texture, shape (both halves).
    attributes: [f64; 3],
}

impl HalfScores {
    fn hm(&self) -> f64 {
        if self.base + self.novel > 0.0 {
            2.0 * self.base * self.novel / (self.base + self.novel)
        } else {
            0.0
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "base": self.base, "novel": self.novel, "hm": self.hm() })
    }
}

struct Scores {
    downstream: HalfScores,
    pretrain: HalfScores,
}

impl Scores {
    fn summary(&self) -> String {
        let (d, p) = (self.downstream, self.pretrain);
        let [c, t, s] = d.attributes.map(|a| 100.0 * a);
        format!(
            "zero-shot downstream base {:.1} novel {:.1} (colour {c:.0} texture {t:.0} shape {s:.0}) | pretrain-style base {:.1} novel {:.1}",
            100.0 * d.base,
            100.0 * d.novel,
            100.0 * p.base,
            100.0 * p.novel
        )
    }
}

/// Zero-shot accuracy on the downstream test items, base and novel separately (each
/// half classified among its own classes only, as in the base-to-novel protocol), in
/// the downstream style and, for reference, the same items drawn in the pretraining style.
fn evaluate(clip: &Clip<Backend>, tokenizer: &Tokenizer, ds: &Downstream) -> Result<Scores> {
    let n = ds.num_classes();
    let half = |style| -> Result<HalfScores> {
        let (base, b) = accuracy(clip, tokenizer, ds, style, 0..ds.num_base())?;
        let (novel, v) = accuracy(clip, tokenizer, ds, style, ds.num_base()..n)?;
        Ok(HalfScores {
            base,
            novel,
            attributes: [0, 1, 2].map(|i| (b[i] + v[i]) / 2.0),
        })
    };
    Ok(Scores {
        downstream: half(Style::Downstream)?,
        pretrain: half(Style::Pretrain)?,
    })
}

/// Accuracy, and how often the predicted class has the right colour, texture and shape.
fn accuracy(
    clip: &Clip<Backend>,
    tokenizer: &Tokenizer,
    ds: &Downstream,
    style: Style,
    labels: Range<usize>,
) -> Result<(f64, [f64; 3])> {
    let device = clip.device();
    let classifier = ZeroShotClassifier::new(
        clip,
        tokenizer,
        &ds.class_names[labels.clone()],
        &[procedural::ZERO_SHOT_TEMPLATE],
    )?;
    let items: Vec<Item> = ds
        .test
        .iter()
        .copied()
        .filter(|it| labels.contains(&it.label))
        .collect();
    let side = ds.config.side;
    let (mut correct, mut attributes) = (0usize, [0usize; 3]);
    for chunk in items.chunks(256) {
        let mut pixels = Vec::new();
        for it in chunk {
            let img = procedural::render(ds.classes[it.label], style, side, it.seed);
            extend_chw_normalized(&img, &Normalize::default(), &mut pixels);
        }
        let x = images_tensor::<Backend>(pixels, side as usize, &device);
        let pred = classifier
            .logits(clip, x)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .map_err(|e| anyhow::anyhow!("reading predictions: {e:?}"))?;
        for (it, &p) in chunk.iter().zip(&pred) {
            let (truth, guess) = (ds.classes[it.label], ds.classes[labels.start + p as usize]);
            correct += usize::from(truth == guess);
            attributes[0] += usize::from(truth.colour == guess.colour);
            attributes[1] += usize::from(truth.texture == guess.texture);
            attributes[2] += usize::from(truth.shape == guess.shape);
        }
    }
    let n = items.len().max(1) as f64;
    Ok((correct as f64 / n, attributes.map(|a| a as f64 / n)))
}

/// Resolves a relative path against the workspace root (xtask's parent folder).
fn workspace_path(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace")
            .join(p)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Replaces (or appends) the `## <name>.safetensors` section of the weights README,
/// keeping every other section.
#[allow(clippy::too_many_arguments)]
fn update_readme(
    path: &Path,
    args: &Args,
    config: &ClipConfig,
    scores: &Scores,
    sha256: &str,
    bytes: usize,
    train_seconds: f64,
    final_loss: f64,
) -> Result<()> {
    let heading = format!("## {}.safetensors", args.name);
    let mut s = String::new();
    let _ = writeln!(s, "{heading}");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "A small CLIP pretrained by this project on its procedural world \
         (`datasets::procedural`: 6 colours × 4 textures × 6 shapes = 144 classes), so that \
         `cargo run --release --example base_to_novel` runs offline. It is made by \
         `cargo xtask pretrain-toy-clip` (defaults = the recipe below) and is licensed like \
         the project. OpenAI naming, f16; loads with `Clip::from_safetensors`."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- Model: {}×{} px images, patch {}, vision {} layers × width {}, text {} layers × width {}, \
         embed {}, context 77, the CLIP BPE vocabulary (49408 rows).",
        config.image_resolution,
        config.image_resolution,
        config.vision_patch_size,
        config.vision_layers,
        config.vision_width,
        config.transformer_layers,
        config.transformer_width,
        config.embed_dim
    );
    let _ = writeln!(
        s,
        "- Data: captioned images of all 144 classes in the pretraining style only (light plain \
         backgrounds); {} caption templates; each batch holds {} pairwise different classes. \
         The downstream dataset uses the other style (noisy gradient backgrounds, distractors).",
        procedural::CAPTION_TEMPLATES.len(),
        args.batch
    );
    let _ = writeln!(
        s,
        "- Recipe: symmetric InfoNCE with a learnable logit scale (clamped at 100), AdamW \
         (beta2 0.98, eps 1e-6, weight decay {}), peak lr {} with {} warm-up steps and cosine decay, {} steps, seed {}.",
        args.weight_decay, args.lr, args.warmup, args.steps, args.seed
    );
    let _ = writeln!(
        s,
        "- Run: {:.0} s on 2 CPU cores (ndarray, release); final loss (EMA) {:.3}.",
        train_seconds, final_loss
    );
    let _ = writeln!(
        s,
        "- File: {bytes} bytes, sha256 `{sha256}`; details in `{}.json`.",
        args.name
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Zero-shot accuracy (%) of the saved file, prompt \"{}\", {} + {} downstream classes, {} test images each \
         (each half classified among its own classes):",
        procedural::ZERO_SHOT_TEMPLATE,
        args.classes_per_half,
        args.classes_per_half,
        args.test_per_class
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| style | base | novel | HM |");
    let _ = writeln!(s, "|---|---|---|---|");
    for (name, h) in [
        ("downstream", scores.downstream),
        ("pretraining (same items)", scores.pretrain),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {:.1} | {:.1} | {:.1} |",
            100.0 * h.base,
            100.0 * h.novel,
            100.0 * h.hm()
        );
    }

    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Weights\n\nWeights shipped with the project (small) or where to get them (large), \
         with their sources, licences and sha256.\n"
            .to_string()
    });
    let new = match old.find(&heading) {
        Some(start) => {
            let rest = &old[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(old.len(), |i| start + heading.len() + i + 1);
            format!(
                "{}{}{}{}",
                &old[..start],
                s,
                if end < old.len() { "\n" } else { "" },
                &old[end..]
            )
        }
        None => format!("{}\n{}", old.trim_end_matches('\n').to_string() + "\n", s),
    };
    write_atomic(path, new.as_bytes())
}
