//! Parity checks against a reference fixture folder: the `maple-tiny` layout
//! (`config.json`, `clip.safetensors`, `clip_hf.safetensors`, `tokenizer.json`,
//! `forward.safetensors`, ...) or one `methods-tiny/<method>` folder (CoOp, Co-CoOp, IVLP,
//! VPT: [`methods`]).
//!
//! Every check yields a [`CheckResult`] (`<name> max_abs_err=<x> tol=<t> PASS|FAIL`).
//! Dimensions, class names and seeds come from the folder's files; tolerances from
//! its optional `tolerances.json`, else the project's standard ones ([`Tolerances`]).
//! The test suite (`tests/parity*.rs`) and `cargo xtask parity DIR` run the same
//! functions.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};

pub mod maple;
pub mod methods;
pub mod precision;
use burn::tensor::Tensor;
use clip_model::{BlockHook, Clip, HostTensor, NoHook};
use serde::Deserialize;

/// Outcome of one parity check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Check name; its first dotted part is the topic (`tokenizer`, `zero-shot`, `maple`, ...).
    pub name: String,
    /// Largest absolute error (or count of mismatches for exact checks).
    pub max_abs_err: f64,
    /// Largest error allowed.
    pub tol: f64,
}

impl CheckResult {
    /// Whether the error is within tolerance (NaN fails).
    pub fn passed(&self) -> bool {
        self.max_abs_err <= self.tol
    }

    /// `<name> max_abs_err=<x> tol=<t> PASS|FAIL`.
    pub fn line(&self) -> String {
        format!(
            "{} max_abs_err={:.3e} tol={:.1e} {}",
            self.name,
            self.max_abs_err,
            self.tol,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// Tolerances of the checks, overridable by `tolerances.json` in the fixture folder.
///
/// Defaults are the project's standards for fp32 (README, issue texts): activations,
/// features and logits 1e-4 absolute (the reference's own fp32-vs-fp64 noise is ≤ 1.4e-5);
/// exact token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Tolerances {
    /// Activations, features, logits: absolute.
    pub activation: f64,
    /// L2-normalised features: absolute.
    pub normalized: f64,
    /// Loss: relative.
    pub loss_rel: f64,
    /// Gradients: absolute, relative to the tensor's largest absolute gradient.
    pub grad_rel_to_max: f64,
    /// Parameters after optimizer steps: absolute.
    pub param: f64,
    /// Learning rate per epoch: absolute.
    pub lr: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            activation: 1e-4,
            normalized: 1e-5,
            loss_rel: 1e-5,
            grad_rel_to_max: 1e-4,
            param: 1e-5,
            lr: 1e-12,
        }
    }
}

/// A fixture folder: its path, `config.json` and tolerances.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The folder.
    pub dir: PathBuf,
    /// Parsed `config.json`.
    pub config: serde_json::Value,
    /// Tolerances in force.
    pub tol: Tolerances,
}

impl Fixture {
    /// Opens a fixture folder.
    pub fn open(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("reading {}", cfg_path.display()))?,
        )
        .with_context(|| format!("parsing {}", cfg_path.display()))?;
        let tol_path = dir.join("tolerances.json");
        let tol = if tol_path.exists() {
            serde_json::from_str(&std::fs::read_to_string(&tol_path)?)
                .with_context(|| format!("parsing {}", tol_path.display()))?
        } else {
            Tolerances::default()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tol,
        })
    }

    /// A value of `config.json` by JSON pointer (e.g. `/maple/N_CTX`).
    pub fn cfg(&self, pointer: &str) -> Result<&serde_json::Value> {
        self.config
            .pointer(pointer)
            .ok_or_else(|| anyhow!("{}: config.json has no {pointer}", self.dir.display()))
    }

    /// A string list of `config.json`.
    pub fn cfg_strings(&self, pointer: &str) -> Result<Vec<String>> {
        self.cfg(pointer)?
            .as_array()
            .ok_or_else(|| anyhow!("config.json {pointer} is not a list"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| anyhow!("config.json {pointer} holds a non-string"))
            })
            .collect()
    }

    /// Opens a safetensors file of the folder.
    pub fn tensors(&self, name: &str) -> Result<TensorFile> {
        TensorFile::open(&self.dir.join(name))
    }
}

