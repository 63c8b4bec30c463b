//! CoOp (Zhou et al., IJCV 2022): learnable text context vectors, nothing else.
//!
//! The context `ctx` is one generic `[n_ctx, text_width]` tensor shared by all classes, or
//! one per class (class-specific context, CSC: `[classes, n_ctx, text_width]`). It replaces
//! the `n_ctx` placeholder words after SOT; the class name goes after the context (`end`),
//! between its two halves (`middle`) or before it (`front`). The image tower is plain CLIP.
//! The parameter name `ctx` is the reference's (its checkpoints hold `ctx`,
//! `token_prefix`, `token_suffix` without any prefix).

use std::collections::BTreeMap;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use clip_model::tokenizer::Tokenizer;
use clip_model::Clip;
use serde::{Deserialize, Serialize};

use crate::context::{
    context_from_words, context_words, placeholder_prefix, word_count, PROMPT_STD,
};
use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};

/// Where the class name sits relative to the context (`CLASS_TOKEN_POSITION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassTokenPosition {
    /// `[SOT, ctx, name, ., EOT]` (the reference's default).
    #[default]
    End,
    /// `[SOT, ctx[..n/2], name, ctx[n/2..], ., EOT]`.
    Middle,
    /// `[SOT, name, ctx, ., EOT]`.
    Front,
}

/// CoOp hyper-parameters (reference: `TRAINER.COOP.*`); the defaults are the reference's.
#[derive(Config, Debug, PartialEq)]
pub struct CoOpConfig {
    /// Number of context vectors (`N_CTX`). Ignored when `ctx_init` is set: the reference
    /// then uses one vector per word of `ctx_init`.
    #[config(default = 16)]
    pub n_ctx: usize,
    /// Words whose token embeddings initialise the context (`CTX_INIT`); `None` draws
    /// N(0, 0.02) and uses `X` placeholder words.
    #[config(default = "None")]
    pub ctx_init: Option<String>,
    /// Class-specific context (`CSC`): one context per class. Ignored when `ctx_init` is
    /// set (as the reference).
    #[config(default = false)]
    pub csc: bool,
    /// Where the class name goes (`CLASS_TOKEN_POSITION`).
    #[config(default = "ClassTokenPosition::End")]
    pub class_token_position: ClassTokenPosition,
}

impl CoOpConfig {
    /// The reference's default CoOp setting: 16 random generic context vectors, class
    /// name at the end (`configs/trainers/CoOp/vit_b16.yaml` with train.py's defaults).
    pub fn reference() -> Self {
        Self::new()
    }

    /// The number of context vectors actually used: the word count of `ctx_init` when it
    /// is set, else `n_ctx`.
    pub fn effective_n_ctx(&self) -> usize {
        context_words(self.ctx_init.as_deref()).map_or(self.n_ctx, |w| word_count(&w))
    }

    /// Whether the context is class-specific (`csc` without context words).
    pub fn effective_csc(&self) -> bool {
        self.csc && context_words(self.ctx_init.as_deref()).is_none()
    }
}

impl Default for CoOpConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The learnable context of CoOp: generic or class-specific. The enum adds no component to
/// parameter paths, so both are called `ctx`, as in the reference.
#[derive(Module, Debug)]
pub enum Context<B: Backend> {
    /// One context for all classes, `[n_ctx, text_width]`.
    Generic(Param<Tensor<B, 2>>),
    /// One context per class, `[classes, n_ctx, text_width]`.
    ClassSpecific(Param<Tensor<B, 3>>),
}

/// The CoOp prompt learner.
#[derive(Module, Debug)]
pub struct CoOp<B: Backend> {
    /// The context vectors.
    pub ctx: Context<B>,
    /// The words before the class name in the tokenized prompt.
    #[module(skip)]
    pub prompt_prefix: String,
    /// The settings it was built with.
    #[module(skip)]
    pub config: CoOpConfig,
}

