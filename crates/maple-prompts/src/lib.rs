//! Prompt learners on a frozen CLIP, built only on clip-model's public hook API.
//!
//! - [`PromptLearner`]: what a method gives each tower ([`TextPrompts`], [`VisionPrompts`]);
//!   [`CoOp`], [`CoCoOp`], [`Ivlp`], [`Vpt`] and [`Maple`] implement it, [`AnyLearner`]
//!   holds a learner of any method chosen at run time from a [`MethodConfig`].
//! - [`PromptedClip`]: frozen CLIP + learner: features, logits, probabilities and
//!   [`PromptedClip::train_step`] (loss, gradients and an SGD update in one call).
//! - [`Sgd`], [`LrSchedule`]: the reference's optimizer and per-epoch schedule.
//! - [`checkpoint`]: learner-only checkpoints, and import of the reference
//!   implementation's own checkpoints through [`torch_pickle`] (no code execution).
//!
//! ```no_run
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::Tensor;
//! use maple_prompts::clip_model::{tokenizer::Tokenizer, Clip};
//! use maple_prompts::{Maple, MapleConfig, PromptedClip, Sgd, SgdConfig};
//!
//! # fn main() -> maple_prompts::Result<()> {
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let clip = Clip::<B>::pretrained("weights/toy-clip.safetensors", &device)?;
//! let tokenizer = Tokenizer::new();
//! let learner = Maple::new(&MapleConfig::new().with_depth(2), &clip, &tokenizer)?;
//! let mut model = PromptedClip::new(clip, learner);
//! let classes = model.classes(&tokenizer, &["cat".into(), "dog".into()])?;
//! let mut sgd = Sgd::new(SgdConfig::default());
//! let images = Tensor::<B, 4>::zeros([2, 3, 64, 64], &device);
//! let step = model.train_step(&mut sgd, 0.01, images, &[0, 1], &classes)?;
//! println!("loss {}", step.loss);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cocoop;
pub mod context;
pub mod coop;
pub mod error;
pub mod ivlp;
pub mod learner;
pub mod maple;
pub mod method;
pub mod optim;
mod path;
pub mod prompted;
pub mod reference_names;
#[cfg(test)]
mod testing;
pub mod torch_pickle;
pub mod vpt;

pub use clip_model;
pub use cocoop::{CoCoOp, CoCoOpConfig, MetaNet};
pub use coop::{ClassTokenPosition, CoOp, CoOpConfig};
pub use error::{MapleError, Result};
pub use ivlp::{Ivlp, IvlpConfig};
pub use learner::{no_deep, ClassTokens, PromptLearner, TextPrompts, VisionPrompts};
pub use maple::{Maple, MapleConfig};
pub use method::{AnyLearner, Method, MethodConfig};
pub use optim::{LrSchedule, Sgd, SgdConfig};
pub use prompted::{cross_entropy, predictions, PromptedClip, StepOutput, F16_LOSS_SCALE};
pub use vpt::{Vpt, VptConfig};
