//! Learner-only checkpoints (safetensors) and import of the reference's own checkpoints
//! for every method (CoOp, Co-CoOp, IVLP, VPT, MaPLe; names mapped by
//! [`crate::reference_names`]).
//!
//! Our checkpoint holds the learner's parameters (`param.<path>`), the SGD momentum
//! buffers (`momentum.<path>`), and metadata (format, epoch, learner config, class names,
//! caller JSON). It never holds CLIP weights nor class-dependent token embeddings, and it
//! is written atomically (temporary file in the same folder, then rename).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use clip_model::HostTensor;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::context::word_count;
use crate::error::{MapleError, Result};
use crate::method::{AnyLearner, Method, MethodConfig};
use crate::path::ParamPath;
use crate::reference_names::{detect_method, from_official, is_frozen_clip};
use crate::torch_pickle::read_torch_checkpoint;

/// Value of the `format` metadata entry of our checkpoints.
pub const FORMAT: &str = "maple-burn/learner-checkpoint/v1";

/// Every float parameter of a module by path (`proj.weight`, `compound_prompts_text.0`, ...).
pub fn named_params<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, HostTensor> {
    struct V {
        path: ParamPath,
        out: BTreeMap<String, HostTensor>,
    }
    impl<B: Backend> ModuleVisitor<B> for V {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            self.path.exit(container);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.out
                .insert(self.path.current(), HostTensor::from_tensor(param.val()));
        }
    }
    let mut v = V {
        path: ParamPath::default(),
        out: BTreeMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Replaces every float parameter of `module` by the tensor of the same path in `values`
/// (shapes checked, values finite). Missing paths are errors naming `source`; extra
/// entries are errors too.
/// Parameters keep their ids and their `require_grad` flag.
pub fn load_named<B: Backend, M: Module<B>>(
    module: M,
    values: &BTreeMap<String, HostTensor>,
    source: &Path,
) -> Result<M> {
    struct L<'a> {
        path: ParamPath,
        values: &'a BTreeMap<String, HostTensor>,
        used: Vec<String>,
        error: Option<String>,
    }
    impl<B: Backend> ModuleMapper<B> for L<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            self.path.exit(container);
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let name = self.path.current();
            let (id, tensor, mapper): (ParamId, _, _) = param.consume();
            let shape = tensor.dims().to_vec();
            match self.values.get(&name) {
                Some(t) if t.shape == shape && t.first_non_finite().is_some() => {
                    let bad = t.first_non_finite().map_or(f32::NAN, |(_, v)| v);
                    self.error.get_or_insert_with(|| {
                        format!(
                            "tensor `{name}` holds a non-finite value ({bad}): refusing to load it"
                        )
                    });
                    Param::from_mapped_value(id, tensor, mapper)
                }
                Some(t) if t.shape == shape => {
                    self.used.push(name);
                    let grad = tensor.is_require_grad();
                    let new = t.to_tensor::<B, D>(&tensor.device());
                    let new = if grad { new.require_grad() } else { new };
                    Param::from_mapped_value(id, new, mapper)
                }
                found => {
                    self.error.get_or_insert_with(|| match found {
                        Some(t) => format!(
                            "tensor `{name}` has shape {:?}, the learner expects {shape:?}",
                            t.shape
                        ),
                        None => format!("missing tensor `{name}` (shape {shape:?})"),
                    });
                    Param::from_mapped_value(id, tensor, mapper)
                }
            }
        }
    }
    let mut l = L {
        path: ParamPath::default(),
        values,
        used: Vec::new(),
        error: None,
    };
    let module = module.map(&mut l);
    if let Some(message) = l.error {
        return Err(MapleError::Checkpoint {
            path: source.to_path_buf(),
            message,
        });
    }
    let extra: Vec<&String> = values.keys().filter(|k| !l.used.contains(k)).collect();
    if !extra.is_empty() {
        return Err(MapleError::Checkpoint {
            path: source.to_path_buf(),
            message: format!("tensors not used by the learner: {extra:?}"),
        });
    }
    Ok(module)
}

/// Everything in a learner checkpoint besides the module itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointState {
    /// Number of completed epochs.
    pub epoch: usize,
    /// Learner configuration (JSON, e.g. a serialized `MapleConfig`).
    pub config: serde_json::Value,
    /// Class names the learner was trained with, in label order.
    pub class_names: Vec<String>,
    /// Momentum buffers by parameter path (flattened).
    pub momentum: BTreeMap<String, HostTensor>,
    /// Free-form caller data (e.g. RNG state, run settings).
    pub extra: serde_json::Value,
}

