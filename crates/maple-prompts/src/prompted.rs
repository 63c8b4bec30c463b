//! A frozen CLIP driven by a prompt learner: features, logits and the loss.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use clip_model::ops::log_softmax;
use clip_model::Clip;

use crate::learner::{ClassTokens, PromptLearner};

/// Frozen CLIP + prompt learner. Only the learner's parameters require gradients;
/// CLIP's are created frozen by clip-model, so the backward pass does no weight-gradient
/// work for them.
#[derive(Debug)]
pub struct PromptedClip<B: Backend, P> {
    /// The frozen CLIP.
    pub clip: Clip<B>,
    /// The prompt learner.
    pub learner: P,
}

impl<B: Backend, P: PromptLearner<B>> PromptedClip<B, P> {
    /// Class text features through the prompted text tower.
    ///
    /// # Shapes
    /// - output: `[classes, embed_dim]`
    pub fn encode_text(&self, classes: &ClassTokens<B>) -> Tensor<B, 2> {
        let t = self.learner.text_prompts(classes);
        self.clip
            .text
            .encode_embeddings(t.embeddings, &t.eot, &t.deep)
    }

    /// Image features through the prompted image tower.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, embed_dim]`
    pub fn encode_image(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let v = self.learner.vision_prompts();
        let mut tokens = self.clip.visual.embed(images);
        if let Some(shallow) = v.shallow {
            let [b, _, w] = tokens.dims();
            let [n, _] = shallow.dims();
            tokens = Tensor::cat(
                vec![tokens, shallow.unsqueeze_dim::<3>(0).expand([b, n, w])],
                1,
            );
        }
        self.clip.visual.encode_tokens(tokens, &v.deep)
    }

    /// Logits of images against precomputed text features.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]`, `text_features`: `[classes, embed]` → `[batch, classes]`
    pub fn logits_with(&self, images: Tensor<B, 4>, text_features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.clip.logits(self.encode_image(images), text_features)
    }

    /// Logits, encoding the class prompts too (training: the prompts depend on the learner).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, classes]`
    pub fn forward(&self, images: Tensor<B, 4>, classes: &ClassTokens<B>) -> Tensor<B, 2> {
        self.logits_with(images, self.encode_text(classes))
    }
}

/// Mean cross-entropy of logits against integer labels.
///
/// # Shapes
/// - `logits`: `[batch, classes]`, `labels`: `[batch]` → `[1]`
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [b, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([b, 1]));
    picked.mean().neg()
}
