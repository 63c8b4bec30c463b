//! Writing CLIP to a safetensors file in OpenAI naming: the inverse of
//! [`Clip::from_tensor_map`], so a saved model loads back with [`Clip::from_safetensors`].
//!
//! Burn stores `Linear` weights as `[in, out]`; the file holds PyTorch's `[out, in]`.
//! LayerNorm `gamma`/`beta` become `weight`/`bias`, the fused attention input projection
//! becomes `attn.in_proj_weight`/`attn.in_proj_bias`, and the `[1]` logit scale becomes a
//! 0-d tensor, as in OpenAI's state dicts.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safetensors::Dtype;

use crate::block::ResidualBlock;
use crate::clip::Clip;
use crate::error::{ClipError, Result};
use crate::host::HostTensor;
use crate::ops::LayerNorm;

/// The element type written to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDtype {
    /// 32-bit floats: a lossless round trip.
    F32,
    /// IEEE half precision (round to nearest): half the size, about 3 significant digits.
    F16,
}

/// Writes every parameter of `clip` to `path` in OpenAI naming, atomically: the file is
/// written next to `path` under a temporary name and renamed over it, so readers never
/// see a partial file.
///
/// # Errors
/// [`ClipError::Io`] if the folder is not writable, [`ClipError::Safetensors`] if
/// serialisation fails, [`ClipError::Invalid`] for a model without the biases CLIP has.
pub fn save_openai_safetensors<B: Backend>(
    clip: &Clip<B>,
    path: &Path,
    dtype: ExportDtype,
) -> Result<()> {
    let tensors = openai_tensors(clip)?;
    let views: Vec<(String, Bytes)> = tensors
        .into_iter()
        .map(|(k, t)| (k, Bytes::encode(t, dtype)))
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);

    let tmp = temp_path(path);
    let written =
        safetensors::serialize_to_file(views, Some(metadata), &tmp).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(source) => ClipError::Io {
                path: tmp.clone(),
                source,
            },
            other => ClipError::Safetensors {
                path: tmp.clone(),
                message: other.to_string(),
            },
        });
    let renamed = written.and_then(|()| {
        // Flush to disk before the rename makes the file visible under its real name.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ClipError::Io {
                path: path.to_path_buf(),
                source,
            })
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Every parameter of `clip` as host f32 tensors under OpenAI keys, with OpenAI's
/// shapes (`[out, in]` linear weights, a 0-d `logit_scale`).
///
/// # Errors
/// [`ClipError::Invalid`] if a Linear or LayerNorm lacks its bias (CLIP has them all).
pub fn openai_tensors<B: Backend>(clip: &Clip<B>) -> Result<BTreeMap<String, HostTensor>> {
    let mut out = Writer::default();
    let v = &clip.visual;
    out.param("visual.conv1.weight", &v.conv1);
    out.param("visual.class_embedding", &v.class_embedding);
    out.param("visual.positional_embedding", &v.positional_embedding);
    out.layer_norm("visual.ln_pre", &v.ln_pre)?;
    for (i, block) in v.resblocks.iter().enumerate() {
        out.block(&format!("visual.transformer.resblocks.{i}"), block)?;
    }
    out.layer_norm("visual.ln_post", &v.ln_post)?;
    out.param("visual.proj", &v.proj);

    let t = &clip.text;
    out.param("token_embedding.weight", &t.token_embedding);
    out.param("positional_embedding", &t.positional_embedding);
    for (i, block) in t.resblocks.iter().enumerate() {
        out.block(&format!("transformer.resblocks.{i}"), block)?;
    }
    out.layer_norm("ln_final", &t.ln_final)?;
    out.param("text_projection", &t.text_projection);

    let mut scale = HostTensor::from_tensor(clip.logit_scale.val());
    scale.shape.clear();
    out.0.insert("logit_scale".into(), scale);
    Ok(out.0)
}

/// The temporary file `path` is first written to: same folder, hidden, process-unique.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(
        || "clip.safetensors".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

