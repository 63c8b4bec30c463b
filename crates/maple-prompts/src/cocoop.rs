//! Co-CoOp (Zhou et al., CVPR 2022): CoOp's context shifted per image by a meta-network.
//!
//! A small meta-network `Linear(E, E/16) - ReLU - Linear(E/16, Dt)` maps each image's
//! L2-normalised features to a shift added to every context vector, so each image gets
//! its own class prompts `[SOT, ctx + shift(image), name, ., EOT]`. The image tower is
//! plain CLIP. Parameter names are the reference's (`ctx`, `meta_net.linear1.*`,
//! `meta_net.linear2.*`; its checkpoints hold them without any prefix).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::Clip;

use crate::context::{
    context_from_words, context_words, placeholder_prefix, random_prompt, word_count,
};
use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};

/// Co-CoOp hyper-parameters (reference: `TRAINER.COCOOP.*`); the defaults are the
/// reference's (`configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct CoCoOpConfig {
    /// Number of context vectors (`N_CTX`). Ignored when `ctx_init` is set: the reference
    /// then uses one vector per word of `ctx_init`.
    #[config(default = 4)]
    pub n_ctx: usize,
    /// Words whose token embeddings initialise the context (`CTX_INIT`); `None` draws
    /// N(0, 0.02) and uses `X` placeholder words.
    #[config(default = "Some(\"a photo of a\".to_string())")]
    pub ctx_init: Option<String>,
}

impl CoCoOpConfig {
    /// The reference's default Co-CoOp setting: 4 context vectors from "a photo of a".
    pub fn reference() -> Self {
        Self::new()
    }

    /// The number of context vectors actually used: the word count of `ctx_init` when it
    /// is set, else `n_ctx`.
    pub fn effective_n_ctx(&self) -> usize {
        context_words(self.ctx_init.as_deref()).map_or(self.n_ctx, |w| word_count(&w))
    }
}

impl Default for CoCoOpConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The meta-network: `linear2(relu(linear1(x)))`.
#[derive(Module, Debug)]
pub struct MetaNet<B: Backend> {
    /// `Linear(embed_dim, embed_dim / 16)`.
    pub linear1: Linear<B>,
    /// `Linear(embed_dim / 16, text_width)`.
    pub linear2: Linear<B>,
}

impl<B: Backend> MetaNet<B> {
    /// A meta-network with PyTorch's default `nn.Linear` initialisation: weights and
    /// biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from the backend's generator in
    /// the reference's order (linear1 weight, bias, linear2 weight, bias).
    pub fn new(embed_dim: usize, hidden: usize, text_width: usize, device: &B::Device) -> Self {
        let torch_linear = |fan_in: usize, fan_out: usize| {
            let k = 1.0 / (fan_in as f64).sqrt();
            LinearConfig::new(fan_in, fan_out)
                .with_initializer(Initializer::Uniform { min: -k, max: k })
                .init(device)
        };
        Self {
            linear1: torch_linear(embed_dim, hidden),
            linear2: torch_linear(hidden, text_width),
        }
    }

    /// The hidden activation `relu(linear1(x))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, embed_dim]` → `[batch, hidden]`
    pub fn hidden(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        relu(self.linear1.forward(x))
    }

    /// The context shift of each image.
    ///
    /// # Shapes
    /// - `x`: `[batch, embed_dim]` → `[batch, text_width]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear2.forward(self.hidden(x))
    }
}

/// The Co-CoOp prompt learner (image-conditioned).
#[derive(Module, Debug)]
pub struct CoCoOp<B: Backend> {
    /// Context vectors `[n_ctx, text_width]`.
    pub ctx: Param<Tensor<B, 2>>,
    /// Maps normalised image features to a context shift.
    pub meta_net: MetaNet<B>,
    /// The words before the class name in the tokenized prompt.
    #[module(skip)]
    pub prompt_prefix: String,
    /// The settings it was built with.
    #[module(skip)]
    pub config: CoCoOpConfig,
}

