//! Reading CLIP weights from safetensors in OpenAI or Hugging Face naming.
//!
//! Both namings are first brought to one host-side table in OpenAI naming
//! ([`TensorMap`]); [`crate::Clip::from_tensor_map`] then takes every tensor it needs with
//! a shape check and reports what is left over. The few HF → OpenAI remaps live in
//! [`hf_to_openai`], in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{ClipError, Result};
// Re-exported inside the crate so `crate::weights::HostTensor` keeps working.
pub(crate) use crate::host::HostTensor;

/// Which key convention a weights file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// OpenAI's `clip/model.py` state dict (`visual.*`, `transformer.*`, ...).
    OpenAi,
    /// Hugging Face transformers' `CLIPModel` (`vision_model.*`, `text_model.*`, ...).
    HuggingFace,
}

/// Tensors in OpenAI naming, with the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct TensorMap {
    /// The file the tensors were read from.
    pub path: PathBuf,
    /// The naming of the original file.
    pub naming: Naming,
    /// Tensors by OpenAI key.
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Keys present in OpenAI JIT state dicts that `clip.build_model` deletes.
pub const OPENAI_IGNORED: [&str; 3] = ["input_resolution", "context_length", "vocab_size"];

/// Buffers some HF exports carry that hold no weights.
const HF_IGNORED_SUFFIX: &str = "position_ids";

fn to_f32(path: &Path, key: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    let out = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(ClipError::UnsupportedDtype {
                path: path.to_path_buf(),
                key: key.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    };
    Ok(out)
}

/// Reads every floating-point tensor of a safetensors file as f32 (fp16/bf16/f64 converted).
///
/// Non-float tensors are returned as errors unless listed in `skip_non_float`; a tensor
/// holding NaN or an infinity (also an f64 too large for f32) is [`ClipError::NonFinite`].
/// Memory: the file once plus its tensors as f32 (at most twice the file for fp16).
pub fn read_safetensors(
    path: &Path,
    skip_non_float: &[&str],
) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_safetensors_bytes(&bytes, path, skip_non_float)
}

/// [`read_safetensors`] on the bytes of a file; `path` only names it in errors.
pub fn read_safetensors_bytes(
    bytes: &[u8],
    path: &Path,
    skip_non_float: &[&str],
) -> Result<BTreeMap<String, HostTensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ClipError::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (key, view) in st.tensors() {
        let float = matches!(
            view.dtype(),
            Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64
        );
        if !float && skip_non_float.iter().any(|s| key == *s || key.ends_with(s)) {
            continue;
        }
        let data = to_f32(path, &key, &view)?;
        let t = HostTensor::new(view.shape().to_vec(), data);
        if let Some((index, value)) = t.first_non_finite() {
            return Err(ClipError::NonFinite {
                path: path.to_path_buf(),
                key,
                index,
                value,
            });
        }
        out.insert(key, t);
    }
    Ok(out)
}

/// Detects the naming of a set of keys.
pub fn detect_naming<'a>(mut keys: impl Iterator<Item = &'a String>) -> Naming {
    if keys.any(|k| k.starts_with("vision_model.") || k.starts_with("text_model.")) {
        Naming::HuggingFace
    } else {
        Naming::OpenAi
    }
}

/// Reads a CLIP weights file in either naming and returns it in OpenAI naming.
pub fn read_clip_weights(path: &Path) -> Result<TensorMap> {
    let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_clip_weights_bytes(&bytes, path)
}

/// [`read_clip_weights`] on the bytes of a file; `path` only names it in errors.
pub fn read_clip_weights_bytes(bytes: &[u8], path: &Path) -> Result<TensorMap> {
    let mut skip: Vec<&str> = OPENAI_IGNORED.to_vec();
    skip.push(HF_IGNORED_SUFFIX);
    let raw = read_safetensors_bytes(bytes, path, &skip)?;
    let naming = detect_naming(raw.keys());
    let tensors = match naming {
        Naming::OpenAi => raw,
        Naming::HuggingFace => hf_to_openai(path, raw)?,
    };
    Ok(TensorMap {
        path: path.to_path_buf(),
        naming,
        tensors,
    })
}

