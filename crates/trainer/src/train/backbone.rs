//! The frozen CLIP a command loads once and shares between its runs.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clip_model::tokenizer::Tokenizer;
use clip_model::{Clip, ClipConfig};

use crate::config::RunConfig;
use crate::error::{io, Result, TrainerError};

/// A frozen CLIP with its tokenizer, loaded once and shared by every run of a command.
#[derive(Debug, Clone)]
pub struct Backbone<B: Backend> {
    /// The model (every parameter frozen).
    pub clip: Clip<B>,
    /// Its architecture, inferred from the weights.
    pub config: ClipConfig,
    /// The CLIP BPE tokenizer.
    pub tokenizer: Tokenizer,
    /// Where the weights came from (`path` or `hub:owner/name`).
    pub origin: String,
    /// Size of the weights file in bytes (part of a run's identity).
    pub weights_bytes: u64,
}

impl<B: Backend> Backbone<B> {
    /// Loads CLIP from `spec`: a safetensors file, a folder holding one, or a hub id
    /// `owner/name` (see [`clip_model::resolve_weights`]).
    pub fn load(spec: &str, device: &B::Device) -> Result<Self> {
        let resolved = clip_model::resolve_weights(spec)?;
        let (clip, config) = Clip::<B>::from_safetensors(&resolved.weights, device)?;
        let tokenizer = Tokenizer::new();
        // The pairing of weights and tokenizer is checked here, once: an id past the
        // embedding table would fail inside the backend.
        config.check_tokenizer(&tokenizer, config.context_length)?;
        let weights_bytes = std::fs::metadata(&resolved.weights)
            .map_err(io(&resolved.weights))?
            .len();
        log::info!(
            "loaded CLIP from {} ({})",
            resolved.weights.display(),
            resolved.origin
        );
        Ok(Backbone {
            clip,
            config,
            tokenizer,
            origin: resolved.origin,
            weights_bytes,
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> B::Device {
        self.clip.device()
    }

    /// CLIP's learned logit scale, `exp(logit_scale)` (100 for OpenAI's models).
    pub fn logit_scale(&self) -> f64 {
        use burn::tensor::ElementConversion;
        self.clip
            .logit_scale
            .val()
            .exp()
            .into_scalar()
            .elem::<f64>()
    }

    /// The image side a run uses: the config's, else the CLIP's resolution.
    pub fn image_size(&self, config: &RunConfig) -> usize {
        config.image_size.unwrap_or(self.config.image_resolution)
    }

    /// The same backbone computing in `precision` (see [`Clip::with_precision`]); an error
    /// when the backend cannot.
    pub fn with_precision(self, precision: clip_model::Precision) -> Result<Self> {
        Ok(Backbone {
            clip: self.clip.with_precision(precision)?,
            ..self
        })
    }

    /// Checks that `config` fits this CLIP before anything runs (image side, precision).
    pub fn check(&self, config: &RunConfig) -> Result<()> {
        if self.clip.precision() != config.precision {
            return Err(TrainerError::Invalid(format!(
                "the config asks for precision {} but the loaded CLIP computes in {}: \
                 call Backbone::with_precision(config.precision) after loading",
                config.precision,
                self.clip.precision()
            )));
        }
        let size = self.image_size(config);
        let grid = size / self.config.vision_patch_size.max(1);
        if !size.is_multiple_of(self.config.vision_patch_size.max(1))
            || grid * grid + 1 != self.config.vision_tokens()
        {
            return Err(TrainerError::Invalid(format!(
                "image_size {size} does not fit this CLIP ({} px, patch {}): its positional \
                 embedding has {} tokens; use image_size {} or leave it unset",
                self.config.image_resolution,
                self.config.vision_patch_size,
                self.config.vision_tokens(),
                self.config.image_resolution
            )));
        }
        Ok(())
    }

    /// What identifies these weights in a run folder: the architecture and the file size.
    pub fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "clip": serde_json::to_value(&self.config).unwrap_or_default(),
            "weights_bytes": self.weights_bytes,
        })
    }
}

impl<B: AutodiffBackend> Backbone<B> {
    /// The same backbone without autodiff, for evaluation (shares the weights).
    pub fn valid(&self) -> Backbone<B::InnerBackend> {
        Backbone {
            clip: self.clip.valid(),
            config: self.config.clone(),
            tokenizer: self.tokenizer.clone(),
            origin: self.origin.clone(),
            weights_bytes: self.weights_bytes,
        }
    }
}