/// A safetensors file read into memory, with typed accessors.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        safetensors::SafeTensors::deserialize(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn view(&self, key: &str) -> Result<(safetensors::Dtype, Vec<usize>, Vec<u8>)> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes)?;
        let v = st
            .tensor(key)
            .with_context(|| format!("{}: no tensor {key}", self.path.display()))?;
        Ok((v.dtype(), v.shape().to_vec(), v.data().to_vec()))
    }

    /// Whether the file has `key`.
    pub fn contains(&self, key: &str) -> bool {
        safetensors::SafeTensors::deserialize(&self.bytes)
            .map(|st| st.tensor(key).is_ok())
            .unwrap_or(false)
    }

    /// A float tensor as f32 (f16/f32/f64 accepted), with its shape.
    pub fn f32(&self, key: &str) -> Result<HostTensor> {
        use safetensors::Dtype;
        let (dtype, shape, b) = self.view(key)?;
        let data = match dtype {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            d => bail!(
                "{}: {key} has dtype {d:?}, expected a float",
                self.path.display()
            ),
        };
        Ok(HostTensor::new(shape, data))
    }

    /// A 0-d or 1-element float tensor as f64.
    pub fn scalar_f64(&self, key: &str) -> Result<f64> {
        let (dtype, _, b) = self.view(key)?;
        match dtype {
            safetensors::Dtype::F64 => Ok(f64::from_le_bytes(b[..8].try_into()?)),
            _ => Ok(self.f32(key)?.data[0] as f64),
        }
    }

    /// An integer tensor as i64.
    pub fn i64(&self, key: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        use safetensors::Dtype;
        let (dtype, shape, b) = self.view(key)?;
        let data = match dtype {
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Dtype::U8 => b.iter().map(|&x| x as i64).collect(),
            d => bail!(
                "{}: {key} has dtype {d:?}, expected an integer",
                self.path.display()
            ),
        };
        Ok((shape, data))
    }

    /// A float tensor on `device`.
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let t = self.f32(key)?;
        if t.shape.len() != D {
            bail!(
                "{}: {key} has shape {:?}, expected rank {D}",
                self.path.display(),
                t.shape
            );
        }
        Ok(t.to_tensor(device))
    }

    /// Token rows (`[n, seq]` integers) as `u32`.
    pub fn rows(&self, key: &str) -> Result<Vec<Vec<u32>>> {
        let (shape, data) = self.i64(key)?;
        Ok(data
            .chunks(shape[1])
            .map(|r| r.iter().map(|&x| x as u32).collect())
            .collect())
    }
}

