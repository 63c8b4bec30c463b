//! IVLP, independent vision-language prompting (the MaPLe paper's ablation): deep text
//! prompts and deep vision prompts learned separately, with no coupling between the towers.
//!
//! Text: a context `ctx` after SOT (as MaPLe's) and, before blocks `1..depth_text`, its own
//! prompt written over the same slots. Vision: `n_ctx_vision` tokens appended after the
//! patch tokens before `ln_pre`, then replaced by a block's own prompt before blocks
//! `1..depth_vision`. Official names: `prompt_learner.ctx`,
//! `text_encoder.transformer.resblocks.{i}.VPT_shallow`, `image_encoder.VPT`,
//! `image_encoder.transformer.resblocks.{i}.VPT_shallow`; the table mapping them to this
//! type's paths is in [`crate::checkpoint`].

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, DeepPrompts, PromptAnchor};

use crate::context::{
    check_depth, context_from_words, context_words, deep_from_block1, placeholder_prefix,
    random_prompt, random_prompts,
};
use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};

/// IVLP hyper-parameters (reference: `TRAINER.IVLP.*`); the defaults are the reference's
/// (`configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct IvlpConfig {
    /// Text prompt tokens per block (`N_CTX_TEXT`).
    #[config(default = 2)]
    pub n_ctx_text: usize,
    /// Vision prompt tokens per block (`N_CTX_VISION`).
    #[config(default = 2)]
    pub n_ctx_vision: usize,
    /// Words whose embeddings initialise the text context (`CTX_INIT`); random
    /// N(0, 0.02) when `None` or when `n_ctx_text > 4` (as the reference).
    #[config(default = "Some(\"a photo of a\".to_string())")]
    pub ctx_init: Option<String>,
    /// Text prompt depth (`PROMPT_DEPTH_TEXT`, at least 1): prompts for blocks `0..depth`.
    #[config(default = 12)]
    pub depth_text: usize,
    /// Vision prompt depth (`PROMPT_DEPTH_VISION`; 0 = no vision prompts).
    #[config(default = 12)]
    pub depth_vision: usize,
}

impl IvlpConfig {
    /// The reference's default IVLP setting: 2 text + 2 vision prompts, depth 12 in both
    /// towers, text context from "a photo of a".
    pub fn reference() -> Self {
        Self::new()
    }
}

impl Default for IvlpConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The IVLP prompt learner.
#[derive(Module, Debug)]
pub struct Ivlp<B: Backend> {
    /// Layer-0 text context `[n_ctx_text, text_width]` (`prompt_learner.ctx`).
    pub ctx: Param<Tensor<B, 2>>,
    /// Text prompts for blocks `1..depth_text`, each `[n_ctx_text, text_width]`.
    pub text_deep: Vec<Param<Tensor<B, 2>>>,
    /// Layer-0 vision prompts `[n_ctx_vision, vision_width]` (`image_encoder.VPT`);
    /// `None` at vision depth 0.
    pub vision_ctx: Option<Param<Tensor<B, 2>>>,
    /// Vision prompts for blocks `1..depth_vision`, each `[n_ctx_vision, vision_width]`.
    pub vision_deep: Vec<Param<Tensor<B, 2>>>,
    /// The words before the class name in the tokenized prompt.
    #[module(skip)]
    pub prompt_prefix: String,
    /// The settings it was built with.
    #[module(skip)]
    pub config: IvlpConfig,
}