/// Renames Hugging Face `CLIPModel` tensors to OpenAI naming: q/k/v are packed into
/// `in_proj_*`, the two projections are transposed (HF stores `nn.Linear` weights),
/// and everything else is a rename. Unknown keys are kept under their own name so the
/// loader can report them as unexpected.
pub fn hf_to_openai(
    path: &Path,
    mut hf: BTreeMap<String, HostTensor>,
) -> Result<BTreeMap<String, HostTensor>> {
    let mut out = BTreeMap::new();
    hf.retain(|k, _| !k.ends_with(HF_IGNORED_SUFFIX));
    let towers = [
        (
            "vision_model.encoder.layers",
            "visual.transformer.resblocks",
        ),
        ("text_model.encoder.layers", "transformer.resblocks"),
    ];
    // Pack q/k/v first: they are the only many-to-one rename. Every block index present
    // (any tensor under `{prefix}.{i}.`) must have all three, so a missing one is reported
    // as missing rather than leaving its siblings as unexpected tensors.
    for (hf_prefix, oa_prefix) in towers {
        let dot = format!("{hf_prefix}.");
        let blocks: std::collections::BTreeSet<usize> = hf
            .keys()
            .filter_map(|k| k.strip_prefix(&dot)?.split('.').next()?.parse().ok())
            .collect();
        for i in blocks {
            let p = format!("{hf_prefix}.{i}.self_attn");
            for (part, oa) in [("weight", "in_proj_weight"), ("bias", "in_proj_bias")] {
                let mut shape = None;
                let mut data = Vec::new();
                for proj in ["q_proj", "k_proj", "v_proj"] {
                    let key = format!("{p}.{proj}.{part}");
                    let t = hf.remove(&key).ok_or_else(|| ClipError::MissingTensor {
                        path: path.to_path_buf(),
                        key: key.clone(),
                        expected: shape.as_ref().map_or_else(
                            || {
                                if part == "weight" {
                                    "[width, width]"
                                } else {
                                    "[width]"
                                }
                                .to_string()
                            },
                            |s| format!("{s:?}"),
                        ),
                    })?;
                    let s = shape.get_or_insert_with(|| t.shape.clone());
                    if *s != t.shape {
                        return Err(ClipError::ShapeMismatch {
                            path: path.to_path_buf(),
                            key,
                            expected: s.clone(),
                            found: t.shape,
                        });
                    }
                    data.extend(t.data);
                }
                let mut shape = shape.unwrap_or_default();
                if shape.is_empty() {
                    return Err(ClipError::InvalidTensor {
                        path: path.to_path_buf(),
                        key: format!("{p}.q_proj.{part}"),
                        expected: "[width, width] or [width]".into(),
                        found: vec![],
                    });
                }
                shape[0] *= 3;
                out.insert(
                    format!("{oa_prefix}.{i}.attn.{oa}"),
                    HostTensor { shape, data },
                );
            }
        }
    }
    let layer_renames = [
        ("self_attn.out_proj", "attn.out_proj"),
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    ];
    let plain = [
        ("logit_scale", "logit_scale"),
        (
            "text_model.embeddings.token_embedding.weight",
            "token_embedding.weight",
        ),
        (
            "text_model.embeddings.position_embedding.weight",
            "positional_embedding",
        ),
        ("text_model.final_layer_norm.weight", "ln_final.weight"),
        ("text_model.final_layer_norm.bias", "ln_final.bias"),
        (
            "vision_model.embeddings.class_embedding",
            "visual.class_embedding",
        ),
        (
            "vision_model.embeddings.patch_embedding.weight",
            "visual.conv1.weight",
        ),
        (
            "vision_model.embeddings.position_embedding.weight",
            "visual.positional_embedding",
        ),
        ("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"),
        ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
        (
            "vision_model.post_layernorm.weight",
            "visual.ln_post.weight",
        ),
        ("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
    ];
    let transposed = [
        ("text_projection.weight", "text_projection"),
        ("visual_projection.weight", "visual.proj"),
    ];
    for (key, t) in hf {
        if let Some((_, oa)) = plain.iter().find(|(h, _)| *h == key) {
            out.insert(oa.to_string(), t);
        } else if let Some((_, oa)) = transposed.iter().find(|(h, _)| *h == key) {
            if t.shape.len() != 2 {
                return Err(ClipError::InvalidTensor {
                    path: path.to_path_buf(),
                    key,
                    expected: "[out, in] (a matrix)".into(),
                    found: t.shape,
                });
            }
            out.insert(oa.to_string(), t.transposed());
        } else {
            let renamed = towers.iter().find_map(|(hp, op)| {
                let rest = key.strip_prefix(hp)?.strip_prefix('.')?;
                let (idx, tail) = rest.split_once('.')?;
                let (from, to) = layer_renames.iter().find(|(f, _)| tail.starts_with(f))?;
                Some(format!("{op}.{idx}.{to}{}", &tail[from.len()..]))
            });
            out.insert(renamed.unwrap_or(key), t);
        }
    }
    Ok(out)
}

impl TensorMap {
    /// Shape of a tensor by OpenAI key.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.shape.clone())
    }

    /// Removes a tensor, checking its shape. Scalars (`[]`) match `[1]`.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<HostTensor> {
        let t = self
            .tensors
            .remove(key)
            .ok_or_else(|| ClipError::MissingTensor {
                path: self.path.clone(),
                key: key.to_string(),
                expected: format!("{expected:?}"),
            })?;
        let scalar_ok = t.shape.is_empty() && expected == [1];
        if t.shape != expected && !scalar_ok {
            return Err(ClipError::ShapeMismatch {
                path: self.path.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }

    /// Fails if any tensor was not taken ([`ClipError::UnexpectedTensors`] lists them).
    pub fn finish(self) -> Result<()> {
        if self.tensors.is_empty() {
            Ok(())
        } else {
            Err(ClipError::UnexpectedTensors {
                path: self.path,
                keys: self.tensors.into_keys().collect(),
            })
        }
    }
}
