//! MaPLe checks: learner construction, forward activations, loss, gradients, SGD steps,
//! the learning-rate schedule and checkpoints, against `maple_init.safetensors`,
//! `forward.safetensors`, `train_step.safetensors` and the reference checkpoint.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use clip_model::tokenizer::Tokenizer;
use clip_model::Clip;
use clip_model::HostTensor;
use maple_prompts::checkpoint::{
    self, named_grads, named_params, to_reference_layout, CheckpointState,
};
use maple_prompts::{
    cross_entropy, ClassTokens, LrSchedule, Maple, MapleConfig, PromptLearner, PromptedClip, Sgd,
    SgdConfig,
};

use super::{
    compare, compare_prefix, max_abs_diff, push, CheckResult, Fixture, Recorder, TensorFile,
};

/// The fixture's MaPLe configuration (`config.json` `maple.*`).
pub fn maple_config(fx: &Fixture) -> Result<MapleConfig> {
    let n_ctx = fx
        .cfg("/maple/N_CTX")?
        .as_u64()
        .ok_or_else(|| anyhow!("maple.N_CTX is not a number"))? as usize;
    let depth = fx
        .cfg("/maple/PROMPT_DEPTH")?
        .as_u64()
        .ok_or_else(|| anyhow!("maple.PROMPT_DEPTH is not a number"))? as usize;
    let init = fx
        .cfg("/maple/CTX_INIT")?
        .as_str()
        .map(String::from)
        .filter(|s| !s.is_empty());
    Ok(MapleConfig::new()
        .with_n_ctx(n_ctx)
        .with_depth(depth)
        .with_ctx_init(init))
}

/// The learner tensors of a fixture file under `prefix` (e.g. `init.param.`), in Burn layout.
pub(super) fn learner_tensors(
    file: &TensorFile,
    prefix: &str,
    names: &[String],
) -> Result<BTreeMap<String, HostTensor>> {
    let mut out = BTreeMap::new();
    for name in names {
        let key = format!("{prefix}{name}");
        out.insert(
            name.trim_start_matches("prompt_learner.").to_string(),
            file.f32(&key)?,
        );
    }
    Ok(maple_prompts::checkpoint::from_reference_layout(&out))
}

/// Largest absolute difference over all tensors of `ours` against `want` (∞ if a name is missing).
pub(super) fn diff_all(
    ours: &BTreeMap<String, HostTensor>,
    want: &BTreeMap<String, HostTensor>,
) -> f64 {
    let mut m: f64 = if ours.len() == want.len() {
        0.0
    } else {
        f64::INFINITY
    };
    for (k, w) in want {
        let d = ours.get(k).map_or(f64::INFINITY, |o| max_abs_diff(o, w));
        m = if d.is_nan() { f64::NAN } else { m.max(d) };
    }
    m
}