/// Largest absolute difference; infinite when shapes differ.
pub fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f64 {
    if a.shape != b.shape {
        return f64::INFINITY;
    }
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        // NaN is sticky (`f64::max` would drop it): a NaN anywhere fails the check.
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// Compares a tensor with a fixture tensor.
pub fn compare<B: Backend, const D: usize>(
    ours: Tensor<B, D>,
    file: &TensorFile,
    key: &str,
) -> Result<f64> {
    Ok(max_abs_diff(
        &HostTensor::from_tensor(ours),
        &file.f32(key)?,
    ))
}

/// Compares the first `len` positions (dim 1) of a `[n, len, d]` tensor with a
/// `[n, full, d]` fixture tensor (the text tower computes only positions up to the last EOT).
pub fn compare_prefix<B: Backend>(ours: Tensor<B, 3>, file: &TensorFile, key: &str) -> Result<f64> {
    let HostTensor { shape: s, data: v } = HostTensor::from_tensor(ours);
    let HostTensor {
        shape: rs,
        data: rv,
    } = file.f32(key)?;
    if rs.len() != 3 || rs[0] != s[0] || rs[2] != s[2] || s[1] > rs[1] {
        return Ok(f64::INFINITY);
    }
    let (n, len, d, full) = (s[0], s[1], s[2], rs[1]);
    let mut m: f64 = 0.0;
    for i in 0..n {
        for p in 0..len {
            for k in 0..d {
                let diff =
                    (v[(i * len + p) * d + k] as f64 - rv[(i * full + p) * d + k] as f64).abs();
                m = if diff.is_nan() { f64::NAN } else { m.max(diff) };
            }
        }
    }
    Ok(m)
}

/// A hook that records every block's input (after `inner` rewrote it) and output.
pub struct Recorder<'a, B: Backend> {
    /// The hook whose rewrites are recorded.
    pub inner: &'a dyn BlockHook<B>,
    /// Inputs in block order.
    pub inputs: RefCell<Vec<Tensor<B, 3>>>,
    /// Outputs in block order.
    pub outputs: RefCell<Vec<Tensor<B, 3>>>,
}

impl<'a, B: Backend> Recorder<'a, B> {
    /// Records around `inner`.
    pub fn new(inner: &'a dyn BlockHook<B>) -> Self {
        Self {
            inner,
            inputs: RefCell::new(Vec::new()),
            outputs: RefCell::new(Vec::new()),
        }
    }
}

impl<B: Backend> BlockHook<B> for Recorder<'_, B> {
    fn before_block(&self, layer: usize, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = self.inner.before_block(layer, x);
        self.inputs.borrow_mut().push(x.clone());
        x
    }

    fn after_block(&self, layer: usize, x: &Tensor<B, 3>) {
        self.inner.after_block(layer, x);
        self.outputs.borrow_mut().push(x.clone());
    }
}

fn push(out: &mut Vec<CheckResult>, name: impl Into<String>, err: f64, tol: f64) {
    out.push(CheckResult {
        name: name.into(),
        max_abs_err: err,
        tol,
    });
}

