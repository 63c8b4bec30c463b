//! The prompt methods as data: [`MethodConfig`] (what to build, serialisable into run
//! configurations and checkpoints) and [`AnyLearner`] (one learner of any method, for
//! programs that choose the method at run time, such as the `maple` command).
//!
//! Code that knows its method uses the learner type directly (`Maple<B>`, ...); both
//! paths share every function, and parameter names do not depend on the enum (see
//! `path.rs`).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::Clip;
use serde::{Deserialize, Serialize};

use crate::error::{MapleError, Result};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};
use crate::maple::{Maple, MapleConfig};

/// A prompt method and its settings, tagged by `method` in JSON
/// (`{"method": "maple", "n_ctx": 2, "ctx_init": "a photo of a", "depth": 9}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum MethodConfig {
    /// MaPLe: coupled deep vision-language prompts.
    Maple(MapleConfig),
}

/// The methods by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// MaPLe (Khattak et al., CVPR 2023).
    Maple,
}

impl Method {
    /// Every method, in the order of the paper's comparison table.
    pub const ALL: [Method; 1] = [Method::Maple];

    /// The name used on the command line, in configurations and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Maple => "maple",
        }
    }

    /// The name as the paper writes it.
    pub fn display_name(self) -> &'static str {
        match self {
            Method::Maple => "MaPLe",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = MapleError;

    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                MapleError::Invalid(format!(
                    "unknown method {s:?}: expected one of {}",
                    Method::ALL.map(Method::as_str).join(", ")
                ))
            })
    }
}

impl MethodConfig {
    /// Which method this configures.
    pub fn method(&self) -> Method {
        match self {
            MethodConfig::Maple(_) => Method::Maple,
        }
    }

    /// Checks settings that cannot work without a CLIP at hand (widths and depths against
    /// the model are checked when the learner is built).
    pub fn validate(&self) -> Result<()> {
        match self {
            MethodConfig::Maple(c) => {
                if c.n_ctx == 0 {
                    return Err(MapleError::Invalid("n_ctx must be at least 1".into()));
                }
                if c.depth == 0 {
                    return Err(MapleError::Invalid("depth must be at least 1".into()));
                }
                Ok(())
            }
        }
    }

    /// Rescales the prompt depths from a CLIP with `reference_layers` blocks (ViT-B/16: 12)
    /// to one with `layers`: `round(depth * layers / reference_layers)`, at least 2 when the
    /// reference prompts deeper than the first block, at most `layers`.
    pub fn scale_depth(&mut self, reference_layers: usize, layers: usize) {
        let scale = |d: &mut usize| {
            if *d > 1 && reference_layers > 0 {
                let scaled = (*d * layers + reference_layers / 2) / reference_layers;
                *d = scaled.max(2).min(layers.max(1));
            }
        };
        match self {
            MethodConfig::Maple(c) => scale(&mut c.depth),
        }
    }

    /// Builds a fresh learner for `clip` and `num_classes` classes (class-specific
    /// contexts depend on it). Random draws use the backend's seeded generator.
    pub fn init<B: Backend>(
        &self,
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        num_classes: usize,
    ) -> Result<AnyLearner<B>> {
        let _ = num_classes;
        Ok(match self {
            MethodConfig::Maple(c) => AnyLearner::Maple(Maple::new(c, clip, tokenizer)?),
        })
    }

    /// Reads the settings a learner stored with [`PromptLearner::settings`].
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(settings.clone()).map_err(|e| {
            MapleError::Invalid(format!("unreadable prompt-method settings {settings}: {e}"))
        })
    }
}

/// A learner of any method.
#[derive(Module, Debug)]
pub enum AnyLearner<B: Backend> {
    /// MaPLe.
    Maple(Maple<B>),
}

macro_rules! each {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            AnyLearner::Maple($l) => $e,
        }
    };
}

impl<B: Backend> AnyLearner<B> {
    /// Which method this is.
    pub fn method(&self) -> Method {
        match self {
            AnyLearner::Maple(_) => Method::Maple,
        }
    }
}

impl<B: Backend> PromptLearner<B> for AnyLearner<B> {
    fn prompt_prefix(&self) -> &str {
        each!(self, l => l.prompt_prefix())
    }

    fn text_prompts(
        &self,
        classes: &ClassTokens<B>,
        image_features: Option<&Tensor<B, 2>>,
    ) -> Result<TextPrompts<B>> {
        each!(self, l => l.text_prompts(classes, image_features))
    }

    fn vision_prompts(&self) -> VisionPrompts<B> {
        each!(self, l => l.vision_prompts())
    }

    fn image_conditioned(&self) -> bool {
        each!(self, l => l.image_conditioned())
    }

    fn settings(&self) -> serde_json::Value {
        each!(self, l => l.settings())
    }
}