impl<B: Backend> Ivlp<B> {
    /// Builds the learner for `clip`: text context from the first `n_ctx_text` tokens of
    /// `ctx_init` (when `n_ctx_text <= 4`) or N(0, 0.02); every other prompt N(0, 0.02)
    /// from the backend's seeded generator. (The reference draws its prompts inside the
    /// CLIP constructor, so its draws cannot be replayed anyway.)
    ///
    /// # Errors
    /// Text depth 0 (use [`crate::Vpt`] for vision-only prompting), a depth beyond a
    /// tower's blocks, or no prompt tokens in a prompted tower.
    pub fn new(config: &IvlpConfig, clip: &Clip<B>, tokenizer: &Tokenizer) -> Result<Self> {
        let device = clip.device();
        let (dt, dv) = (clip.text.width(), clip.visual.width());
        check_depth(
            "IVLP text prompt depth",
            config.depth_text,
            1,
            clip.text.resblocks.len(),
        )?;
        check_depth(
            "IVLP vision prompt depth",
            config.depth_vision,
            0,
            clip.visual.resblocks.len(),
        )?;
        if config.n_ctx_text == 0 {
            return Err(MapleError::Invalid(
                "IVLP needs at least 1 text prompt token (n_ctx_text is 0)".into(),
            ));
        }
        if config.depth_vision > 0 && config.n_ctx_vision == 0 {
            return Err(MapleError::Invalid(format!(
                "IVLP vision prompt depth {} needs at least 1 vision prompt token (n_ctx_vision is 0)",
                config.depth_vision
            )));
        }
        let n = config.n_ctx_text;
        let (ctx, prompt_prefix) = match context_words(config.ctx_init.as_deref()) {
            Some(words) if n <= 4 => (context_from_words(clip, tokenizer, &words, n)?, words),
            _ => (random_prompt(n, dt, &device), placeholder_prefix(n)),
        };
        let (vision_ctx, vision_deep) = if config.depth_vision == 0 {
            (None, Vec::new())
        } else {
            let nv = config.n_ctx_vision;
            (
                Some(Param::from_tensor(random_prompt(nv, dv, &device))),
                random_prompts(config.depth_vision - 1, nv, dv, &device),
            )
        };
        let text_deep = random_prompts(config.depth_text - 1, n, dt, &device);
        Ok(Self {
            ctx: Param::from_tensor(ctx),
            text_deep,
            vision_ctx,
            vision_deep,
            prompt_prefix,
            config: config.clone(),
        })
    }

    /// Number of text prompt tokens.
    pub fn n_ctx_text(&self) -> usize {
        self.ctx.dims()[0]
    }

    /// Text prompt depth.
    pub fn depth_text(&self) -> usize {
        1 + self.text_deep.len()
    }

    /// Vision prompt depth (0 without vision prompts).
    pub fn depth_vision(&self) -> usize {
        self.vision_ctx
            .as_ref()
            .map_or(0, |_| 1 + self.vision_deep.len())
    }

    /// The text prompt embeddings `[SOT] ctx <rest of the prompt>` for every class.
    ///
    /// # Errors
    /// Class prompts too short for the context (tokenized with another prefix).
    ///
    /// # Shapes
    /// - output: `[classes, len, text_width]`
    pub fn prompts(&self, classes: &ClassTokens<B>) -> Result<Tensor<B, 3>> {
        let len = classes.embeddings.dims()[1];
        let n = self.n_ctx_text();
        if 1 + n >= len {
            return Err(MapleError::Invalid(format!(
                "class prompts of {len} tokens cannot hold SOT and {n} text prompt tokens: \
                 tokenize them with the prefix {:?}",
                self.prompt_prefix
            )));
        }
        Ok(DeepPrompts::splice(
            PromptAnchor::AfterFirst,
            classes.embeddings.clone(),
            self.ctx.val(),
        ))
    }
}

impl<B: Backend> PromptLearner<B> for Ivlp<B> {
    fn prompt_prefix(&self) -> &str {
        &self.prompt_prefix
    }

    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        _image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>> {
        Ok(TextPrompts {
            embeddings: self.prompts(classes)?,
            eot: classes.eot.clone(),
            deep: deep_from_block1(
                PromptAnchor::AfterFirst,
                self.text_deep.iter().map(|p| p.val()).collect(),
            ),
        })
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        match &self.vision_ctx {
            None => VisionPrompts::none(),
            Some(v) => VisionPrompts {
                shallow: Some(v.val()),
                deep: deep_from_block1(
                    PromptAnchor::End,
                    self.vision_deep.iter().map(|p| p.val()).collect(),
                ),
            },
        }
    }

    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or_default();
        v["method"] = "ivlp".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_clip;
    use crate::MethodConfig;
    use burn::module::Module;

