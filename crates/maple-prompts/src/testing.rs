//! Test support: a tiny random CLIP (2 text blocks, 3 vision blocks) on NdArray.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, ClipConfig};

/// The inference test backend.
pub(crate) type Tb = NdArray<f32>;
/// The training test backend.
pub(crate) type Ta = Autodiff<Tb>;

/// A tiny random CLIP config: embed 32, 32 px images of 8 px patches, vision width 48 with
/// 3 blocks, text width 32 with 2 blocks.
pub(crate) fn tiny_config() -> ClipConfig {
    ClipConfig::new(32, 32, 3, 48, 2, 8, 77, 49408, 32, 2, 2)
}

/// A tiny random CLIP on backend `B`.
pub(crate) fn tiny_clip_on<B: Backend>() -> Clip<B> {
    Clip::init(&tiny_config(), &Default::default())
}

/// A tiny random CLIP on NdArray and the CLIP tokenizer.
pub(crate) fn tiny_clip() -> (Clip<Tb>, Tokenizer) {
    (tiny_clip_on::<Tb>(), Tokenizer::new())
}
