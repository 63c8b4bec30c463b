//! Zero-shot classification: class names + templates → text features computed once →
//! logits and probabilities for batches of images.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::clip::{l2_normalize, Clip};
use crate::error::{ClipError, Result};
use crate::tokenizer::Tokenizer;

/// Text features of a fixed set of classes, ready to score images.
#[derive(Debug, Clone)]
pub struct ZeroShotClassifier<B: Backend> {
    /// L2-normalised class embeddings, `[classes, embed_dim]`.
    pub text_features: Tensor<B, 2>,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

impl<B: Backend> ZeroShotClassifier<B> {
    /// Builds the classifier. Each template holds `{}` where the class name goes; with
    /// several templates the normalised features are averaged and renormalised (CLIP's
    /// prompt ensembling). Underscores in class names become spaces, as in the reference.
    pub fn new(
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        class_names: &[String],
        templates: &[&str],
    ) -> Result<Self> {
        if class_names.is_empty() || templates.is_empty() {
            return Err(ClipError::Invalid(
                "zero-shot needs at least one class name and one template".into(),
            ));
        }
        if let Some(t) = templates.iter().find(|t| !t.contains("{}")) {
            return Err(ClipError::Invalid(format!(
                "template {t:?} has no `{{}}` for the class name"
            )));
        }
        let ctx = clip.text.context_length();
        let mut sum: Option<Tensor<B, 2>> = None;
        for template in templates {
            let prompts: Vec<String> = class_names
                .iter()
                .map(|c| template.replace("{}", &c.replace('_', " ")))
                .collect();
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let rows = tokenizer.tokenize_batch(&refs, ctx, false)?;
            let f = l2_normalize(clip.encode_text(&rows));
            sum = Some(match sum {
                Some(s) => s + f,
                None => f,
            });
        }
        let text_features = l2_normalize(sum.expect("at least one template"));
        Ok(Self {
            text_features,
            class_names: class_names.to_vec(),
        })
    }

    /// Scaled cosine logits.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, classes]`
    pub fn logits(&self, clip: &Clip<B>, images: Tensor<B, 4>) -> Tensor<B, 2> {
        clip.logits(clip.encode_image(images), self.text_features.clone())
    }

    /// Class probabilities (softmax of the logits).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, classes]`
    pub fn probabilities(&self, clip: &Clip<B>, images: Tensor<B, 4>) -> Tensor<B, 2> {
        softmax(self.logits(clip, images), 1)
    }
}
