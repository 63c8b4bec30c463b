//! Evaluation: top-1 accuracy over every test image (micro), as Dassl computes it.
//!
//! Text features of the classes do not depend on the image for MaPLe and zero-shot CLIP,
//! so they are encoded once per evaluation and reused for every batch. Run these on a
//! backend without autodiff (`module.valid()`), so no graph is recorded.

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, ZeroShotClassifier};
use maple_prompts::{ClassTokens, PromptLearner, PromptedClip};
use serde::{Deserialize, Serialize};

use crate::data::{images_tensor, predictions, LabelledSet};
use crate::error::{Result, TrainerError};
use crate::observer::{Event, Observer};

/// Correct predictions out of all images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Accuracy {
    /// Images classified correctly.
    pub correct: usize,
    /// Images evaluated.
    pub total: usize,
}

impl Accuracy {
    /// `100 * correct / total` (0 for no images).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.total as f64
        }
    }
}

/// Accuracy of `logits` (a classifier of image batches) over `set`.
///
/// # Errors
/// A batch that fails to load, or a label outside the class list.
pub fn evaluate_with<B: Backend>(
    name: &str,
    set: &LabelledSet,
    device: &B::Device,
    observer: &mut dyn Observer,
    mut logits: impl FnMut(Tensor<B, 4>) -> Tensor<B, 2>,
) -> Result<Accuracy> {
    let source = &*set.source;
    let classes = set.class_names.len();
    let _ = observer.event(&Event::EvalStart {
        name,
        batches: source.num_batches(),
        items: source.num_items(),
    });
    let mut acc = Accuracy::default();
    for (i, batch) in source.epoch(0).enumerate() {
        let batch = batch?;
        if let Some(&y) = batch.labels.iter().find(|&&y| y >= classes) {
            return Err(TrainerError::Invalid(format!(
                "{name}: label {y} but only {classes} class names"
            )));
        }
        let pred = predictions(logits(images_tensor::<B>(&batch, device)));
        acc.correct += pred
            .iter()
            .zip(&batch.labels)
            .filter(|(p, y)| p == y)
            .count();
        acc.total += batch.len();
        let _ = observer.event(&Event::EvalBatch {
            batch: i,
            accuracy: acc.percent(),
        });
    }
    if let ControlFlow::Break(()) = observer.event(&Event::EvalEnd {
        name,
        accuracy: &acc,
    }) {
        log::debug!(
            "an observer asked to stop after an evaluation; evaluations are not interruptible"
        );
    }
    Ok(acc)
}

/// Accuracy of a prompted CLIP over `set`, with prompts built from `set.class_names`
/// (for novel classes: the trained learner with new class names, as the reference does).
pub fn evaluate_prompted<B: Backend, P: PromptLearner<B> + Clone>(
    name: &str,
    clip: &Clip<B>,
    learner: &P,
    tokenizer: &Tokenizer,
    set: &LabelledSet,
    observer: &mut dyn Observer,
) -> Result<Accuracy> {
    let device = clip.device();
    let classes = ClassTokens::new(clip, tokenizer, learner.prompt_prefix(), &set.class_names)?;
    let model = PromptedClip {
        clip: clip.clone(),
        learner: learner.clone(),
    };
    let text_features = model.encode_text(&classes);
    evaluate_with::<B>(name, set, &device, observer, |images| {
        model.logits_with(images, text_features.clone())
    })
}

/// Accuracy of zero-shot CLIP over `set` with the prompt `templates` (`{}` for the
/// class name; several templates are ensembled).
pub fn evaluate_zero_shot<B: Backend>(
    name: &str,
    clip: &Clip<B>,
    tokenizer: &Tokenizer,
    templates: &[&str],
    set: &LabelledSet,
    observer: &mut dyn Observer,
) -> Result<Accuracy> {
    let device = clip.device();
    let classifier = ZeroShotClassifier::new(clip, tokenizer, &set.class_names, templates)?;
    evaluate_with::<B>(name, set, &device, observer, |images| {
        classifier.logits(clip, images)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_is_micro_percent() {
        assert_eq!(
            Accuracy {
                correct: 3,
                total: 4
            }
            .percent(),
            75.0
        );
        assert_eq!(Accuracy::default().percent(), 0.0);
    }
}
