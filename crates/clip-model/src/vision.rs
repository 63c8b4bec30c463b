//! The ViT image tower: patch embedding, class token, positions, `ln_pre`, blocks, `ln_post`, projection.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};

use crate::block::{frozen_normal, residual_block, ResidualBlock};
use crate::hook::BlockHook;
use crate::ops::LayerNorm;
use crate::ClipConfig;

/// CLIP's vision transformer. Field names follow OpenAI's `visual.*` keys.
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch embedding convolution weight `[width, 3, patch, patch]` (no bias, stride = patch).
    pub conv1: Param<Tensor<B, 4>>,
    /// Class token `[width]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Positional embedding `[1 + grid^2, width]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// LayerNorm before the blocks.
    pub ln_pre: LayerNorm<B>,
    /// Residual blocks (`visual.transformer.resblocks.*`).
    pub resblocks: Vec<ResidualBlock<B>>,
    /// LayerNorm on the class token output.
    pub ln_post: LayerNorm<B>,
    /// Output projection `[width, embed_dim]`, used as `x @ proj`.
    pub proj: Param<Tensor<B, 2>>,
}

impl<B: Backend> VisionTransformer<B> {
    /// A randomly initialised image tower for `config` (weights are normally loaded instead).
    pub fn init(config: &ClipConfig, device: &B::Device) -> Self {
        let w = config.vision_width;
        let p = config.vision_patch_size;
        let scale = (w as f64).powf(-0.5);
        let ln = || LayerNorm::new(w, config.layer_norm_eps, device);
        Self {
            conv1: frozen_normal([w, 3, p, p], 0.02, device),
            class_embedding: frozen_normal([w], scale, device),
            positional_embedding: frozen_normal([config.vision_tokens(), w], scale, device),
            ln_pre: ln(),
            resblocks: (0..config.vision_layers)
                .map(|_| residual_block(w, config.vision_heads, config.layer_norm_eps, device))
                .collect(),
            ln_post: ln(),
            proj: frozen_normal([w, config.embed_dim], scale, device),
        }
    }

    /// Residual width.
    pub fn width(&self) -> usize {
        self.class_embedding.dims()[0]
    }