impl<B: Backend> CoOp<B> {
    /// Builds the learner for `clip` and `num_classes` classes (used by class-specific
    /// contexts only), as the reference `PromptLearner.__init__` of `trainers/coop.py`.
    ///
    /// # Errors
    /// No context vectors, or a class-specific context for 0 classes.
    pub fn new(
        config: &CoOpConfig,
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        num_classes: usize,
    ) -> Result<Self> {
        let device = clip.device();
        let width = clip.text.width();
        let (ctx, prompt_prefix) = match context_words(config.ctx_init.as_deref()) {
            Some(words) => {
                let n = word_count(&words);
                let ctx = context_from_words(clip, tokenizer, &words, n)?;
                (Context::Generic(Param::from_tensor(ctx)), words)
            }
            None => {
                let n = config.n_ctx;
                if n == 0 {
                    return Err(MapleError::Invalid(
                        "CoOp needs at least 1 context vector (n_ctx is 0)".into(),
                    ));
                }
                let normal = Distribution::Normal(0.0, PROMPT_STD);
                let ctx = if config.csc {
                    if num_classes == 0 {
                        return Err(MapleError::Invalid(
                            "a class-specific CoOp context needs the number of classes (got 0)"
                                .into(),
                        ));
                    }
                    Context::ClassSpecific(Param::from_tensor(Tensor::random(
                        [num_classes, n, width],
                        normal,
                        &device,
                    )))
                } else {
                    Context::Generic(Param::from_tensor(Tensor::random(
                        [n, width],
                        normal,
                        &device,
                    )))
                };
                (ctx, placeholder_prefix(n))
            }
        };
        if config.ctx_init.is_some() && config.csc {
            log::info!("CoOp: context words given, so the context is generic (CSC ignored, as the reference)");
        }
        Ok(Self {
            ctx,
            prompt_prefix,
            config: config.clone(),
        })
    }

    /// Number of context vectors.
    pub fn n_ctx(&self) -> usize {
        match &self.ctx {
            Context::Generic(p) => p.dims()[0],
            Context::ClassSpecific(p) => p.dims()[1],
        }
    }

    /// Number of classes a class-specific context was built for; `None` when generic.
    pub fn num_classes(&self) -> Option<usize> {
        match &self.ctx {
            Context::Generic(_) => None,
            Context::ClassSpecific(p) => Some(p.dims()[0]),
        }
    }

    /// The context of every class.
    ///
    /// # Shapes
    /// - output: `[classes, n_ctx, text_width]`
    fn per_class(&self, classes: usize) -> Result<Tensor<B, 3>> {
        match &self.ctx {
            Context::Generic(p) => {
                let [n, w] = p.dims();
                Ok(p.val().unsqueeze_dim::<3>(0).expand([classes, n, w]))
            }
            Context::ClassSpecific(p) => {
                let trained = p.dims()[0];
                if trained != classes {
                    return Err(MapleError::Invalid(format!(
                        "this class-specific CoOp context was trained for {trained} classes, \
                         but {classes} classes were given"
                    )));
                }
                Ok(p.val())
            }
        }
    }

    /// The text prompt embeddings of every class, arranged as `class_token_position` says:
    /// SOT, then context and class-name rows, then `.`, EOT and padding. Every row that is
    /// not context is the class prompt's own embedding, and the EOT keeps its position.
    ///
    /// # Errors
    /// A class-specific context for another number of classes, or class prompts that were
    /// not tokenized with this learner's prefix (too short for the context).
    ///
    /// # Shapes
    /// - output: `[classes, len, text_width]` (`len` as `classes.embeddings`)
    pub fn prompts(&self, classes: &ClassTokens<B>) -> Result<Tensor<B, 3>> {
        let emb = classes.embeddings.clone();
        let [c, len, w] = emb.dims();
        let n = self.n_ctx();
        let ctx = self.per_class(c)?;
        let position = self.config.class_token_position;
        let longest = match position {
            ClassTokenPosition::End => 0,
            _ => classes.name_lens.iter().copied().max().unwrap_or(0),
        };
        if 1 + n + longest > len || classes.name_lens.len() != c {
            return Err(MapleError::Invalid(format!(
                "class prompts of {len} tokens cannot hold SOT, {n} context vectors and \
                 class names of up to {longest} tokens: tokenize them with the prefix {:?}",
                self.prompt_prefix
            )));
        }
        if position == ClassTokenPosition::End {
            return Ok(Tensor::cat(
                vec![
                    emb.clone().slice([0..c, 0..1]),
                    ctx,
                    emb.slice([0..c, 1 + n..len]),
                ],
                1,
            ));
        }
        // Classes whose names have the same token count share one layout: build each group
        // with a few concatenations, then restore the class order.
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &k) in classes.name_lens.iter().enumerate() {
            groups.entry(k).or_default().push(i);
        }
        let device = emb.device();
        let index = |ids: &[usize]| {
            let v: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [ids.len()]), &device)
        };
        let half = n / 2;
        let mut parts = Vec::with_capacity(groups.len());
        let mut order = Vec::with_capacity(c);
        for (&k, ids) in &groups {
            let g = ids.len();
            let idx = index(ids);
            let e = emb.clone().select(0, idx.clone());
            let x = ctx.clone().select(0, idx);
            let sot = e.clone().slice([0..g, 0..1]);
            let name = e.clone().slice([0..g, 1 + n..1 + n + k]);
            let rest = e.slice([0..g, 1 + n + k..len]);
            let rows = match position {
                ClassTokenPosition::Middle => vec![
                    sot,
                    x.clone().slice([0..g, 0..half]),
                    name,
                    x.slice([0..g, half..n]),
                    rest,
                ],
                _ => vec![sot, name, x, rest],
            };
            parts.push(Tensor::cat(rows, 1));
            order.extend_from_slice(ids);
        }
        let grouped = Tensor::cat(parts, 0);
        // `order[j]` is the class at row j; row of class i = position of i in `order`.
        let mut inverse = vec![0usize; c];
        for (row, &class) in order.iter().enumerate() {
            inverse[class] = row;
        }
        let out = grouped.select(0, index(&inverse));
        debug_assert_eq!(out.dims(), [c, len, w]);
        Ok(out)
    }
}

