//! maple-burn: CLIP and MaPLe (multi-modal prompt learning, CVPR 2023) in Rust on Burn.
//!
//! This facade re-exports the workspace crates and the backend chosen by cargo feature
//! (`ndarray` (default), `flex`, `wgpu`, `cuda`):
//!
//! - [`clip_model`]: CLIP towers, tokenizer, preprocessing, weight loading, zero-shot.
//! - [`maple_prompts`]: prompt learners (MaPLe) on a frozen CLIP, checkpoints.
//! - [`datasets`]: the benchmark readers, few-shot sampling, transforms, loading.
//! - [`trainer`]: training, evaluation, protocols, the `maple` CLI.
//! - [`parity`]: checks against reference fixtures (used by the tests and `cargo xtask parity`).
#![warn(missing_docs)]

pub use clip_model;
pub use datasets;
pub use maple_prompts;
pub use trainer;
pub use trainer::backend;

pub mod parity;
