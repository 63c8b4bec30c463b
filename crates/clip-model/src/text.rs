//! The causal text tower: token + positional embeddings, blocks, `ln_final`, EOT pooling, projection.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

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
    ///
    /// Returned in the tower's master precision (see [`crate::precision`]).
    pub fn embed_tokens(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, l] = ids.dims();
        let table = self.token_embedding.val();
        let width = table.dims()[1];
        table
            .select(0, ids.reshape([n * l]))
            .reshape([n, l, width])
            .cast(self.master_dtype())
    }

    /// The dtype the blocks' attention and MLP compute in (f32 unless the model was cast
    /// to half by [`crate::Clip::with_precision`]).
    pub fn compute_dtype(&self) -> FloatDType {
        crate::block::blocks_compute_dtype(&self.resblocks, self.master_dtype())
    }

    /// The dtype of the tower's inputs, outputs and residual stream, and of its LayerNorms
    /// and projection.
    pub fn master_dtype(&self) -> FloatDType {
        self.ln_final.gamma.val().dtype().into()
    }

    /// The tower with its embeddings and block weights in `dtype` (LayerNorms and the
    /// output projection keep theirs).
    pub fn cast_weights(self, dtype: FloatDType) -> Self {
        Self {
            token_embedding: self.token_embedding.map(|t| t.cast(dtype)),
            positional_embedding: self.positional_embedding.map(|t| t.cast(dtype)),
            resblocks: crate::block::cast_blocks(self.resblocks, dtype),
            ..self
        }
    }

    /// Embeds host-side token rows (`[n][seq]`) on `device`.
    pub fn embed_rows(&self, rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 3> {
        self.embed_tokens(ids_tensor(rows, device))
    }

    /// Adds positions, runs the causal blocks (with `hook` around each), applies `ln_final`
    /// and pools each sequence at its EOT position, then projects.
    ///
    /// Only the first `eot + 1` positions of a sequence are computed: attention is causal,
    /// so later positions cannot influence the pooled token (exact, and several times
    /// cheaper). When `hook` is [`BlockHook::per_sequence`] the sequences are grouped by
    /// length and each group runs to its own length; otherwise the whole batch runs to
    /// the longest one.
    ///
    /// `emb` may have any float dtype: the residual stream (what the hook sees) and the
    /// features are in [`Self::master_dtype`], the blocks' attention and MLP in
    /// [`Self::compute_dtype`].
    ///
    /// # Shapes
    /// - `emb`: `[n, seq, width]`, `eot`: `n` positions → `[n, embed_dim]`
    pub fn encode_embeddings(
        &self,
        emb: Tensor<B, 3>,
        eot: &[usize],
        hook: &dyn BlockHook<B>,
    ) -> Tensor<B, 2> {
        self.encode_in_groups(emb, eot, hook, MIN_GROUP_ROWS)
    }

    /// [`Self::encode_embeddings`] with groups of at least `min_rows` rows.
    fn encode_in_groups(
        &self,
        emb: Tensor<B, 3>,
        eot: &[usize],
        hook: &dyn BlockHook<B>,
        min_rows: usize,
    ) -> Tensor<B, 2> {
        let [n, seq, _] = emb.dims();
        assert_eq!(eot.len(), n, "one EOT position per sequence");
        let groups = length_groups(eot, seq, min_rows);
        if groups.len() <= 1 || !hook.per_sequence() {
            return self.encode_group(emb, eot, hook);
        }
        let device = emb.device();
        let mut features = Vec::with_capacity(groups.len());
        let mut order = Vec::with_capacity(n);
        for (len, members) in groups {
            let idx: Vec<i64> = members.iter().map(|&i| i as i64).collect();
            let idx =
                Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [members.len()]), &device);
            let x = emb.clone().narrow(1, 0, len).select(0, idx);
            let group_eot: Vec<usize> = members.iter().map(|&i| eot[i]).collect();
            features.push(self.encode_group(x, &group_eot, hook));
            order.extend(members);
        }
        // Row j of the concatenation is sequence order[j]: gather it back into input order.
        let mut inverse = vec![0i64; n];
        for (j, &i) in order.iter().enumerate() {
            inverse[i] = j as i64;
        }
        let inverse = Tensor::<B, 1, Int>::from_data(TensorData::new(inverse, [n]), &device);
        Tensor::cat(features, 0).select(0, inverse)
    }

    /// The tower on one batch, computed up to its longest sequence (the last block at the
    /// EOT positions only, unless the hook observes outputs).
    fn encode_group(
        &self,
        emb: Tensor<B, 3>,
        eot: &[usize],
        hook: &dyn BlockHook<B>,
    ) -> Tensor<B, 2> {
        let [n, seq, width] = emb.dims();
        let master = self.master_dtype();
        let len = eot.iter().copied().max().map_or(seq, |m| (m + 1).min(seq));
        let pos = self.positional_embedding.val().narrow(0, 0, len);
        let mut x = emb.narrow(1, 0, len).cast(master) + pos.cast(master).unsqueeze_dim::<3>(0);
        let last = self.resblocks.len().checked_sub(1);
        for (i, block) in self.resblocks.iter().enumerate() {
            let input = hook.before_block(i, x);
            if Some(i) == last && !hook.observes_outputs() {
                let pooled = block.forward_pooled(input.reshape([n * len, width]), eot, true);
                hook.after_block(i, &pooled.clone().reshape([n, 1, width]));
                return self
                    .ln_final
                    .forward(pooled)
                    .matmul(self.text_projection.val());
            }
            x = block.forward(input, true);
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

/// Smallest group (sequences × positions) worth its own pass: smaller GEMMs lose more to
/// packing and thread splitting than the padding they save (measured, docs/PERFORMANCE.md).
const MIN_GROUP_ROWS: usize = 256;

/// Sequences grouped by computed length `min(eot + 1, seq)`: taken longest first, a group
/// closes once it holds `min_rows` rows at its own (longest) length. Each group runs to
/// its own length, so the padding of the whole batch to its longest EOT shrinks while the
/// GEMMs stay large.
fn length_groups(eot: &[usize], seq: usize, min_rows: usize) -> Vec<(usize, Vec<usize>)> {
    let mut order: Vec<usize> = (0..eot.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(eot[i]));
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let len = (eot[i] + 1).min(seq);
        match groups.last_mut() {
            Some((l, members)) if members.len() * *l < min_rows => members.push(i),
            _ => groups.push((len, vec![i])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::{DeepPrompts, PromptAnchor};
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    type AB = Autodiff<NdArray<f32>>;

    /// Runs `inner` but declares it not per-sequence: the whole batch to the longest EOT.
    struct Padded<'a>(&'a dyn BlockHook<AB>);

    impl BlockHook<AB> for Padded<'_> {
        fn before_block(&self, layer: usize, x: Tensor<AB, 3>) -> Tensor<AB, 3> {
            self.0.before_block(layer, x)
        }
    }

    fn tiny_tower() -> TextTransformer<AB> {
        let config = ClipConfig {
            transformer_width: 32,
            transformer_heads: 2,
            transformer_layers: 3,
            context_length: 12,
            vocab_size: 50,
            embed_dim: 16,
            ..ClipConfig::vit_b16()
        };
        TextTransformer::init(&config, &Default::default())
    }

    /// Grouping sequences by length (here one group per sequence) gives the features and prompt
    /// gradients of running the whole batch to its longest EOT (attention is causal), in
    /// input order; groups close at the row threshold.
    #[test]
    fn length_groups_match_the_padded_batch() {
        let device = Default::default();
        let tower = tiny_tower();
        let eot = [5usize, 2, 9, 5, 3, 9, 2];
        let emb = Tensor::<AB, 3>::random([7, 12, 32], Distribution::Normal(0.0, 1.0), &device);
        let deep: Vec<Option<Tensor<AB, 2>>> = (0..2)
            .map(|_| {
                Some(
                    Tensor::random([2, 32], Distribution::Normal(0.0, 0.5), &device).require_grad(),
                )
            })
            .collect();
        let hook = DeepPrompts {
            anchor: PromptAnchor::AfterFirst,
            layers: deep.clone(),
        };
        assert!(BlockHook::<AB>::per_sequence(&hook));
        let run = |h: &dyn BlockHook<AB>, min_rows: usize| {
            let out = tower.encode_in_groups(emb.clone(), &eot, h, min_rows);
            let grads = (out.clone() * out.clone()).sum().backward();
            let g: Vec<f32> = deep
                .iter()
                .flat_map(|p| {
                    let p = p.as_ref().unwrap();
                    p.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap()
                })
                .collect();
            (out.into_data().to_vec::<f32>().unwrap(), g)
        };
        let (grouped, g_grouped) = run(&hook, 1);
        let (padded, g_padded) = run(&Padded(&hook), 1);
        let err = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(
            err(&grouped, &padded) < 1e-5,
            "features: {}",
            err(&grouped, &padded)
        );
        assert!(
            err(&g_grouped, &g_padded) < 1e-5,
            "gradients: {}",
            err(&g_grouped, &g_padded)
        );
        assert_eq!(length_groups(&eot, 12, 1).len(), 7);
        // Longest first, a group closed at 20 rows: lengths [10, 10], [6, 6, 4, 3], [3].
        let sizes: Vec<(usize, usize)> = length_groups(&eot, 12, 20)
            .iter()
            .map(|(l, m)| (*l, m.len()))
            .collect();
        assert_eq!(sizes, vec![(10, 2), (6, 4), (3, 1)]);
    }
}