    /// Embeds images: patches, class token first, positional embedding added.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, 1 + grid^2, width]`
    ///
    /// Computed and returned in [`Self::master_dtype`] (see [`crate::precision`]): the
    /// patch embedding is the base of the residual stream, which half rounding would
    /// carry through every block.
    pub fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let master = self.master_dtype();
        let images = images.cast(master);
        let [b, c, h, w_img] = images.dims();
        let [width, _, p, _] = self.conv1.dims();
        let (gh, gw) = (h / p, w_img / p);
        // A stride-p convolution without bias is a matmul over flattened patches.
        let patches = images
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b * gh * gw, c * p * p]);
        let kernel = self.conv1.val().reshape([width, c * p * p]).transpose();
        let patches = patches
            .matmul(kernel)
            .reshape([b, gh * gw, width])
            .cast(master);
        let cls = self
            .class_embedding
            .val()
            .cast(master)
            .reshape([1, 1, width])
            .expand([b, 1, width]);
        let x = Tensor::cat(vec![cls, patches], 1);
        x + self
            .positional_embedding
            .val()
            .cast(master)
            .unsqueeze_dim::<3>(0)
    }

    /// The dtype the blocks' attention and MLP compute in (f32 unless the model was cast
    /// to half by [`crate::Clip::with_precision`]).
    pub fn compute_dtype(&self) -> FloatDType {
        crate::block::blocks_compute_dtype(&self.resblocks, self.master_dtype())
    }

    /// The dtype of the tower's inputs, outputs and residual stream, and of its LayerNorms
    /// and projection.
    pub fn master_dtype(&self) -> FloatDType {
        self.ln_post.gamma.val().dtype().into()
    }

    /// The tower with its blocks' Linear weights in `dtype` (the embeddings, LayerNorms and
    /// the output projection keep theirs).
    pub fn cast_weights(self, dtype: FloatDType) -> Self {
        Self {
            resblocks: crate::block::cast_blocks(self.resblocks, dtype),
            ..self
        }
    }

    /// Runs `ln_pre`, the blocks (with `hook` around each) and pools the class token:
    /// `ln_post(x[:, 0]) @ proj`. Tokens may include appended prompts. Unless the hook
    /// [observes outputs](BlockHook::observes_outputs), the last block computes the class
    /// token only.
    ///
    /// `tokens` may have any float dtype: the residual stream (what the hook sees) and the
    /// features are in [`Self::master_dtype`], the blocks' attention and MLP in
    /// [`Self::compute_dtype`].
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq, width]` → `[batch, embed_dim]`
    pub fn encode_tokens(&self, tokens: Tensor<B, 3>, hook: &dyn BlockHook<B>) -> Tensor<B, 2> {
        let [b, _, width] = tokens.dims();
        let master = self.master_dtype();
        let mut x = self.ln_pre.forward(tokens.cast(master));
        let last = self.resblocks.len().checked_sub(1);
        for (i, block) in self.resblocks.iter().enumerate() {
            let input = hook.before_block(i, x);
            if Some(i) == last && !hook.observes_outputs() {
                let [_, seq, _] = input.dims();
                let cls = block.forward_pooled(input.reshape([b * seq, width]), &vec![0; b], false);
                hook.after_block(i, &cls.clone().reshape([b, 1, width]));
                return self.ln_post.forward(cls).matmul(self.proj.val());
            }
            x = block.forward(input, false);
            hook.after_block(i, &x);
        }
        let cls = x.slice([0..b, 0..1]).reshape([b, width]);
        self.ln_post.forward(cls).matmul(self.proj.val())
    }

    /// Plain image features (no prompts).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, embed_dim]`
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.encode_tokens(self.embed(images), &crate::NoHook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::{DeepPrompts, PromptAnchor};
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    type AB = Autodiff<NdArray<f32>>;

    /// Delegates to a hook but observes outputs: every block computed in full.
    struct Full<'a>(&'a dyn BlockHook<AB>);

    impl BlockHook<AB> for Full<'_> {
        fn before_block(&self, layer: usize, x: Tensor<AB, 3>) -> Tensor<AB, 3> {
            self.0.before_block(layer, x)
        }
    }

    /// Computing only the class token in the last block gives the features and prompt
    /// gradients of the full last block (prompts in every block, the last included).
    #[test]
    fn class_token_only_last_block_matches_full_block() {
        let device = Default::default();
        let config = ClipConfig {
            vision_width: 32,
            vision_heads: 2,
            vision_layers: 3,
            vision_patch_size: 8,
            image_resolution: 32,
            embed_dim: 16,
            ..ClipConfig::vit_b16()
        };
        let tower = VisionTransformer::<AB>::init(&config, &device);
        let images =
            Tensor::<AB, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let deep: Vec<Option<Tensor<AB, 2>>> = (0..3)
            .map(|_| {
                Some(
                    Tensor::random([2, 32], Distribution::Normal(0.0, 0.5), &device).require_grad(),
                )
            })
            .collect();
        let hook = DeepPrompts {
            anchor: PromptAnchor::End,
            layers: deep.clone(),
        };
        let run = |h: &dyn BlockHook<AB>| {
            let tokens = tower.embed(images.clone());
            let out = tower.encode_tokens(tokens, h);
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
        let err = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let (pooled, g_pooled) = run(&hook);
        let (full, g_full) = run(&Full(&hook));
        assert!(
            err(&pooled, &full) < 1e-5,
            "features: {}",
            err(&pooled, &full)
        );
        assert!(
            err(&g_pooled, &g_full) < 1e-5,
            "gradients: {}",
            err(&g_pooled, &g_full)
        );
    }
}