/// Every MaPLe check. Runs on an autodiff backend (gradients and steps); the forward
/// checks run on the same backend.
pub fn maple_checks<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<CheckResult>> {
    let tol = fx.tol.clone();
    let mut out = Vec::new();
    let fwd = fx.tensors("forward.safetensors")?;
    let init = fx.tensors("maple_init.safetensors")?;
    let steps = fx.tensors("train_step.safetensors")?;
    let trainable = fx.cfg_strings("/maple/trainable_parameters")?;
    let class_names = fx.cfg_strings("/maple/classnames")?;
    let cfg = maple_config(fx)?;
    let tok = Tokenizer::new();
    let (clip, _) = Clip::<B>::from_safetensors(&fx.dir.join("clip.safetensors"), device)?;

    // Construction: context from the CTX_INIT embeddings, identical deep couplings, prompts.
    let fresh = Maple::<B>::new(&cfg, &clip, &tok)?;
    push(
        &mut out,
        "maple.init.ctx-from-ctx-init",
        max_abs_diff(
            &HostTensor::from_tensor(fresh.ctx.val()),
            &init.f32("prompt_learner.ctx")?,
        ),
        0.0,
    );
    let ours = named_params(&fresh);
    let spread = (1..cfg.depth.saturating_sub(1))
        .flat_map(|j| ["weight", "bias"].map(|p| (j, p)))
        .map(|(j, p)| {
            match (
                ours.get(&format!("compound_prompt_projections.0.{p}")),
                ours.get(&format!("compound_prompt_projections.{j}.{p}")),
            ) {
                (Some(a), Some(b)) => max_abs_diff(a, b),
                _ => f64::INFINITY,
            }
        })
        .fold(0.0, f64::max);
    push(&mut out, "maple.init.couplings-identical", spread, 0.0);
    let shapes_ok = learner_tensors(&init, "", &trainable)?
        .iter()
        .all(|(k, v)| ours.get(k).map(|o| o.shape == v.shape) == Some(true));
    push(
        &mut out,
        "maple.init.parameter-shapes",
        if shapes_ok && ours.len() == trainable.len() {
            0.0
        } else {
            1.0
        },
        0.0,
    );

    let classes = ClassTokens::<B>::new(&clip, &tok, fresh.prompt_prefix(), &class_names)?;
    let (_, want_rows) = init.i64("prompt_learner.tokenized_prompts")?;
    let got_rows: Vec<i64> = classes.rows.iter().flatten().map(|&x| x as i64).collect();
    let bad = got_rows
        .iter()
        .zip(&want_rows)
        .filter(|(a, b)| a != b)
        .count()
        + got_rows.len().abs_diff(want_rows.len());
    push(&mut out, "maple.tokenized-prompts", bad as f64, 0.0);
    let eot_want = fwd.i64("maple.text.eot_index")?.1;
    let eot_bad = classes
        .eot
        .iter()
        .zip(&eot_want)
        .filter(|(a, b)| **a as i64 != **b)
        .count();
    push(&mut out, "maple.eot-index", eot_bad as f64, 0.0);

    // Forward at the reference's initial parameters.
    let init_params = learner_tensors(&init, "", &trainable)?;
    let learner = checkpoint::load_named::<B, _>(
        fresh,
        &init_params,
        &fx.dir.join("maple_init.safetensors"),
    )?;
    let model = PromptedClip { clip, learner };
    let a = tol.activation;
    let prompts = model.learner.prompts(&classes);
    push(
        &mut out,
        "maple.prompts",
        compare_prefix(prompts, &fwd, "maple.prompts")?,
        a,
    );
    push(
        &mut out,
        "maple.shared_ctx",
        compare(model.learner.shared_ctx(), &fwd, "maple.shared_ctx")?,
        a,
    );
    for (j, p) in model.learner.deep_visual_prompts().into_iter().enumerate() {
        push(
            &mut out,
            format!("maple.deep_visual_prompts.{j}"),
            compare(p, &fwd, &format!("maple.deep_visual_prompts.{j}"))?,
            a,
        );
    }
    for (j, p) in model.learner.compound_prompts_text.iter().enumerate() {
        push(
            &mut out,
            format!("maple.deep_text_prompts.{j}"),
            compare(p.val(), &fwd, &format!("maple.deep_text_prompts.{j}"))?,
            a,
        );
    }

    let t = model.learner.text_prompts(&classes, None)?;
    let rec = Recorder::new(&t.deep);
    let text = model
        .clip
        .text
        .encode_embeddings(t.embeddings, &t.eot, &rec);
    for (i, x) in rec.inputs.take().into_iter().enumerate() {
        push(
            &mut out,
            format!("maple.text.block{i}.input"),
            compare_prefix(x, &fwd, &format!("maple.text.block{i}.input"))?,
            a,
        );
    }
    for (i, x) in rec.outputs.take().into_iter().enumerate() {
        push(
            &mut out,
            format!("maple.text.block{i}.output"),
            compare_prefix(x, &fwd, &format!("maple.text.block{i}.output"))?,
            a,
        );
    }
    let images: Tensor<B, 4> = fwd.tensor("input.images", device)?;
    let v = model.learner.vision_prompts();
    let tokens = model.clip.visual.embed(images.clone());
    let [b, _, w] = tokens.dims();
    let shallow = v.shallow.clone().expect("MaPLe has shallow visual prompts");
    let n = shallow.dims()[0];
    let tokens = Tensor::cat(
        vec![tokens, shallow.unsqueeze_dim::<3>(0).expand([b, n, w])],
        1,
    );
    push(
        &mut out,
        "maple.vision.tokens_pre_ln",
        compare(tokens.clone(), &fwd, "maple.vision.tokens_pre_ln")?,
        a,
    );
    let rec = Recorder::new(&v.deep);
    let image = model.clip.visual.encode_tokens(tokens, &rec);
    let inputs = rec.inputs.take();
    push(
        &mut out,
        "maple.vision.x0",
        compare(inputs[0].clone(), &fwd, "maple.vision.x0")?,
        a,
    );
    for (i, x) in inputs.into_iter().enumerate() {
        push(
            &mut out,
            format!("maple.vision.block{i}.input"),
            compare(x, &fwd, &format!("maple.vision.block{i}.input"))?,
            a,
        );
    }
    for (i, x) in rec.outputs.take().into_iter().enumerate() {
        push(
            &mut out,
            format!("maple.vision.block{i}.output"),
            compare(x, &fwd, &format!("maple.vision.block{i}.output"))?,
            a,
        );
    }
    push(
        &mut out,
        "maple.text_features",
        compare(text.clone(), &fwd, "maple.text_features")?,
        a,
    );
    push(
        &mut out,
        "maple.image_features",
        compare(image.clone(), &fwd, "maple.image_features")?,
        a,
    );
    push(
        &mut out,
        "maple.text_features_norm",
        compare(
            clip_model::l2_normalize(text.clone()),
            &fwd,
            "maple.text_features_norm",
        )?,
        tol.normalized,
    );
    push(
        &mut out,
        "maple.image_features_norm",
        compare(
            clip_model::l2_normalize(image.clone()),
            &fwd,
            "maple.image_features_norm",
        )?,
        tol.normalized,
    );
    push(
        &mut out,
        "maple.logits",
        compare(model.clip.logits(image, text), &fwd, "maple.logits")?,
        a,
    );
    push(
        &mut out,
        "maple.forward.logits",
        compare(
            model.forward(images.clone(), &classes)?,
            &fwd,
            "maple.logits",
        )?,
        a,
    );

    // CLIP stays frozen: no CLIP parameter requires a gradient.
    let clip_params = named_params(&model.clip);
    let frozen_bad = count_trainable(&model.clip);
    push(
        &mut out,
        format!("maple.clip-frozen ({} tensors)", clip_params.len()),
        frozen_bad as f64,
        0.0,
    );

    // Three SGD steps at a constant lr on the same batch.
    let labels: Vec<i64> = fwd.i64("input.labels")?.1;
    let lr = fx
        .cfg("/optim/train_step_lr")?
        .as_f64()
        .ok_or_else(|| anyhow!("optim.train_step_lr"))?;
    let sgd_cfg = SgdConfig {
        momentum: fx.cfg("/optim/MOMENTUM")?.as_f64().unwrap_or(0.9),
        weight_decay: fx.cfg("/optim/WEIGHT_DECAY")?.as_f64().unwrap_or(5e-4),
    };
    let label_t =
        Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), device);
    let PromptedClip { clip, learner } = model;
    let clip_before = named_params(&clip);
    let mut model = PromptedClip { clip, learner };
    let mut sgd = Sgd::<B::InnerBackend>::new(sgd_cfg);
    let n_steps = (1..)
        .take_while(|k| steps.contains(&format!("step{k}.loss")))
        .count();
    // Each step starts from the reference's parameters and momentum after the previous
    // step ("teacher forcing"): with a logit scale of 100 a free-running chain amplifies
    // fp32 rounding step after step, while this measures each step's own error.
    let ts_path = fx.dir.join("train_step.safetensors");
    for k in 1..=n_steps {
        if k > 1 {
            let prev = learner_tensors(&steps, &format!("step{}.param.", k - 1), &trainable)?;
            model.learner = checkpoint::load_named::<B, _>(model.learner, &prev, &ts_path)?;
            let mom = learner_tensors(
                &steps,
                &format!("step{}.momentum_buffer.", k - 1),
                &trainable,
            )?;
            sgd.buffers = mom
                .into_iter()
                .map(|(name, t)| {
                    (
                        name,
                        Tensor::from_data(TensorData::new(t.data.clone(), [t.data.len()]), device),
                    )
                })
                .collect();
        }
        let logits = model.forward(images.clone(), &classes)?;
        push(
            &mut out,
            format!("step{k}.logits"),
            compare(logits.clone(), &steps, &format!("step{k}.logits"))?,
            a,
        );
        let loss = cross_entropy(logits, label_t.clone());
        let ref_loss = steps.scalar_f64(&format!("step{k}.loss"))?;
        let ours_loss = HostTensor::from_tensor(loss.clone()).data[0] as f64;
        push(
            &mut out,
            format!("step{k}.loss (relative)"),
            (ours_loss - ref_loss).abs() / ref_loss.abs(),
            tol.loss_rel,
        );
        let grads = loss.backward();
        let g = to_reference_layout(&named_grads(&model.learner, &grads));
        for name in &trainable {
            let want = steps.f32(&format!("step{k}.grad.{name}"))?;
            let max = want.data.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
            let err = g
                .get(name)
                .map_or(f64::INFINITY, |o| max_abs_diff(o, &want));
            push(
                &mut out,
                format!("grad.step{k}.{name} (rel. to max|grad|)"),
                err / max.max(f64::MIN_POSITIVE),
                tol.grad_rel_to_max,
            );
        }
        model.learner = sgd.step::<B, _>(lr, model.learner, &grads);
        let p = to_reference_layout(&named_params(&model.learner));
        for name in &trainable {
            let want = steps.f32(&format!("step{k}.param.{name}"))?;
            let err = p
                .get(name)
                .map_or(f64::INFINITY, |o| max_abs_diff(o, &want));
            push(
                &mut out,
                format!("step.step{k}.param.{name}"),
                err,
                tol.param,
            );
        }
        let mom = momentum_reference_layout(&sgd, &model.learner);
        // Momentum buffers accumulate gradients, so they get the gradient tolerance.
        let err = trainable
            .iter()
            .map(|name| {
                let key = format!("step{k}.momentum_buffer.{name}");
                match (steps.f32(&key), mom.get(name)) {
                    (Ok(want), Some(o)) => {
                        let max = want
                            .data
                            .iter()
                            .fold(0.0f64, |m, x| m.max(x.abs() as f64))
                            .max(f64::MIN_POSITIVE);
                        max_abs_diff(o, &want) / max
                    }
                    _ => f64::INFINITY,
                }
            })
            .fold(0.0, f64::max);
        push(
            &mut out,
            format!("step.step{k}.momentum-buffers (rel. to max|buf|)"),
            err,
            tol.grad_rel_to_max,
        );
    }
    // Free running: the same steps from the initial parameters, each from our own previous
    // parameters and momentum (the "parameters after 1 and after 3 SGD steps").
    let forced = model.learner.clone();
    model.learner = initial_learner(fx, &cfg, &model.clip, &tok, &init_params)?;
    let mut free_sgd = Sgd::<B::InnerBackend>::new(sgd_cfg);
    let labels_host: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
    for k in 1..=n_steps {
        model.train_step(&mut free_sgd, lr, images.clone(), &labels_host, &classes)?;
        let want = learner_tensors(&steps, &format!("step{k}.param."), &trainable)?;
        push(
            &mut out,
            format!("step.free-running.step{k}.params"),
            diff_all(&named_params(&model.learner), &want),
            tol.param,
        );
    }
    model.learner = forced;

    let clip_after = named_params(&model.clip);
    push(
        &mut out,
        "step.clip-unchanged-after-steps",
        diff_all(&clip_after, &clip_before),
        0.0,
    );

    // Checkpoints: ours round-trips exactly; the reference's imports to the step-3 parameters.
    let tmp = std::env::temp_dir().join(format!("maple-parity-{}.safetensors", std::process::id()));
    let state = CheckpointState {
        epoch: n_steps,
        config: serde_json::to_value(&cfg)?,
        class_names: class_names.clone(),
        momentum: sgd
            .buffers
            .iter()
            .map(|(k, v)| (k.clone(), HostTensor::from_tensor(v.clone())))
            .collect(),
        extra: serde_json::json!({}),
    };
    checkpoint::save_checkpoint::<B, _>(&tmp, &model.learner, &state)?;
    let blank = Maple::<B>::new(&cfg, &model.clip, &tok)?;
    let (loaded, loaded_state) = checkpoint::load_checkpoint::<B, _>(&tmp, blank)?;
    let _ = std::fs::remove_file(&tmp);
    let rt = diff_all(&named_params(&loaded), &named_params(&model.learner))
        .max(diff_all(&loaded_state.momentum, &state.momentum))
        .max(if loaded_state == state {
            0.0
        } else {
            f64::INFINITY
        });
    push(&mut out, "checkpoint.learner-roundtrip", rt, 0.0);
    let ckpt_path = fx.dir.join(
        fx.cfg("/checkpoint/path_in_fixture")?
            .as_str()
            .unwrap_or("checkpoint/MultiModalPromptLearner/model.pth.tar-5"),
    );
    let blank = Maple::<B>::new(&cfg, &model.clip, &tok)?;
    let (imported, epoch) = checkpoint::import_reference::<B, _>(&ckpt_path, blank)?;
    let want = learner_tensors(&steps, &format!("step{n_steps}.param."), &trainable)?;
    push(
        &mut out,
        "checkpoint.reference-import-params",
        diff_all(&named_params(&imported), &want),
        tol.param,
    );
    let want_epoch = fx.cfg("/checkpoint/epoch")?.as_i64();
    push(
        &mut out,
        "checkpoint.reference-import-epoch",
        if epoch == want_epoch { 0.0 } else { 1.0 },
        0.0,
    );

    // The schedule, alone and driving a 1-batch-per-epoch run from the initial parameters.
    let max_epoch = fx.cfg("/optim/MAX_EPOCH")?.as_u64().unwrap_or(5) as usize;
    let schedule = LrSchedule {
        lr: fx
            .cfg("/optim/LR")?
            .as_f64()
            .ok_or_else(|| anyhow!("optim.LR"))?,
        max_epoch,
        warmup_epochs: fx.cfg("/optim/WARMUP_EPOCH")?.as_u64().unwrap_or(1) as usize,
        warmup_lr: fx.cfg("/optim/WARMUP_CONS_LR")?.as_f64().unwrap_or(1e-5),
    };
    let epoch_lrs = fx
        .cfg("/optim/epoch_lrs")?
        .as_array()
        .ok_or_else(|| anyhow!("optim.epoch_lrs"))?;
    for e in epoch_lrs {
        let epoch = e["epoch"]
            .as_u64()
            .ok_or_else(|| anyhow!("epoch_lrs entry without epoch"))? as usize;
        let want = e["lr"]
            .as_f64()
            .ok_or_else(|| anyhow!("epoch_lrs entry without lr"))?;
        push(
            &mut out,
            format!("lr.epoch{epoch}"),
            (schedule.lr_at(epoch - 1) - want).abs(),
            tol.lr,
        );
    }
    model.learner = initial_learner(fx, &cfg, &model.clip, &tok, &init_params)?;
    let mut sgd = Sgd::<B::InnerBackend>::new(sgd_cfg);
    for e in 1..=max_epoch {
        if !steps.contains(&format!("sched_run.epoch{e}.loss")) {
            break;
        }
        if e > 1 {
            // Teacher forcing as above (the schedule run stores no momentum: ours is kept).
            let prev = learner_tensors(
                &steps,
                &format!("sched_run.epoch{}.param.", e - 1),
                &trainable,
            )?;
            model.learner = checkpoint::load_named::<B, _>(model.learner, &prev, &ts_path)?;
        }
        let lr_ref = steps.scalar_f64(&format!("sched_run.epoch{e}.lr"))?;
        push(
            &mut out,
            format!("lr.sched_run.epoch{e}"),
            (schedule.lr_at(e - 1) - lr_ref).abs(),
            tol.lr,
        );
        let step = model.train_step(
            &mut sgd,
            schedule.lr_at(e - 1),
            images.clone(),
            &labels_host,
            &classes,
        )?;
        let ref_loss = steps.scalar_f64(&format!("sched_run.epoch{e}.loss"))?;
        push(
            &mut out,
            format!("step.sched_run.epoch{e}.loss (relative)"),
            (step.loss - ref_loss).abs() / ref_loss.abs(),
            tol.loss_rel,
        );
        let want = learner_tensors(&steps, &format!("sched_run.epoch{e}.param."), &trainable)?;
        push(
            &mut out,
            format!("step.sched_run.epoch{e}.params"),
            diff_all(&named_params(&model.learner), &want),
            tol.param,
        );
    }
    // Evaluation without autodiff gives the same logits as the training graph, to fp32
    // rounding: the training graph multiplies by reciprocals where the evaluation kernels
    // divide (see `clip_model::ops`), so the two round differently by an ulp or so.
    let inner_clip = model.clip.valid();
    let inner = PromptedClip {
        clip: inner_clip,
        learner: model.learner.valid(),
    };
    let inner_classes = classes.to_backend::<B::InnerBackend>(&images.device());
    let eval_logits = inner.forward(images.clone().inner(), &inner_classes)?;
    let train_logits = model.forward(images, &classes)?;
    push(
        &mut out,
        "maple.eval-matches-train-graph",
        max_abs_diff(
            &HostTensor::from_tensor(eval_logits),
            &HostTensor::from_tensor(train_logits),
        ),
        a,
    );
    Ok(out)
}

