//! Parity checks of the comparison methods (CoOp, Co-CoOp, IVLP, VPT) against one
//! `methods-tiny/<folder>` fixture: construction and token ids, prompt assembly, forward
//! activations of both towers (per block where prompts enter them), features and logits,
//! three SGD steps (loss, gradients, parameters and momentum, each step from the
//! reference's previous state, and free running from the initial parameters through
//! `PromptedClip::train_step`), the schedule, our checkpoint round trip and the import of
//! the reference's checkpoint.
//!
//! Check names start with the folder's name (`cocoop.forward.logits`,
//! `coop-csc-middle.grad.step2.ctx (rel. to max|grad|)`); tensors are named as the
//! reference names them. The CLIP is the folder's `clip_weights.path_from_this_folder`
//! (`../../maple-tiny/clip.safetensors`). Tolerances are those of MaPLe's checks
//! ([`super::Tolerances`]); prompt assembly, token ids and the checkpoint import are exact.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use clip_model::tokenizer::Tokenizer;
use clip_model::{l2_normalize, Clip, HostTensor};
use maple_prompts::checkpoint::{
    self, named_grads, named_params, read_reference_checkpoint, CheckpointState,
};
use maple_prompts::reference_names::{from_official, to_official_tensors};
use maple_prompts::{
    cross_entropy, AnyLearner, ClassTokenPosition, ClassTokens, CoCoOpConfig, CoOpConfig,
    IvlpConfig, LrSchedule, Method, MethodConfig, PromptLearner, PromptedClip, Sgd, SgdConfig,
    VptConfig,
};

use super::maple::count_trainable;
use super::{compare, max_abs_diff, push, CheckResult, Fixture, Recorder, TensorFile};

/// The method of a fixture folder, from `config.json` `trainer` (`CoOp`, `CoCoOp`, `IVLP`,
/// `VPT`); `None` for other folders (e.g. `maple-tiny`).
pub fn fixture_method(fx: &Fixture) -> Option<Method> {
    match fx.config.get("trainer")?.as_str()? {
        "CoOp" => Some(Method::CoOp),
        "CoCoOp" => Some(Method::CoCoOp),
        "IVLP" => Some(Method::Ivlp),
        "VPT" => Some(Method::Vpt),
        _ => None,
    }
}

/// The name checks of a folder start with: the folder's own name.
pub fn check_prefix(fx: &Fixture) -> String {
    fx.dir
        .canonicalize()
        .unwrap_or_else(|_| fx.dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "methods".into())
}

fn usize_at(fx: &Fixture, pointer: &str) -> Result<usize> {
    fx.cfg(pointer)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| anyhow!("config.json {pointer} is not a number"))
}

fn words_at(fx: &Fixture, pointer: &str) -> Result<Option<String>> {
    Ok(fx
        .cfg(pointer)?
        .as_str()
        .map(String::from)
        .filter(|s| !s.is_empty()))
}