/// Tokenizer checks: every case of `tokenizer.json` (cleaning, BPE ids, 77-token rows,
/// errors and truncation) and the zero-shot prompts against `zs.tokens`. Errors are
/// counts of mismatching cases (tolerance 0).
pub fn tokenizer_checks(fx: &Fixture) -> Result<Vec<CheckResult>> {
    use clip_model::tokenizer::Tokenizer;
    let path = fx.dir.join("tokenizer.json");
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let tok = Tokenizer::new();
    let ctx = doc["context_length"].as_u64().unwrap_or(77) as usize;
    let cases = doc["entries"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no `entries` list", path.display()))?;
    let ids = |v: &serde_json::Value| -> Option<Vec<u32>> {
        v.as_array().map(|a| {
            a.iter()
                .map(|x| x.as_u64().unwrap_or(u64::MAX) as u32)
                .collect()
        })
    };
    let (mut clean, mut enc, mut row, mut trunc) = (0.0, 0.0, 0.0, 0.0);
    for case in cases {
        let text = case["text"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: case without text", path.display()))?;
        if case["cleaned"].as_str() != Some(tok.clean(text).as_str()) {
            clean += 1.0;
        }
        if ids(&case["encode"]) != Some(tok.encode(text)) {
            enc += 1.0;
        }
        let ours = tok.tokenize(text, ctx, false).ok();
        if ids(&case["tokenize"]) != ours {
            row += 1.0;
        }
        if ids(&case["tokenize_truncate"]) != tok.tokenize(text, ctx, true).ok() {
            trunc += 1.0;
        }
    }
    let n = cases.len();
    let mut out = Vec::new();
    push(&mut out, format!("tokenizer.clean ({n} cases)"), clean, 0.0);
    push(&mut out, format!("tokenizer.encode ({n} cases)"), enc, 0.0);
    push(
        &mut out,
        format!("tokenizer.tokenize ({n} cases)"),
        row,
        0.0,
    );
    push(
        &mut out,
        format!("tokenizer.tokenize-truncate ({n} cases)"),
        trunc,
        0.0,
    );
    if let Some(batch) = doc.get("batch_example") {
        let texts: Vec<&str> = batch["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .collect();
        let want: Vec<Vec<u32>> = batch["tokenize"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(ids)
            .collect();
        let got = tok.tokenize_batch(&texts, ctx, false)?;
        let bad =
            got.iter().zip(&want).filter(|(a, b)| a != b).count() + got.len().abs_diff(want.len());
        push(&mut out, "tokenizer.batch-example", bad as f64, 0.0);
    }
    let fwd = fx.tensors("forward.safetensors")?;
    let want = fwd.rows("zs.tokens")?;
    let got = tok.tokenize_batch(
        &zero_shot_prompts(fx)?
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ctx,
        false,
    )?;
    let bad =
        got.iter().zip(&want).filter(|(a, b)| a != b).count() + got.len().abs_diff(want.len());
    push(&mut out, "tokenizer.zero-shot-prompts", bad as f64, 0.0);
    Ok(out)
}

/// The zero-shot prompts of the fixture: its template filled with each class name
/// (underscores as spaces).
pub fn zero_shot_prompts(fx: &Fixture) -> Result<Vec<String>> {
    let template = fx
        .cfg("/maple/zero_shot_template")?
        .as_str()
        .ok_or_else(|| anyhow!("template is not a string"))?
        .to_string();
    Ok(fx
        .cfg_strings("/maple/classnames")?
        .iter()
        .map(|c| template.replace("{}", &c.replace('_', " ")))
        .collect())
}

/// Plain-CLIP checks against `forward.safetensors` `zs.*`: per-block outputs of both
/// towers, features, normalised features and logits, for the OpenAI-named weights and
/// (features and logits) for the Hugging Face-named ones.
pub fn zero_shot_checks<B: Backend>(fx: &Fixture, device: &B::Device) -> Result<Vec<CheckResult>> {
    let fwd = fx.tensors("forward.safetensors")?;
    let tol = &fx.tol;
    let mut out = Vec::new();
    let (clip, config) = Clip::<B>::from_safetensors(&fx.dir.join("clip.safetensors"), device)?;
    check_config(fx, &config)?;
    let images: Tensor<B, 4> = fwd.tensor("input.images", device)?;
    let rows = fwd.rows("zs.tokens")?;

    let rec = Recorder::<B>::new(&NoHook);
    let emb = clip.text.embed_rows(&rows, device);
    let text = clip
        .text
        .encode_embeddings(emb, &clip_model::eot_positions(&rows), &rec);
    for (i, o) in rec.outputs.take().into_iter().enumerate() {
        push(
            &mut out,
            format!("zero-shot.text.block{i}.output"),
            compare_prefix(o, &fwd, &format!("zs.text.block{i}.output"))?,
            tol.activation,
        );
    }
    let rec = Recorder::<B>::new(&NoHook);
    let image = clip
        .visual
        .encode_tokens(clip.visual.embed(images.clone()), &rec);
    for (i, o) in rec.outputs.take().into_iter().enumerate() {
        push(
            &mut out,
            format!("zero-shot.vision.block{i}.output"),
            compare(o, &fwd, &format!("zs.vision.block{i}.output"))?,
            tol.activation,
        );
    }
    push(
        &mut out,
        "zero-shot.text_features",
        compare(text.clone(), &fwd, "zs.text_features")?,
        tol.activation,
    );
    push(
        &mut out,
        "zero-shot.image_features",
        compare(image.clone(), &fwd, "zs.image_features")?,
        tol.activation,
    );
    push(
        &mut out,
        "zero-shot.text_features_norm",
        compare(
            clip_model::l2_normalize(text.clone()),
            &fwd,
            "zs.text_features_norm",
        )?,
        tol.normalized,
    );
    push(
        &mut out,
        "zero-shot.image_features_norm",
        compare(
            clip_model::l2_normalize(image.clone()),
            &fwd,
            "zs.image_features_norm",
        )?,
        tol.normalized,
    );
    push(
        &mut out,
        "zero-shot.logits",
        compare(clip.logits(image, text), &fwd, "zs.logits")?,
        tol.activation,
    );

    // The classifier API end to end: class names + template → tokenizer → logits.
    let tok = clip_model::tokenizer::Tokenizer::new();
    let template = fx
        .cfg("/maple/zero_shot_template")?
        .as_str()
        .unwrap_or("a photo of a {}.")
        .to_string();
    let zs = clip_model::ZeroShotClassifier::new(
        &clip,
        &tok,
        &fx.cfg_strings("/maple/classnames")?,
        &[template.as_str()],
    )?;
    push(
        &mut out,
        "zero-shot.classifier.logits",
        compare(zs.logits(&clip, images.clone()), &fwd, "zs.logits")?,
        tol.activation,
    );

    let hf_path = fx.dir.join("clip_hf.safetensors");
    if hf_path.exists() {
        let (hf, hf_config) = Clip::<B>::from_safetensors(&hf_path, device)?;
        if hf_config != config {
            bail!(
                "{}: inferred config {hf_config:?} differs from the OpenAI file's {config:?}",
                hf_path.display()
            );
        }
        let text = hf.text.forward(&rows, device);
        let image = hf.visual.encode_tokens(hf.visual.embed(images), &NoHook);
        push(
            &mut out,
            "zero-shot.hf.text_features",
            compare(text.clone(), &fwd, "zs.text_features")?,
            tol.activation,
        );
        push(
            &mut out,
            "zero-shot.hf.image_features",
            compare(image.clone(), &fwd, "zs.image_features")?,
            tol.activation,
        );
        push(
            &mut out,
            "zero-shot.hf.logits",
            compare(hf.logits(image, text), &fwd, "zs.logits")?,
            tol.activation,
        );
    }
    Ok(out)
}

/// Checks the configuration inferred from the weights against `config.json` `model`.
pub fn check_config(fx: &Fixture, c: &clip_model::ClipConfig) -> Result<()> {
    let m = fx.cfg("/model")?;
    let want = |k: &str| m[k].as_u64().map(|v| v as usize);
    let pairs = [
        ("image_resolution", c.image_resolution),
        ("patch_size", c.vision_patch_size),
        ("vision_width", c.vision_width),
        ("vision_heads", c.vision_heads),
        ("vision_layers", c.vision_layers),
        ("text_width", c.transformer_width),
        ("text_heads", c.transformer_heads),
        ("text_layers", c.transformer_layers),
        ("embed_dim", c.embed_dim),
        ("context_length", c.context_length),
        ("vocab_size", c.vocab_size),
    ];
    for (k, got) in pairs {
        if let Some(w) = want(k) {
            if w != got {
                bail!(
                    "{}: config.json model.{k} = {w} but the weights give {got}",
                    fx.dir.display()
                );
            }
        }
    }
    Ok(())
}

/// Every check of a fixture folder. A `maple-tiny` folder, in topic order: tokenizer,
/// zero-shot (plain CLIP, on the inference backend), then MaPLe, gradients, steps, schedule
/// and checkpoints (autodiff). A methods folder: [`methods::method_checks`].
pub fn all_checks<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<CheckResult>> {
    if methods::fixture_method(fx).is_some() {
        return methods::method_checks::<B>(fx, device);
    }
    let mut out = tokenizer_checks(fx)?;
    out.extend(zero_shot_checks::<B::InnerBackend>(fx, device)?);
    out.extend(maple::maple_checks::<B>(fx, device)?);
    Ok(out)
}
