//! The per-block hook through which prompt-learning methods reach inside the encoders.
//!
//! Every prompt method differs from plain CLIP only in (a) the embedded text sequence,
//! (b) tokens appended to the image sequence and (c) which token slots are overwritten
//! before which block. (a) and (b) are inputs of the staged entry points
//! ([`crate::TextTransformer::encode_embeddings`], [`crate::VisionTransformer::encode_tokens`]);
//! (c) is this hook.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Called around each residual block of an encoder; may rewrite the residual stream.
pub trait BlockHook<B: Backend> {
    /// Called right before block `layer` (0-based) with its input; returns the input to use.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → same shape
    fn before_block(&self, layer: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let _ = layer;
        x
    }

    /// Called right after block `layer` with its output (observation only, e.g. tests).
    fn after_block(&self, layer: usize, x: &Tensor<B, 3>) {
        let _ = (layer, x);
    }
}

/// The hook that does nothing: plain CLIP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<B: Backend> BlockHook<B> for NoHook {}

/// Where prompt tokens sit in a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptAnchor {
    /// Right after the first token (text: `[SOT, p_1..p_n, rest]`).
    AfterFirst,
    /// The last tokens of the sequence (vision: `[CLS, patches, p_1..p_n]`).
    End,
}

/// Deep prompting: replace the prompt slots before chosen blocks.
///
/// `layers[i]` is the `[n_prompts, width]` tensor written into the prompt slots before
/// block `i`, or `None` to keep what the previous block produced there. Blocks past the
/// end of `layers` are untouched.
#[derive(Debug, Clone)]
pub struct DeepPrompts<B: Backend> {
    /// Where the prompt slots are.
    pub anchor: PromptAnchor,
    /// Replacement per block.
    pub layers: Vec<Option<Tensor<B, 2>>>,
}

impl<B: Backend> DeepPrompts<B> {
    /// Writes `prompts` (`[n, width]`, broadcast over the batch) into the slots of `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, width]`, `prompts`: `[n, width]` → `[batch, seq, width]`
    pub fn splice(anchor: PromptAnchor, x: Tensor<B, 3>, prompts: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, seq, width] = x.dims();
        let [n, _] = prompts.dims();
        let p = prompts.unsqueeze_dim::<3>(0).expand([batch, n, width]);
        match anchor {
            PromptAnchor::AfterFirst => Tensor::cat(
                vec![
                    x.clone().slice([0..batch, 0..1]),
                    p,
                    x.slice([0..batch, 1 + n..seq]),
                ],
                1,
            ),
            PromptAnchor::End => Tensor::cat(vec![x.slice([0..batch, 0..seq - n]), p], 1),
        }
    }
}

impl<B: Backend> BlockHook<B> for DeepPrompts<B> {
    fn before_block(&self, layer: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.layers.get(layer) {
            Some(Some(p)) => Self::splice(self.anchor, x, p.clone()),
            _ => x,
        }
    }
}