impl CheckpointState {
    /// The state of a learner with `settings` ([`crate::PromptLearner::settings`]) trained
    /// on `class_names`: epoch 0, no momentum, no extra data.
    pub fn new(settings: serde_json::Value, class_names: Vec<String>) -> Self {
        Self {
            epoch: 0,
            config: settings,
            class_names,
            momentum: BTreeMap::new(),
            extra: serde_json::Value::Null,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MapleError + '_ {
    move |source| MapleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically ([`clip_model::atomic::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    clip_model::atomic::write_atomic(path, bytes)
        .map_err(|(path, source)| MapleError::Io { path, source })
}

/// Saves a learner checkpoint atomically.
pub fn save_checkpoint<B: Backend, M: Module<B>>(
    path: &Path,
    learner: &M,
    state: &CheckpointState,
) -> Result<()> {
    let params = named_params::<B, M>(learner);
    let mut tensors: Vec<(String, HostTensor)> = params
        .into_iter()
        .map(|(k, v)| (format!("param.{k}"), v))
        .collect();
    tensors.extend(
        state
            .momentum
            .iter()
            .map(|(k, v)| (format!("momentum.{k}"), v.clone())),
    );
    let bytes_of: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let bytes = t.to_le_bytes();
            (k, t.shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes_of
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("consistent tensor view"),
            )
        })
        .collect();
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("epoch".to_string(), state.epoch.to_string());
    meta.insert("config".to_string(), state.config.to_string());
    meta.insert(
        "class_names".to_string(),
        serde_json::to_string(&state.class_names).expect("json"),
    );
    meta.insert("extra".to_string(), state.extra.to_string());
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| MapleError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("serialising: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// Reads a learner checkpoint: loads the parameters into `learner` and returns the state.
pub fn load_checkpoint<B: Backend, M: Module<B>>(
    path: &Path,
    learner: M,
) -> Result<(M, CheckpointState)> {
    let bad = |message: String| MapleError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(io(path))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors checkpoint: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not a maple-burn learner checkpoint (format {:?}, expected {FORMAT:?})",
            meta.get("format")
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("corrupt tensors: {e}")))?;
    let mut params = BTreeMap::new();
    let mut momentum = BTreeMap::new();
    for (key, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor `{key}` has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let t = HostTensor::new(
            view.shape().to_vec(),
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        if let Some(k) = key.strip_prefix("param.") {
            params.insert(k.to_string(), t);
        } else if let Some(k) = key.strip_prefix("momentum.") {
            momentum.insert(k.to_string(), t);
        } else {
            return Err(bad(format!("unexpected tensor `{key}`")));
        }
    }
    let json = |k: &str| -> Result<serde_json::Value> {
        let s = meta
            .get(k)
            .ok_or_else(|| bad(format!("metadata has no `{k}`")))?;
        serde_json::from_str(s).map_err(|e| bad(format!("metadata `{k}` is not JSON: {e}")))
    };
    let epoch = json("epoch")?
        .as_u64()
        .ok_or_else(|| bad("metadata `epoch` is not a number".into()))? as usize;
    let class_names = serde_json::from_value(json("class_names")?)
        .map_err(|e| bad(format!("metadata `class_names`: {e}")))?;
    let learner = load_named::<B, M>(learner, &params, path)?;
    Ok((
        learner,
        CheckpointState {
            epoch,
            config: json("config")?,
            class_names,
            momentum,
            extra: json("extra")?,
        },
    ))
}

/// Every float parameter's gradient by path (parameters without a gradient are absent).
pub fn named_grads<AB: burn::tensor::backend::AutodiffBackend, M: Module<AB>>(
    module: &M,
    grads: &AB::Gradients,
) -> BTreeMap<String, HostTensor> {
    struct V<'a, AB: burn::tensor::backend::AutodiffBackend> {
        path: ParamPath,
        grads: &'a AB::Gradients,
        out: BTreeMap<String, HostTensor>,
    }
    impl<AB: burn::tensor::backend::AutodiffBackend> ModuleVisitor<AB> for V<'_, AB> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            self.path.exit(container);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(g) = param.val().grad(self.grads) {
                self.out
                    .insert(self.path.current(), HostTensor::from_tensor(g));
            }
        }
    }
    let mut v = V::<AB> {
        path: ParamPath::default(),
        grads,
        out: BTreeMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Converts MaPLe learner tensors from Burn layout to the reference's PyTorch layout (for
/// any method: [`crate::reference_names::to_official_tensors`]): the `prompt_learner.`
/// prefix is added and every 2-D `*.weight` (a `Linear`, stored
/// `[in, out]` by Burn and `[out, in]` by PyTorch) is transposed.
pub fn to_reference_layout(params: &BTreeMap<String, HostTensor>) -> BTreeMap<String, HostTensor> {
    params
        .iter()
        .map(|(k, t)| (format!("prompt_learner.{k}"), relayout(k, t)))
        .collect()
}

/// Inverse of [`to_reference_layout`] for names without the `prompt_learner.` prefix.
pub fn from_reference_layout(
    params: &BTreeMap<String, HostTensor>,
) -> BTreeMap<String, HostTensor> {
    params
        .iter()
        .map(|(k, t)| (k.clone(), relayout(k, t)))
        .collect()
}

fn relayout(key: &str, t: &HostTensor) -> HostTensor {
    if !(key.ends_with(".weight") && t.shape.len() == 2) {
        return t.clone();
    }
    t.transposed()
}

/// A reference checkpoint's learner tensors, method and epoch.
#[derive(Debug, Clone)]
pub struct ReferenceCheckpoint {
    /// The method whose tensors the file holds, recognised from their names.
    pub method: Method,
    /// The learner tensors under our parameter paths (see [`crate::reference_names`]), in
    /// Burn layout (Linear weights transposed to `[in, out]`); without the class-dependent
    /// `token_prefix`/`token_suffix` and without frozen CLIP weights.
    pub params: BTreeMap<String, HostTensor>,
    /// The `epoch` entry, when present.
    pub epoch: Option<i64>,
}

impl ReferenceCheckpoint {
    /// The method whose tensors the file holds, recognised from their names.
    pub fn detect_method(&self) -> Option<Method> {
        Some(self.method)
    }

    /// Number of classes the learner was trained for, when its tensors depend on it
    /// (CoOp's class-specific context `[classes, n_ctx, width]`); 0 otherwise.
    pub fn num_classes(&self) -> usize {
        match (self.method, self.params.get("ctx")) {
            (Method::CoOp, Some(t)) if t.shape.len() == 3 => t.shape[0],
            _ => 0,
        }
    }

    fn rows(&self, path: &str) -> Result<usize> {
        self.params
            .get(path)
            .and_then(|t| t.shape.first().copied())
            .ok_or_else(|| {
                MapleError::Invalid(format!(
                    "the {} checkpoint has no `{path}` tensor (found {:?})",
                    self.method.display_name(),
                    self.params.keys().collect::<Vec<_>>()
                ))
            })
    }

    fn count(&self, prefix: &str) -> usize {
        self.params.keys().filter(|k| k.starts_with(prefix)).count()
    }

    /// The settings of the learner in the file: sizes (context length, depths, CoOp's
    /// class-specific context) from the tensors; everything the tensors cannot tell
    /// (context words, CoOp's class-token position) from `requested`, whose method must be
    /// the file's. For CoOp and Co-CoOp, whose whole prompt prefix is context, the context
    /// words are kept only when their word count is the file's context length (they then
    /// tokenize as the reference did), else dropped (placeholders `X`).
    ///
    /// # Errors
    /// The file holds another method's tensors, or lacks the method's main tensor.
    pub fn settings_for(&self, requested: &MethodConfig) -> Result<MethodConfig> {
        if self.method != requested.method() {
            return Err(MapleError::Invalid(format!(
                "the checkpoint holds a {} learner, but the method is {}",
                self.method,
                requested.method()
            )));
        }
        let words_fit = |init: &Option<String>, n: usize| {
            init.clone().filter(|w| {
                crate::context::context_words(Some(w)).map(|w| word_count(&w)) == Some(n)
            })
        };
        Ok(match requested {
            MethodConfig::Maple(c) => MethodConfig::Maple(
                c.clone()
                    .with_n_ctx(self.rows("ctx")?)
                    .with_depth(1 + self.count("compound_prompts_text.")),
            ),
            MethodConfig::CoOp(c) => {
                let ctx = self.params.get("ctx").map(|t| t.shape.clone());
                let (n, csc) = match ctx.as_deref() {
                    Some([n, _]) => (*n, false),
                    Some([_, n, _]) => (*n, true),
                    other => {
                        return Err(MapleError::Invalid(format!(
                            "the CoOp checkpoint's `ctx` has shape {other:?}, expected \
                             [n_ctx, width] or [classes, n_ctx, width]"
                        )))
                    }
                };
                let ctx_init = if csc { None } else { words_fit(&c.ctx_init, n) };
                MethodConfig::CoOp(
                    c.clone()
                        .with_n_ctx(n)
                        .with_csc(csc)
                        .with_ctx_init(ctx_init),
                )
            }
            MethodConfig::CoCoOp(c) => {
                let n = self.rows("ctx")?;
                MethodConfig::CoCoOp(
                    c.clone()
                        .with_n_ctx(n)
                        .with_ctx_init(words_fit(&c.ctx_init, n)),
                )
            }
            MethodConfig::Ivlp(c) => {
                let mut c = c
                    .clone()
                    .with_n_ctx_text(self.rows("ctx")?)
                    .with_depth_text(1 + self.count("text_deep."));
                c = if self.params.contains_key("vision_ctx") {
                    c.with_n_ctx_vision(self.rows("vision_ctx")?)
                        .with_depth_vision(1 + self.count("vision_deep."))
                } else {
                    c.with_depth_vision(0)
                };
                MethodConfig::Ivlp(c)
            }
            MethodConfig::Vpt(c) => MethodConfig::Vpt(
                c.clone()
                    .with_n_ctx(self.rows("vision_ctx")?)
                    .with_depth(1 + self.count("vision_deep.")),
            ),
        })
    }

    /// Loads the file's tensors into `learner` (built from [`Self::settings_for`]).
    ///
    /// # Errors
    /// A learner of another method, or tensors that do not fit it (missing, extra, other
    /// shapes, non-finite values).
    pub fn load_into<B: Backend>(
        &self,
        learner: AnyLearner<B>,
        source: &Path,
    ) -> Result<AnyLearner<B>> {
        if learner.method() != self.method {
            return Err(MapleError::Checkpoint {
                path: source.to_path_buf(),
                message: format!(
                    "the file holds a {} learner, not a {} one",
                    self.method,
                    learner.method()
                ),
            });
        }
        load_named::<B, _>(learner, &self.params, source)
    }

    /// Builds the learner of the file for `clip`: [`Self::settings_for`] `requested`, a
    /// fresh learner for [`Self::num_classes`], then [`Self::load_into`].
    ///
    /// # Errors
    /// As those three.
    pub fn learner<B: Backend>(
        &self,
        requested: &MethodConfig,
        clip: &clip_model::Clip<B>,
        tokenizer: &clip_model::tokenizer::Tokenizer,
        source: &Path,
    ) -> Result<(AnyLearner<B>, MethodConfig)> {
        let settings = self.settings_for(requested)?;
        let fresh = settings.init(clip, tokenizer, self.num_classes())?;
        Ok((self.load_into(fresh, source)?, settings))
    }
}

/// Reads the learner tensors of a reference checkpoint (`<name>/model.pth.tar-N`, a torch
/// zip pickle written by Dassl), for any method: the method is recognised from the tensor
/// names ([`crate::reference_names::detect_method`]) and its tensors are mapped to our
/// parameter paths by that method's table. `token_prefix`/`token_suffix` depend on the
/// class names and are dropped, as the reference's `load_model` does; frozen CLIP weights
/// (whole-model checkpoints of IVLP, VPT and MaPLe) are skipped. Nothing in the file is
/// executed.
///
/// # Errors
/// An unreadable file, no tensors of a known method, or a tensor that belongs to none of
/// the method's parameters, its token buffers or the frozen CLIP.
pub fn read_reference_checkpoint(path: &Path) -> Result<ReferenceCheckpoint> {
    let ckpt = read_torch_checkpoint(path)?;
    let method = detect_method(ckpt.state_dict.iter().map(|(n, _)| n.as_str())).ok_or_else(|| {
        let names: Vec<&str> = ckpt
            .state_dict
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !is_frozen_clip(n))
            .take(16)
            .collect();
        MapleError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "no prompt-learner tensors of a known method (CoOp `ctx`, Co-CoOp `meta_net.*`, \
                 IVLP `prompt_learner.ctx`, VPT `image_encoder.VPT`, MaPLe `prompt_learner.proj.*`); \
                 found {names:?}"
            ),
        }
    })?;
    let named: Vec<(String, HostTensor)> = ckpt
        .state_dict
        .into_iter()
        .map(|(n, t)| (n, t.into_host()))
        .collect();
    let params = from_official(method, named.iter().map(|(n, t)| (n.as_str(), t)), path)?;
    Ok(ReferenceCheckpoint {
        method,
        params,
        epoch: ckpt.epoch,
    })
}

/// Imports a reference checkpoint into a learner built for the same CLIP and config.
///
/// # Errors
/// As [`read_reference_checkpoint`] and [`load_named`].
pub fn import_reference<B: Backend, M: Module<B>>(
    path: &Path,
    learner: M,
) -> Result<(M, Option<i64>)> {
    let r = read_reference_checkpoint(path)?;
    let learner = load_named::<B, M>(learner, &r.params, path)?;
    Ok((learner, r.epoch))
}
