//! The reference implementation's names for each method's learnable tensors: one table
//! per method mapping an official state-dict name to this project's parameter path, the
//! names its own loader drops, and the method a set of names belongs to.
//!
//! | method | official name | our path |
//! |---|---|---|
//! | CoOp | `ctx` | `ctx` |
//! | Co-CoOp | `ctx`, `meta_net.linear{1,2}.{weight,bias}` | the same (weights transposed) |
//! | IVLP | `prompt_learner.ctx` | `ctx` |
//! | IVLP | `text_encoder.transformer.resblocks.{i}.VPT_shallow` | `text_deep.{i-1}` |
//! | IVLP, VPT | `image_encoder.VPT` | `vision_ctx` |
//! | IVLP, VPT | `image_encoder.transformer.resblocks.{i}.VPT_shallow` | `vision_deep.{i-1}` |
//! | MaPLe | `prompt_learner.{ctx, proj.*, compound_prompts_text.{j}, compound_prompt_projections.{j}.*}` | without the prefix (weights transposed) |
//!
//! CoOp and Co-CoOp checkpoints hold the prompt learner alone (no `prompt_learner.`
//! prefix); IVLP, VPT and MaPLe checkpoints hold the whole model, whose frozen CLIP
//! weights (`image_encoder.*`, `text_encoder.*`, `logit_scale`) are skipped on import.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{MapleError, Result};
use crate::method::Method;
use clip_model::HostTensor;

/// How one official tensor name maps to one parameter path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    /// The official state-dict name; `{}` stands for a block or list index.
    pub official: &'static str,
    /// Our parameter path; `{}` stands for the index in our list.
    pub ours: &'static str,
    /// Official index minus ours (deep prompts start at block 1, our lists at 0).
    pub offset: usize,
    /// A `Linear` weight: `[out, in]` in PyTorch, `[in, out]` in Burn.
    pub transpose: bool,
}

const fn rule(official: &'static str, ours: &'static str) -> NameRule {
    NameRule {
        official,
        ours,
        offset: 0,
        transpose: false,
    }
}

const fn indexed(official: &'static str, ours: &'static str, offset: usize) -> NameRule {
    NameRule {
        official,
        ours,
        offset,
        transpose: false,
    }
}

const fn weight(official: &'static str, ours: &'static str) -> NameRule {
    NameRule {
        official,
        ours,
        offset: 0,
        transpose: true,
    }
}

const COOP: &[NameRule] = &[rule("ctx", "ctx")];

const COCOOP: &[NameRule] = &[
    rule("ctx", "ctx"),
    weight("meta_net.linear1.weight", "meta_net.linear1.weight"),
    rule("meta_net.linear1.bias", "meta_net.linear1.bias"),
    weight("meta_net.linear2.weight", "meta_net.linear2.weight"),
    rule("meta_net.linear2.bias", "meta_net.linear2.bias"),
];

const IVLP: &[NameRule] = &[
    rule("prompt_learner.ctx", "ctx"),
    indexed(
        "text_encoder.transformer.resblocks.{}.VPT_shallow",
        "text_deep.{}",
        1,
    ),
    rule("image_encoder.VPT", "vision_ctx"),
    indexed(
        "image_encoder.transformer.resblocks.{}.VPT_shallow",
        "vision_deep.{}",
        1,
    ),
];

const VPT: &[NameRule] = &[
    rule("image_encoder.VPT", "vision_ctx"),
    indexed(
        "image_encoder.transformer.resblocks.{}.VPT_shallow",
        "vision_deep.{}",
        1,
    ),
];

const MAPLE: &[NameRule] = &[
    rule("prompt_learner.ctx", "ctx"),
    weight("prompt_learner.proj.weight", "proj.weight"),
    rule("prompt_learner.proj.bias", "proj.bias"),
    indexed(
        "prompt_learner.compound_prompts_text.{}",
        "compound_prompts_text.{}",
        0,
    ),
    NameRule {
        official: "prompt_learner.compound_prompt_projections.{}.weight",
        ours: "compound_prompt_projections.{}.weight",
        offset: 0,
        transpose: true,
    },
    indexed(
        "prompt_learner.compound_prompt_projections.{}.bias",
        "compound_prompt_projections.{}.bias",
        0,
    ),
];

/// The name table of `method`.
pub fn name_table(method: Method) -> &'static [NameRule] {
    match method {
        Method::CoOp => COOP,
        Method::CoCoOp => COCOOP,
        Method::Ivlp => IVLP,
        Method::Vpt => VPT,
        Method::Maple => MAPLE,
    }
}

/// Whether the reference's own `load_model` drops `name`: the class-dependent token
/// embeddings of a prompt learner (`token_prefix`, `token_suffix`, with or without the
/// `prompt_learner.` prefix).
pub fn is_dropped(name: &str) -> bool {
    let base = name.strip_prefix("prompt_learner.").unwrap_or(name);
    base == "token_prefix" || base == "token_suffix"
}

