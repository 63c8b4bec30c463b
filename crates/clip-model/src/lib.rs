//! CLIP in Burn: the ViT image tower and the causal text tower, the exact CLIP BPE
//! tokenizer, Pillow-exact preprocessing, weight loading (OpenAI and Hugging Face naming,
//! safetensors, the Hugging Face hub) and zero-shot classification.
//!
//! Every model type is generic over `B: Backend`; this crate chooses no backend.
//! Prompt-learning methods reach inside the encoders only through the staged entry points
//! ([`VisionTransformer::embed`] / [`VisionTransformer::encode_tokens`],
//! [`TextTransformer::embed_tokens`] / [`TextTransformer::encode_embeddings`]) and the
//! per-block [`BlockHook`]; this crate knows no prompt method.
#![warn(missing_docs)]

pub mod atomic;
pub mod block;
pub mod clip;
pub mod config;
pub mod error;
pub mod export;
pub mod hook;
pub mod host;
pub mod hub;
pub mod ops;
pub mod precision;
pub mod preprocess;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;
pub mod zeroshot;

pub use clip::Clip;
pub use config::ClipConfig;
pub use error::{ClipError, Result};
pub use hook::{BlockHook, DeepPrompts, NoHook, PromptAnchor};
pub use host::HostTensor;
pub use hub::{resolve_weights, ResolvedWeights};
pub use ops::l2_normalize;
pub use precision::{ParsePrecisionError, Precision};
pub use text::{eot_positions, TextTransformer};
pub use vision::VisionTransformer;
pub use weights::{read_clip_weights, Naming, TensorMap};
pub use zeroshot::ZeroShotClassifier;