/// A learner holding the fixture's initial parameters.
pub(super) fn initial_learner<B: AutodiffBackend>(
    fx: &Fixture,
    cfg: &MapleConfig,
    clip: &Clip<B>,
    tok: &Tokenizer,
    init_params: &BTreeMap<String, HostTensor>,
) -> Result<Maple<B>> {
    let blank = Maple::<B>::new(cfg, clip, tok)?;
    Ok(checkpoint::load_named::<B, _>(
        blank,
        init_params,
        &fx.dir.join("maple_init.safetensors"),
    )?)
}

fn momentum_reference_layout<B: AutodiffBackend>(
    sgd: &Sgd<B::InnerBackend>,
    learner: &Maple<B>,
) -> BTreeMap<String, HostTensor> {
    let shapes = named_params(learner);
    let mut out = BTreeMap::new();
    for (k, v) in &sgd.buffers {
        let data = HostTensor::from_tensor(v.clone()).data;
        let shape = shapes
            .get(k)
            .map(|t| t.shape.clone())
            .unwrap_or_else(|| vec![data.len()]);
        out.insert(k.clone(), HostTensor::new(shape, data));
    }
    to_reference_layout(&out)
}

/// Number of parameters of `module` that require a gradient.
pub fn count_trainable<B: Backend, M: burn::module::Module<B>>(module: &M) -> usize {
    struct V(usize);
    impl<B: Backend> burn::module::ModuleVisitor<B> for V {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            self.0 += usize::from(p.val().is_require_grad());
        }
    }
    let mut v = V(0);
    module.visit(&mut v);
    v.0
}