/// Whether `name` is a frozen CLIP weight of a whole-model checkpoint (IVLP, VPT, MaPLe):
/// `logit_scale` or under `image_encoder.` / `text_encoder.`, and not a prompt (`VPT`).
pub fn is_frozen_clip(name: &str) -> bool {
    (name == "logit_scale"
        || name.starts_with("image_encoder.")
        || name.starts_with("text_encoder."))
        && !name.contains("VPT")
}

/// Matches `name` against a pattern with at most one `{}` standing for a decimal index.
fn match_pattern(pattern: &str, name: &str) -> Option<Option<usize>> {
    match pattern.split_once("{}") {
        None => (pattern == name).then_some(None),
        Some((pre, post)) => {
            let mid = name.strip_prefix(pre)?.strip_suffix(post)?;
            if mid.is_empty() || !mid.bytes().all(|b| b.is_ascii_digit()) || mid.len() > 9 {
                return None;
            }
            mid.parse().ok().map(Some)
        }
    }
}

fn fill(pattern: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => pattern.replacen("{}", &i.to_string(), 1),
        None => pattern.to_string(),
    }
}

/// Our parameter path for an official name of `method`, and whether the tensor is a
/// `Linear` weight to transpose. `None` for names outside the method's table.
pub fn to_ours(method: Method, official: &str) -> Option<(String, bool)> {
    name_table(method).iter().find_map(|r| {
        let index = match match_pattern(r.official, official)? {
            Some(i) => Some(i.checked_sub(r.offset)?),
            None => None,
        };
        Some((fill(r.ours, index), r.transpose))
    })
}

/// The official name of one of our parameter paths, and whether it is a `Linear` weight.
pub fn to_official(method: Method, ours: &str) -> Option<(String, bool)> {
    name_table(method).iter().find_map(|r| {
        let index = match_pattern(r.ours, ours)?.map(|i| i + r.offset);
        Some((fill(r.official, index), r.transpose))
    })
}

/// The method whose official checkpoint (or fixture) holds tensors called `names`:
/// MaPLe's couplings (`prompt_learner.proj.*`, `prompt_learner.compound_*`), Co-CoOp's
/// `meta_net.*`, CoOp's bare `ctx`, IVLP's `prompt_learner.ctx` without couplings, VPT's
/// `image_encoder.VPT` without any text prompt. `None` when none of these is present.
pub fn detect_method<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Method> {
    let names: Vec<&str> = names.into_iter().collect();
    let any = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(n));
    if any(&|n| n.starts_with("prompt_learner.proj.") || n.starts_with("prompt_learner.compound_"))
    {
        Some(Method::Maple)
    } else if any(&|n| n.starts_with("meta_net.")) {
        Some(Method::CoCoOp)
    } else if any(&|n| n == "ctx") {
        Some(Method::CoOp)
    } else if any(&|n| n == "prompt_learner.ctx") {
        Some(Method::Ivlp)
    } else if any(&|n| n == "image_encoder.VPT") {
        Some(Method::Vpt)
    } else {
        None
    }
}

/// Transposes a 2-D tensor (`Linear` weights between PyTorch and Burn layouts).
fn transposed(t: &HostTensor) -> HostTensor {
    t.transposed()
}

/// Converts `method`'s official tensors to our paths and Burn layout. Tensors the
/// reference's loader drops and frozen CLIP weights are skipped.
///
/// # Errors
/// A tensor that is none of these (named, with `source`), or a `Linear` weight that is
/// not 2-D.
pub fn from_official<'a>(
    method: Method,
    tensors: impl IntoIterator<Item = (&'a str, &'a HostTensor)>,
    source: &Path,
) -> Result<BTreeMap<String, HostTensor>> {
    let mut out = BTreeMap::new();
    for (name, t) in tensors {
        match to_ours(method, name) {
            Some((path, transpose)) => {
                if transpose && t.shape.len() != 2 {
                    return Err(MapleError::Checkpoint {
                        path: source.to_path_buf(),
                        message: format!("`{name}` is a Linear weight but has shape {:?}", t.shape),
                    });
                }
                out.insert(path, if transpose { transposed(t) } else { t.clone() });
            }
            None if is_dropped(name) => {}
            None if method != Method::CoOp && method != Method::CoCoOp && is_frozen_clip(name) => {}
            None => {
                return Err(MapleError::Checkpoint {
                    path: source.to_path_buf(),
                    message: format!(
                    "tensor `{name}` is not a {} parameter, a token buffer or a frozen CLIP weight",
                    method.display_name()
                ),
                })
            }
        }
    }
    Ok(out)
}

