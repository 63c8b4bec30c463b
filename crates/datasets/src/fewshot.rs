//! Few-shot sampling, identical to Dassl's `generate_fewshot_dataset(..., repeat=False)`.
//!
//! Items are grouped by label in order of first appearance; each group with at
//! least `k` items is replaced by `random.sample(group, k)`, smaller groups are
//! kept whole (no padding, no random draw); groups are concatenated in that
//! order. The caller seeds one [`PyRandom`] and passes it to the train draw,
//! then to the val draw, as the reference does.

use std::collections::HashMap;

use crate::datum::Datum;
use crate::pyrandom::PyRandom;

/// The positions (into `labels`) that a `k`-shot draw keeps, in output order.
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
    let mut out = Vec::with_capacity(groups.len() * k);
    for group in groups {
        if group.len() >= k {
            out.extend(rng.sample(&group, k));
        } else {
            out.extend(group);
        }
    }
    out
}

/// A `k`-shot subset of `items` (see the module docs); `k == 0` keeps everything.
pub fn generate_fewshot(items: &[Datum], k: usize, rng: &mut PyRandom) -> Vec<Datum> {
    if k == 0 {
        return items.to_vec();
    }
    let labels: Vec<usize> = items.iter().map(|d| d.label).collect();
    fewshot_indices(&labels, k, rng)
        .into_iter()
        .map(|i| items[i].clone())
        .collect()
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
