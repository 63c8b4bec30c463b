//! The 15 MaPLe benchmark datasets: readers, reference-identical few-shot
//! sampling, base/novel subsampling, saved draws, transforms and batching.
//!
//! ```no_run
//! use datasets::{Dataset, DatasetName, Loader, LoaderConfig, SplitConfig, Subsample, Transform};
//! # fn main() -> datasets::Result<()> {
//! let ds = Dataset::open(DatasetName::EuroSat, "/data".as_ref())?; // checks every listed file
//! let splits = ds.splits(&SplitConfig::new(Some(16), 1, Subsample::Base))?;
//! let loader = Loader::new("eurosat", "train", ds.dir(), splits.train.clone(),
//!                          Transform::train(224), LoaderConfig::train(4, 1))?;
//! for batch in loader.epoch(0) {
//!     let (images, labels) = batch?.into_parts(); // [B, 3, 224, 224], B labels
//! #   let _ = (images, labels);
//! }
//! # Ok(()) }
//! ```
//!
//! The reference is Dassl/CoOp/MaPLe's Python code (see
//! `docs/PROTOCOL.md` §2, §3, §9); where this crate differs (sorted listings,
//! errors instead of silent skips) it says so on the item.
#![warn(missing_docs)]

pub mod dataset;
pub mod datum;
pub mod digest;
pub mod draw;
pub mod error;
pub mod fewshot;
pub mod item_rng;
mod listing;
pub mod loader;
pub mod name;
pub mod procedural;
pub mod pyrandom;
mod readers;
pub mod subsample;
pub mod summary;
pub mod transform;

pub use dataset::{Dataset, SplitConfig, Splits};
pub use datum::Datum;
pub use digest::SourceDigest;
pub use draw::SavedDraw;
pub use error::{DatasetError, Result};
pub use fewshot::generate_fewshot;
pub use loader::{Batch, EpochIter, Loader, LoaderConfig};
pub use name::{DatasetName, SplitSource};
pub use pyrandom::PyRandom;
pub use subsample::Subsample;
pub use summary::data_json;
pub use transform::Transform;
