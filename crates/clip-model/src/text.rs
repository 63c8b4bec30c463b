//! The causal text tower: token + positional embeddings, blocks, `ln_final`, EOT pooling, projection.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::block::{frozen_normal, residual_block, ResidualBlock};
use crate::hook::BlockHook;
use crate::ops::LayerNorm;
use crate::ClipConfig;

/// CLIP's text transformer. Field names follow OpenAI's top-level keys.
#[derive(Module, Debug)]
pub struct TextTransformer<B: Backend> {
    /// Token embedding table `[vocab, width]`.
    pub token_embedding: Param<Tensor<B, 2>>,
    /// Positional embedding `[context_length, width]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// Residual blocks (`transformer.resblocks.*`), causally masked.
    pub resblocks: Vec<ResidualBlock<B>>,
    /// Final LayerNorm.
    pub ln_final: LayerNorm<B>,
    /// Output projection `[width, embed_dim]`, used as `x @ text_projection`.
    pub text_projection: Param<Tensor<B, 2>>,
}

/// Position of the end-of-text token in each tokenized row: the argmax of the ids, as the
/// reference computes it (the EOT id 49407 is the largest id, so its first occurrence).
pub fn eot_positions(rows: &[Vec<u32>]) -> Vec<usize> {
    rows.iter()
        .map(|r| {
            let max = r.iter().copied().max().unwrap_or(0);
            r.iter().position(|&t| t == max).unwrap_or(0)
        })
        .collect()
}

impl<B: Backend> TextTransformer<B> {
    /// A randomly initialised text tower for `config` (weights are normally loaded instead).
    pub fn init(config: &ClipConfig, device: &B::Device) -> Self {
        let w = config.transformer_width;
        Self {
            token_embedding: frozen_normal([config.vocab_size, w], 0.02, device),
            positional_embedding: frozen_normal([config.context_length, w], 0.01, device),
            resblocks: (0..config.transformer_layers)
                .map(|_| residual_block(w, config.transformer_heads, config.layer_norm_eps, device))
                .collect(),
            ln_final: LayerNorm::new(w, config.layer_norm_eps, device),
            text_projection: frozen_normal([w, config.embed_dim], (w as f64).powf(-0.5), device),
        }
    }

    /// Residual width.
    pub fn width(&self) -> usize {
        self.positional_embedding.dims()[1]
    }

    /// Context length (rows of the positional embedding).
    pub fn context_length(&self) -> usize {
        self.positional_embedding.dims()[0]
    }

    /// Looks up token embeddings (no positions added yet).
    ///
    /// # Shapes
    /// - `ids`: `[n, seq]` → `[n, seq, width]`
    pub fn embed_tokens(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, l] = ids.dims();
        let table = self.token_embedding.val();
        let width = table.dims()[1];
        table.select(0, ids.reshape([n * l])).reshape([n, l, width])
    }

    /// Embeds host-side token rows (`[n][seq]`) on `device`.
    pub fn embed_rows(&self, rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 3> {
        self.embed_tokens(ids_tensor(rows, device))
    }

    /// Adds positions, runs the causal blocks (with `hook` around each), applies `ln_final`
    /// and pools each sequence at its EOT position, then projects.
    ///
    /// Only the first `max(eot) + 1` positions are computed: attention is causal, so later
    /// positions cannot influence the pooled tokens (exact, and several times cheaper).
    ///
    /// # Shapes
    /// - `emb`: `[n, seq, width]`, `eot`: `n` positions → `[n, embed_dim]`
    pub fn encode_embeddings(
        &self,
        emb: Tensor<B, 3>,
        eot: &[usize],
        hook: &dyn BlockHook<B>,
    ) -> Tensor<B, 2> {
        let [n, seq, width] = emb.dims();
        assert_eq!(eot.len(), n, "one EOT position per sequence");
        let len = eot.iter().copied().max().map_or(seq, |m| (m + 1).min(seq));
        let pos = self.positional_embedding.val().narrow(0, 0, len);
        let mut x = emb.slice([0..n, 0..len]) + pos.unsqueeze_dim::<3>(0);
        for (i, block) in self.resblocks.iter().enumerate() {
            x = block.forward(hook.before_block(i, x), true);
            hook.after_block(i, &x);
        }
        let x = self.ln_final.forward(x).reshape([n * len, width]);
        let rows: Vec<i64> = eot
            .iter()
            .enumerate()
            .map(|(i, &e)| (i * len + e) as i64)
            .collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [n]), &x.device());
        x.select(0, idx).matmul(self.text_projection.val())
    }

    /// Plain text features for tokenized rows.
    ///
    /// # Shapes
    /// - `rows`: `n` rows of `context_length` ids → `[n, embed_dim]`
    pub fn forward(&self, rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2> {
        let emb = self.embed_rows(rows, device);
        self.encode_embeddings(emb, &eot_positions(rows), &crate::NoHook)
    }
}

/// Converts token rows to an `[n, seq]` Int tensor.
pub fn ids_tensor<B: Backend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let n = rows.len();
    let l = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&t| t as i64))
        .collect();
    Tensor::from_data(TensorData::new(flat, [n, l]), device)
}
