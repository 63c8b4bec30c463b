//! Few-shot sampling, identical to Dassl's `generate_fewshot_dataset(..., repeat=False)`.
//!
//! Items are grouped by label in order of first appearance; each group with at
//! least `k` items is replaced by `random.sample(group, k)`, smaller groups are
//! kept whole (no padding, no random draw); groups are concatenated in that
//! order. The caller seeds one [`PyRandom`] and passes it to the train draw,
//! then to the val draw, as the reference does.

use std::collections::HashMap;

use crate::datum::Datum;
use crate::error::{DatasetError, Result};
use crate::pyrandom::PyRandom;

/// The positions (into `labels`) that a `k`-shot draw keeps, in output order.
///
/// Memory is proportional to `labels.len()`, whatever `k` and the label values are.
pub fn fewshot_indices(labels: &[usize], k: usize, rng: &mut PyRandom) -> Vec<usize> {
    let mut slot: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, &y) in labels.iter().enumerate() {
        let g = *slot.entry(y).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    // Never more than every item: `k` may be huge.
    let mut out = Vec::with_capacity(labels.len());
    for group in groups {
        if group.len() >= k {
            out.extend(rng.sample(&group, k));
        } else {
            out.extend(group);
        }
    }
    out
}

/// A `k`-shot subset of `items` (see the module docs).
///
/// # Errors
/// [`DatasetError::InvalidArgument`] for `k == 0` (the reference's "below 1 means all" is
/// [`crate::SplitConfig::new`]'s negative shots; 0 shots is a mistake, not "all").
pub fn generate_fewshot(items: &[Datum], k: usize, rng: &mut PyRandom) -> Result<Vec<Datum>> {
    if k == 0 {
        return Err(zero_shots(""));
    }
    let labels: Vec<usize> = items.iter().map(|d| d.label).collect();
    Ok(fewshot_indices(&labels, k, rng)
        .into_iter()
        .map(|i| items[i].clone())
        .collect())
}

/// The error for a request of 0 shots.
pub(crate) fn zero_shots(dataset: &str) -> DatasetError {
    DatasetError::InvalidArgument {
        dataset: dataset.into(),
        argument: "shots".into(),
        value: "0".into(),
        reason: "a few-shot draw needs at least 1 shot per class (for the full splits give \
                 no shots, or -1 as the reference does)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_classes_are_kept_whole_without_drawing() {
        let labels = [0, 1, 1, 0, 2];
        let mut rng = PyRandom::new(1);
        let before = rng.clone().next_u32();
        assert_eq!(fewshot_indices(&labels, 3, &mut rng), vec![0, 3, 1, 2, 4]);
        assert_eq!(rng.next_u32(), before);
    }

    #[test]
    fn groups_follow_first_appearance_not_label_order() {
        let labels = [5, 5, 2, 2, 9];
        let out = fewshot_indices(&labels, 2, &mut PyRandom::new(3));
        let out_labels: Vec<usize> = out.iter().map(|&i| labels[i]).collect();
        assert_eq!(out_labels, vec![5, 5, 2, 2, 9]);
    }
}
