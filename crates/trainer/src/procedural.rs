//! The procedural world ([`datasets::procedural`]) as batch sources: images rendered on
//! the fly, with the same few-shot sampling, base/novel split, batching and transforms as
//! the file-backed datasets, so the protocols run on it unchanged and without downloads.

use std::sync::Arc;

use clip_model::preprocess::{TestTransform, TrainTransform};
use datasets::fewshot::fewshot_indices;
use datasets::item_rng::{epoch_seed, item_seed, ItemRng};
use datasets::procedural::{Downstream, Item};
use datasets::{Batch, PyRandom, Subsample};

use crate::data::{BatchSource, LabelledSet};
use crate::error::{Result, TrainerError};

/// Some items of a procedural [`Downstream`] dataset, relabelled, in batches.
pub struct ProceduralSource {
    world: Arc<Downstream>,
    items: Vec<Item>,
    labels: Vec<usize>,
    transform: Either,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
}

enum Either {
    Train(TrainTransform),
    Test(TestTransform),
}

impl ProceduralSource {
    /// Training batches: shuffled per epoch from `seed`, with `augment` a random resized
    /// crop and flip per item from (seed, epoch, index) (else the evaluation transform),
    /// the last incomplete batch dropped when there is at least one full batch (as the
    /// reference's loader).
    pub fn train(
        world: Arc<Downstream>,
        items: Vec<(Item, usize)>,
        size: usize,
        batch_size: usize,
        seed: u64,
        augment: bool,
    ) -> Self {
        let drop_last = items.len() >= batch_size;
        let transform = if augment {
            Either::Train(TrainTransform::new(size as u32))
        } else {
            Either::Test(TestTransform::new(size as u32))
        };
        Self::new(world, items, transform, batch_size, true, drop_last, seed)
    }

    /// Evaluation batches: list order, resize + center crop, every item.
    pub fn test(
        world: Arc<Downstream>,
        items: Vec<(Item, usize)>,
        size: usize,
        batch_size: usize,
    ) -> Self {
        Self::new(
            world,
            items,
            Either::Test(TestTransform::new(size as u32)),
            batch_size,
            false,
            false,
            0,
        )
    }

    fn new(
        world: Arc<Downstream>,
        items: Vec<(Item, usize)>,
        transform: Either,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
    ) -> Self {
        assert!(batch_size > 0, "batch_size must be positive");
        let (items, labels) = items.into_iter().unzip();
        ProceduralSource {
            world,
            items,
            labels,
            transform,
            batch_size,
            shuffle,
            drop_last,
            seed,
        }
    }

    fn size(&self) -> usize {
        match &self.transform {
            Either::Train(t) => t.size as usize,
            Either::Test(t) => t.size as usize,
        }
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        if self.shuffle {
            ItemRng::new(epoch_seed(self.seed, epoch as u64)).shuffle(&mut order);
        }
        order
    }

    fn batch(&self, epoch: usize, indices: &[usize]) -> Batch {
        let items: Vec<Item> = indices.iter().map(|&i| self.items[i]).collect();
        let rendered = self.world.images(&items);
        let mut images = Vec::with_capacity(indices.len() * 3 * self.size() * self.size());
        for (img, &i) in rendered.iter().zip(indices) {
            let px = match &self.transform {
                Either::Train(t) => t.apply(
                    img,
                    &mut ItemRng::new(item_seed(self.seed, epoch as u64, i as u64)),
                ),
                Either::Test(t) => t.apply(img),
            };
            images.extend_from_slice(&px);
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            indices: indices.to_vec(),
            size: self.size(),
        }
    }
}

impl BatchSource for ProceduralSource {
    fn num_items(&self) -> usize {
        self.items.len()
    }

    fn num_batches(&self) -> usize {
        if self.drop_last {
            self.items.len() / self.batch_size
        } else {
            self.items.len().div_ceil(self.batch_size)
        }
    }

    fn epoch(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let order = self.order(epoch);
        let batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .take(self.num_batches())
            .map(<[usize]>::to_vec)
            .collect();
        Box::new(batches.into_iter().map(move |b| Ok(self.batch(epoch, &b))))
    }
}

/// Settings of the procedural base-to-novel sets.
#[derive(Debug, Clone, PartialEq)]
pub struct ProceduralSplit {
    /// Training shots per base class (sampled from the world's training images with
    /// the reference's few-shot rule, seeded by `seed`).
    pub shots: usize,
    /// Seed of the few-shot draw and of the training order and augmentations.
    pub seed: u64,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub test_batch_size: usize,
    /// Model input side.
    pub image_size: usize,
    /// Random resized crop and flip for training (else the evaluation transform).
    pub augment: bool,
}

/// The training and test sets of one class subsample of the procedural world: few-shot
/// training images (drawn over every class with the reference's rule, as the file-backed
/// datasets, then restricted to the subsample) and all test images of those classes,
/// relabelled from 0 within the subsample, class names from the world.
pub fn subsample_sets(
    world: &Arc<Downstream>,
    split: &ProceduralSplit,
    subsample: Subsample,
) -> Result<(LabelledSet, LabelledSet)> {
    if split.shots == 0 {
        return Err(TrainerError::Invalid("shots must be at least 1".into()));
    }
    let nb = world.num_base();
    let n = world.num_classes();
    let (lo, hi) = match subsample {
        Subsample::All => (0, n),
        Subsample::Base => (0, nb),
        Subsample::New => (nb, n),
    };
    let keep = |i: &Item| (lo..hi).contains(&i.label);
    let labels: Vec<usize> = world.train.iter().map(|i| i.label).collect();
    let drawn = fewshot_indices(&labels, split.shots, &mut PyRandom::new(split.seed));
    let train: Vec<(Item, usize)> = drawn
        .into_iter()
        .map(|i| world.train[i])
        .filter(keep)
        .map(|i| (i, i.label - lo))
        .collect();
    let test: Vec<(Item, usize)> = world
        .test
        .iter()
        .filter(|i| keep(i))
        .map(|&i| (i, i.label - lo))
        .collect();
    let names = &world.class_names[lo..hi];
    let size = split.image_size;
    Ok((
        LabelledSet {
            class_names: names.to_vec(),
            source: Box::new(ProceduralSource::train(
                world.clone(),
                train,
                size,
                split.batch_size,
                split.seed,
                split.augment,
            )),
        },
        LabelledSet {
            class_names: names.to_vec(),
            source: Box::new(ProceduralSource::test(
                world.clone(),
                test,
                size,
                split.test_batch_size,
            )),
        },
    ))
}

/// The three sets of a base-to-novel run on the procedural world: base training
/// images (few-shot), base test images, novel test images (see [`subsample_sets`]).
pub fn base_to_novel_sets(
    world: &Arc<Downstream>,
    split: &ProceduralSplit,
) -> Result<(LabelledSet, LabelledSet, LabelledSet)> {
    let (train, base_test) = subsample_sets(world, split, Subsample::Base)?;
    let (_, novel_test) = subsample_sets(world, split, Subsample::New)?;
    Ok((train, base_test, novel_test))
}
