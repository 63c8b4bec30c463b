//! VPT, deep visual prompt tuning on CLIP (the MaPLe paper's "deep vision prompting"):
//! prompts in the image tower only.
//!
//! `n_ctx` tokens are appended after the patch tokens before `ln_pre` and replaced by a
//! block's own prompt before blocks `1..depth`. The text side is CLIP's zero-shot
//! classifier of the fixed template "a photo of a {}." (the reference hard-codes it and
//! ignores `CTX_INIT`). Official names: `image_encoder.VPT`,
//! `image_encoder.transformer.resblocks.{i}.VPT_shallow`; the table mapping them to this
//! type's paths is in [`crate::checkpoint`].

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::{Clip, PromptAnchor};

use crate::context::{check_depth, deep_from_block1, random_prompt, random_prompts};
use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};

/// The words before the class name of VPT's fixed text prompts ("a photo of a {}.").
pub const VPT_TEMPLATE_PREFIX: &str = "a photo of a";

/// VPT hyper-parameters (reference: `TRAINER.VPT.*`); the defaults are the reference's
/// (`configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct VptConfig {
    /// Vision prompt tokens per block (`N_CTX_VISION`).
    #[config(default = 8)]
    pub n_ctx: usize,
    /// Prompt depth (`PROMPT_DEPTH_VISION`, at least 1): prompts for blocks `0..depth`.
    #[config(default = 12)]
    pub depth: usize,
}

impl VptConfig {
    /// The reference's default VPT setting: 8 vision prompts, depth 12.
    pub fn reference() -> Self {
        Self::new()
    }
}

impl Default for VptConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The VPT prompt learner.
#[derive(Module, Debug)]
pub struct Vpt<B: Backend> {
    /// Layer-0 vision prompts `[n_ctx, vision_width]` (`image_encoder.VPT`).
    pub vision_ctx: Param<Tensor<B, 2>>,
    /// Vision prompts for blocks `1..depth`, each `[n_ctx, vision_width]`.
    pub vision_deep: Vec<Param<Tensor<B, 2>>>,
    /// The settings it was built with.
    #[module(skip)]
    pub config: VptConfig,
}

impl<B: Backend> Vpt<B> {
    /// Builds the learner for `clip`: every prompt N(0, 0.02) from the backend's seeded
    /// generator.
    ///
    /// # Errors
    /// Depth 0 or beyond the image tower's blocks, or no prompt tokens.
    pub fn new(config: &VptConfig, clip: &Clip<B>) -> Result<Self> {
        let device = clip.device();
        let dv = clip.visual.width();
        check_depth(
            "VPT prompt depth",
            config.depth,
            1,
            clip.visual.resblocks.len(),
        )?;
        if config.n_ctx == 0 {
            return Err(MapleError::Invalid(
                "VPT needs at least 1 prompt token (n_ctx is 0)".into(),
            ));
        }
        Ok(Self {
            vision_ctx: Param::from_tensor(random_prompt(config.n_ctx, dv, &device)),
            vision_deep: random_prompts(config.depth - 1, config.n_ctx, dv, &device),
            config: config.clone(),
        })
    }

    /// Number of prompt tokens.
    pub fn n_ctx(&self) -> usize {
        self.vision_ctx.dims()[0]
    }

    /// Prompt depth.
    pub fn depth(&self) -> usize {
        1 + self.vision_deep.len()
    }
}

impl<B: Backend> PromptLearner<B> for Vpt<B> {
    fn prompt_prefix(&self) -> &str {
        VPT_TEMPLATE_PREFIX
    }

    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        _image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>> {
        Ok(TextPrompts::plain(classes))
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        VisionPrompts {
            shallow: Some(self.vision_ctx.val()),
            deep: deep_from_block1(
                PromptAnchor::End,
                self.vision_deep.iter().map(|p| p.val()).collect(),
            ),
        }
    }

    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or_default();
        v["method"] = "vpt".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tiny_clip, Tb};
    use crate::{MethodConfig, PromptedClip};
    use burn::module::Module;
    use burn::tensor::Distribution;

    #[test]
    fn reference_defaults_are_8_prompts_at_depth_12() {
        let c = VptConfig::reference();
        assert_eq!(c, VptConfig::default());
        assert_eq!((c.n_ctx, c.depth), (8, 12));
    }

    #[test]
    fn shapes_come_from_the_clip_and_depth_one_has_no_deep_prompts() {
        let (clip, _) = tiny_clip();
        let l = Vpt::new(&VptConfig::new().with_n_ctx(3).with_depth(3), &clip).unwrap();
        assert_eq!(l.vision_ctx.dims(), [3, 48]);
        assert_eq!(l.vision_deep.len(), 2);
        assert_eq!(l.num_params(), 3 * 3 * 48);
        let l = Vpt::new(&VptConfig::new().with_n_ctx(3).with_depth(1), &clip).unwrap();
        let v = l.vision_prompts();
        assert!(v.deep.layers.iter().all(Option::is_none));
        assert_eq!(l.depth(), 1);
    }

    #[test]
    fn bad_depths_and_counts_are_errors() {
        let (clip, _) = tiny_clip();
        let msg = Vpt::new(&VptConfig::new(), &clip).unwrap_err().to_string();
        assert!(msg.contains("12") && msg.contains("(3)"), "{msg}");
        assert!(Vpt::new(&VptConfig::new().with_depth(0), &clip).is_err());
        assert!(Vpt::new(&VptConfig::new().with_depth(2).with_n_ctx(0), &clip).is_err());
    }

    /// The text side is exactly CLIP's zero-shot classifier of "a photo of a {}.".
    #[test]
    fn text_features_are_the_zero_shot_template_features() {
        let (clip, tok) = tiny_clip();
        let l = Vpt::new(&VptConfig::new().with_depth(2), &clip).unwrap();
        let model = PromptedClip::new(clip, l);
        let names = vec!["cat".to_string(), "sea lake".to_string()];
        let classes = model.classes(&tok, &names).unwrap();
        let ours = model.encode_text(&classes).unwrap();
        let rows = tok
            .tokenize_batch(&["a photo of a cat.", "a photo of a sea lake."], 77, false)
            .unwrap();
        let want = model.clip.encode_text(&rows);
        assert_eq!(
            ours.into_data().to_vec::<f32>().unwrap(),
            want.into_data().to_vec::<f32>().unwrap()
        );
    }

    /// The prompts are extra tokens the class token attends to: the image features change.
    #[test]
    fn vision_prompts_reach_the_image_tower() {
        let (clip, _) = tiny_clip();
        let l = Vpt::new(&VptConfig::new().with_depth(3).with_n_ctx(2), &clip).unwrap();
        let model = PromptedClip::new(clip, l);
        let images = Tensor::<Tb, 4>::random(
            [2, 3, 32, 32],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let plain = model.clip.encode_image(images.clone());
        let prompted = model.encode_image(images);
        let diff = (plain - prompted).abs().max().into_scalar();
        assert!(diff > 1e-6, "{diff}");
    }

    #[test]
    fn settings_rebuild_the_same_config() {
        let (clip, _) = tiny_clip();
        let cfg = VptConfig::new().with_depth(2).with_n_ctx(4);
        let l = Vpt::new(&cfg, &clip).unwrap();
        let s = l.settings();
        assert_eq!(s["method"], "vpt");
        assert_eq!(
            MethodConfig::from_settings(&s).unwrap(),
            MethodConfig::Vpt(cfg)
        );
    }
}