#[derive(Default)]
struct Writer(BTreeMap<String, HostTensor>);

impl Writer {
    fn param<B: Backend, const D: usize>(&mut self, key: &str, p: &Param<Tensor<B, D>>) {
        self.0
            .insert(key.to_string(), HostTensor::from_tensor(p.val()));
    }

    /// A Burn `Linear` (`[in, out]`) as PyTorch's `weight` `[out, in]` and `bias`.
    fn linear<B: Backend>(
        &mut self,
        prefix: &str,
        weight_key: &str,
        bias_key: &str,
        l: &Linear<B>,
    ) -> Result<()> {
        self.0.insert(
            format!("{prefix}.{weight_key}"),
            HostTensor::from_tensor(l.weight.val()).transposed(),
        );
        let bias = l
            .bias
            .as_ref()
            .ok_or_else(|| ClipError::Invalid(format!("{prefix}: Linear without bias")))?;
        self.param(&format!("{prefix}.{bias_key}"), bias);
        Ok(())
    }

    fn layer_norm<B: Backend>(&mut self, prefix: &str, ln: &LayerNorm<B>) -> Result<()> {
        self.param(&format!("{prefix}.weight"), &ln.gamma);
        self.param(&format!("{prefix}.bias"), &ln.beta);
        Ok(())
    }

    fn block<B: Backend>(&mut self, prefix: &str, b: &ResidualBlock<B>) -> Result<()> {
        self.layer_norm(&format!("{prefix}.ln_1"), &b.ln_1)?;
        self.linear(
            &format!("{prefix}.attn"),
            "in_proj_weight",
            "in_proj_bias",
            &b.attn.in_proj,
        )?;
        self.linear(
            &format!("{prefix}.attn.out_proj"),
            "weight",
            "bias",
            &b.attn.out_proj,
        )?;
        self.layer_norm(&format!("{prefix}.ln_2"), &b.ln_2)?;
        self.linear(&format!("{prefix}.mlp.c_fc"), "weight", "bias", &b.mlp.c_fc)?;
        self.linear(
            &format!("{prefix}.mlp.c_proj"),
            "weight",
            "bias",
            &b.mlp.c_proj,
        )
    }
}

/// One tensor's little-endian bytes, as safetensors wants them.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Bytes {
    fn encode(t: HostTensor, dtype: ExportDtype) -> Self {
        let (dtype, data) = match dtype {
            ExportDtype::F32 => (Dtype::F32, t.to_le_bytes()),
            ExportDtype::F16 => (
                Dtype::F16,
                t.data
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        };
        Bytes {
            dtype,
            shape: t.shape,
            data,
        }
    }
}

