//! Zero-shot classification of image files against class names given on the command line.
//!
//! ```text
//! cargo run --release --example zero_shot -- --classes "red striped triangle,blue dotted circle" img1.png img2.jpg
//! cargo run --release --example zero_shot -- --weights openai/clip-vit-base-patch16 --classes dog,cat photo.jpg
//! ```
//!
//! Default weights: the project's toy CLIP (`weights/toy-clip.safetensors`), so it runs offline.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use clap::Parser;
use maple_burn::backend::{self, Backend};
use maple_burn::clip_model::preprocess::{load_rgb, TestTransform};
use maple_burn::clip_model::tokenizer::Tokenizer;
use maple_burn::clip_model::{resolve_weights, Clip, ZeroShotClassifier};

#[derive(Parser)]
#[command(about = "Zero-shot CLIP: classify images against class names")]
struct Args {
    /// Class names, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    classes: Vec<String>,
    /// Prompt template with `{}` for the class name.
    #[arg(long, default_value = "a photo of a {}.")]
    template: String,
    /// CLIP weights: a safetensors file, a folder, or a hub id (owner/name).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/toy-clip.safetensors"))]
    weights: String,
    /// How many top classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Device index (GPU backends).
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let _ui = maple_ui::terminal();
    let args = Args::parse();
    let device = backend::device(args.device);
    backend::probe(&device)?;
    let resolved = resolve_weights(&args.weights)?;
    let (clip, config) = Clip::<Backend>::from_safetensors(&resolved.weights, &device)
        .with_context(|| format!("loading {}", resolved.origin))?;
    let classes: Vec<String> = args
        .classes
        .iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if classes.is_empty() {
        bail!("--classes must name at least one class");
    }
    let zs = ZeroShotClassifier::new(
        &clip,
        &Tokenizer::new(),
        &classes,
        &[args.template.as_str()],
    )?;
    let size = config.image_resolution as u32;
    let transform = TestTransform::new(size);
    println!(
        "device: {} | weights: {} | {} classes",
        backend::describe(&device),
        resolved.origin,
        classes.len()
    );
    for path in &args.images {
        let img = load_rgb(path)?;
        let pixels = transform.apply(&img);
        let images = Tensor::<Backend, 4>::from_data(
            TensorData::new(pixels, [1, 3, size as usize, size as usize]),
            &device,
        );
        let probs = zs
            .probabilities(&clip, images)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 probabilities");
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        println!("{}", path.display());
        for &i in order.iter().take(args.top) {
            println!("  {:>6.2}%  {}", 100.0 * probs[i], classes[i]);
        }
    }
    Ok(())
}
