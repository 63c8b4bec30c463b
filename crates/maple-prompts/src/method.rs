//! The prompt methods as data: [`MethodConfig`] (what to build, serialisable into run
//! configurations and checkpoints) and [`AnyLearner`] (one learner of any method, for
//! programs that choose the method at run time, such as the `maple` command).
//!
//! Code that knows its method uses the learner type directly (`Maple<B>`, `CoOp<B>`, ...); both
//! paths share every function, and parameter names do not depend on the enum (see
//! `path.rs`).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::tokenizer::Tokenizer;
use clip_model::Clip;
use serde::{Deserialize, Serialize};

use crate::cocoop::{CoCoOp, CoCoOpConfig};
use crate::coop::{CoOp, CoOpConfig};
use crate::error::{MapleError, Result};
use crate::ivlp::{Ivlp, IvlpConfig};
use crate::learner::{ClassTokens, PromptLearner, TextPrompts, VisionPrompts};
use crate::maple::{Maple, MapleConfig};
use crate::vpt::{Vpt, VptConfig};

/// A prompt method and its settings, tagged by `method` in JSON
/// (`{"method": "maple", "n_ctx": 2, "ctx_init": "a photo of a", "depth": 9}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum MethodConfig {
    /// CoOp: learned text context.
    CoOp(CoOpConfig),
    /// Co-CoOp: learned text context shifted per image by a meta-network.
    CoCoOp(CoCoOpConfig),
    /// IVLP: independent deep text and vision prompts.
    Ivlp(IvlpConfig),
    /// VPT: deep vision prompts only.
    Vpt(VptConfig),
    /// MaPLe: coupled deep vision-language prompts.
    Maple(MapleConfig),
}

/// The methods by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// CoOp (Zhou et al., IJCV 2022).
    CoOp,
    /// Co-CoOp (Zhou et al., CVPR 2022).
    CoCoOp,
    /// Independent vision-language prompting (the MaPLe paper's ablation).
    Ivlp,
    /// Deep visual prompt tuning on CLIP (the MaPLe paper's "deep vision prompting").
    Vpt,
    /// MaPLe (Khattak et al., CVPR 2023).
    Maple,
}

impl Method {
    /// Every method, in the order of the paper's comparison tables (CoOp, Co-CoOp, IVLP,
    /// VPT, MaPLe).
    pub const ALL: [Method; 5] = [
        Method::CoOp,
        Method::CoCoOp,
        Method::Ivlp,
        Method::Vpt,
        Method::Maple,
    ];

