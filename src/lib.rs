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
#![warn(missing_docs)]

pub mod backend;

pub use burn;

pub use clip_model;
pub use datasets;
pub use maple_prompts;
pub use trainer;