impl<B: Backend> CoCoOp<B> {
    /// Builds the learner for `clip`, as the reference `PromptLearner.__init__` of
    /// `trainers/cocoop.py`: context from the words of `ctx_init` (one vector per word) or
    /// N(0, 0.02); meta-network widths from the CLIP (hidden = embed_dim / 16).
    ///
    /// # Errors
    /// No context vectors, or an embedding dimension below 16 (no hidden unit).
    pub fn new(config: &CoCoOpConfig, clip: &Clip<B>, tokenizer: &Tokenizer) -> Result<Self> {
        let device = clip.device();
        let width = clip.text.width();
        let embed_dim = clip.text.text_projection.dims()[1];
        let hidden = embed_dim / 16;
        if hidden == 0 {
            return Err(MapleError::Invalid(format!(
                "Co-CoOp's meta-network has embed_dim / 16 hidden units: embed_dim {embed_dim} gives none"
            )));
        }
        let (ctx, prompt_prefix) = match context_words(config.ctx_init.as_deref()) {
            Some(words) => {
                let n = word_count(&words);
                (context_from_words(clip, tokenizer, &words, n)?, words)
            }
            None if config.n_ctx == 0 => {
                return Err(MapleError::Invalid(
                    "Co-CoOp needs at least 1 context vector (n_ctx is 0)".into(),
                ))
            }
            None => (
                random_prompt(config.n_ctx, width, &device),
                placeholder_prefix(config.n_ctx),
            ),
        };
        // The reference draws the meta-network after the context (which draws nothing when
        // it comes from words).
        let meta_net = MetaNet::new(embed_dim, hidden, width, &device);
        Ok(Self {
            ctx: Param::from_tensor(ctx),
            meta_net,
            prompt_prefix,
            config: config.clone(),
        })
    }

    /// Number of context vectors.
    pub fn n_ctx(&self) -> usize {
        self.ctx.dims()[0]
    }

    /// The context of each image: `ctx + meta_net(image)` on every context row.
    ///
    /// # Shapes
    /// - `image_features`: `[batch, embed_dim]` (L2-normalised) → `[batch, n_ctx, text_width]`
    pub fn ctx_shifted(&self, image_features: Tensor<B, 2>) -> Tensor<B, 3> {
        let shift = self.meta_net.forward(image_features);
        self.ctx.val().unsqueeze_dim::<3>(0) + shift.unsqueeze_dim::<3>(1)
    }

    /// The prompts of every (image, class) pair, image-major: `[SOT, ctx + shift(image),
    /// rest of the class prompt]`.
    ///
    /// # Errors
    /// Class prompts not tokenized with this learner's prefix (too short for the context).
    ///
    /// # Shapes
    /// - `image_features`: `[batch, embed_dim]` → `[batch * classes, len, text_width]`
    pub fn prompts(
        &self,
        classes: &ClassTokens<B>,
        image_features: Tensor<B, 2>,
    ) -> Result<Tensor<B, 3>> {
        let emb = classes.embeddings.clone();
        let [c, len, w] = emb.dims();
        let n = self.n_ctx();
        if 1 + n >= len {
            return Err(MapleError::Invalid(format!(
                "class prompts of {len} tokens cannot hold SOT, {n} context vectors and a class \
                 name: tokenize them with the prefix {:?}",
                self.prompt_prefix
            )));
        }
        let ctx = self.ctx_shifted(image_features);
        let b = ctx.dims()[0];
        let emb = emb.unsqueeze_dim::<4>(0).expand([b, c, len, w]);
        let ctx = ctx.unsqueeze_dim::<4>(1).expand([b, c, n, w]);
        let prompts = Tensor::cat(
            vec![
                emb.clone().slice([0..b, 0..c, 0..1]),
                ctx,
                emb.slice([0..b, 0..c, 1 + n..len]),
            ],
            2,
        );
        Ok(prompts.reshape([b * c, len, w]))
    }
}

