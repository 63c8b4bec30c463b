//! maple-burn inside your own Burn program: load CLIP, prompt-tune MaPLe on your images and
//! class names (one `train_step` per batch), save, load, classify. Offline on the toy CLIP,
//! with images rendered by the procedural world: `cargo run --release --example embed`.
use maple_burn::backend::{device, TrainBackend as B};
use maple_burn::clip_model::{preprocess::TestTransform, tokenizer::Tokenizer, Clip};
use maple_burn::datasets::procedural::{Colour::*, Shape::Circle, Texture::Solid, *};
use maple_burn::maple_prompts::checkpoint::{load_checkpoint, save_checkpoint, CheckpointState};
use maple_burn::maple_prompts::*;

const TOY_CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/toy-clip.safetensors");

fn main() -> anyhow::Result<()> {
    let (device, tokenizer) = (device(0), Tokenizer::new());
    let config = MapleConfig::new().with_depth(2); // the toy CLIP has 2 text blocks
    let clip = Clip::<B>::pretrained(TOY_CLIP, &device)?;
    let mut model = PromptedClip::new(clip.clone(), Maple::new(&config, &clip, &tokenizer)?);
    // Your class names, images and labels: here 2 classes and 8 rendered images.
    let kinds = [Red, Blue].map(|c| Class::new(c, Solid, Circle));
    let names: Vec<String> = kinds.iter().map(Class::name).collect();
    let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
    let render_one = |(i, &y): (usize, &usize)| render(kinds[y], Style::Downstream, 64, i as u64);
    let images: Vec<_> = labels.iter().enumerate().map(render_one).collect();
    let size = clip.config.image_resolution as u32;
    let batch = TestTransform::new(size).batch::<B>(&images, &device);
    let classes = model.classes(&tokenizer, &names)?;
    let mut sgd = Sgd::new(SgdConfig::default());
    for step in 1..=5 {
        let out = model.train_step(&mut sgd, 0.02, batch.clone(), &labels, &classes)?;
        println!("step {step}: loss {:.4}", out.loss);
    }
    let path = std::env::temp_dir().join("maple-embed-example.safetensors");
    let state = CheckpointState::new(model.learner.settings(), names.clone());
    save_checkpoint::<B, _>(&path, &model.learner, &state)?;
    let (learner, state) = load_checkpoint::<B, _>(&path, Maple::new(&config, &clip, &tokenizer)?)?;
    let model = PromptedClip::new(clip, learner).valid();
    let classes = model.classes(&tokenizer, &state.class_names)?;
    let predicted = predictions(model.forward(batch.inner(), &classes)?);
    println!("{names:?}: predicted {predicted:?}, true {labels:?}");
    Ok(())
}
