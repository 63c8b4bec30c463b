//! A frozen CLIP driven by a prompt learner: features, logits, predictions, the loss and
//! one training step ([`PromptedClip::train_step`]).

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use clip_model::ops::{log_softmax, softmax};
use clip_model::tokenizer::Tokenizer;
use clip_model::{l2_normalize, Clip};

use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner};
use crate::optim::Sgd;

/// Most text sequences an image-conditioned learner sends through the text tower in one
/// call (images x classes); larger batches are processed in groups of images. Bounds the
/// activation memory of evaluation with many classes.
pub const MAX_CONDITIONED_SEQUENCES: usize = 4096;

/// Frozen CLIP + prompt learner. Only the learner's parameters require gradients;
/// CLIP's are created frozen by clip-model, so the backward pass does no weight-gradient
/// work for them.
#[derive(Debug, Clone)]
pub struct PromptedClip<B: Backend, P> {
    /// The frozen CLIP.
    pub clip: Clip<B>,
    /// The prompt learner.
    pub learner: P,
}

/// What one [`PromptedClip::train_step`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// The batch's mean cross-entropy, before the update.
    pub loss: f64,
    /// The arg-max class of each image, before the update.
    pub predictions: Vec<usize>,
}

impl StepOutput {
    /// Number of correct predictions for `labels`.
    pub fn correct(&self, labels: &[usize]) -> usize {
        self.predictions
            .iter()
            .zip(labels)
            .filter(|(p, y)| p == y)
            .count()
    }
}

impl<B: Backend, P: PromptLearner<B>> PromptedClip<B, P> {
    /// A frozen CLIP with a prompt learner.
    pub fn new(clip: Clip<B>, learner: P) -> Self {
        Self { clip, learner }
    }

    /// The class prompts of `class_names` for this learner (its prompt prefix).
    pub fn classes(&self, tokenizer: &Tokenizer, class_names: &[String]) -> Result<ClassTokens<B>> {
        ClassTokens::new(
            &self.clip,
            tokenizer,
            self.learner.prompt_prefix(),
            class_names,
        )
    }

    /// Class text features through the prompted text tower.
    ///
    /// # Errors
    /// For an image-conditioned learner (its text features depend on each image: use
    /// [`Self::forward`]), or classes the learner cannot prompt.
    ///
    /// # Shapes
    /// - output: `[classes, embed_dim]`
    pub fn encode_text(&self, classes: &ClassTokens<B>) -> Result<Tensor<B, 2>> {
        if self.learner.image_conditioned() {
            return Err(MapleError::Invalid(
                "this learner's text features depend on the image: use forward".into(),
            ));
        }
        let t = self.learner.text_prompts(classes, None)?;
        Ok(self
            .clip
            .text
            .encode_embeddings(t.embeddings, &t.eot, &t.deep))
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

    /// Logits of images against precomputed text features (learners whose text does not
    /// depend on the image).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]`, `text_features`: `[classes, embed]` → `[batch, classes]`
    pub fn logits_with(&self, images: Tensor<B, 4>, text_features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.clip.logits(self.encode_image(images), text_features)
    }

    /// Logits, encoding the class prompts too (training: the prompts depend on the
    /// learner). For an image-conditioned learner each image gets its own class prompts,
    /// encoded in one text-tower call per group of at most
    /// [`MAX_CONDITIONED_SEQUENCES`] (image, class) sequences.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, classes]`
    pub fn forward(&self, images: Tensor<B, 4>, classes: &ClassTokens<B>) -> Result<Tensor<B, 2>> {
        if !self.learner.image_conditioned() {
            return Ok(self.logits_with(images, self.encode_text(classes)?));
        }
        let image = l2_normalize(self.encode_image(images));
        let [batch, embed] = image.dims();
        let per_call = (MAX_CONDITIONED_SEQUENCES / classes.len().max(1)).max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < batch {
            let end = (start + per_call).min(batch);
            let group = image.clone().slice([start..end, 0..embed]);
            parts.push(self.conditioned_logits(group, classes)?);
            start = end;
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(parts, 0)
        })
    }

    /// Logits of L2-normalised image features against their own class prompts:
    /// `logits[b, c] = exp(logit_scale) * <image[b], normalize(text[b, c])>`.
    fn conditioned_logits(
        &self,
        image: Tensor<B, 2>,
        classes: &ClassTokens<B>,
    ) -> Result<Tensor<B, 2>> {
        let [b, e] = image.dims();
        let c = classes.len();
        let t = self.learner.text_prompts(classes, Some(&image))?;
        let text = self
            .clip
            .text
            .encode_embeddings(t.embeddings, &t.eot, &t.deep);
        let text = l2_normalize(text).reshape([b, c, e]);
        // `unsqueeze_dim` adds one axis only: the `[1]` scale needs a reshape to broadcast.
        let scale = self.clip.logit_scale.val().exp().reshape([1, 1, 1]);
        let logits = text.matmul(image.unsqueeze_dim::<3>(2)) * scale;
        Ok(logits.reshape([b, c]))
    }

    /// Class probabilities (softmax of the logits).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, classes]`
    pub fn probabilities(
        &self,
        images: Tensor<B, 4>,
        classes: &ClassTokens<B>,
    ) -> Result<Tensor<B, 2>> {
        Ok(softmax(self.forward(images, classes)?, 1))
    }
}

