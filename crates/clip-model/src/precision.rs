//! Numeric precision of the frozen CLIP: `f32`, or its blocks computing in half precision
//! (`f16`, `bf16`) behind an f32 boundary, as mixed-precision training does.
//!
//! In half precision ([`crate::Clip::with_precision`]) every block's four Linear layers
//! (q/k/v, attention output, MLP up and down: nearly all of CLIP's weights and FLOPs) are
//! stored and multiplied in half, and so are their inputs and outputs: each LayerNorm's
//! output is cast to half on its way into the attention or the MLP, and the attention's
//! and MLP's outputs are cast back before the residual addition. Half weights halve the
//! memory of CLIP; half activations halve what the backward pass keeps. What stays at the
//! model's master precision (f32 as loaded):
//!
//! - the residual streams, so that each block adds a half-precision *update* to an f32
//!   stream instead of rounding the whole stream every block (measured on the maple-tiny
//!   fixture: a half stream made the logit error 1.6× larger: 3.9e-2 against 2.4e-2);
//! - the patch embedding, class token and positions of the image tower (the base of its
//!   stream), the towers' final LayerNorm and output projection, the logit scale, the
//!   logits and the loss. The text tower's token and position tables are *stored* in half
//!   (the token table is most of the text tower's memory; a lookup rounds each value once,
//!   exactly representable for OpenAI's weights, which are released in fp16) and cast to
//!   f32 where they are looked up;
//! - the boundary: [`crate::VisionTransformer::embed`], [`crate::TextTransformer::embed_rows`]
//!   and the features of `encode_tokens`/`encode_embeddings` are f32, and hooks see the
//!   f32 stream. Prompt learners, their parameters, gradients and optimizer state therefore
//!   stay f32 (master weights); gradients flow back through the casts;
//! - the arithmetic of the LayerNorms, and the attention scores: `q k^T` is computed from
//!   half q and k into f32, scaled, masked and soft-maxed in f32, and only the
//!   probabilities go back to half for the product with the values.
//!
//! Accuracy against the fp32 reference fixture, and why its bound is what it is:
//! `testkit::parity::precision` and docs/PRECISION.md.
//!
//! Half precision needs a backend that computes in it: CubeCL (WGPU with `shaderFloat16`,
//! CUDA) and flex for f16; CUDA and flex for bf16 (WGSL has no bf16). ndarray has neither;
//! an unsupported precision is an error ([`crate::ClipError::UnsupportedPrecision`]).

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The precision the frozen CLIP computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout (the default).
    #[default]
    F32,
    /// IEEE half precision weights and activations (5-bit exponent: range ±65504).
    F16,
    /// bfloat16 weights and activations (8-bit exponent, 8-bit mantissa).
    Bf16,
}