/// The fixture's settings (`config.json` `method_cfg`), as our config of its method.
pub fn method_config(fx: &Fixture) -> Result<MethodConfig> {
    let method = fixture_method(fx).ok_or_else(|| anyhow!("not a methods fixture"))?;
    Ok(match method {
        Method::CoOp => {
            let position = match fx.cfg("/method_cfg/CLASS_TOKEN_POSITION")?.as_str() {
                Some("end") => ClassTokenPosition::End,
                Some("middle") => ClassTokenPosition::Middle,
                Some("front") => ClassTokenPosition::Front,
                other => bail!("unknown CLASS_TOKEN_POSITION {other:?}"),
            };
            MethodConfig::CoOp(
                CoOpConfig::new()
                    .with_n_ctx(usize_at(fx, "/method_cfg/N_CTX")?)
                    .with_ctx_init(words_at(fx, "/method_cfg/CTX_INIT")?)
                    .with_csc(fx.cfg("/method_cfg/CSC")?.as_bool() == Some(true))
                    .with_class_token_position(position),
            )
        }
        Method::CoCoOp => MethodConfig::CoCoOp(
            CoCoOpConfig::new()
                .with_n_ctx(usize_at(fx, "/method_cfg/N_CTX")?)
                .with_ctx_init(words_at(fx, "/method_cfg/CTX_INIT")?),
        ),
        Method::Ivlp => MethodConfig::Ivlp(
            IvlpConfig::new()
                .with_n_ctx_text(usize_at(fx, "/method_cfg/N_CTX_TEXT")?)
                .with_n_ctx_vision(usize_at(fx, "/method_cfg/N_CTX_VISION")?)
                .with_ctx_init(words_at(fx, "/method_cfg/CTX_INIT")?)
                .with_depth_text(usize_at(fx, "/method_cfg/PROMPT_DEPTH_TEXT")?)
                .with_depth_vision(usize_at(fx, "/method_cfg/PROMPT_DEPTH_VISION")?),
        ),
        Method::Vpt => MethodConfig::Vpt(
            VptConfig::new()
                .with_n_ctx(usize_at(fx, "/method_cfg/N_CTX_VISION")?)
                .with_depth(usize_at(fx, "/method_cfg/PROMPT_DEPTH_VISION")?),
        ),
        Method::Maple => bail!("MaPLe fixtures use the maple-tiny layout"),
    })
}

/// The CLIP weights of the fixture (`clip_weights.path_from_this_folder`).
pub fn clip_path(fx: &Fixture) -> Result<PathBuf> {
    let rel = fx
        .cfg("/clip_weights/path_from_this_folder")?
        .as_str()
        .ok_or_else(|| anyhow!("clip_weights.path_from_this_folder is not a string"))?;
    Ok(fx.dir.join(rel))
}

/// Official tensors `{prefix}{name}` of a fixture file, as our parameters (paths, Burn layout).
fn learner_tensors(
    method: Method,
    file: &TensorFile,
    prefix: &str,
    names: &[String],
) -> Result<BTreeMap<String, HostTensor>> {
    let mut official = Vec::new();
    for name in names {
        official.push((name.clone(), file.f32(&format!("{prefix}{name}"))?));
    }
    Ok(from_official(
        method,
        official.iter().map(|(n, t)| (n.as_str(), t)),
        &PathBuf::from(prefix),
    )?)
}

/// Largest difference over every tensor of `want` (∞ when a name is missing or extra).
fn diff_all(ours: &BTreeMap<String, HostTensor>, want: &BTreeMap<String, HostTensor>) -> f64 {
    let mut m: f64 = if ours.len() == want.len() {
        0.0
    } else {
        f64::INFINITY
    };
    for (k, w) in want {
        m = m.max(ours.get(k).map_or(f64::INFINITY, |o| max_abs_diff(o, w)));
    }
    m
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter()
        .fold(0.0f64, |m, x| m.max(x.abs() as f64))
        .max(f64::MIN_POSITIVE)
}

/// Largest difference between the first positions (second-to-last axis) of `ours`
/// `[n, len, d]` and a fixture tensor `[..., full, d]` whose leading axes flatten to `n`.
fn compare_rows<B: Backend>(ours: Tensor<B, 3>, file: &TensorFile, key: &str) -> Result<f64> {
    let HostTensor { shape: s, data: v } = HostTensor::from_tensor(ours);
    let HostTensor {
        shape: rs,
        data: rv,
    } = file.f32(key)?;
    if rs.len() < 2 {
        return Ok(f64::INFINITY);
    }
    let (full, d) = (rs[rs.len() - 2], rs[rs.len() - 1]);
    let n: usize = rs[..rs.len() - 2].iter().product();
    if s[0] != n || s[2] != d || s[1] > full {
        return Ok(f64::INFINITY);
    }
    let len = s[1];
    let mut m: f64 = 0.0;
    for i in 0..n {
        for p in 0..len {
            for k in 0..d {
                let e = (v[(i * len + p) * d + k] as f64 - rv[(i * full + p) * d + k] as f64).abs();
                m = if e.is_nan() { f64::NAN } else { m.max(e) };
            }
        }
    }
    Ok(m)
}