/// Converts our parameters (paths, Burn layout) to `method`'s official names and layout.
/// Paths outside the table keep their name.
pub fn to_official_tensors(
    method: Method,
    params: &BTreeMap<String, HostTensor>,
) -> BTreeMap<String, HostTensor> {
    params
        .iter()
        .map(|(k, t)| match to_official(method, k) {
            Some((name, true)) if t.shape.len() == 2 => (name, transposed(t)),
            Some((name, _)) => (name, t.clone()),
            None => (k.clone(), t.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_maps_both_ways() {
        let cases = [
            (Method::CoOp, "ctx", "ctx"),
            (
                Method::CoCoOp,
                "meta_net.linear2.weight",
                "meta_net.linear2.weight",
            ),
            (Method::Ivlp, "prompt_learner.ctx", "ctx"),
            (
                Method::Ivlp,
                "text_encoder.transformer.resblocks.11.VPT_shallow",
                "text_deep.10",
            ),
            (
                Method::Ivlp,
                "image_encoder.transformer.resblocks.1.VPT_shallow",
                "vision_deep.0",
            ),
            (Method::Vpt, "image_encoder.VPT", "vision_ctx"),
            (
                Method::Maple,
                "prompt_learner.compound_prompt_projections.3.weight",
                "compound_prompt_projections.3.weight",
            ),
            (
                Method::Maple,
                "prompt_learner.compound_prompts_text.0",
                "compound_prompts_text.0",
            ),
        ];
        for (m, official, ours) in cases {
            assert_eq!(to_ours(m, official).map(|x| x.0).as_deref(), Some(ours));
            assert_eq!(to_official(m, ours).map(|x| x.0).as_deref(), Some(official));
        }
        assert!(
            to_ours(Method::Maple, "prompt_learner.proj.weight")
                .unwrap()
                .1
        );
    }

    #[test]
    fn block_zero_and_malformed_indices_match_no_rule() {
        for name in [
            "image_encoder.transformer.resblocks.0.VPT_shallow",
            "image_encoder.transformer.resblocks.x.VPT_shallow",
            "image_encoder.transformer.resblocks..VPT_shallow",
            "image_encoder.transformer.resblocks.-1.VPT_shallow",
            "image_encoder.transformer.resblocks.99999999999999999999.VPT_shallow",
        ] {
            assert_eq!(to_ours(Method::Vpt, name), None, "{name}");
            assert!(!is_frozen_clip(name), "{name}");
        }
    }

    #[test]
    fn methods_are_recognised_from_their_names() {
        let d = |names: &[&str]| detect_method(names.iter().copied());
        assert_eq!(
            d(&["ctx", "token_prefix", "token_suffix"]),
            Some(Method::CoOp)
        );
        assert_eq!(d(&["ctx", "meta_net.linear1.weight"]), Some(Method::CoCoOp));
        assert_eq!(
            d(&["logit_scale", "prompt_learner.ctx", "image_encoder.VPT"]),
            Some(Method::Ivlp)
        );
        assert_eq!(
            d(&[
                "logit_scale",
                "image_encoder.VPT",
                "text_encoder.ln_final.weight"
            ]),
            Some(Method::Vpt)
        );
        assert_eq!(
            d(&["prompt_learner.ctx", "prompt_learner.proj.weight"]),
            Some(Method::Maple)
        );
        assert_eq!(d(&["logit_scale", "image_encoder.proj"]), None);
    }

    #[test]
    fn import_skips_buffers_and_frozen_weights_and_refuses_strangers() {
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let src = Path::new("x.pth");
        let named = [
            ("prompt_learner.ctx", &t),
            ("prompt_learner.token_prefix", &t),
            ("image_encoder.proj", &t),
            ("logit_scale", &t),
        ];
        let out = from_official(Method::Ivlp, named, src).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["ctx"]);
        // CoOp checkpoints hold the prompt learner alone: a CLIP weight there is foreign.
        let err = from_official(Method::CoOp, [("ctx", &t), ("image_encoder.proj", &t)], src)
            .unwrap_err()
            .to_string();
        assert!(err.contains("image_encoder.proj"), "{err}");
        let err = from_official(Method::Vpt, [("prompt_learner.bogus", &t)], src)
            .unwrap_err()
            .to_string();
        assert!(err.contains("prompt_learner.bogus"), "{err}");
    }

    #[test]
    fn linear_weights_are_transposed_both_ways() {
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let src = Path::new("x.pth");
        let ours = from_official(Method::CoCoOp, [("meta_net.linear1.weight", &t)], src).unwrap();
        let w = &ours["meta_net.linear1.weight"];
        assert_eq!(w.shape, [3, 2]);
        assert_eq!(w.data, [1., 4., 2., 5., 3., 6.]);
        let back = to_official_tensors(Method::CoCoOp, &ours);
        assert_eq!(back["meta_net.linear1.weight"], t);
    }
}