impl safetensors::View for Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::ndarray::NdArrayDevice;
    use burn::backend::NdArray;
    use burn::module::Module;
    use burn::tensor::Distribution;

    use super::*;
    use crate::weights::read_clip_weights;
    use crate::ClipConfig;

    type B = NdArray<f32>;

    /// A small CLIP whose LayerNorms and biases are random too (init leaves them 1 / 0,
    /// which would hide a gamma/beta or weight/bias swap).
    fn random_clip(device: &NdArrayDevice) -> (Clip<B>, ClipConfig) {
        let config = ClipConfig::new(32, 16, 2, 64, 1, 8, 77, 300, 64, 1, 2);
        let clip = Clip::<B>::init(&config, device);
        let clip = clip.map(&mut Randomize);
        (clip, config)
    }

    struct Randomize;

    impl burn::module::ModuleMapper<B> for Randomize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, mapper) = param.consume();
            let noise = Tensor::random(t.shape(), Distribution::Normal(0.0, 0.05), &t.device());
            Param::from_mapped_value(id, t + noise, mapper)
        }
    }

    fn inputs(config: &ClipConfig, device: &NdArrayDevice) -> (Tensor<B, 4>, Vec<Vec<u32>>) {
        let r = config.image_resolution;
        let images = Tensor::random([3, 3, r, r], Distribution::Normal(0.0, 1.0), device);
        let mut rows = vec![vec![0u32; 77]; 2];
        rows[0][..4].copy_from_slice(&[298, 5, 17, 299]);
        rows[1][..3].copy_from_slice(&[298, 44, 299]);
        (images, rows)
    }

    fn max_abs_diff(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn f32_export_loads_back_bit_identical() {
        let device = Default::default();
        let (clip, config) = random_clip(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.safetensors");
        save_openai_safetensors(&clip, &path, ExportDtype::F32).unwrap();

        let (loaded, loaded_config) = Clip::<B>::from_safetensors(&path, &device).unwrap();
        assert_eq!(loaded_config, config);
        // Every tensor, key and shape survives, and the file holds exactly OpenAI's keys
        // (from_safetensors fails on any missing or unused one).
        assert_eq!(
            openai_tensors(&loaded).unwrap(),
            openai_tensors(&clip).unwrap()
        );
        assert_eq!(
            read_clip_weights(&path).unwrap().shape("logit_scale"),
            Some(vec![])
        );
        assert_eq!(
            read_clip_weights(&path)
                .unwrap()
                .shape("visual.transformer.resblocks.0.attn.in_proj_weight"),
            Some(vec![192, 64])
        );

        let (images, rows) = inputs(&config, &device);
        let a = clip.logits(clip.encode_image(images.clone()), clip.encode_text(&rows));
        let b = loaded.logits(loaded.encode_image(images), loaded.encode_text(&rows));
        assert_eq!(a.into_data(), b.into_data());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn f16_export_loads_back_close() {
        let device = Default::default();
        let (clip, config) = random_clip(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip16.safetensors");
        save_openai_safetensors(&clip, &path, ExportDtype::F16).unwrap();
        let (loaded, _) = Clip::<B>::from_safetensors(&path, &device).unwrap();

        let (images, rows) = inputs(&config, &device);
        let fa = crate::l2_normalize(clip.encode_image(images.clone()));
        let fb = crate::l2_normalize(loaded.encode_image(images));
        let ta = crate::l2_normalize(clip.encode_text(&rows));
        let tb = crate::l2_normalize(loaded.encode_text(&rows));
        // f16 keeps 11 significant bits (relative error <= 2^-11 ≈ 5e-4 per weight); through
        // a few layers of a small net, normalised features move by a few 1e-3 at most.
        let (di, dt) = (max_abs_diff(fa, fb), max_abs_diff(ta, tb));
        assert!(di < 1e-2 && dt < 1e-2, "image diff {di}, text diff {dt}");
        assert!(
            di > 0.0 || dt > 0.0,
            "f16 rounding changed nothing: was f32 written?"
        );
        let file = std::fs::metadata(&path).unwrap().len();
        let params: usize = openai_tensors(&clip)
            .unwrap()
            .values()
            .map(|t| t.data.len())
            .sum();
        assert!(
            (file as usize) < params * 2 + 64 * 1024,
            "{file} bytes for {params} f16 parameters"
        );
    }

    #[test]
    fn from_shapes_recovers_the_config_and_names_a_missing_tensor() {
        let config = ClipConfig::new(32, 16, 2, 64, 1, 8, 77, 300, 64, 1, 2);
        let clip = Clip::<B>::init(&config, &Default::default());
        let tensors = openai_tensors(&clip).expect("export");
        let shape = |k: &str| tensors.get(k).map(|t| t.shape.clone());
        assert_eq!(ClipConfig::from_shapes(shape), Ok(config));
        let without = |k: &str| (k != "visual.conv1.weight").then(|| shape(k)).flatten();
        match ClipConfig::from_shapes(without) {
            Err(crate::config::ShapeProblem::Missing { key, .. }) => {
                assert_eq!(key, "visual.conv1.weight")
            }
            other => panic!("expected the missing conv1 weight, got {other:?}"),
        }
    }
}