    #[test]
    fn reference_defaults_are_2_plus_2_prompts_at_depth_12() {
        let c = IvlpConfig::reference();
        assert_eq!(c, IvlpConfig::default());
        assert_eq!(
            (
                c.n_ctx_text,
                c.n_ctx_vision,
                c.depth_text,
                c.depth_vision,
                c.ctx_init.as_deref()
            ),
            (2, 2, 12, 12, Some("a photo of a"))
        );
    }

    #[test]
    fn separate_depths_and_counts_give_the_prompt_shapes() {
        let (clip, tok) = tiny_clip();
        let cfg = IvlpConfig::new()
            .with_n_ctx_text(3)
            .with_n_ctx_vision(5)
            .with_depth_text(2)
            .with_depth_vision(3);
        let l = Ivlp::new(&cfg, &clip, &tok).unwrap();
        assert_eq!(l.ctx.dims(), [3, 32]);
        assert_eq!(l.text_deep.len(), 1);
        assert_eq!(l.vision_ctx.as_ref().unwrap().dims(), [5, 48]);
        assert_eq!(l.vision_deep.len(), 2);
        assert_eq!(l.vision_deep[1].dims(), [5, 48]);
        assert_eq!((l.depth_text(), l.depth_vision()), (2, 3));
        // 3*32 + 1*3*32 + 5*48 + 2*5*48
        assert_eq!(l.num_params(), 96 + 96 + 240 + 480);
    }

    #[test]
    fn depth_one_gives_no_deep_prompts_and_vision_depth_zero_no_vision_prompts() {
        let (clip, tok) = tiny_clip();
        let cfg = IvlpConfig::new().with_depth_text(1).with_depth_vision(0);
        let l = Ivlp::new(&cfg, &clip, &tok).unwrap();
        let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &["cat".into()]).unwrap();
        let t = l.text_prompts(&classes, None).unwrap();
        assert!(t.deep.layers.iter().all(Option::is_none));
        let v = l.vision_prompts();
        assert!(v.shallow.is_none() && v.deep.layers.is_empty());
        let l = Ivlp::new(&cfg.clone().with_depth_vision(1), &clip, &tok).unwrap();
        let v = l.vision_prompts();
        assert!(v.shallow.is_some() && v.deep.layers.iter().all(Option::is_none));
    }

    #[test]
    fn bad_depths_and_counts_are_errors_naming_the_limit() {
        let (clip, tok) = tiny_clip();
        let msg = Ivlp::new(&IvlpConfig::new(), &clip, &tok)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("12") && msg.contains("(2)"), "{msg}");
        let ok = IvlpConfig::new().with_depth_text(2).with_depth_vision(3);
        assert!(Ivlp::new(&ok, &clip, &tok).is_ok());
        for bad in [
            ok.clone().with_depth_text(0),
            ok.clone().with_depth_vision(4),
            ok.clone().with_n_ctx_text(0),
            ok.clone().with_n_ctx_vision(0),
        ] {
            assert!(Ivlp::new(&bad, &clip, &tok).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn context_comes_from_the_first_words_unless_longer_than_four() {
        let (clip, tok) = tiny_clip();
        let cfg = IvlpConfig::new().with_depth_text(2).with_depth_vision(3);
        let l = Ivlp::new(&cfg, &clip, &tok).unwrap();
        assert_eq!(l.prompt_prefix, "a photo of a");
        let words = context_from_words(&clip, &tok, "a photo of a", 2).unwrap();
        assert_eq!(
            l.ctx.val().into_data().to_vec::<f32>().unwrap(),
            words.into_data().to_vec::<f32>().unwrap()
        );
        let l = Ivlp::new(&cfg.with_n_ctx_text(5), &clip, &tok).unwrap();
        assert_eq!(l.prompt_prefix, "X X X X X");
    }

    #[test]
    fn settings_rebuild_the_same_config() {
        let (clip, tok) = tiny_clip();
        let cfg = IvlpConfig::new().with_depth_text(2).with_depth_vision(0);
        let l = Ivlp::new(&cfg, &clip, &tok).unwrap();
        let s = l.settings();
        assert_eq!(s["method"], "ivlp");
        assert_eq!(
            MethodConfig::from_settings(&s).unwrap(),
            MethodConfig::Ivlp(cfg)
        );
    }
}
