//! MaPLe: coupled vision-language prompts, learned separately for the first `depth` blocks.
//!
//! Text context vectors `ctx` replace the first prompt slots after SOT; a linear coupling
//! `proj` maps them to the vision width and appends them to the image tokens; deep text
//! prompts `compound_prompts_text[i]` and their couplings `compound_prompt_projections[i]`
//! replace the prompt slots before blocks `1..depth` of each tower. Parameter names follow
//! the reference implementation (`prompt_learner.*` without the prefix).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, DeepPrompts, PromptAnchor};

use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};

/// MaPLe hyper-parameters (reference: `TRAINER.MAPLE.*`).
#[derive(Config, Debug, PartialEq)]
pub struct MapleConfig {
    /// Number of learnable context tokens (`N_CTX`).
    #[config(default = 2)]
    pub n_ctx: usize,
    /// Words whose embeddings initialise the context (`CTX_INIT`); random N(0, 0.02) when
    /// `None` or when `n_ctx > 4` (as the reference).
    #[config(default = "Some(\"a photo of a\".to_string())")]
    pub ctx_init: Option<String>,
    /// Prompt depth J (`PROMPT_DEPTH`): prompts are learned for blocks `0..J`.
    #[config(default = 9)]
    pub depth: usize,
}

/// The MaPLe prompt learner. Its parameters are the only trainable ones.
#[derive(Module, Debug)]
pub struct Maple<B: Backend> {
    /// Text context vectors `[n_ctx, text_width]`.
    pub ctx: Param<Tensor<B, 2>>,
    /// Coupling of `ctx` to the vision width (layer-0 visual prompts).
    pub proj: Linear<B>,
    /// Deep text prompts for blocks `1..depth`, each `[n_ctx, text_width]`.
    pub compound_prompts_text: Vec<Param<Tensor<B, 2>>>,
    /// Couplings of the deep text prompts to the vision width.
    pub compound_prompt_projections: Vec<Linear<B>>,
    /// The words before the class name in the tokenized prompt.
    #[module(skip)]
    pub prompt_prefix: String,
    /// The settings it was built with (depth and context length are those of the tensors).
    #[module(skip)]
    pub config: MapleConfig,
}

/// A fresh copy of a Linear layer with new parameter ids (PyTorch's `deepcopy`).
fn copy_linear<B: Backend>(l: &Linear<B>) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(l.weight.val()),
        bias: l.bias.as_ref().map(|b| Param::from_tensor(b.val())),
    }
}

impl<B: Backend> Maple<B> {
    /// Builds the learner for `clip`, as the reference `MultiModalPromptLearner.__init__`:
    /// widths from the CLIP, context from the first `n_ctx` tokens of `ctx_init`, deep
    /// text prompts N(0, 0.02), one coupling Linear deep-copied `depth - 1` times. Random
    /// draws use the backend's seeded generator (`B::seed`).
    pub fn new(config: &MapleConfig, clip: &Clip<B>, tokenizer: &Tokenizer) -> Result<Self> {
        let device = clip.device();
        let (dt, dv) = (clip.text.width(), clip.visual.width());
        let layers = clip.text.resblocks.len().min(clip.visual.resblocks.len());
        if config.n_ctx == 0 {
            return Err(MapleError::Invalid("n_ctx must be at least 1".into()));
        }
        if config.depth == 0 || config.depth > layers {
            return Err(MapleError::Invalid(format!(
                "prompt depth {} must be between 1 and the number of blocks ({layers})",
                config.depth
            )));
        }
        let (ctx, prompt_prefix) = match &config.ctx_init {
            Some(init) if config.n_ctx <= 4 && !init.trim().is_empty() => {
                let init = init.replace('_', " ");
                let rows = tokenizer.tokenize_batch(
                    &[init.as_str()],
                    clip.text.context_length(),
                    false,
                )?;
                let emb = clip.text.embed_rows(&rows, &device);
                let ctx = emb
                    .slice([0..1, 1..1 + config.n_ctx])
                    .reshape([config.n_ctx, dt]);
                (ctx, init)
            }
            _ => (
                Tensor::random([config.n_ctx, dt], Distribution::Normal(0.0, 0.02), &device),
                vec!["X"; config.n_ctx].join(" "),
            ),
        };
        let proj = LinearConfig::new(dt, dv).init(&device);
        let compound_prompts_text = (1..config.depth)
            .map(|_| {
                Param::from_tensor(Tensor::random(
                    [config.n_ctx, dt],
                    Distribution::Normal(0.0, 0.02),
                    &device,
                ))
            })
            .collect();
        let single = LinearConfig::new(dt, dv).init::<B>(&device);
        let compound_prompt_projections = (1..config.depth).map(|_| copy_linear(&single)).collect();
        Ok(Self {
            ctx: Param::from_tensor(ctx.detach()),
            proj,
            compound_prompts_text,
            compound_prompt_projections,
            prompt_prefix,
            config: config.clone(),
        })
    }

    /// Number of context tokens.
    pub fn n_ctx(&self) -> usize {
        self.ctx.dims()[0]
    }

    /// Prompt depth J.
    pub fn depth(&self) -> usize {
        self.compound_prompts_text.len() + 1
    }

    /// The layer-0 visual prompts `proj(ctx)`.
    ///
    /// # Shapes
    /// - output: `[n_ctx, vision_width]`
    pub fn shared_ctx(&self) -> Tensor<B, 2> {
        self.proj.forward(self.ctx.val())
    }