    /// The name used on the command line, in configurations and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::CoOp => "coop",
            Method::CoCoOp => "cocoop",
            Method::Ivlp => "ivlp",
            Method::Vpt => "vpt",
            Method::Maple => "maple",
        }
    }

    /// The name as the paper writes it.
    pub fn display_name(self) -> &'static str {
        match self {
            Method::CoOp => "CoOp",
            Method::CoCoOp => "Co-CoOp",
            Method::Ivlp => "IVLP",
            Method::Vpt => "VPT",
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
    /// The reference implementation's default settings of `method` (ViT-B/16,
    /// base-to-novel): CoOp 16 random generic context vectors with the class name at the
    /// end; Co-CoOp 4 context vectors from "a photo of a"; IVLP 2 text + 2 vision prompts
    /// at depth 12 in both towers from "a photo of a"; VPT 8 vision prompts at depth 12;
    /// MaPLe 2 context vectors from "a photo of a" at depth 9.
    pub fn reference(method: Method) -> Self {
        match method {
            Method::CoOp => MethodConfig::CoOp(CoOpConfig::reference()),
            Method::CoCoOp => MethodConfig::CoCoOp(CoCoOpConfig::reference()),
            Method::Ivlp => MethodConfig::Ivlp(IvlpConfig::reference()),
            Method::Vpt => MethodConfig::Vpt(VptConfig::reference()),
            Method::Maple => MethodConfig::Maple(MapleConfig::new()),
        }
    }

    /// Which method this configures.
    pub fn method(&self) -> Method {
        match self {
            MethodConfig::CoOp(_) => Method::CoOp,
            MethodConfig::CoCoOp(_) => Method::CoCoOp,
            MethodConfig::Ivlp(_) => Method::Ivlp,
            MethodConfig::Vpt(_) => Method::Vpt,
            MethodConfig::Maple(_) => Method::Maple,
        }
    }

    /// Checks settings that cannot work without a CLIP at hand (widths and depths against
    /// the model are checked when the learner is built).
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: &str| Err(MapleError::Invalid(m.to_string()));
        match self {
            MethodConfig::CoOp(c) => {
                if c.effective_n_ctx() == 0 {
                    return invalid("CoOp: n_ctx must be at least 1");
                }
            }
            MethodConfig::CoCoOp(c) => {
                if c.effective_n_ctx() == 0 {
                    return invalid("Co-CoOp: n_ctx must be at least 1");
                }
            }
            MethodConfig::Ivlp(c) => {
                if c.n_ctx_text == 0 {
                    return invalid("IVLP: n_ctx_text must be at least 1");
                }
                if c.depth_text == 0 {
                    return invalid(
                        "IVLP: depth_text must be at least 1 (use VPT for vision-only prompts)",
                    );
                }
                if c.depth_vision > 0 && c.n_ctx_vision == 0 {
                    return invalid("IVLP: n_ctx_vision must be at least 1 when depth_vision > 0");
                }
            }
            MethodConfig::Vpt(c) => {
                if c.n_ctx == 0 {
                    return invalid("VPT: n_ctx must be at least 1");
                }
                if c.depth == 0 {
                    return invalid("VPT: depth must be at least 1");
                }
            }
            MethodConfig::Maple(c) => {
                if c.n_ctx == 0 {
                    return invalid("n_ctx must be at least 1");
                }
                if c.depth == 0 {
                    return invalid("depth must be at least 1");
                }
            }
        }
        Ok(())
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
            MethodConfig::CoOp(_) | MethodConfig::CoCoOp(_) => {}
            MethodConfig::Ivlp(c) => {
                scale(&mut c.depth_text);
                scale(&mut c.depth_vision);
            }
            MethodConfig::Vpt(c) => scale(&mut c.depth),
            MethodConfig::Maple(c) => scale(&mut c.depth),
        }
    }

    /// Builds a fresh learner for `clip` and `num_classes` classes (class-specific
    /// contexts depend on it; other methods ignore it). Random draws use the backend's
    /// seeded generator.
    ///
    /// # Errors
    /// Settings that do not fit the CLIP (depths beyond its blocks, ...), or a
    /// class-specific context for 0 classes.
    pub fn init<B: Backend>(
        &self,
        clip: &Clip<B>,
        tokenizer: &Tokenizer,
        num_classes: usize,
    ) -> Result<AnyLearner<B>> {
        self.validate()?;
        Ok(match self {
            MethodConfig::CoOp(c) => AnyLearner::CoOp(CoOp::new(c, clip, tokenizer, num_classes)?),
            MethodConfig::CoCoOp(c) => AnyLearner::CoCoOp(CoCoOp::new(c, clip, tokenizer)?),
            MethodConfig::Ivlp(c) => AnyLearner::Ivlp(Ivlp::new(c, clip, tokenizer)?),
            MethodConfig::Vpt(c) => AnyLearner::Vpt(Vpt::new(c, clip)?),
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
    /// CoOp.
    CoOp(CoOp<B>),
    /// Co-CoOp.
    CoCoOp(CoCoOp<B>),
    /// IVLP.
    Ivlp(Ivlp<B>),
    /// VPT.
    Vpt(Vpt<B>),
    /// MaPLe.
    Maple(Maple<B>),
}

macro_rules! each {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            AnyLearner::CoOp($l) => $e,
            AnyLearner::CoCoOp($l) => $e,
            AnyLearner::Ivlp($l) => $e,
            AnyLearner::Vpt($l) => $e,
            AnyLearner::Maple($l) => $e,
        }
    };
}

