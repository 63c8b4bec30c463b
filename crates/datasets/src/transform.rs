//! The image transforms a loader applies, from `clip_model::preprocess` (Pillow-exact resizing).
//!
//! This crate does no resizing of its own: it picks the test or train
//! transform and gives the train one a per-item generator.

use std::path::Path;

use clip_model::preprocess::{load_rgb, PreprocessError, TestTransform, TrainTransform};

use crate::item_rng::ItemRng;

/// What a loader does to each decoded image.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// Resize the shorter side (bicubic), center crop, normalise.
    Test(TestTransform),
    /// RandomResizedCrop (bicubic), random horizontal flip, normalise.
    Train(TrainTransform),
}

impl Transform {
    /// The evaluation transform at side `size`, CLIP normalisation.
    pub fn test(size: u32) -> Self {
        Transform::Test(TestTransform::new(size))
    }

    /// The training transform at side `size` (torchvision defaults), CLIP normalisation.
    pub fn train(size: u32) -> Self {
        Transform::Train(TrainTransform::new(size))
    }

    /// The output side length.
    pub fn size(&self) -> usize {
        match self {
            Transform::Test(t) => t.size as usize,
            Transform::Train(t) => t.size as usize,
        }
    }

    /// Decodes `path` and transforms it; `item_seed` drives the train transform's randomness.
    ///
    /// # Shapes
    /// Returns `[3, size, size]` row-major.
    pub fn load(&self, path: &Path, item_seed: u64) -> Result<Vec<f32>, PreprocessError> {
        let img = load_rgb(path)?;
        Ok(match self {
            Transform::Test(t) => t.apply(&img),
            Transform::Train(t) => t.apply(&img, &mut ItemRng::new(item_seed)),
        })
    }
}
