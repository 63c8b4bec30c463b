//! Prompt learners on a frozen CLIP, built only on clip-model's public hook API:
//! MaPLe ([`Maple`]), the prompted model and loss ([`PromptedClip`], [`cross_entropy`]),
//! the reference's SGD and schedule ([`Sgd`], [`LrSchedule`]), learner-only checkpoints and
//! import of the reference implementation's checkpoints ([`checkpoint`], [`torch_pickle`]).
#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod learner;
pub mod maple;
pub mod optim;
pub mod prompted;
pub mod torch_pickle;

pub use error::{MapleError, Result};
pub use learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};
pub use maple::{Maple, MapleConfig};
pub use optim::{LrSchedule, Sgd, SgdConfig};
pub use prompted::{cross_entropy, PromptedClip};
