//! The CLIP model: both towers, the logit scale, and loading from a [`TensorMap`].

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::block::{frozen, Mlp, ResidualBlock, SelfAttention};
use crate::error::Result;
use crate::ops::LayerNorm;
use crate::text::TextTransformer;
use crate::vision::VisionTransformer;
use crate::weights::{read_clip_weights, HostTensor, TensorMap};
use crate::{ClipConfig, Precision};

/// CLIP with a ViT image tower. All parameters are created frozen (no gradients).
#[derive(Module, Debug)]
pub struct Clip<B: Backend> {
    /// Image tower (`visual.*`).
    pub visual: VisionTransformer<B>,
    /// Text tower (top-level keys).
    pub text: TextTransformer<B>,
    /// Log of the logit scale, `[1]`.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// The architecture (inferred from the weights when loaded).
    #[module(skip)]
    pub config: ClipConfig,
}

pub use crate::ops::l2_normalize;

impl<B: Backend> Clip<B> {
    /// A randomly initialised CLIP (frozen parameters) for `config`.
    pub fn init(config: &ClipConfig, device: &B::Device) -> Self {
        Self {
            visual: VisionTransformer::init(config, device),
            text: TextTransformer::init(config, device),
            logit_scale: frozen(Tensor::from_data(
                TensorData::new(vec![(1.0f32 / 0.07).ln()], [1]),
                device,
            )),
            config: config.clone(),
        }
        // Linear and LayerNorm initialisers create trainable parameters: freeze them all.
        .no_grad()
    }

    /// Loads a safetensors file in OpenAI or Hugging Face naming (fp16/bf16/fp32 in the
    /// file, computed in fp32), inferring the configuration from the shapes.
    pub fn from_safetensors(path: &Path, device: &B::Device) -> Result<(Self, ClipConfig)> {
        let map = read_clip_weights(path)?;
        Self::from_tensor_map(map, device)
    }

    /// Builds CLIP from tensors in OpenAI naming; every tensor must be used exactly once.
    pub fn from_tensor_map(mut map: TensorMap, device: &B::Device) -> Result<(Self, ClipConfig)> {
        // Architecture from the shapes (each checked, the odd tensor blamed), then every
        // tensor taken with its exact shape, then nothing may be left over.
        let config = ClipConfig::infer(
            map.tensors
                .iter()
                .map(|(k, t)| (k.as_str(), t.shape.as_slice())),
        )
        .map_err(|p| match p {
            crate::config::ShapeProblem::Missing { key, expected } => {
                crate::ClipError::MissingTensor {
                    path: map.path.clone(),
                    key,
                    expected,
                }
            }
            crate::config::ShapeProblem::Invalid {
                key,
                expected,
                found,
            } => crate::ClipError::InvalidTensor {
                path: map.path.clone(),
                key,
                expected,
                found,
            },
        })?;
        config.validate().map_err(|e| crate::ClipError::Config {
            path: map.path.clone(),
            message: e.to_string(),
        })?;
        let c = &config;
        let (dv, dt, e) = (c.vision_width, c.transformer_width, c.embed_dim);
        let p = c.vision_patch_size;
        let mut l = Loader {
            map: &mut map,
            device,
            eps: c.layer_norm_eps,
        };
        let visual = VisionTransformer {
            conv1: l.param("visual.conv1.weight", [dv, 3, p, p])?,
            class_embedding: l.param("visual.class_embedding", [dv])?,
            positional_embedding: l
                .param("visual.positional_embedding", [c.vision_tokens(), dv])?,
            ln_pre: l.layer_norm("visual.ln_pre", dv)?,
            resblocks: (0..c.vision_layers)
                .map(|i| {
                    l.block(
                        &format!("visual.transformer.resblocks.{i}"),
                        dv,
                        c.vision_heads,
                    )
                })
                .collect::<Result<_>>()?,
            ln_post: l.layer_norm("visual.ln_post", dv)?,
            proj: l.param("visual.proj", [dv, e])?,
        };
        let text = TextTransformer {
            token_embedding: l.param("token_embedding.weight", [c.vocab_size, dt])?,
            positional_embedding: l.param("positional_embedding", [c.context_length, dt])?,
            resblocks: (0..c.transformer_layers)
                .map(|i| {
                    l.block(
                        &format!("transformer.resblocks.{i}"),
                        dt,
                        c.transformer_heads,
                    )
                })
                .collect::<Result<_>>()?,
            ln_final: l.layer_norm("ln_final", dt)?,
            text_projection: l.param("text_projection", [dt, e])?,
        };
        let logit_scale = l.param("logit_scale", [1])?;
        map.finish()?;
        Ok((
            Self {
                visual,
                text,
                logit_scale,
                config: config.clone(),
            },
            config,
        ))
    }

    /// Loads CLIP in one call from `spec`: a safetensors file (OpenAI or Hugging Face
    /// naming), a folder holding one, or (with the `hub` feature) a Hugging Face hub id
    /// `owner/name[@revision]`, taken from the local cache or downloaded (see
    /// [`crate::resolve_weights`]).
    pub fn pretrained(spec: &str, device: &B::Device) -> Result<Self> {
        let resolved = crate::resolve_weights(spec)?;
        Ok(Self::from_safetensors(&resolved.weights, device)?.0)
    }