impl Precision {
    /// Every precision, in CLI order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// The lowercase name (`f32`, `f16`, `bf16`), as serde and [`FromStr`] spell it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Burn's float dtype for this precision.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// The precision of a float dtype (`None` for f64 and others).
    pub fn from_dtype(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 | DType::Flex32 => Some(Precision::F32),
            DType::F16 => Some(Precision::F16),
            DType::BF16 => Some(Precision::Bf16),
            _ => None,
        }
    }

    /// Whether this is `F32` (serde's `skip_serializing_if` for the default).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// Whether this is a half (16-bit) precision.
    pub fn is_half(self) -> bool {
        self != Precision::F32
    }

    /// Whether backend `B` stores and computes this precision on `device` (Burn's
    /// `Backend::supports_dtype`; f32 always).
    pub fn supported<B: Backend>(self, device: &B::Device) -> bool {
        self == Precision::F32 || B::supports_dtype(device, self.float_dtype().into())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A precision name that is not `f32`, `f16` or `bf16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision `{0}`: expected f32, f16 or bf16")]
pub struct ParsePrecisionError(pub String);

impl FromStr for Precision {
    type Err = ParsePrecisionError;

    /// `f32`, `f16`, `bf16` (also PyTorch's `fp32`, `fp16`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(ParsePrecisionError(s.to_string())),
        }
    }
}

/// The dtype that accumulates for `dtype`: f32 for the half types, `dtype` itself otherwise
/// (softmax and normalisation of half activations run in it).
pub fn accumulation_dtype(dtype: DType) -> FloatDType {
    match dtype {
        DType::F16 | DType::BF16 => FloatDType::F32,
        other => other.into(),
    }
}

/// `x` in [`accumulation_dtype`] of its own dtype (f32 for half; unchanged otherwise).
pub(crate) fn upcast<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let target = accumulation_dtype(x.dtype());
    x.cast(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names round-trip through serde (lowercase), `FromStr` and `Display`; PyTorch's
    /// spellings parse; anything else is an error naming the input.
    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for p in Precision::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
            assert_eq!(Precision::from_dtype(p.float_dtype().into()), Some(p));
        }
        assert_eq!("FP16".parse::<Precision>().unwrap(), Precision::F16);
        assert_eq!("fp32".parse::<Precision>().unwrap(), Precision::F32);
        let err = "half".parse::<Precision>().unwrap_err();
        assert!(err.to_string().contains("`half`"), "{err}");
        assert!(serde_json::from_str::<Precision>("\"F16\"").is_err());
        assert_eq!(Precision::default(), Precision::F32);
    }

    /// ndarray computes neither half type; f32 is always supported.
    #[test]
    fn ndarray_supports_only_f32() {
        type B = burn::backend::NdArray<f32>;
        let device = Default::default();
        assert!(Precision::F32.supported::<B>(&device));
        assert!(!Precision::F16.supported::<B>(&device));
        assert!(!Precision::Bf16.supported::<B>(&device));
    }
    fn tiny() -> crate::ClipConfig {
        crate::ClipConfig {
            vision_width: 32,
            vision_heads: 2,
            vision_layers: 2,
            vision_patch_size: 8,
            image_resolution: 32,
            transformer_width: 32,
            transformer_heads: 2,
            transformer_layers: 2,
            context_length: 12,
            vocab_size: 64,
            embed_dim: 16,
            ..crate::ClipConfig::vit_b16()
        }
    }

    /// A backend without half arithmetic refuses half precision with an error naming the
    /// precision and the backend, and leaves nothing half behind.
    #[test]
    fn unsupported_precision_is_an_error_naming_backend() {
        type B = burn::backend::NdArray<f32>;
        let clip = crate::Clip::<B>::init(&tiny(), &Default::default());
        let err = clip.clone().with_precision(Precision::F16).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("f16") && msg.contains("ndarray"), "{msg}");
        let clip = clip.with_precision(Precision::F32).unwrap();
        assert_eq!(clip.precision(), Precision::F32);
    }

    /// f16 towers behind an f32 boundary: weights in half except LayerNorms, projections
    /// and the logit scale; features come out f32 and close to the f32 model's; gradients
    /// reach f32 deep prompts through the casts, in f32, close to the f32 model's; `F32`
    /// restores the master weights' dtype.
    #[test]
    fn half_towers_keep_an_f32_boundary_and_f32_gradients() {
        use crate::hook::{DeepPrompts, PromptAnchor};
        use burn::backend::{Autodiff, Flex};
        use burn::tensor::Distribution;
        type AB = Autodiff<Flex>;
        let device = Default::default();
        let full = crate::Clip::<AB>::init(&tiny(), &device);
        let half = full.clone().with_precision(Precision::F16).unwrap();
        assert_eq!(half.precision(), Precision::F16);
        assert_eq!(half.visual.conv1.val().dtype(), DType::F32);
        assert_eq!(
            half.visual.resblocks[1].attn.out_proj.weight.val().dtype(),
            DType::F16
        );
        assert_eq!(
            half.text.resblocks[0].mlp.c_fc.weight.val().dtype(),
            DType::F16
        );
        assert_eq!(half.text.resblocks[0].ln_1.gamma.val().dtype(), DType::F32);
        assert_eq!(half.visual.proj.val().dtype(), DType::F32);
        assert_eq!(half.logit_scale.val().dtype(), DType::F32);

        let images =
            Tensor::<AB, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let prompts: Vec<Option<Tensor<AB, 2>>> = (0..2)
            .map(|_| {
                Some(
                    Tensor::random([2, 32], Distribution::Normal(0.0, 0.5), &device).require_grad(),
                )
            })
            .collect();
        let hook = DeepPrompts {
            anchor: PromptAnchor::End,
            layers: prompts.clone(),
        };
        let run = |clip: &crate::Clip<AB>| {
            let tokens = clip.visual.embed(images.clone());
            assert_eq!(tokens.dtype(), DType::F32);
            let [b, _, w] = tokens.dims();
            let tokens = Tensor::cat(vec![tokens, Tensor::zeros([b, 2, w], &device)], 1);
            let out = clip.visual.encode_tokens(tokens, &hook);
            assert_eq!(out.dtype(), DType::F32);
            let text = clip.encode_text(&[vec![62, 5, 7, 63, 0, 0, 0, 0, 0, 0, 0, 0]]);
            assert_eq!(text.dtype(), DType::F32);
            let grads = clip.logits(out.clone(), text).sum().backward();
            let g = prompts[0].as_ref().unwrap().grad(&grads).unwrap();
            assert_eq!(g.dtype(), DType::F32);
            (
                out.into_data().to_vec::<f32>().unwrap(),
                g.into_data().to_vec::<f32>().unwrap(),
            )
        };
        let (f_full, g_full) = run(&full);
        let (f_half, g_half) = run(&half);
        let rel = |a: &[f32], b: &[f32]| {
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
                / scale
        };
        assert!(
            rel(&f_full, &f_half) < 1e-2,
            "features: {}",
            rel(&f_full, &f_half)
        );
        assert!(
            rel(&g_full, &g_half) < 5e-2,
            "gradients: {}",
            rel(&g_full, &g_half)
        );
        assert!(g_full.iter().any(|g| *g != 0.0));
        let back = half.with_precision(Precision::F32).unwrap();
        assert_eq!(
            back.visual.resblocks[1].attn.out_proj.weight.val().dtype(),
            DType::F32
        );
        assert_eq!(back.precision(), Precision::F32);
    }
}