/// Compares after flattening both to the same element count (e.g. `[b*c, e]` against `[b, c, e]`).
fn compare_flat<B: Backend, const D: usize>(
    ours: Tensor<B, D>,
    file: &TensorFile,
    key: &str,
) -> Result<f64> {
    let ours = HostTensor::from_tensor(ours);
    let want = file.f32(key)?;
    if want.numel() != ours.numel() {
        return Ok(f64::INFINITY);
    }
    let flat = |t: HostTensor| HostTensor::new(vec![t.data.len()], t.data);
    Ok(max_abs_diff(&flat(ours), &flat(want)))
}

/// Number of differing entries of two integer lists (plus the length difference).
fn mismatches(a: &[i64], b: &[i64]) -> f64 {
    (a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len())) as f64
}

/// `ln_final` of the last text block's output at each EOT row (before the projection).
fn text_pooled<B: Backend>(clip: &Clip<B>, last: Tensor<B, 3>, eot: &[usize]) -> Tensor<B, 2> {
    let [n, len, w] = last.dims();
    let x = clip.text.ln_final.forward(last).reshape([n * len, w]);
    let rows: Vec<i64> = eot
        .iter()
        .enumerate()
        .map(|(i, &e)| (i * len + e) as i64)
        .collect();
    let idx = Tensor::from_data(TensorData::new(rows, [n]), &x.device());
    x.select(0, idx)
}

/// `ln_post` of the class token of the last vision block's output.
fn vision_pooled<B: Backend>(clip: &Clip<B>, last: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, _, w] = last.dims();
    clip.visual
        .ln_post
        .forward(last.slice([0..b, 0..1]).reshape([b, w]))
}

