//! Seed statistics, the harmonic mean and dataset averages, computed exactly as the
//! trainer's summaries and the paper's tables do (`docs/PROTOCOL.md` §6):
//!
//! - each seed's accuracy is taken with 2 decimals (as logged);
//! - a dataset's value is the mean over seeds, with 2 decimals; the spread is the
//!   population standard deviation (numpy's default), with 2 decimals;
//! - HM = 2·B·N/(B+N) from the seed-averaged B and N;
//! - a multi-dataset average is the plain mean of the per-dataset means, and its HM is
//!   computed from the averaged B and N, not averaged over datasets.

use serde::{Deserialize, Serialize};

/// Rounds to 2 decimals (half away from zero), as `{:.2f}` prints these values.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The harmonic mean of base and novel accuracy, `2·B·N/(B+N)` (0 when both are 0).
pub fn harmonic_mean(base: f64, novel: f64) -> f64 {
    if base + novel == 0.0 {
        0.0
    } else {
        2.0 * base * novel / (base + novel)
    }
}

/// The mean of `values` with 2 decimals; `None` when there are none.
pub fn mean2(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| round2(values.iter().sum::<f64>() / values.len() as f64))
}

/// Mean and spread of one accuracy over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Seeds, in the order of `values`; empty for seed-less runs (zero-shot CLIP).
    pub seeds: Vec<u64>,
    /// Per-seed accuracies in percent, with 2 decimals, in seed order.
    pub values: Vec<f64>,
    /// Mean of `values`, with 2 decimals.
    pub mean: f64,
    /// Population standard deviation of `values`, with 2 decimals.
    pub std: f64,
}

impl Stat {
    /// Statistics of per-seed accuracies (each rounded to 2 decimals first, as logged);
    /// `None` when there are no values.
    pub fn of(seeds: &[u64], values: &[f64]) -> Option<Self> {
        let values: Vec<f64> = values.iter().map(|&v| round2(v)).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        (!values.is_empty()).then(|| Stat {
            seeds: seeds.to_vec(),
            mean: round2(mean),
            std: round2(var.sqrt()),
            values,
        })
    }

    /// `mean ± std` with 2 decimals, or the mean alone for a single value.
    pub fn display(&self) -> String {
        if self.values.len() > 1 {
            format!("{:.2} ± {:.2}", self.mean, self.std)
        } else {
            format!("{:.2}", self.mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hm_of_the_paper_average_is_78_55() {
        assert_eq!(round2(harmonic_mean(82.28, 75.14)), 78.55);
    }

    #[test]
    fn seed_stats_round_each_seed_first_and_use_the_population_std() {
        let s = Stat::of(&[1, 2, 3], &[50.004, 60.0, 70.0]).unwrap();
        assert_eq!(s.values, vec![50.0, 60.0, 70.0]);
        assert_eq!(s.mean, 60.0);
        // Population std: sqrt(200/3) = 8.165; the sample std would be 10.
        assert_eq!(s.std, 8.16);
        assert_eq!(s.display(), "60.00 ± 8.16");
    }

    #[test]
    fn a_single_value_displays_without_a_spread_and_no_values_give_no_stat() {
        assert_eq!(Stat::of(&[], &[71.234]).unwrap().display(), "71.23");
        assert!(Stat::of(&[], &[]).is_none());
        assert_eq!(mean2(&[]), None);
    }
}
