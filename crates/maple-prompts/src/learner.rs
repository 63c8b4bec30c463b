//! The prompt-learner abstraction: what a method hands to each CLIP tower.
//!
//! Every method (MaPLe, CoOp, Co-CoOp, IVLP, VPT) differs from plain CLIP only in the
//! embedded text sequences, the tokens appended to the image sequence and the token slots
//! overwritten before chosen blocks. A method is therefore a [`PromptLearner`]: it returns
//! [`TextPrompts`] and [`VisionPrompts`], and clip-model's encoders run them unchanged.
//! Co-CoOp's text prompts depend on each image; such a learner says so with
//! [`PromptLearner::image_conditioned`] and receives the image features.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, DeepPrompts, PromptAnchor};

use crate::error::{MapleError, Result};

/// Embedded class prompts: the frozen token embeddings of `"<prefix words> <class>."`
/// for every class, truncated after the last EOT (later positions never matter in a
/// causal text tower). Rebuilt from class names; never saved.
#[derive(Debug, Clone)]
pub struct ClassTokens<B: Backend> {
    /// Token embeddings `[classes, len, text_width]` (no positional embedding).
    pub embeddings: Tensor<B, 3>,
    /// Position of the EOT token per class.
    pub eot: Vec<usize>,
    /// The token rows (full context length) the embeddings came from.
    pub rows: Vec<Vec<u32>>,
    /// Number of BPE tokens of each class name (the reference's `name_lens`).
    pub name_lens: Vec<usize>,
    /// The class names, as given.
    pub class_names: Vec<String>,
}

impl<B: Backend> ClassTokens<B> {
    /// Tokenizes `"{prefix} {name}."` for each class (underscores in names become spaces,
    /// as in the reference) and embeds the tokens with CLIP's frozen token embedding.
    ///
    /// # Errors
    /// No class names, or a prompt longer than CLIP's context.
    pub fn new(
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        prefix: &str,
        class_names: &[String],
    ) -> Result<Self> {
        if class_names.is_empty() {
            return Err(MapleError::Invalid("no class names given".into()));
        }
        let names: Vec<String> = class_names.iter().map(|n| n.replace('_', " ")).collect();
        let prompts: Vec<String> = names
            .iter()
            .map(|n| {
                if prefix.is_empty() {
                    format!("{n}.")
                } else {
                    format!("{prefix} {n}.")
                }
            })
            .collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let rows = tokenizer.tokenize_batch(&refs, clip.text.context_length(), false)?;
        let eot = clip_model::eot_positions(&rows);
        let len = eot.iter().max().map_or(1, |m| m + 1);
        let device = clip.device();
        let embeddings = clip.text.embed_rows(&rows, &device);
        let [n, _, w] = embeddings.dims();
        let embeddings = embeddings.slice([0..n, 0..len, 0..w]);
        let name_lens = names.iter().map(|n| tokenizer.encode(n).len()).collect();
        Ok(Self {
            embeddings,
            eot,
            rows,
            name_lens,
            class_names: class_names.to_vec(),
        })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.eot.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.eot.is_empty()
    }

    /// The same prompts on another backend/device (e.g. to evaluate without autodiff).
    pub fn to_backend<B2: Backend>(&self, device: &B2::Device) -> ClassTokens<B2> {
        ClassTokens {
            embeddings: Tensor::from_data(self.embeddings.to_data(), device),
            eot: self.eot.clone(),
            rows: self.rows.clone(),
            name_lens: self.name_lens.clone(),
            class_names: self.class_names.clone(),
        }
    }
}

/// Deep prompts that replace nothing.
pub fn no_deep<B: Backend>(anchor: PromptAnchor) -> DeepPrompts<B> {
    DeepPrompts {
        anchor,
        layers: Vec::new(),
    }
}

/// What a prompt method gives the text tower.
#[derive(Debug, Clone)]
pub struct TextPrompts<B: Backend> {
    /// Embedded prompts `[sequences, len, text_width]` (before positional embedding): one
    /// per class, or, for an image-conditioned learner, one per (image, class) pair,
    /// image-major (`image * classes + class`).
    pub embeddings: Tensor<B, 3>,
    /// EOT position per sequence.
    pub eot: Vec<usize>,
    /// Deep prompts replacing slots before text blocks.
    pub deep: DeepPrompts<B>,
}

impl<B: Backend> TextPrompts<B> {
    /// The class prompts unchanged: plain CLIP text features of `"<prefix> <class>."`.
    pub fn plain(classes: &ClassTokens<B>) -> Self {
        Self {
            embeddings: classes.embeddings.clone(),
            eot: classes.eot.clone(),
            deep: no_deep(PromptAnchor::AfterFirst),
        }
    }
}

/// What a prompt method gives the image tower.
#[derive(Debug, Clone)]
pub struct VisionPrompts<B: Backend> {
    /// Tokens appended after the patch tokens before `ln_pre`, `[n, vision_width]`.
    pub shallow: Option<Tensor<B, 2>>,
    /// Deep prompts replacing slots before vision blocks.
    pub deep: DeepPrompts<B>,
}

impl<B: Backend> VisionPrompts<B> {
    /// No prompts: plain CLIP.
    pub fn none() -> Self {
        Self {
            shallow: None,
            deep: no_deep(PromptAnchor::End),
        }
    }
}

/// A prompt-learning method: data for the two towers of a frozen CLIP.
///
/// A new method is a new type implementing this trait; the encoders never change. Its
/// parameters (Burn `Param`s) are the trainable ones; [`crate::PromptedClip::train_step`]
/// and the trainer work with any implementation.
pub trait PromptLearner<B: Backend>: Module<B> {
    /// The words placed before the class name when tokenizing the class prompts
    /// (e.g. `"a photo of a"`, or `"X X X X"` for randomly initialised contexts).
    fn prompt_prefix(&self) -> &str;

    /// Text-side prompts for `classes`.
    ///
    /// `image_features` is `Some` exactly when [`Self::image_conditioned`] is true: the
    /// L2-normalised image features `[batch, embed_dim]`; the prompts are then one per
    /// (image, class) pair, image-major.
    ///
    /// # Errors
    /// Classes the learner cannot prompt (e.g. a class-specific context trained for
    /// another number of classes).
    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>>;

    /// Image-side prompts.
    fn vision_prompts(&self) -> VisionPrompts<B>;

    /// Whether the text prompts depend on the image (Co-CoOp). Then text features cannot
    /// be encoded once per evaluation, and each image gets its own class prompts.
    fn image_conditioned(&self) -> bool {
        false
    }

    /// The method's name and settings as JSON (`{"method": "maple", ...}`), stored in
    /// checkpoints so that a learner can be rebuilt from the file alone.
    fn settings(&self) -> serde_json::Value;
}
