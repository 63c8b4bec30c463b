//! maple-burn: CLIP and MaPLe (multi-modal prompt learning, CVPR 2023) in Rust on Burn,
//! with the comparison methods of the paper (CoOp, Co-CoOp, IVLP, VPT).
//!
//! This facade re-exports the workspace crates, and [`backend`] picks the Burn backend by
//! cargo feature (`ndarray` (default), `flex`, `wgpu`, `cuda`) for binaries and examples:
//!
//! - [`clip_model`]: CLIP towers, tokenizer, preprocessing, weight loading, zero-shot.
//! - [`maple_prompts`]: prompt learners on a frozen CLIP, `train_step`, SGD, checkpoints.
//! - [`datasets`]: the benchmark readers, few-shot sampling, transforms, loading.
//! - [`trainer`]: the training loop, evaluation, protocols and results.
//!
//! Prompt-tuning CLIP on your own images and class names takes one `train_step` per batch
//! (forward, loss, backward, SGD update of the prompts; CLIP stays frozen):
//!
//! ```
//! use maple_burn::backend::{device, TrainBackend as B};
//! use maple_burn::clip_model::{preprocess::TestTransform, tokenizer::Tokenizer, Clip};
//! use maple_burn::datasets::procedural::{render, Class, Colour, Shape, Style, Texture};
//! use maple_burn::maple_prompts::{predictions, Maple, MapleConfig, PromptedClip, Sgd, SgdConfig};
//!
//! # fn main() -> anyhow::Result<()> {
//! let device = device(0);
//! let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/toy-clip.safetensors");
//! let clip = Clip::<B>::pretrained(weights, &device)?; // a file, a folder or a hub id
//! let tokenizer = Tokenizer::new();
//! let learner = Maple::new(&MapleConfig::new().with_depth(2), &clip, &tokenizer)?;
//! let mut model = PromptedClip::new(clip, learner);
//!
//! let kinds = [Colour::Red, Colour::Blue].map(|c| Class::new(c, Texture::Solid, Shape::Circle));
//! let names: Vec<String> = kinds.iter().map(Class::name).collect();
//! let labels = vec![0, 1, 0, 1];
//! let images: Vec<_> = (0..4).map(|i| render(kinds[i % 2], Style::Downstream, 64, i as u64)).collect();
//! let images = TestTransform::new(32).batch::<B>(&images, &device);
//!
//! let classes = model.classes(&tokenizer, &names)?;
//! let mut sgd = Sgd::new(SgdConfig::default());
//! let first = model.train_step(&mut sgd, 0.02, images.clone(), &labels, &classes)?;
//! let second = model.train_step(&mut sgd, 0.02, images.clone(), &labels, &classes)?;
//! assert!(second.loss < first.loss);
//!
//! let eval = model.valid(); // no autodiff
//! let logits = eval.forward(images.inner(), &eval.classes(&tokenizer, &names)?)?;
//! assert_eq!(predictions(logits).len(), 4);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embed.rs` adds saving and loading; `trainer::train` runs whole trainings.
#![warn(missing_docs)]

pub mod backend;

pub use burn;

pub use clip_model;
pub use datasets;
pub use maple_prompts;
pub use trainer;
