//! Where batches come from: the [`BatchSource`] trait, implemented by the file-backed
//! [`datasets::Loader`] and by the in-memory procedural world
//! ([`crate::procedural::ProceduralSource`]), and the conversion of a batch to tensors.
//!
//! A source's epoch is a pure function of (seed, epoch): the order of the items and each
//! item's augmentation. That is what lets a resumed run see exactly the batches an
//! uninterrupted run would have seen, with nothing but the epoch number saved.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use datasets::Batch;

use crate::error::Result;

/// Labelled images in batches, for training or evaluation.
pub trait BatchSource {
    /// Number of items.
    fn num_items(&self) -> usize;
    /// Batches per epoch (without the dropped last batch when training).
    fn num_batches(&self) -> usize;
    /// The batches of `epoch` (0-based), in order. Must depend only on the source's
    /// settings and `epoch`.
    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;
}

impl BatchSource for datasets::Loader {
    fn num_items(&self) -> usize {
        datasets::Loader::num_items(self)
    }

    fn num_batches(&self) -> usize {
        datasets::Loader::num_batches(self)
    }

    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(datasets::Loader::epoch(self, epoch).map(|b| b.map_err(Into::into)))
    }
}

/// A class list with the labelled images of those classes: what one evaluation (or one
/// training run) needs. Labels index `class_names`.
pub struct LabelledSet {
    /// Class names by label; prompts are built from these.
    pub class_names: Vec<String>,
    /// The images.
    pub source: Box<dyn BatchSource>,
}

impl std::fmt::Debug for LabelledSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelledSet")
            .field("classes", &self.class_names.len())
            .field("items", &self.source.num_items())
            .finish_non_exhaustive()
    }
}

/// The images of a batch as a tensor.
///
/// # Shapes
/// - output: `[batch, 3, size, size]`
pub fn images_tensor<B: Backend>(batch: &Batch, device: &B::Device) -> Tensor<B, 4> {
    let (n, s) = (batch.len(), batch.size);
    Tensor::from_data(TensorData::new(batch.images.clone(), [n, 3, s, s]), device)
}

/// The labels of a batch as a tensor.
///
/// # Shapes
/// - output: `[batch]`
pub fn labels_tensor<B: Backend>(batch: &Batch, device: &B::Device) -> Tensor<B, 1, Int> {
    let labels: Vec<i64> = batch.labels.iter().map(|&y| y as i64).collect();
    Tensor::from_data(TensorData::new(labels, [batch.len()]), device)
}
