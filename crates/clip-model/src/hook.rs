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
    /// The residual stream `x` stays in the model's master precision (f32) also when
    /// [`crate::Clip::with_precision`] runs the blocks in half.
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

    /// Whether the hook treats every sequence on its own and needs no positions past a
    /// sequence's EOT. The text tower may then group the sequences by length and call
    /// both methods once per group, with `x` holding that group's sequences cut to their
    /// own `eot + 1` positions (exact: attention is causal). Default `false`: one call
    /// per block with the whole batch, as long as its longest sequence.
    fn per_sequence(&self) -> bool {
        false
    }

    /// Whether `after_block` needs every position of the last block's output. When
    /// `false` the towers compute only the pooled positions in their last block (the
    /// class token; each sequence's EOT), exact and a block's worth of work cheaper, and
    /// `after_block` for that block sees `[batch, 1, width]`. Default `true`.
    fn observes_outputs(&self) -> bool {
        true
    }
}

/// The hook that does nothing: plain CLIP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<B: Backend> BlockHook<B> for NoHook {
    fn per_sequence(&self) -> bool {
        true
    }

    fn observes_outputs(&self) -> bool {
        false
    }
}

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
    /// One `slice_assign`: in place where the backend can, and under autodiff its backward
    /// is a slice of the gradient (a `cat` of slices would copy the whole sequence forward
    /// and zero-fill a whole-sequence tensor per slice backward).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, width]`, `prompts`: `[n, width]` → `[batch, seq, width]`
    pub fn splice(anchor: PromptAnchor, x: Tensor<B, 3>, prompts: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, seq, width] = x.dims();
        let [n, _] = prompts.dims();
        // The stream is in the master precision; prompts from elsewhere are cast to it.
        let p = prompts
            .cast(x.dtype())
            .unsqueeze_dim::<3>(0)
            .expand([batch, n, width]);
        let start = match anchor {
            PromptAnchor::AfterFirst => 1,
            PromptAnchor::End => seq - n,
        };
        x.slice_assign([0..batch, start..start + n, 0..width], p)
    }
}

impl<B: Backend> BlockHook<B> for DeepPrompts<B> {
    fn before_block(&self, layer: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.layers.get(layer) {
            Some(Some(p)) => Self::splice(self.anchor, x, p.clone()),
            _ => x,
        }
    }

    /// Text prompts right after the first token are per sequence; prompts at the end of
    /// the sequence depend on its length.
    fn per_sequence(&self) -> bool {
        self.anchor == PromptAnchor::AfterFirst
    }

    fn observes_outputs(&self) -> bool {
        false
    }
}