impl<B: Backend> AnyLearner<B> {
    /// Which method this is.
    pub fn method(&self) -> Method {
        match self {
            AnyLearner::CoOp(_) => Method::CoOp,
            AnyLearner::CoCoOp(_) => Method::CoCoOp,
            AnyLearner::Ivlp(_) => Method::Ivlp,
            AnyLearner::Vpt(_) => Method::Vpt,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{load_checkpoint, named_params, save_checkpoint, CheckpointState};
    use crate::coop::ClassTokenPosition;
    use crate::testing::{tiny_clip, Tb};

    /// Settings of every method that fit the tiny test CLIP (2 text, 3 vision blocks).
    fn tiny_settings() -> Vec<MethodConfig> {
        vec![
            MethodConfig::CoOp(
                CoOpConfig::new()
                    .with_n_ctx(4)
                    .with_csc(true)
                    .with_class_token_position(ClassTokenPosition::Front),
            ),
            MethodConfig::CoCoOp(CoCoOpConfig::new()),
            MethodConfig::Ivlp(IvlpConfig::new().with_depth_text(2).with_depth_vision(3)),
            MethodConfig::Vpt(VptConfig::new().with_depth(3).with_n_ctx(2)),
            MethodConfig::Maple(MapleConfig::new().with_depth(2)),
        ]
    }

    #[test]
    fn methods_are_listed_in_the_papers_table_order_with_their_names() {
        assert_eq!(
            Method::ALL.map(Method::as_str),
            ["coop", "cocoop", "ivlp", "vpt", "maple"]
        );
        assert_eq!(
            Method::ALL.map(Method::display_name),
            ["CoOp", "Co-CoOp", "IVLP", "VPT", "MaPLe"]
        );
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
            assert_eq!(MethodConfig::reference(m).method(), m);
            let json = serde_json::to_value(MethodConfig::reference(m)).unwrap();
            assert_eq!(json["method"], m.as_str());
            assert_eq!(
                MethodConfig::from_settings(&json).unwrap(),
                MethodConfig::reference(m)
            );
        }
        assert!("CoCoOp".parse::<Method>().is_ok());
        assert!("zsclip".parse::<Method>().is_err());
    }

    #[test]
    fn reference_settings_are_the_papers() {
        let json = |m| serde_json::to_value(MethodConfig::reference(m)).unwrap();
        assert_eq!(
            json(Method::CoOp),
            serde_json::json!({"method": "coop", "n_ctx": 16, "ctx_init": null, "csc": false, "class_token_position": "end"})
        );
        assert_eq!(
            json(Method::CoCoOp),
            serde_json::json!({"method": "cocoop", "n_ctx": 4, "ctx_init": "a photo of a"})
        );
        assert_eq!(
            json(Method::Ivlp),
            serde_json::json!({"method": "ivlp", "n_ctx_text": 2, "n_ctx_vision": 2, "ctx_init": "a photo of a", "depth_text": 12, "depth_vision": 12})
        );
        assert_eq!(
            json(Method::Vpt),
            serde_json::json!({"method": "vpt", "n_ctx": 8, "depth": 12})
        );
    }

    #[test]
    fn validate_refuses_empty_prompts() {
        for bad in [
            MethodConfig::CoOp(CoOpConfig::new().with_n_ctx(0)),
            MethodConfig::CoCoOp(CoCoOpConfig::new().with_ctx_init(None).with_n_ctx(0)),
            MethodConfig::Ivlp(IvlpConfig::new().with_depth_text(0)),
            MethodConfig::Ivlp(IvlpConfig::new().with_n_ctx_vision(0)),
            MethodConfig::Vpt(VptConfig::new().with_depth(0)),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        // Context words set CoOp's count: n_ctx 0 is then irrelevant.
        let ok = MethodConfig::CoOp(
            CoOpConfig::new()
                .with_n_ctx(0)
                .with_ctx_init(Some("a".into())),
        );
        assert!(ok.validate().is_ok());
        for m in Method::ALL {
            assert!(MethodConfig::reference(m).validate().is_ok());
        }
    }

    /// Parameter paths are the learner's own: the enum adds no component.
    #[test]
    fn any_learner_has_the_learners_own_parameter_paths_and_settings() {
        let (clip, tok) = tiny_clip();
        for s in tiny_settings() {
            let any = s.init(&clip, &tok, 3).unwrap();
            assert_eq!(any.method(), s.method());
            assert_eq!(MethodConfig::from_settings(&any.settings()).unwrap(), s);
            let paths: Vec<String> = named_params(&any).into_keys().collect();
            let want: Vec<&str> = match s.method() {
                Method::CoOp => vec!["ctx"],
                Method::CoCoOp => vec![
                    "ctx",
                    "meta_net.linear1.bias",
                    "meta_net.linear1.weight",
                    "meta_net.linear2.bias",
                    "meta_net.linear2.weight",
                ],
                Method::Ivlp => vec![
                    "ctx",
                    "text_deep.0",
                    "vision_ctx",
                    "vision_deep.0",
                    "vision_deep.1",
                ],
                Method::Vpt => vec!["vision_ctx", "vision_deep.0", "vision_deep.1"],
                Method::Maple => vec![
                    "compound_prompt_projections.0.bias",
                    "compound_prompt_projections.0.weight",
                    "compound_prompts_text.0",
                    "ctx",
                    "proj.bias",
                    "proj.weight",
                ],
            };
            assert_eq!(paths, want, "{}", s.method());
            for p in &paths {
                let (official, _) = crate::reference_names::to_official(s.method(), p)
                    .unwrap_or_else(|| panic!("{p} has no official name"));
                assert_eq!(
                    crate::reference_names::to_ours(s.method(), &official).map(|x| x.0),
                    Some(p.clone())
                );
            }
        }
    }

    #[test]
    fn every_method_round_trips_through_our_checkpoint() {
        let (clip, tok) = tiny_clip();
        let dir = tempfile::tempdir().unwrap();
        for s in tiny_settings() {
            let learner: AnyLearner<Tb> = s.init(&clip, &tok, 3).unwrap();
            let path = dir.path().join(format!("{}.safetensors", s.method()));
            let state = CheckpointState {
                epoch: 7,
                config: learner.settings(),
                class_names: vec!["a".into(), "b".into(), "c".into()],
                momentum: Default::default(),
                extra: serde_json::json!({"seed": 1}),
            };
            save_checkpoint::<Tb, _>(&path, &learner, &state).unwrap();
            let settings = MethodConfig::from_settings(&state.config).unwrap();
            let blank = settings.init(&clip, &tok, state.class_names.len()).unwrap();
            let (loaded, loaded_state) = load_checkpoint::<Tb, _>(&path, blank).unwrap();
            assert_eq!(loaded_state, state);
            assert_eq!(
                named_params(&loaded),
                named_params(&learner),
                "{}",
                s.method()
            );
        }
    }

    #[test]
    fn a_class_specific_coop_needs_the_class_count_at_init() {
        let (clip, tok) = tiny_clip();
        let s = MethodConfig::CoOp(CoOpConfig::new().with_csc(true));
        assert!(s.init(&clip, &tok, 0).is_err());
        assert!(s.init(&clip, &tok, 2).is_ok());
    }
}