    /// The model with its towers computing in `precision` (see [`crate::precision`]): for
    /// `F16`/`Bf16` every block's Linear weights (and the text tower's token and position
    /// tables) are stored in half and the blocks' attention and MLP compute in half, while
    /// the residual streams, inputs, outputs, LayerNorms, the patch embedding, output
    /// projections and the logit scale keep the loaded (master) precision. `F32` restores
    /// the master precision. Errors when the backend cannot compute in `precision` on this
    /// device.
    pub fn with_precision(self, precision: Precision) -> Result<Self> {
        let device = self.device();
        if !precision.supported::<B>(&device) {
            return Err(crate::ClipError::UnsupportedPrecision {
                precision,
                backend: B::name(&device),
                hint: "use precision f32, or a backend that computes in half \
                       (f16: wgpu, cuda, flex; bf16: cuda, flex)",
            });
        }
        let dtype = match precision {
            Precision::F32 => self.visual.master_dtype(),
            half => half.float_dtype(),
        };
        Ok(Self {
            visual: self.visual.cast_weights(dtype),
            text: self.text.cast_weights(dtype),
            ..self
        })
    }

    /// The precision the towers compute in: `F32` when they run at the master precision
    /// (f32, or f64 on a double-precision backend).
    pub fn precision(&self) -> Precision {
        let compute = self.visual.compute_dtype();
        if compute == self.visual.master_dtype() {
            Precision::F32
        } else {
            Precision::from_dtype(compute.into()).unwrap_or(Precision::F32)
        }
    }

    /// The device the model lives on.
    pub fn device(&self) -> B::Device {
        self.logit_scale.device()
    }

    /// Image features (not normalised).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, res, res]` → `[batch, embed_dim]`
    pub fn encode_image(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.visual.forward(images)
    }

    /// Text features (not normalised) for tokenized rows.
    ///
    /// # Shapes
    /// - `rows`: `n` rows of ids → `[n, embed_dim]`
    pub fn encode_text(&self, rows: &[Vec<u32>]) -> Tensor<B, 2> {
        let device = self.device();
        self.text.forward(rows, &device)
    }

    /// `exp(logit_scale) * normalize(image) @ normalize(text)^T`.
    ///
    /// # Shapes
    /// - `image_features`: `[batch, embed]`, `text_features`: `[classes, embed]` → `[batch, classes]`
    pub fn logits(
        &self,
        image_features: Tensor<B, 2>,
        text_features: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let scale = self.logit_scale.val().exp().unsqueeze_dim::<2>(0);
        l2_normalize(image_features).matmul(l2_normalize(text_features).transpose()) * scale
    }
}

struct Loader<'a, B: Backend> {
    map: &'a mut TensorMap,
    device: &'a B::Device,
    eps: f64,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        let HostTensor { data, .. } = self.map.take(key, &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    fn param<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<B, D>>> {
        Ok(frozen(self.tensor(key, shape)?))
    }

    /// A PyTorch `nn.Linear` (`weight` `[out, in]`) as a Burn `Linear` (`[in, out]`).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear<B>> {
        let w = self
            .tensor(&format!("{prefix}.weight"), [d_out, d_in])?
            .transpose();
        let b = self.tensor(&format!("{prefix}.bias"), [d_out])?;
        Ok(Linear {
            weight: frozen(w),
            bias: Some(frozen(b)),
        })
    }

    fn layer_norm(&mut self, prefix: &str, d: usize) -> Result<LayerNorm<B>> {
        Ok(LayerNorm {
            gamma: self.param(&format!("{prefix}.weight"), [d])?,
            beta: self.param(&format!("{prefix}.bias"), [d])?,
            epsilon: self.eps,
        })
    }

    fn block(&mut self, prefix: &str, d: usize, heads: usize) -> Result<ResidualBlock<B>> {
        let in_w = self
            .tensor(&format!("{prefix}.attn.in_proj_weight"), [3 * d, d])?
            .transpose();
        let in_b = self.tensor(&format!("{prefix}.attn.in_proj_bias"), [3 * d])?;
        Ok(ResidualBlock {
            ln_1: self.layer_norm(&format!("{prefix}.ln_1"), d)?,
            attn: SelfAttention {
                in_proj: Linear {
                    weight: frozen(in_w),
                    bias: Some(frozen(in_b)),
                },
                out_proj: self.linear(&format!("{prefix}.attn.out_proj"), d, d)?,
                heads,
            },
            ln_2: self.layer_norm(&format!("{prefix}.ln_2"), d)?,
            mlp: Mlp {
                c_fc: self.linear(&format!("{prefix}.mlp.c_fc"), d, 4 * d)?,
                c_proj: self.linear(&format!("{prefix}.mlp.c_proj"), 4 * d, d)?,
            },
        })
    }
}
