//! Parallel decoding and batching with bounded prefetch, deterministic whatever the thread count.
//!
//! An epoch's order is a function of (seed, epoch) and each item's
//! augmentation a function of (seed, epoch, item index). A producer thread
//! decodes groups of consecutive batches on a private rayon pool and sends
//! finished batches, in order, through a bounded channel, so at most about
//! `prefetch + group` batches of pixels exist at once and no image is held
//! longer than its batch.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::datum::Datum;
use crate::error::{DatasetError, Result};
use crate::item_rng::{epoch_seed, item_seed, ItemRng};
use crate::transform::Transform;

/// Largest batch of pixels a loader will build (`batch_size * 3 * size^2` f32 values).
pub const MAX_BATCH_BYTES: usize = 64 << 30;

/// Batching settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Items per batch.
    pub batch_size: usize,
    /// Shuffle each epoch (order from `seed` and the epoch number); otherwise list order.
    pub shuffle: bool,
    /// Drop the last incomplete batch (the reference does for training).
    pub drop_last: bool,
    /// Seed of the epoch orders and of the per-item augmentations.
    pub seed: u64,
    /// Decoding threads; 0 uses all available cores.
    pub num_threads: usize,
    /// Finished batches that may wait in the queue.
    pub prefetch: usize,
}

impl LoaderConfig {
    /// Training as in the reference: shuffled, last incomplete batch dropped.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: true,
            seed,
            num_threads: 0,
            prefetch: 4,
        }
    }

    /// Evaluation: list order, every item.
    pub fn test(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            num_threads: 0,
            prefetch: 2,
        }
    }
}

/// One batch of transformed images and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[batch, 3, size, size]` row-major, normalised.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<usize>,
    /// The position of each image in the loader's item list.
    pub indices: Vec<usize>,
    /// The image side length.
    pub size: usize,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(images, labels)`, for callers that build tensors.
    pub fn into_parts(self) -> (Vec<f32>, Vec<usize>) {
        (self.images, self.labels)
    }
}

struct Shared {
    dataset: String,
    split: String,
    dir: PathBuf,
    items: Vec<Datum>,
    transform: Transform,
    config: LoaderConfig,
    pool: rayon::ThreadPool,
}

/// Loads a list of items in batches; cheap to clone.
#[derive(Clone)]
pub struct Loader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.shared.dataset)
            .field("split", &self.shared.split)
            .field("items", &self.shared.items.len())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader over `items` (paths relative to `dir`); `dataset` and `split`
    /// only name things in errors.
    ///
    /// # Errors
    /// [`DatasetError::BadEntry`] for an item whose path is not confined to `dir`
    /// (absolute or with a `..` component); [`DatasetError::InvalidArgument`] for a batch size
    /// or image size of 0, or a batch larger than [`MAX_BATCH_BYTES`].
    pub fn new(
        dataset: &str,
        split: &str,
        dir: &Path,
        items: Vec<Datum>,
        transform: Transform,
        config: LoaderConfig,
    ) -> Result<Self> {
        let invalid =
            |argument: &str, value: String, reason: String| DatasetError::InvalidArgument {
                dataset: dataset.into(),
                argument: argument.into(),
                value,
                reason,
            };
        if config.batch_size == 0 {
            return Err(invalid(
                "batch_size",
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        let size = transform.size();
        if size == 0 {
            return Err(invalid(
                "image size",
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        let batch_bytes = size
            .checked_mul(size)
            .and_then(|p| p.checked_mul(3 * std::mem::size_of::<f32>()))
            .and_then(|b| b.checked_mul(config.batch_size));
        if batch_bytes.is_none_or(|b| b > MAX_BATCH_BYTES) {
            return Err(invalid(
                "batch_size x image size",
                format!("{} x {size}", config.batch_size),
                format!(
                    "one batch would need more than {} GiB",
                    MAX_BATCH_BYTES >> 30
                ),
            ));
        }
        let paths: Vec<&str> = items.iter().map(|d| d.path.as_str()).collect();
        crate::listing::check_confined(dataset, dir, &paths, |i| format!("{split}[{i}]"))?;
        drop(paths);
        let threads = if config.num_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.num_threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("datasets-decode-{i}"))
            .build()
            .map_err(|e| DatasetError::Unsupported {
                dataset: dataset.into(),
                reason: format!("cannot start decoding threads: {e}"),
            })?;
        Ok(Loader {
            shared: Arc::new(Shared {
                dataset: dataset.into(),
                split: split.into(),
                dir: dir.to_path_buf(),
                items,
                transform,
                config,
                pool,
            }),
        })
    }

    /// Number of items.
    pub fn num_items(&self) -> usize {
        self.shared.items.len()
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.shared.items.len(), self.shared.config.batch_size);
        if self.shared.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The item order of `epoch` (a permutation of `0..num_items`).
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.shared.items.len()).collect();
        if self.shared.config.shuffle {
            ItemRng::new(epoch_seed(self.shared.config.seed, epoch as u64)).shuffle(&mut order);
        }
        order
    }

    /// The batches of `epoch`, decoded in the background. Stops after the
    /// first error (a corrupt or vanished image), which names the file.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        let shared = Arc::clone(&self.shared);
        let order = self.epoch_order(epoch);
        let b = shared.config.batch_size;
        let batches: Vec<Vec<usize>> = order
            .chunks(b)
            .take(self.num_batches())
            .map(<[usize]>::to_vec)
            .collect();
        // Enough items per parallel step to keep every thread busy.
        let group = (shared.pool.current_num_threads() * 4).div_ceil(b).max(1);
        let (tx, rx) = sync_channel(shared.config.prefetch.max(group).max(1));
        let handle = std::thread::Builder::new()
            .name("datasets-loader".into())
            .spawn(move || {
                for chunk in batches.chunks(group) {
                    let flat: Vec<usize> = chunk.iter().flatten().copied().collect();
                    let decoded: Vec<Result<Vec<f32>>> = shared
                        .pool
                        .install(|| flat.par_iter().map(|&i| shared.load(epoch, i)).collect());
                    let mut decoded = decoded.into_iter();
                    for idx in chunk {
                        let mut images =
                            Vec::with_capacity(idx.len() * 3 * shared.transform.size().pow(2));
                        let mut failed = None;
                        for r in decoded.by_ref().take(idx.len()) {
                            match r {
                                Ok(px) => images.extend_from_slice(&px),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        let msg = match failed {
                            Some(e) => Err(e),
                            None => Ok(Batch {
                                images,
                                labels: idx.iter().map(|&i| shared.items[i].label).collect(),
                                indices: idx.clone(),
                                size: shared.transform.size(),
                            }),
                        };
                        let stop = msg.is_err();
                        if tx.send(msg).is_err() || stop {
                            return;
                        }
                    }
                }
            })
            .expect("spawning the loader thread");
        EpochIter {
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

impl Shared {
    fn load(&self, epoch: usize, i: usize) -> Result<Vec<f32>> {
        let d = &self.items[i];
        let path = self.dir.join(&d.path);
        let seed = item_seed(self.config.seed, epoch as u64, i as u64);
        self.transform
            .load(&path, seed)
            .map_err(|e| DatasetError::Decode {
                dataset: self.dataset.clone(),
                path,
                entry: format!("{}[{i}]", self.split),
                reason: e.to_string(),
            })
    }
}

/// The batches of one epoch, in order; see [`Loader::epoch`].
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel makes the producer stop at its next send.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
