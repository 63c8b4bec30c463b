//! The prompt-learner abstraction: what a method hands to each CLIP tower.

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
    /// The class names, as given.
    pub class_names: Vec<String>,
}

impl<B: Backend> ClassTokens<B> {
    /// Tokenizes `"{prefix} {name}."` for each class (underscores in names become spaces,
    /// as in the reference) and embeds the tokens with CLIP's frozen token embedding.
    pub fn new(
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        prefix: &str,
        class_names: &[String],
    ) -> Result<Self> {
        if class_names.is_empty() {
            return Err(MapleError::Invalid("no class names given".into()));
        }
        let prompts: Vec<String> = class_names
            .iter()
            .map(|n| format!("{prefix} {}.", n.replace('_', " ")))
            .collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let rows = tokenizer.tokenize_batch(&refs, clip.text.context_length(), false)?;
        let eot = clip_model::eot_positions(&rows);
        let len = eot.iter().max().map_or(1, |m| m + 1);
        let device = clip.device();
        let embeddings = clip.text.embed_rows(&rows, &device);
        let [n, _, w] = embeddings.dims();
        let embeddings = embeddings.slice([0..n, 0..len, 0..w]);
        Ok(Self {
            embeddings,
            eot,
            rows,
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
            class_names: self.class_names.clone(),
        }
    }
}

/// What a prompt method gives the text tower.
#[derive(Debug, Clone)]
pub struct TextPrompts<B: Backend> {
    /// Embedded prompts `[classes, len, text_width]` (before positional embedding).
    pub embeddings: Tensor<B, 3>,
    /// EOT position per class.
    pub eot: Vec<usize>,
    /// Deep prompts replacing slots before text blocks.
    pub deep: DeepPrompts<B>,
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
            deep: DeepPrompts {
                anchor: PromptAnchor::End,
                layers: vec![],
            },
        }
    }
}

/// A prompt-learning method: data for the two towers of a frozen CLIP.
///
/// A new method is a new type implementing this trait; the encoders never change.
pub trait PromptLearner<B: Backend>: Module<B> {
    /// The class-independent words placed before the class name when tokenizing prompts.
    fn prompt_prefix(&self) -> &str;
    /// Text-side prompts for the given classes.
    fn text_prompts(&self, classes: &ClassTokens<B>) -> TextPrompts<B>;
    /// Image-side prompts.
    fn vision_prompts(&self) -> VisionPrompts<B>;
}
