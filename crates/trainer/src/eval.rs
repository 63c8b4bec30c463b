//! Evaluation: top-1 accuracy over every test image (micro), as Dassl computes it.
//!
//! Text features of the classes do not depend on the image for most methods and for
//! zero-shot CLIP, so they are encoded once per evaluation and reused for every batch;
//! image-conditioned learners (Co-CoOp) encode their prompts per batch. Logits must be
//! finite: NaN weights or prompts are an error, never a chance-level accuracy. Run these
//! on a backend without autodiff (`module.valid()`), so no graph is recorded.

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, ZeroShotClassifier};
use maple_prompts::{predictions, MapleError, PromptLearner, PromptedClip};

use crate::data::{images_tensor, LabelledSet};
use crate::error::{Result, TrainerError};
use crate::observer::{Event, Observer};
pub use crate::stats::Accuracy;

/// Accuracy of `logits` (a classifier of image batches) over `set`.
///
/// # Errors
/// A batch that fails to load, a label outside the class list, a classifier error, or
/// non-finite logits (named with the evaluation and the batch).
pub fn evaluate_with<B: Backend>(
    name: &str,
    set: &LabelledSet,
    device: &B::Device,
    observer: &mut dyn Observer,
    mut logits: impl FnMut(Tensor<B, 4>) -> Result<Tensor<B, 2>>,
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
        let out = logits(images_tensor::<B>(&batch, device))?;
        let data = out.to_data().convert::<f32>();
        if let Some(v) = data.iter::<f32>().find(|v| !v.is_finite()) {
            return Err(TrainerError::At {
                place: format!("{name}, batch {i}"),
                source: Box::new(MapleError::NonFinite {
                    what: "a logit".into(),
                    value: f64::from(v),
                }),
            });
        }
        let pred = predictions(out);
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
pub fn evaluate_prompted<B: Backend, P: PromptLearner<B>>(
    name: &str,
    model: &PromptedClip<B, P>,
    tokenizer: &Tokenizer,
    set: &LabelledSet,
    observer: &mut dyn Observer,
) -> Result<Accuracy> {
    let device = model.clip.device();
    let classes = model.classes(tokenizer, &set.class_names)?;
    if model.learner.image_conditioned() {
        return evaluate_with::<B>(name, set, &device, observer, |images| {
            Ok(model.forward(images, &classes)?)
        });
    }
    let text_features = model.encode_text(&classes)?;
    evaluate_with::<B>(name, set, &device, observer, |images| {
        Ok(model.logits_with(images, text_features.clone()))
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
        Ok(classifier.logits(clip, images))
    })
}