impl<B: Backend> PromptLearner<B> for CoCoOp<B> {
    fn prompt_prefix(&self) -> &str {
        &self.prompt_prefix
    }

    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>> {
        let image = image_features.ok_or_else(|| {
            MapleError::Invalid(
                "Co-CoOp's text prompts depend on the image: pass the normalised image features"
                    .into(),
            )
        })?;
        let b = image.dims()[0];
        let embeddings = self.prompts(classes, image.clone())?;
        let eot = (0..b).flat_map(|_| classes.eot.iter().copied()).collect();
        Ok(TextPrompts {
            embeddings,
            eot,
            ..TextPrompts::plain(classes)
        })
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        VisionPrompts::none()
    }

    fn image_conditioned(&self) -> bool {
        true
    }

    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or_default();
        v["method"] = "cocoop".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tiny_clip, tiny_clip_on, Ta, Tb};
    use crate::{MethodConfig, PromptedClip, Sgd, SgdConfig};
    use burn::tensor::Distribution;

    fn names() -> Vec<String> {
        ["cat", "golden retriever", "sea lake"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn reference_defaults_are_four_vectors_from_a_photo_of_a() {
        let c = CoCoOpConfig::reference();
        assert_eq!(c, CoCoOpConfig::default());
        assert_eq!((c.n_ctx, c.ctx_init.as_deref()), (4, Some("a photo of a")));
    }

    #[test]
    fn widths_come_from_the_clip_and_the_meta_net_has_torch_linear_bounds() {
        let (clip, tok) = tiny_clip();
        let l = CoCoOp::new(&CoCoOpConfig::new(), &clip, &tok).unwrap();
        // Tiny CLIP: embed 32, text width 32.
        assert_eq!(l.meta_net.linear1.weight.dims(), [32, 2]);
        assert_eq!(l.meta_net.linear2.weight.dims(), [2, 32]);
        assert_eq!(l.ctx.dims(), [4, 32]);
        for (w, b, fan_in) in [
            (
                &l.meta_net.linear1.weight,
                &l.meta_net.linear1.bias,
                32.0f32,
            ),
            (&l.meta_net.linear2.weight, &l.meta_net.linear2.bias, 2.0),
        ] {
            let k = 1.0 / fan_in.sqrt();
            let wmax = w.val().abs().max().into_scalar();
            let bmax = b.as_ref().unwrap().val().abs().max().into_scalar();
            assert!(wmax <= k && bmax <= k, "{wmax} {bmax} > {k}");
            assert!(wmax > 0.3 * k, "weights suspiciously small: {wmax}");
        }
    }

    #[test]
    fn random_context_uses_n_ctx_and_placeholders() {
        let (clip, tok) = tiny_clip();
        let l = CoCoOp::new(
            &CoCoOpConfig::new().with_ctx_init(None).with_n_ctx(3),
            &clip,
            &tok,
        )
        .unwrap();
        assert_eq!((l.n_ctx(), l.prompt_prefix.as_str()), (3, "X X X"));
        assert!(CoCoOp::new(
            &CoCoOpConfig::new().with_ctx_init(None).with_n_ctx(0),
            &clip,
            &tok
        )
        .is_err());
    }

    #[test]
    fn text_prompts_need_image_features() {
        let (clip, tok) = tiny_clip();
        let l = CoCoOp::new(&CoCoOpConfig::new(), &clip, &tok).unwrap();
        let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &names()).unwrap();
        assert!(l.text_prompts(&classes, None).is_err());
        let model = PromptedClip::new(clip, l);
        assert!(model.encode_text(&classes).is_err());
    }

    /// One sequence per (image, class), image-major; each holds its image's shifted context
    /// and the class prompt's own rows elsewhere.
    #[test]
    fn prompts_are_image_major_with_each_images_shift() {
        let (clip, tok) = tiny_clip();
        let l = CoCoOp::new(&CoCoOpConfig::new(), &clip, &tok).unwrap();
        let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &names()).unwrap();
        let device = Default::default();
        let img = Tensor::<Tb, 2>::random([2, 32], Distribution::Normal(0.0, 1.0), &device);
        let t = l.text_prompts(&classes, Some(&img)).unwrap();
        let [bc, len, w] = t.embeddings.dims();
        assert_eq!(bc, 6);
        assert_eq!(t.eot.len(), 6);
        assert_eq!(&t.eot[3..], &classes.eot[..]);
        let shifted = l.ctx_shifted(img);
        let n = l.n_ctx();
        for b in 0..2 {
            for c in 0..3 {
                let got = t.embeddings.clone().narrow(0, b * 3 + c, 1);
                let ctx = got.clone().slice([0..1, 1..1 + n]).reshape([n, w]);
                let want = shifted.clone().narrow(0, b, 1).reshape([n, w]);
                assert_eq!(
                    ctx.into_data().to_vec::<f32>().unwrap(),
                    want.into_data().to_vec::<f32>().unwrap()
                );
                let rest = got.slice([0..1, 1 + n..len]);
                let own = classes.embeddings.clone().slice([c..c + 1, 1 + n..len]);
                assert_eq!(
                    rest.into_data().to_vec::<f32>().unwrap(),
                    own.into_data().to_vec::<f32>().unwrap()
                );
            }
        }
    }

    /// A zero meta-network with the template words as context gives zero-shot CLIP.
    #[test]
    fn zero_shift_with_template_context_gives_zero_shot_logits() {
        let (clip, tok) = tiny_clip();
        let mut l = CoCoOp::new(&CoCoOpConfig::new(), &clip, &tok).unwrap();
        l.meta_net.linear2.weight =
            Param::from_tensor(l.meta_net.linear2.weight.val().zeros_like());
        l.meta_net.linear2.bias = Some(Param::from_tensor(
            l.meta_net.linear2.bias.as_ref().unwrap().val().zeros_like(),
        ));
        let model = PromptedClip::new(clip, l);
        let classes = model.classes(&tok, &names()).unwrap();
        let images = Tensor::<Tb, 4>::random(
            [3, 3, 32, 32],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let ours = model.forward(images.clone(), &classes).unwrap();
        let zs =
            clip_model::ZeroShotClassifier::new(&model.clip, &tok, &names(), &["a photo of a {}."])
                .unwrap();
        let diff = (ours - zs.logits(&model.clip, images))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-4, "{diff}");
    }

    #[test]
    fn a_train_step_updates_context_and_meta_net_only() {
        let tok = Tokenizer::new();
        let clip = tiny_clip_on::<Ta>();
        let l = CoCoOp::new(&CoCoOpConfig::new(), &clip, &tok).unwrap();
        let before = crate::checkpoint::named_params(&l);
        let clip_before = crate::checkpoint::named_params(&clip);
        let mut model = PromptedClip::new(clip, l);
        let classes = model.classes(&tok, &names()).unwrap();
        let images = Tensor::<Ta, 4>::random(
            [2, 3, 32, 32],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let mut sgd = Sgd::new(SgdConfig::default());
        model
            .train_step(&mut sgd, 0.1, images, &[0, 2], &classes)
            .unwrap();
        let after = crate::checkpoint::named_params(&model.learner);
        assert_eq!(before.len(), 5);
        for (k, v) in &before {
            assert_ne!(v, &after[k], "{k} did not move");
        }
        assert_eq!(sgd.buffers.len(), 5);
        assert_eq!(clip_before, crate::checkpoint::named_params(&model.clip));
    }

    #[test]
    fn settings_rebuild_the_same_config() {
        let (clip, tok) = tiny_clip();
        let cfg = CoCoOpConfig::new();
        let l = CoCoOp::new(&cfg, &clip, &tok).unwrap();
        let s = l.settings();
        assert_eq!(s["method"], "cocoop");
        assert_eq!(
            MethodConfig::from_settings(&s).unwrap(),
            MethodConfig::CoCoOp(cfg)
        );
    }
}
