//! Reference-optimizer helpers: the SGD state of a Dassl checkpoint (`optimizer.param_groups`
//! parameter numbering and `optimizer.state[i].momentum_buffer` tensors).

use std::collections::BTreeMap;

use super::{PickleValue, TorchCheckpoint, TorchReadError, TorchTensor};

impl TorchCheckpoint {
    /// The parameter indices of the optimizer's `param_groups` (all groups, in order), i.e. the
    /// order in which `optimizer.state` keys refer to parameters. `None` when the checkpoint has
    /// no `optimizer` dict of that shape.
    pub fn optimizer_param_indices(&self) -> Option<Vec<i64>> {
        let groups = self
            .root
            .get("optimizer")?
            .get("param_groups")?
            .as_sequence()?;
        let mut out = Vec::new();
        for g in groups {
            for p in g.get("params")?.as_sequence()? {
                out.push(p.as_int()?);
            }
        }
        Some(out)
    }

    /// SGD momentum buffers: `optimizer.state[i].momentum_buffer` keyed by parameter index `i`
    /// (an index into [`Self::optimizer_param_indices`]' parameter numbering). Parameters
    /// without a buffer (or with `None`) are absent; a checkpoint without an `optimizer` entry
    /// gives an empty map. All buffers together are bounded by [`super::materialise_limit`].
    pub fn momentum_buffers(&self) -> Result<BTreeMap<usize, TorchTensor>, TorchReadError> {
        let mut out = BTreeMap::new();
        let Some(opt) = self.root.get("optimizer") else {
            return Ok(out);
        };
        let state = opt
            .get("state")
            .and_then(PickleValue::as_dict)
            .ok_or_else(|| self.layout("`optimizer` has no `state` dict"))?;
        let mut budget = self.element_budget();
        for (k, v) in state {
            let idx = k
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| {
                    self.layout(format!(
                        "an optimizer state key is a {} ({}), not an index",
                        k.kind(),
                        k.as_int().map_or(String::new(), |i| i.to_string())
                    ))
                })?;
            match v.get("momentum_buffer") {
                Some(PickleValue::Tensor(meta)) => {
                    out.insert(idx, self.tensor_within(meta, &mut budget)?);
                }
                Some(PickleValue::None) | None => {}
                Some(other) => {
                    return Err(self.layout(format!(
                        "optimizer state {idx}: momentum_buffer is a {}, not a tensor",
                        other.kind()
                    )))
                }
            }
        }
        Ok(out)
    }
}