impl<B, P> PromptedClip<B, P>
where
    B: AutodiffBackend,
    P: PromptLearner<B> + AutodiffModule<B>,
    P::InnerModule: PromptLearner<B::InnerBackend>,
{
    /// One training step on a batch: forward, mean cross-entropy, backward, and an SGD
    /// update of the learner's parameters at learning rate `lr`. CLIP stays unchanged.
    ///
    /// # Errors
    /// A label outside `classes`, a non-finite loss (nothing is updated then), or classes
    /// the learner cannot prompt.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]`, `labels`: `batch` class indices
    pub fn train_step(
        &mut self,
        optim: &mut Sgd<B::InnerBackend>,
        lr: f64,
        images: Tensor<B, 4>,
        labels: &[usize],
        classes: &ClassTokens<B>,
    ) -> Result<StepOutput> {
        let [batch, ..] = images.dims();
        if labels.len() != batch {
            return Err(MapleError::Invalid(format!(
                "{} labels for a batch of {batch} images",
                labels.len()
            )));
        }
        if let Some(&label) = labels.iter().find(|&&y| y >= classes.len()) {
            return Err(MapleError::Label {
                label,
                classes: classes.len(),
            });
        }
        let device = images.device();
        let logits = self.forward(images.clone(), classes)?;
        let predictions = predictions(logits.clone().inner());
        let targets: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [batch]), &device);
        let loss = cross_entropy(logits, targets.clone());
        let value: f64 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(MapleError::NonFinite {
                what: "the training loss".into(),
                value,
            });
        }
        let (grads, scale) = self.scaled_backward(loss, || {
            Ok(cross_entropy(
                self.forward(images.clone(), classes)?,
                targets.clone(),
            ))
        })?;
        self.learner = optim.step_scaled::<B, _>(lr, self.learner.clone(), &grads, 1.0 / scale);
        Ok(StepOutput {
            loss: value,
            predictions,
        })
    }

    /// Backward pass of `loss` with loss scaling in f16: the loss is multiplied by
    /// [`F16_LOSS_SCALE`] so that the half-precision gradients inside CLIP's blocks stay
    /// clear of f16's subnormal range (below 6.1e-5, where they lose relative precision);
    /// if a learner gradient overflows to inf/NaN the scale is halved and the loss
    /// recomputed by `recompute`, down to 1. Returns the gradients and the scale they carry
    /// (divide by it: [`Sgd::step_scaled`]); 1 for f32 and bf16 (bf16 has f32's range).
    ///
    /// # Errors
    /// Whatever `recompute` returns; [`MapleError::NonFinite`] when the gradients are not
    /// finite even at scale 1 (nothing should be updated then).
    pub fn scaled_backward(
        &self,
        loss: Tensor<B, 1>,
        mut recompute: impl FnMut() -> Result<Tensor<B, 1>>,
    ) -> Result<(B::Gradients, f64)> {
        if self.clip.precision() != clip_model::Precision::F16 {
            return Ok((loss.backward(), 1.0));
        }
        let mut scale = F16_LOSS_SCALE;
        let mut loss = loss;
        loop {
            let grads = (loss * scale).backward();
            if gradients_finite(&self.learner, &grads) {
                return Ok((grads, scale));
            }
            if scale <= 1.0 {
                // Nothing to halve any more: refuse the update rather than write NaN.
                return Err(MapleError::NonFinite {
                    what: "an f16 gradient of the learner (loss scale 1)".into(),
                    value: f64::NAN,
                });
            }
            log::debug!("f16 gradients overflowed at loss scale {scale}: halving it");
            scale /= 2.0;
            loss = recompute()?;
        }
    }

    /// The same model without autodiff, for evaluation (shares the weights).
    pub fn valid(&self) -> PromptedClip<B::InnerBackend, P::InnerModule> {
        PromptedClip {
            clip: self.clip.valid(),
            learner: self.learner.valid(),
        }
    }
}

/// Loss scale of f16 training (a power of two: scaling and unscaling are exact).
pub const F16_LOSS_SCALE: f64 = 1024.0;

/// Whether every gradient of `module`'s trainable parameters in `grads` is finite.
fn gradients_finite<B: AutodiffBackend, M: burn::module::Module<B>>(
    module: &M,
    grads: &B::Gradients,
) -> bool {
    struct V<'a, B: AutodiffBackend>(bool, &'a B::Gradients);
    impl<B: AutodiffBackend> burn::module::ModuleVisitor<B> for V<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            if !self.0 {
                return;
            }
            if let Some(g) = p.val().grad(self.1) {
                // Checked on the host: GPU shaders need not propagate NaN through
                // arithmetic or reductions (on WGPU `(g - g).sum()` of an inf gradient
                // came back 0). Learner gradients are small.
                let data = g.into_data().convert::<f32>();
                self.0 = data
                    .as_slice::<f32>()
                    .is_ok_and(|v| v.iter().all(|x| x.is_finite()));
            }
        }
    }
    let mut v = V::<B>(true, grads);
    module.visit(&mut v);
    v.0
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

/// The arg-max class of each row of `logits`, on the host.
///
/// # Shapes
/// - `logits`: `[batch, classes]` → `batch` labels
pub fn predictions<B: Backend>(logits: Tensor<B, 2>) -> Vec<usize> {
    let [n, _] = logits.dims();
    let data = logits.argmax(1).reshape([n]).into_data();
    data.iter::<i64>().map(|v| v as usize).collect()
}