/// Every check of one methods fixture folder on an autodiff backend.
pub fn method_checks<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<CheckResult>> {
    let method = fixture_method(fx)
        .ok_or_else(|| anyhow!("{}: not a methods fixture folder", fx.dir.display()))?;
    let name = check_prefix(fx);
    let n = |s: &str| format!("{name}.{s}");
    let tol = fx.tol.clone();
    let a = tol.activation;
    let mut out = Vec::new();
    let fwd = fx.tensors("forward.safetensors")?;
    let init = fx.tensors("init.safetensors")?;
    let steps = fx.tensors("train_step.safetensors")?;
    let trainable = fx.cfg_strings("/optim/trainable_parameters")?;
    let class_names = fx.cfg_strings("/classnames")?;
    let cfg = method_config(fx)?;
    let tok = Tokenizer::new();
    let clip_file = clip_path(fx)?;
    let (clip, clip_cfg) = Clip::<B>::from_safetensors(&clip_file, device)
        .with_context(|| format!("CLIP weights {}", clip_file.display()))?;
    super::check_config(fx, &clip_cfg)?;

    // Construction: shapes, contexts from words, token ids.
    let fresh = cfg.init(&clip, &tok, class_names.len())?;
    let init_params = learner_tensors(method, &init, "", &trainable)?;
    let ours = named_params(&fresh);
    let shapes_ok = ours.len() == init_params.len()
        && init_params
            .iter()
            .all(|(k, v)| ours.get(k).map(|o| &o.shape) == Some(&v.shape));
    push(
        &mut out,
        n(&format!("init.parameter-shapes ({} tensors)", ours.len())),
        if shapes_ok { 0.0 } else { 1.0 },
        0.0,
    );
    let words = match &cfg {
        MethodConfig::CoOp(c) => c.ctx_init.is_some(),
        MethodConfig::CoCoOp(c) => c.ctx_init.is_some(),
        MethodConfig::Ivlp(c) => c.ctx_init.is_some() && c.n_ctx_text <= 4,
        _ => false,
    };
    if words {
        push(
            &mut out,
            n("init.ctx-from-ctx-init"),
            match (ours.get("ctx"), init_params.get("ctx")) {
                (Some(o), Some(r)) => max_abs_diff(o, r),
                _ => f64::INFINITY,
            },
            0.0,
        );
    }
    if method == Method::CoCoOp {
        // torch's nn.Linear init: every value within 1/sqrt(fan_in) (fan_in = rows in Burn).
        let worst = ["meta_net.linear1", "meta_net.linear2"]
            .iter()
            .flat_map(|l| {
                let fan_in = ours[&format!("{l}.weight")].shape[0] as f64;
                ["weight", "bias"].map(|p| max_abs(&ours[&format!("{l}.{p}")].data) * fan_in.sqrt())
            })
            .fold(0.0, f64::max);
        push(
            &mut out,
            n("init.meta-net-within-torch-linear-bounds (excess over 1)"),
            (worst - 1.0).max(0.0),
            0.0,
        );
    }

    let classes = ClassTokens::<B>::new(&clip, &tok, fresh.prompt_prefix(), &class_names)?;
    let rows_key = [
        "tokenized_prompts",
        "prompt_learner.tokenized_prompts",
        "embeddings.tokenized_prompts",
    ]
    .into_iter()
    .find(|k| init.contains(k))
    .ok_or_else(|| anyhow!("init.safetensors has no tokenized prompts"))?;
    let got_rows: Vec<i64> = classes.rows.iter().flatten().map(|&x| x as i64).collect();
    push(
        &mut out,
        n("tokenized-prompts"),
        mismatches(&got_rows, &init.i64(rows_key)?.1),
        0.0,
    );
    if fwd.contains("text.eot_index") {
        let eot: Vec<i64> = classes.eot.iter().map(|&e| e as i64).collect();
        push(
            &mut out,
            n("eot-index"),
            mismatches(&eot, &fwd.i64("text.eot_index")?.1),
            0.0,
        );
    }
    let prefix = if method == Method::Ivlp {
        "prompt_learner."
    } else {
        ""
    };
    let lens_key = format!("{prefix}name_lens");
    if init.contains(&lens_key) {
        let lens: Vec<i64> = classes.name_lens.iter().map(|&l| l as i64).collect();
        push(
            &mut out,
            n("name-lens"),
            mismatches(&lens, &init.i64(&lens_key)?.1),
            0.0,
        );
    }
    let [c, len, _] = classes.embeddings.dims();
    let pre_key = format!("{prefix}token_prefix");
    if init.contains(&pre_key) {
        let n_ctx = init_params["ctx"].shape[init_params["ctx"].shape.len() - 2];
        push(
            &mut out,
            n("token-prefix (exact)"),
            compare_rows(
                classes.embeddings.clone().slice([0..c, 0..1]),
                &init,
                &pre_key,
            )?,
            0.0,
        );
        push(
            &mut out,
            n("token-suffix (exact)"),
            compare_rows(
                classes.embeddings.clone().slice([0..c, 1 + n_ctx..len]),
                &init,
                &format!("{prefix}token_suffix"),
            )?,
            0.0,
        );
    }

    // Forward at the reference's initial parameters.
    let init_path = fx.dir.join("init.safetensors");
    let learner = checkpoint::load_named::<B, _>(fresh, &init_params, &init_path)?;
    let model = PromptedClip::new(clip, learner);
    let images: Tensor<B, 4> = fwd.tensor("input.images", device)?;

    // Image tower.
    let v = model.learner.vision_prompts();
    let mut tokens = model.clip.visual.embed(images.clone());
    if let Some(shallow) = v.shallow.clone() {
        let [b, _, vw] = tokens.dims();
        let k = shallow.dims()[0];
        tokens = Tensor::cat(
            vec![tokens, shallow.unsqueeze_dim::<3>(0).expand([b, k, vw])],
            1,
        );
    }
    push(
        &mut out,
        n("vision.tokens_pre_ln"),
        compare(tokens.clone(), &fwd, "vision.tokens_pre_ln")?,
        a,
    );
    let rec = Recorder::new(&v.deep);
    let image = model.clip.visual.encode_tokens(tokens, &rec);
    let inputs = rec.inputs.take();
    let outputs = rec.outputs.take();
    push(
        &mut out,
        n("vision.x0"),
        compare(inputs[0].clone(), &fwd, "vision.x0")?,
        a,
    );
    for (i, (x, y)) in inputs.iter().zip(&outputs).enumerate() {
        for (what, t) in [("input", x), ("output", y)] {
            let key = format!("vision.block{i}.{what}");
            if fwd.contains(&key) {
                push(&mut out, n(&key), compare(t.clone(), &fwd, &key)?, a);
            }
        }
    }
    let last = outputs
        .last()
        .cloned()
        .ok_or_else(|| anyhow!("no vision blocks"))?;
    push(
        &mut out,
        n("vision.pooled"),
        compare(vision_pooled(&model.clip, last), &fwd, "vision.pooled")?,
        a,
    );
    push(
        &mut out,
        n("image.features"),
        compare(image.clone(), &fwd, "image.features")?,
        a,
    );
    let image_norm = l2_normalize(image.clone());
    push(
        &mut out,
        n("image.features_norm"),
        compare(image_norm.clone(), &fwd, "image.features_norm")?,
        tol.normalized,
    );
    // The library's own call (pooled last block, no recording hook) against the
    // reference too: on fusing backends (WGPU, CUDA) it rounds differently from the staged
    // path above, so the two are each held to the reference rather than to each other.
    push(
        &mut out,
        n("vision.encode_image"),
        compare(model.encode_image(images.clone()), &fwd, "image.features")?,
        a,
    );

    // Text tower.
    if let AnyLearner::CoCoOp(l) = &model.learner {
        push(
            &mut out,
            n("cocoop.meta_net.input"),
            compare(image_norm.clone(), &fwd, "cocoop.meta_net.input")?,
            tol.normalized,
        );
        push(
            &mut out,
            n("cocoop.meta_net.hidden"),
            compare(
                l.meta_net.hidden(image_norm.clone()),
                &fwd,
                "cocoop.meta_net.hidden",
            )?,
            a,
        );
        push(
            &mut out,
            n("cocoop.meta_net.output"),
            compare(
                l.meta_net.forward(image_norm.clone()),
                &fwd,
                "cocoop.meta_net.output",
            )?,
            a,
        );
        push(
            &mut out,
            n("cocoop.ctx_shifted"),
            compare(
                l.ctx_shifted(image_norm.clone()),
                &fwd,
                "cocoop.ctx_shifted",
            )?,
            a,
        );
    }
    let conditioned = model.learner.image_conditioned();
    let t = model
        .learner
        .text_prompts(&classes, conditioned.then_some(&image_norm))?;
    if fwd.contains("text.prompts") {
        // A pure copy of token embeddings and parameters, except Co-CoOp's computed shift.
        let (label, tol_prompts) = if conditioned {
            ("text.prompts", a)
        } else {
            ("text.prompts (exact)", 0.0)
        };
        push(
            &mut out,
            n(label),
            compare_rows(t.embeddings.clone(), &fwd, "text.prompts")?,
            tol_prompts,
        );
    }
    let rec = Recorder::new(&t.deep);
    let text = model
        .clip
        .text
        .encode_embeddings(t.embeddings.clone(), &t.eot, &rec);
    let inputs = rec.inputs.take();
    let outputs = rec.outputs.take();
    if fwd.contains("text.x0") {
        push(
            &mut out,
            n("text.x0"),
            compare_rows(inputs[0].clone(), &fwd, "text.x0")?,
            a,
        );
    }
    for (i, y) in outputs.iter().enumerate() {
        let key = format!("text.block{i}.output");
        if fwd.contains(&key) {
            push(&mut out, n(&key), compare_rows(y.clone(), &fwd, &key)?, a);
        }
    }
    if fwd.contains("text.pooled") {
        let last = outputs
            .last()
            .cloned()
            .ok_or_else(|| anyhow!("no text blocks"))?;
        push(
            &mut out,
            n("text.pooled"),
            compare_flat(text_pooled(&model.clip, last, &t.eot), &fwd, "text.pooled")?,
            a,
        );
    }
    push(
        &mut out,
        n("text.features"),
        compare_flat(text.clone(), &fwd, "text.features")?,
        a,
    );
    let text_norm = l2_normalize(text.clone());
    push(
        &mut out,
        n("text.features_norm"),
        compare_flat(text_norm.clone(), &fwd, "text.features_norm")?,
        tol.normalized,
    );
    if init.contains("embeddings.fixed_embeddings") {
        push(
            &mut out,
            n("text.fixed-embeddings"),
            compare(text.clone(), &init, "embeddings.fixed_embeddings")?,
            a,
        );
    }
    if !conditioned {
        push(
            &mut out,
            n("logits"),
            compare(
                model.clip.logits(image.clone(), text.clone()),
                &fwd,
                "logits",
            )?,
            a,
        );
    }
    push(
        &mut out,
        n("forward.logits"),
        compare(model.forward(images.clone(), &classes)?, &fwd, "logits")?,
        a,
    );
    push(
        &mut out,
        n(&format!(
            "clip-frozen ({} tensors)",
            named_params(&model.clip).len()
        )),
        count_trainable(&model.clip) as f64,
        0.0,
    );

    // Three SGD steps at a constant lr on the same batch.
    let labels: Vec<i64> = fwd.i64("input.labels")?.1;
    let labels_host: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
    let label_t =
        Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), device);
    let lr = fx
        .cfg("/optim/train_step_lr")?
        .as_f64()
        .ok_or_else(|| anyhow!("optim.train_step_lr"))?;
    let sgd_cfg = SgdConfig {
        momentum: fx.cfg("/optim/MOMENTUM")?.as_f64().unwrap_or(0.9),
        weight_decay: fx.cfg("/optim/WEIGHT_DECAY")?.as_f64().unwrap_or(5e-4),
    };
    let clip_before = named_params(&model.clip);
    let mut model = model;
    let mut sgd = Sgd::<B::InnerBackend>::new(sgd_cfg);
    let n_steps = (1..)
        .take_while(|k| steps.contains(&format!("step{k}.loss")))
        .count();
    let ts_path = fx.dir.join("train_step.safetensors");
    for k in 1..=n_steps {
        if k > 1 {
            // Teacher forcing: start from the reference's parameters and momentum after the
            // previous step, so each step's own error is measured (a logit scale of 100
            // amplifies fp32 rounding along a free-running chain).
            let prev =
                learner_tensors(method, &steps, &format!("step{}.param.", k - 1), &trainable)?;
            model.learner = checkpoint::load_named::<B, _>(model.learner, &prev, &ts_path)?;
            let mom = learner_tensors(
                method,
                &steps,
                &format!("step{}.momentum_buffer.", k - 1),
                &trainable,
            )?;
            sgd.buffers = mom
                .into_iter()
                .map(|(path, t)| {
                    let len = t.data.len();
                    (
                        path,
                        Tensor::from_data(TensorData::new(t.data, [len]), device),
                    )
                })
                .collect();
        }
        let logits = model.forward(images.clone(), &classes)?;
        push(
            &mut out,
            n(&format!("step{k}.logits")),
            compare(logits.clone(), &steps, &format!("step{k}.logits"))?,
            a,
        );
        let loss = cross_entropy(logits, label_t.clone());
        let ref_loss = steps.scalar_f64(&format!("step{k}.loss"))?;
        let ours_loss = HostTensor::from_tensor(loss.clone()).data[0] as f64;
        push(
            &mut out,
            n(&format!("step{k}.loss (relative)")),
            (ours_loss - ref_loss).abs() / ref_loss.abs(),
            tol.loss_rel,
        );
        let grads = loss.backward();
        let g = to_official_tensors(method, &named_grads(&model.learner, &grads));
        for t in &trainable {
            let want = steps.f32(&format!("step{k}.grad.{t}"))?;
            let err = g.get(t).map_or(f64::INFINITY, |o| max_abs_diff(o, &want));
            push(
                &mut out,
                n(&format!("grad.step{k}.{t} (rel. to max|grad|)")),
                err / max_abs(&want.data),
                tol.grad_rel_to_max,
            );
        }
        model.learner = sgd.step::<B, _>(lr, model.learner, &grads);
        let p = to_official_tensors(method, &named_params(&model.learner));
        let shapes = named_params(&model.learner);
        let mom: BTreeMap<String, HostTensor> = sgd
            .buffers
            .iter()
            .map(|(path, buf)| {
                let data = HostTensor::from_tensor(buf.clone()).data;
                let shape = shapes
                    .get(path)
                    .map_or_else(|| vec![data.len()], |t| t.shape.clone());
                (path.clone(), HostTensor::new(shape, data))
            })
            .collect();
        let mom = to_official_tensors(method, &mom);
        for t in &trainable {
            let want = steps.f32(&format!("step{k}.param.{t}"))?;
            let err = p.get(t).map_or(f64::INFINITY, |o| max_abs_diff(o, &want));
            push(&mut out, n(&format!("step{k}.param.{t}")), err, tol.param);
            // Momentum buffers accumulate gradients: gradient tolerance.
            let want = steps.f32(&format!("step{k}.momentum_buffer.{t}"))?;
            let err = mom.get(t).map_or(f64::INFINITY, |o| max_abs_diff(o, &want));
            push(
                &mut out,
                n(&format!("step{k}.momentum_buffer.{t} (rel. to max|buf|)")),
                err / max_abs(&want.data),
                tol.grad_rel_to_max,
            );
        }
    }
    // Free running from the initial parameters through the library's own training step.
    let forced = model.learner.clone();
    let blank = cfg.init(&model.clip, &tok, class_names.len())?;
    model.learner = checkpoint::load_named::<B, _>(blank, &init_params, &init_path)?;
    let mut free_sgd = Sgd::<B::InnerBackend>::new(sgd_cfg);
    for k in 1..=n_steps {
        let step = model.train_step(&mut free_sgd, lr, images.clone(), &labels_host, &classes)?;
        let ref_loss = steps.scalar_f64(&format!("step{k}.loss"))?;
        push(
            &mut out,
            n(&format!("free-running.step{k}.loss (relative)")),
            (step.loss - ref_loss).abs() / ref_loss.abs(),
            tol.loss_rel,
        );
        let want = learner_tensors(method, &steps, &format!("step{k}.param."), &trainable)?;
        push(
            &mut out,
            n(&format!("free-running.step{k}.params")),
            diff_all(&named_params(&model.learner), &want),
            tol.param,
        );
    }
    model.learner = forced;
    push(
        &mut out,
        n("clip-unchanged-after-steps"),
        diff_all(&named_params(&model.clip), &clip_before),
        0.0,
    );

    // Our checkpoint round-trips exactly, momentum and settings included.
    let tmp = std::env::temp_dir().join(format!(
        "maple-parity-{name}-{}.safetensors",
        std::process::id()
    ));
    let state = CheckpointState {
        epoch: n_steps,
        config: model.learner.settings(),
        class_names: class_names.clone(),
        momentum: sgd
            .buffers
            .iter()
            .map(|(k, v)| (k.clone(), HostTensor::from_tensor(v.clone())))
            .collect(),
        extra: serde_json::json!({}),
    };
    checkpoint::save_checkpoint::<B, _>(&tmp, &model.learner, &state)?;
    let settings = MethodConfig::from_settings(&state.config)?;
    let blank = settings.init(&model.clip, &tok, class_names.len())?;
    let loaded = checkpoint::load_checkpoint::<B, _>(&tmp, blank);
    let _ = std::fs::remove_file(&tmp);
    let (loaded, loaded_state) = loaded?;
    let rt = diff_all(&named_params(&loaded), &named_params(&model.learner)).max(
        if loaded_state == state && settings == cfg {
            0.0
        } else {
            f64::INFINITY
        },
    );
    push(&mut out, n("checkpoint.learner-roundtrip"), rt, 0.0);

    // The reference's checkpoint: method, sizes and class count from the file, exact values.
    let ckpt_path = fx.dir.join(
        fx.cfg("/checkpoint/path_in_fixture")?
            .as_str()
            .ok_or_else(|| anyhow!("checkpoint.path_in_fixture"))?,
    );
    let r = read_reference_checkpoint(&ckpt_path)?;
    push(
        &mut out,
        n("checkpoint.reference-method"),
        if r.method == method { 0.0 } else { 1.0 },
        0.0,
    );
    // What a user would request: the method's reference settings (sizes come from the file),
    // with the fixture's context words and class-token position.
    let requested = match (MethodConfig::reference(method), &cfg) {
        (MethodConfig::CoOp(d), MethodConfig::CoOp(c)) => MethodConfig::CoOp(
            d.with_ctx_init(c.ctx_init.clone())
                .with_class_token_position(c.class_token_position),
        ),
        (MethodConfig::CoCoOp(d), MethodConfig::CoCoOp(c)) => {
            MethodConfig::CoCoOp(d.with_ctx_init(c.ctx_init.clone()))
        }
        (MethodConfig::Ivlp(d), MethodConfig::Ivlp(c)) => {
            MethodConfig::Ivlp(d.with_ctx_init(c.ctx_init.clone()))
        }
        (d, _) => d,
    };
    let derived = r.settings_for(&requested)?;
    push(
        &mut out,
        n("checkpoint.reference-settings-from-tensors"),
        if derived == cfg { 0.0 } else { 1.0 },
        0.0,
    );
    let want_classes = if matches!(&cfg, MethodConfig::CoOp(c) if c.effective_csc()) {
        class_names.len()
    } else {
        0
    };
    push(
        &mut out,
        n("checkpoint.reference-num-classes"),
        r.num_classes().abs_diff(want_classes) as f64,
        0.0,
    );
    let (imported, _) = r.learner(&requested, &model.clip, &tok, &ckpt_path)?;
    let want = learner_tensors(method, &steps, &format!("step{n_steps}.param."), &trainable)?;
    push(
        &mut out,
        n("checkpoint.reference-import-params (exact)"),
        diff_all(&named_params(&imported), &want),
        0.0,
    );
    let want_epoch = fx.cfg("/checkpoint/epoch")?.as_i64();
    push(
        &mut out,
        n("checkpoint.reference-import-epoch"),
        if r.epoch == want_epoch { 0.0 } else { 1.0 },
        0.0,
    );

    // The per-epoch schedule of a full official run.
    let schedule = LrSchedule {
        lr: fx
            .cfg("/optim/LR")?
            .as_f64()
            .ok_or_else(|| anyhow!("optim.LR"))?,
        max_epoch: usize_at(fx, "/optim/MAX_EPOCH")?,
        warmup_epochs: usize_at(fx, "/optim/WARMUP_EPOCH")?,
        warmup_lr: fx
            .cfg("/optim/WARMUP_CONS_LR")?
            .as_f64()
            .ok_or_else(|| anyhow!("optim.WARMUP_CONS_LR"))?,
    };
    let epoch_lrs = fx
        .cfg("/optim/epoch_lrs")?
        .as_array()
        .ok_or_else(|| anyhow!("optim.epoch_lrs is not a list"))?;
    let mut worst: f64 = if epoch_lrs.len() == schedule.max_epoch {
        0.0
    } else {
        f64::INFINITY
    };
    for (e, want) in epoch_lrs.iter().enumerate() {
        let want = want
            .as_f64()
            .ok_or_else(|| anyhow!("optim.epoch_lrs[{e}] is not a number"))?;
        worst = worst.max((schedule.lr_at(e) - want).abs());
    }
    push(
        &mut out,
        n(&format!(
            "lr.epochs-1-to-{} (max over epochs)",
            epoch_lrs.len()
        )),
        worst,
        tol.lr,
    );

    // Evaluation without autodiff gives the training graph's logits (to fp32 rounding).
    let inner = model.valid();
    let inner_classes = classes.to_backend::<B::InnerBackend>(&images.device());
    let eval_logits =
        HostTensor::from_tensor(inner.forward(images.clone().inner(), &inner_classes)?);
    let train_logits = HostTensor::from_tensor(model.forward(images, &classes)?);
    push(
        &mut out,
        n("eval-matches-train-graph"),
        max_abs_diff(&eval_logits, &train_logits),
        a,
    );
    Ok(out)
}
