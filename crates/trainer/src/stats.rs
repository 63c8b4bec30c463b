//! The numbers training and evaluation produce, shared by the loop, the evaluation, the
//! observers and the result records (kept apart so those modules need not import each
//! other).

use serde::{Deserialize, Serialize};

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

/// What one training epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Steps taken.
    pub batches: usize,
    /// Mean training loss.
    pub mean_loss: f64,
    /// Training accuracy, percent.
    pub accuracy: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Of those, seconds the loop waited for the data loader's next batch (decoding and
    /// augmentation run ahead on the loader's threads: this is what did not overlap).
    #[serde(default)]
    pub data_wait_seconds: f64,
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