impl<B: Backend> PromptLearner<B> for CoOp<B> {
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
            ..TextPrompts::plain(classes)
        })
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        VisionPrompts::none()
    }

    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or_default();
        v["method"] = "coop".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tiny_clip, Tb};
    use crate::{MethodConfig, PromptedClip};
    use clip_model::HostTensor;

    fn names() -> Vec<String> {
        ["cat", "golden retriever", "sea lake", "a b c d"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn reference_defaults_are_16_random_generic_vectors_at_the_end() {
        let c = CoOpConfig::reference();
        assert_eq!(c, CoOpConfig::default());
        assert_eq!(
            (
                c.n_ctx,
                c.ctx_init.as_deref(),
                c.csc,
                c.class_token_position
            ),
            (16, None, false, ClassTokenPosition::End)
        );
    }

    #[test]
    fn context_words_set_the_count_and_disable_csc() {
        let (clip, tok) = tiny_clip();
        let cfg = CoOpConfig::new()
            .with_n_ctx(16)
            .with_csc(true)
            .with_ctx_init(Some("a photo of a".into()));
        let l = CoOp::new(&cfg, &clip, &tok, 3).unwrap();
        assert_eq!(l.n_ctx(), 4);
        assert_eq!(l.num_classes(), None);
        assert_eq!(l.prompt_prefix, "a photo of a");
        assert_eq!((cfg.effective_n_ctx(), cfg.effective_csc()), (4, false));
    }

    #[test]
    fn class_specific_context_has_one_context_per_class() {
        let (clip, tok) = tiny_clip();
        let cfg = CoOpConfig::new().with_n_ctx(3).with_csc(true);
        let l = CoOp::new(&cfg, &clip, &tok, 4).unwrap();
        assert_eq!(l.num_classes(), Some(4));
        assert_eq!(l.n_ctx(), 3);
        assert_eq!(l.prompt_prefix, "X X X");
        assert!(CoOp::new(&cfg, &clip, &tok, 0).is_err());
    }

    #[test]
    fn a_class_specific_context_refuses_another_class_count_naming_both() {
        let (clip, tok) = tiny_clip();
        let cfg = CoOpConfig::new().with_n_ctx(2).with_csc(true);
        let l = CoOp::new(&cfg, &clip, &tok, 3).unwrap();
        let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &names()).unwrap();
        let msg = l.prompts(&classes).unwrap_err().to_string();
        assert!(
            msg.contains("3 classes") && msg.contains("4 classes"),
            "{msg}"
        );
    }

    #[test]
    fn zero_context_vectors_are_an_error() {
        let (clip, tok) = tiny_clip();
        assert!(CoOp::new(&CoOpConfig::new().with_n_ctx(0), &clip, &tok, 2).is_err());
    }

    /// Every arrangement keeps the rows that are not context: SOT, the class-name tokens
    /// (moved as a block), `.`, EOT and padding; the context rows are the context.
    #[test]
    fn every_arrangement_keeps_every_non_prompt_row() {
        let (clip, tok) = tiny_clip();
        for position in [
            ClassTokenPosition::End,
            ClassTokenPosition::Middle,
            ClassTokenPosition::Front,
        ] {
            for csc in [false, true] {
                let n = 5;
                let cfg = CoOpConfig::new()
                    .with_n_ctx(n)
                    .with_csc(csc)
                    .with_class_token_position(position);
                let l = CoOp::new(&cfg, &clip, &tok, 4).unwrap();
                let classes = ClassTokens::new(&clip, &tok, l.prompt_prefix(), &names()).unwrap();
                let HostTensor { shape, data: got } =
                    HostTensor::from_tensor(l.prompts(&classes).unwrap());
                let HostTensor {
                    shape: eshape,
                    data: emb,
                } = HostTensor::from_tensor(classes.embeddings.clone());
                assert_eq!(shape, eshape);
                let (len, w) = (shape[1], shape[2]);
                let ctx = l.per_class(4).unwrap();
                let ctx = HostTensor::from_tensor(ctx).data;
                for (c, &k) in classes.name_lens.iter().enumerate() {
                    let row = |v: &[f32], i: usize, r: usize, l: usize| {
                        v[(i * l + r) * w..(i * l + r + 1) * w].to_vec()
                    };
                    let half = n / 2;
                    // Expected source of each output row: Ok(embedding row) or Err(ctx row).
                    let src: Vec<std::result::Result<usize, usize>> = match position {
                        ClassTokenPosition::End => std::iter::once(Ok(0))
                            .chain((0..n).map(Err))
                            .chain((1 + n..len).map(Ok))
                            .collect(),
                        ClassTokenPosition::Middle => std::iter::once(Ok(0))
                            .chain((0..half).map(Err))
                            .chain((1 + n..1 + n + k).map(Ok))
                            .chain((half..n).map(Err))
                            .chain((1 + n + k..len).map(Ok))
                            .collect(),
                        ClassTokenPosition::Front => std::iter::once(Ok(0))
                            .chain((1 + n..1 + n + k).map(Ok))
                            .chain((0..n).map(Err))
                            .chain((1 + n + k..len).map(Ok))
                            .collect(),
                    };
                    assert_eq!(src.len(), len);
                    for (r, s) in src.into_iter().enumerate() {
                        let want = match s {
                            Ok(e) => row(&emb, c, e, len),
                            Err(x) => row(&ctx, c, x, n),
                        };
                        assert_eq!(
                            row(&got, c, r, len),
                            want,
                            "{position:?} csc={csc} class {c} row {r}"
                        );
                    }
                }
            }
        }
    }

    /// A context equal to the template words' embeddings gives zero-shot CLIP.
    #[test]
    fn context_equal_to_the_template_words_gives_zero_shot_logits() {
        let (clip, tok) = tiny_clip();
        let cfg = CoOpConfig::new().with_ctx_init(Some("a photo of a".into()));
        let l = CoOp::new(&cfg, &clip, &tok, 0).unwrap();
        let model = PromptedClip::new(clip, l);
        let classes = model.classes(&tok, &names()).unwrap();
        let images = Tensor::<Tb, 4>::random(
            [2, 3, 32, 32],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let ours = model.forward(images.clone(), &classes).unwrap();
        let zs =
            clip_model::ZeroShotClassifier::new(&model.clip, &tok, &names(), &["a photo of a {}."])
                .unwrap();
        let want = zs.logits(&model.clip, images);
        let diff = (ours - want).abs().max().into_scalar();
        assert!(diff < 1e-4, "{diff}");
    }

    #[test]
    fn settings_rebuild_the_same_config() {
        let (clip, tok) = tiny_clip();
        let cfg = CoOpConfig::new()
            .with_n_ctx(4)
            .with_csc(true)
            .with_class_token_position(ClassTokenPosition::Middle);
        let l = CoOp::new(&cfg, &clip, &tok, 2).unwrap();
        let s = l.settings();
        assert_eq!(s["method"], "coop");
        assert_eq!(s["class_token_position"], "middle");
        assert_eq!(
            MethodConfig::from_settings(&s).unwrap(),
            MethodConfig::CoOp(cfg)
        );
    }
}
