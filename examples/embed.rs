//! maple-burn inside your own Burn program: load CLIP, prompt-tune MaPLe on your images and
//! class names (one `train_step` per batch), save, load, classify. Runs offline on the toy
//! CLIP (images rendered by the procedural world): `cargo run --release --example embed`.
use anyhow::Result;
use maple_burn::backend::{device, TrainBackend as B};
use maple_burn::clip_model::{preprocess::TestTransform, tokenizer::Tokenizer, Clip};
use maple_burn::datasets::procedural::{render, Class, Colour, Shape, Style, Texture};
use maple_burn::maple_prompts::checkpoint::{load_checkpoint, save_checkpoint, CheckpointState};
use maple_burn::maple_prompts::{Maple, MapleConfig, PromptLearner, PromptedClip, Sgd, SgdConfig};

fn main() -> Result<()> {
    let device = device(0);
    let clip = Clip::<B>::pretrained(
        concat!(env!("CARGO_MANIFEST_DIR"), "/weights/toy-clip.safetensors"),
        &device,
    )?;
    let (tokenizer, config) = (Tokenizer::new(), MapleConfig::new().with_depth(2));
    let mut model = PromptedClip::new(clip.clone(), Maple::new(&config, &clip, &tokenizer)?);
    // Your class names, images and labels (here: two classes, four rendered images each).
    let kinds = [(Colour::Red, Shape::Circle), (Colour::Blue, Shape::Square)];
    let names: Vec<String> = kinds
        .iter()
        .map(|&(c, s)| Class::new(c, Texture::Solid, s).name())
        .collect();
    let (images, labels): (Vec<_>, Vec<usize>) = (0..8u64)
        .map(|i| {
            let (c, s) = kinds[i as usize % 2];
            (
                render(Class::new(c, Texture::Solid, s), Style::Downstream, 224, i),
                i as usize % 2,
            )
        })
        .unzip();
    let transform = TestTransform::new(clip.config.image_resolution as u32);
    let batch = transform.batch::<B>(&images, &device);
    let classes = model.classes(&tokenizer, &names)?;
    let mut sgd = Sgd::new(SgdConfig::default());
    for step in 1..=5 {
        let out = model.train_step(&mut sgd, 0.02, batch.clone(), &labels, &classes)?;
        println!("step {step}: loss {:.4}", out.loss);
    }
    let path = std::env::temp_dir().join("maple-embed-example.safetensors");
    save_checkpoint::<B, _>(
        &path,
        &model.learner,
        &CheckpointState::new(model.learner.settings(), names.clone()),
    )?;
    let (learner, state) = load_checkpoint::<B, _>(&path, Maple::new(&config, &clip, &tokenizer)?)?;
    let model = PromptedClip::new(clip, learner).valid();
    let probs = model.probabilities(
        transform.batch(&images, &device),
        &model.classes(&tokenizer, &state.class_names)?,
    )?;
    for (i, p) in probs
        .to_data()
        .to_vec::<f32>()?
        .chunks(names.len())
        .enumerate()
    {
        println!("image {i} (label {}): {p:.3?}", names[labels[i]]);
    }
    Ok(())
}
