//! Learner-only checkpoints (safetensors) and import of the reference's own checkpoints.
//!
//! Our checkpoint holds the learner's parameters (`param.<path>`), the SGD momentum
//! buffers (`momentum.<path>`), and metadata (format, epoch, learner config, class names,
//! caller JSON). It never holds CLIP weights nor class-dependent token embeddings, and it
//! is written atomically (temporary file in the same folder, then rename).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{MapleError, Result};
use crate::method::{AnyLearner, Method, MethodConfig};
use crate::path::ParamPath;
use crate::torch_pickle::read_torch_checkpoint;

/// Value of the `format` metadata entry of our checkpoints.
pub const FORMAT: &str = "maple-burn/learner-checkpoint/v1";

/// A host-side named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Every float parameter of a module by path (`proj.weight`, `compound_prompts_text.0`, ...).
pub fn named_params<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, NamedTensor> {
    struct V {
        path: ParamPath,
        out: BTreeMap<String, NamedTensor>,
    }
    impl<B: Backend> ModuleVisitor<B> for V {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            self.path.exit(container);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let data = param.val().into_data().convert::<f32>();
            let shape = data.shape.to_vec();
            let data = data.to_vec::<f32>().expect("f32 data");
            self.out
                .insert(self.path.current(), NamedTensor { shape, data });
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
    values: &BTreeMap<String, NamedTensor>,
    source: &Path,
) -> Result<M> {
    struct L<'a> {
        path: ParamPath,
        values: &'a BTreeMap<String, NamedTensor>,
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
                Some(t) if t.shape == shape && t.data.iter().any(|x| !x.is_finite()) => {
                    let bad = t.data.iter().find(|x| !x.is_finite()).copied();
                    self.error.get_or_insert_with(|| {
                        format!(
                            "tensor `{name}` holds a non-finite value ({}): refusing to load it",
                            bad.unwrap_or(f32::NAN)
                        )
                    });
                    Param::from_mapped_value(id, tensor, mapper)
                }
                Some(t) if t.shape == shape => {
                    self.used.push(name);
                    let grad = tensor.is_require_grad();
                    let new = Tensor::from_data(
                        TensorData::new(t.data.clone(), t.shape.clone()),
                        &tensor.device(),
                    );
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
    pub momentum: BTreeMap<String, NamedTensor>,
    /// Free-form caller data (e.g. RNG state, run settings).
    pub extra: serde_json::Value,
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
    let mut tensors: Vec<(String, NamedTensor)> = params
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
            (
                k,
                t.shape,
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
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
        let t = NamedTensor {
            shape: view.shape().to_vec(),
            data: view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        };
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
) -> BTreeMap<String, NamedTensor> {
    struct V<'a, AB: burn::tensor::backend::AutodiffBackend> {
        path: ParamPath,
        grads: &'a AB::Gradients,
        out: BTreeMap<String, NamedTensor>,
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
                let data = g.into_data().convert::<f32>();
                let shape = data.shape.to_vec();
                let data = data.to_vec::<f32>().expect("f32 data");
                self.out
                    .insert(self.path.current(), NamedTensor { shape, data });
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

/// Converts learner tensors from Burn layout to the reference's PyTorch layout: the
/// `prompt_learner.` prefix is added and every 2-D `*.weight` (a `Linear`, stored
/// `[in, out]` by Burn and `[out, in]` by PyTorch) is transposed.
pub fn to_reference_layout(
    params: &BTreeMap<String, NamedTensor>,
) -> BTreeMap<String, NamedTensor> {
    params
        .iter()
        .map(|(k, t)| (format!("prompt_learner.{k}"), relayout(k, t)))
        .collect()
}

/// Inverse of [`to_reference_layout`] for names without the `prompt_learner.` prefix.
pub fn from_reference_layout(
    params: &BTreeMap<String, NamedTensor>,
) -> BTreeMap<String, NamedTensor> {
    params
        .iter()
        .map(|(k, t)| (k.clone(), relayout(k, t)))
        .collect()
}

fn relayout(key: &str, t: &NamedTensor) -> NamedTensor {
    if !(key.ends_with(".weight") && t.shape.len() == 2) {
        return t.clone();
    }
    let host = clip_model::HostTensor {
        shape: t.shape.clone(),
        data: t.data.clone(),
    };
    let out = host.transposed();
    NamedTensor {
        shape: out.shape,
        data: out.data,
    }
}

/// A reference checkpoint's learner tensors and epoch.
#[derive(Debug, Clone)]
pub struct ReferenceCheckpoint {
    /// `prompt_learner.*` tensors without the prefix (and without `token_prefix`/`token_suffix`),
    /// in Burn layout (Linear weights transposed to `[in, out]`).
    pub params: BTreeMap<String, NamedTensor>,
    /// The `epoch` entry, when present.
    pub epoch: Option<i64>,
}

impl ReferenceCheckpoint {
    /// The method whose tensors the file holds, recognised from their names.
    pub fn detect_method(&self) -> Option<Method> {
        let has = |p: &str| self.params.keys().any(|k| k.starts_with(p));
        (has("ctx") && (has("proj.") || has("compound_prompts_text."))).then_some(Method::Maple)
    }

    /// Number of classes the learner was trained for, when its tensors depend on it
    /// (class-specific contexts); 0 otherwise.
    pub fn num_classes(&self) -> usize {
        0
    }

    /// The settings of the learner in the file: sizes (context length, depth) from the
    /// tensors, everything else (context words) from `requested`, whose method must be
    /// the file's.
    ///
    /// # Errors
    /// The file holds another method's tensors, or none that any method knows.
    pub fn settings_for(&self, requested: &MethodConfig) -> Result<MethodConfig> {
        let found = self.detect_method().ok_or_else(|| {
            MapleError::Invalid(format!(
                "no prompt-learner tensors of a known method (found {:?})",
                self.params.keys().collect::<Vec<_>>()
            ))
        })?;
        if found != requested.method() {
            return Err(MapleError::Invalid(format!(
                "the checkpoint holds a {found} learner, but the method is {}",
                requested.method()
            )));
        }
        match requested {
            MethodConfig::Maple(c) => {
                let n_ctx = self.params.get("ctx").map_or(c.n_ctx, |t| t.shape[0]);
                let depth = 1 + self
                    .params
                    .keys()
                    .filter(|k| k.starts_with("compound_prompts_text."))
                    .count();
                Ok(MethodConfig::Maple(
                    c.clone().with_n_ctx(n_ctx).with_depth(depth),
                ))
            }
        }
    }

    /// Loads the file's tensors into `learner` (built from [`Self::settings_for`]).
    pub fn load_into<B: Backend>(
        &self,
        learner: AnyLearner<B>,
        source: &Path,
    ) -> Result<AnyLearner<B>> {
        load_named::<B, _>(learner, &self.params, source)
    }
}

/// Reads the learner tensors of a reference checkpoint (`MultiModalPromptLearner/model.pth.tar-N`:
/// a torch zip pickle whose `state_dict` holds `prompt_learner.*` among frozen CLIP weights).
/// `token_prefix`/`token_suffix` depend on the class names and are dropped, as the reference's
/// `load_model` does. Nothing in the file is executed.
pub fn read_reference_checkpoint(path: &Path) -> Result<ReferenceCheckpoint> {
    let ckpt = read_torch_checkpoint(path)?;
    let mut params = BTreeMap::new();
    for (name, t) in &ckpt.state_dict {
        let Some(rest) = name.strip_prefix("prompt_learner.") else {
            continue;
        };
        if rest == "token_prefix" || rest == "token_suffix" {
            continue;
        }
        params.insert(
            rest.to_string(),
            NamedTensor {
                shape: t.shape.clone(),
                data: t.data.clone(),
            },
        );
    }
    if params.is_empty() {
        return Err(MapleError::Checkpoint {
            path: path.to_path_buf(),
            message: "no `prompt_learner.*` tensors in state_dict: not a prompt-learner checkpoint"
                .into(),
        });
    }
    Ok(ReferenceCheckpoint {
        params: from_reference_layout(&params),
        epoch: ckpt.epoch,
    })
}

/// Imports a reference checkpoint into a learner built for the same CLIP and config.
pub fn import_reference<B: Backend, M: Module<B>>(
    path: &Path,
    learner: M,
) -> Result<(M, Option<i64>)> {
    let r = read_reference_checkpoint(path)?;
    let learner = load_named::<B, M>(learner, &r.params, path)?;
    Ok((learner, r.epoch))
}