    /// Deep visual prompts for blocks `1..depth`: `compound_prompt_projections[i](compound_prompts_text[i])`.
    pub fn deep_visual_prompts(&self) -> Vec<Tensor<B, 2>> {
        self.compound_prompt_projections
            .iter()
            .zip(&self.compound_prompts_text)
            .map(|(l, p)| l.forward(p.val()))
            .collect()
    }

    /// The text prompt embeddings `[SOT] ctx <rest of the prompt>` for every class.
    ///
    /// # Shapes
    /// - output: `[classes, len, text_width]`
    pub fn prompts(&self, classes: &ClassTokens<B>) -> Tensor<B, 3> {
        DeepPrompts::splice(
            PromptAnchor::AfterFirst,
            classes.embeddings.clone(),
            self.ctx.val(),
        )
    }
}

fn deep<B: Backend>(anchor: PromptAnchor, prompts: Vec<Tensor<B, 2>>) -> DeepPrompts<B> {
    let layers = std::iter::once(None)
        .chain(prompts.into_iter().map(Some))
        .collect();
    DeepPrompts { anchor, layers }
}

impl<B: Backend> PromptLearner<B> for Maple<B> {
    fn prompt_prefix(&self) -> &str {
        &self.prompt_prefix
    }

    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        _image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>> {
        Ok(TextPrompts {
            embeddings: self.prompts(classes),
            eot: classes.eot.clone(),
            deep: deep(
                PromptAnchor::AfterFirst,
                self.compound_prompts_text.iter().map(|p| p.val()).collect(),
            ),
        })
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        VisionPrompts {
            shallow: Some(self.shared_ctx()),
            deep: deep(PromptAnchor::End, self.deep_visual_prompts()),
        }
    }

    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or_default();
        v["method"] = "maple".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::MethodConfig;
    use crate::testing::{tiny_clip, Tb};

    fn rows(t: Tensor<Tb, 3>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn widths_and_depth_come_from_the_clip() {
        // Tiny CLIP: text width 32 with 2 blocks, vision width 48 with 3 blocks.
        let (clip, tok) = tiny_clip();
        let l = Maple::new(&MapleConfig::new().with_depth(2), &clip, &tok).unwrap();
        assert_eq!((l.n_ctx(), l.depth()), (2, 2));
        assert_eq!(l.ctx.dims(), [2, 32]);
        assert_eq!(l.proj.weight.dims(), [32, 48]);
        assert_eq!(l.shared_ctx().dims(), [2, 48]);
        let deep = l.deep_visual_prompts();
        assert_eq!(deep.len(), 1);
        assert_eq!(deep[0].dims(), [2, 48]);
        let v = l.vision_prompts();
        assert_eq!(v.shallow.map(|s| s.dims()), Some([2, 48]));
        assert_eq!(v.deep.anchor, PromptAnchor::End);
        // Block 0 takes the shallow prompts; block 1 the deep one.
        assert!(v.deep.layers.get(1).is_some_and(Option::is_some));
    }

    #[test]
    fn depth_one_gives_no_deep_prompts_and_bad_depths_are_errors() {
        let (clip, tok) = tiny_clip();
        let l = Maple::new(&MapleConfig::new().with_depth(1), &clip, &tok).unwrap();
        assert!(l.deep_visual_prompts().is_empty());
        assert!(l.vision_prompts().deep.layers.iter().all(Option::is_none));
        for (depth, n_ctx) in [(3, 2), (0, 2), (2, 0)] {
            let cfg = MapleConfig::new().with_depth(depth).with_n_ctx(n_ctx);
            let err = Maple::new(&cfg, &clip, &tok).unwrap_err().to_string();
            assert!(
                err.contains(if n_ctx == 0 { "n_ctx" } else { "(2)" }),
                "depth {depth}, n_ctx {n_ctx}: {err}"
            );
        }
    }

    #[test]
    fn context_starts_from_the_init_words_and_only_it_replaces_prompt_rows() {
        let (clip, tok) = tiny_clip();
        let l = Maple::new(&MapleConfig::new().with_depth(2), &clip, &tok).unwrap();
        assert_eq!(l.prompt_prefix(), "a photo of a");
        // ctx = the token embeddings of the first n_ctx words of "a photo of a".
        let t = tok.tokenize_batch(&["a photo of a"], 77, false).unwrap();
        let words = clip
            .text
            .embed_rows(&t, &Default::default())
            .slice([0..1, 1..3]);
        assert_eq!(rows(l.ctx.val().unsqueeze_dim(0)), rows(words));
        let names = ["cat".to_string(), "big dog".to_string()];
        let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &names).unwrap();
        let p = l.prompts(&classes);
        let [c, len, w] = p.dims();
        assert_eq!([c, w], [2, 32]);
        // Every row but the context slots equals the frozen class prompt.
        for range in [0..1, 3..len] {
            assert_eq!(
                rows(p.clone().slice([0..c, range.clone()])),
                rows(classes.embeddings.clone().slice([0..c, range]))
            );
        }
    }

    #[test]
    fn random_context_uses_placeholders_and_settings_round_trip() {
        let (clip, tok) = tiny_clip();
        let cfg = MapleConfig::new()
            .with_depth(2)
            .with_n_ctx(3)
            .with_ctx_init(None);
        let l = Maple::new(&cfg, &clip, &tok).unwrap();
        assert_eq!(l.prompt_prefix(), "X X X");
        assert_eq!(
            MethodConfig::from_settings(&l.settings()).unwrap(),
            MethodConfig::Maple(cfg)
        );
    }
}
