//! Base-to-novel on the procedural world ([`datasets::procedural`]): the protocol of
//! [`super::base_to_novel()`] on images rendered on the fly, so every method runs offline.

use std::sync::Arc;

use burn::tensor::backend::{AutodiffBackend, Backend};
use datasets::procedural::{Downstream, DownstreamConfig};
use datasets::Subsample;

use crate::config::RunConfig;
use crate::error::Result;
use crate::eval::evaluate_zero_shot;
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::procedural::{base_to_novel_sets, subsample_sets, ProceduralSplit};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow, ZERO_SHOT};
use crate::train::Backbone;

use super::base_to_novel::evaluated;
use super::run::{run_seed, EvalSpec, LearnerFrom};
use super::{method_summary, Context, ImportSpec};

/// The dataset name of the procedural world in records and paths.
pub const PROCEDURAL: &str = "procedural";

/// The common factor applied to every method's reference epoch count on the procedural
/// world with the toy CLIP (see [`demo_config`] and [`RunConfig::scaled_to`]). It is 1: the
/// reference epochs are kept (CoOp 200, Co-CoOp 10, IVLP, VPT and MaPLe 5), and the default
/// example's four methods and three seeds still run in about 2.5 minutes on two cores.
pub const DEMO_EPOCH_FACTOR: f64 = 1.0;

/// The procedural world sized for `backbone` (its image side), with the default classes
/// and images ([`DownstreamConfig::default`]).
pub fn demo_world<B: Backend>(backbone: &Backbone<B>) -> Result<Arc<Downstream>> {
    let config = DownstreamConfig {
        side: backbone.config.image_resolution as u32,
        ..DownstreamConfig::default()
    };
    Ok(Arc::new(Downstream::new(&config)?))
}

/// The reference configuration `reference` adapted to `backbone` for the procedural demo,
/// identically for every method: [`RunConfig::scaled_to`] with the CLIP's own logit scale
/// and [`DEMO_EPOCH_FACTOR`], the weights set to `weights`, and the name marked `toy_`.
pub fn demo_config<B: Backend>(
    reference: &RunConfig,
    backbone: &Backbone<B>,
    weights: &str,
) -> RunConfig {
    let mut c = reference.scaled_to(&backbone.config, backbone.logit_scale(), DEMO_EPOCH_FACTOR);
    c.name = format!("toy_{}", reference.name);
    c.description = format!(
        "{} adapted to the toy CLIP (lr x 100/{:.1}, depth for {} blocks, epochs x {})",
        reference.description,
        backbone.logit_scale(),
        backbone
            .config
            .vision_layers
            .min(backbone.config.transformer_layers),
        DEMO_EPOCH_FACTOR
    );
    c.weights = weights.to_string();
    c
}

fn split(config: &RunConfig, image_size: usize, seed: u64) -> ProceduralSplit {
    ProceduralSplit {
        shots: config.shots,
        seed,
        batch_size: config.batch_size,
        test_batch_size: config.test_batch_size,
        image_size,
        augment: config.train_augment,
    }
}

/// Zero-shot CLIP (template `"a photo of a {}."`) on the procedural world's base and
/// novel test sets (they do not depend on the seed). Writes the summary into `output_dir`.
pub fn procedural_zero_shot<B: Backend>(
    backbone: &Backbone<B>,
    config: &RunConfig,
    world: &Arc<Downstream>,
    output_dir: &std::path::Path,
    device: &str,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let _lock = FolderLock::acquire(output_dir)?;
    let mut log = RunLog::new(&output_dir.join("log.txt"), observer);
    let image_size = backbone.image_size(config);
    let seed = config.seeds.first().copied().unwrap_or(1);
    let (_, base_test, novel_test) = base_to_novel_sets(world, &split(config, image_size, seed))?;
    let template = [datasets::procedural::ZERO_SHOT_TEMPLATE];
    let mut eval = |name: &str, set| {
        evaluate_zero_shot(
            name,
            &backbone.clip,
            &backbone.tokenizer,
            &template,
            set,
            &mut log,
        )
    };
    let zb = eval("procedural base, zero-shot", &base_test)?;
    let zn = eval("procedural novel, zero-shot", &novel_test)?;
    let rows = vec![SummaryRow::base_to_novel(
        PROCEDURAL,
        &[],
        &[zb.percent()],
        &[zn.percent()],
    )];
    let summary = Summary::new(
        Protocol::Base2novel,
        ZERO_SHOT,
        "zsclip",
        &backbone.origin,
        device,
        rows,
    );
    summary.write(output_dir)?;
    log.line(&summary.table());
    Ok(summary)
}

/// The context's method trained on the procedural world's base classes (or loaded with
/// `import`) and tested on the base and novel classes, per seed (resumable, one run
/// folder per seed). Writes the summary into the output folder.
pub fn procedural_base_to_novel<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    world: &Arc<Downstream>,
    seeds: &[u64],
    import: Option<&ImportSpec>,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let image_size = ctx.backbone.image_size(ctx.config);
    let (mut base, mut novel) = (Vec::new(), Vec::new());
    for &seed in seeds {
        let (train, base_test, novel_test) =
            base_to_novel_sets(world, &split(ctx.config, image_size, seed))?;
        let run_dir = ctx.output_dir.join(PROCEDURAL).join(format!("seed{seed}"));
        let learner = match import {
            Some(spec) => {
                LearnerFrom::Import(spec.resolve(PROCEDURAL, seed, Some(ClassSet::Base))?)
            }
            None => LearnerFrom::Train(&train),
        };
        let evals = vec![
            EvalSpec::new(PROCEDURAL, ClassSet::Base, move || Ok(base_test)),
            EvalSpec::new(PROCEDURAL, ClassSet::Novel, move || Ok(novel_test)),
        ];
        let protocol = if import.is_some() {
            Protocol::Eval
        } else {
            Protocol::Base2novel
        };
        let r = run_seed(
            ctx, protocol, PROCEDURAL, seed, &run_dir, learner, evals, &mut log,
        )?;
        base.push(evaluated(&r, PROCEDURAL, ClassSet::Base)?);
        novel.push(evaluated(&r, PROCEDURAL, ClassSet::Novel)?);
    }
    let rows = vec![SummaryRow::base_to_novel(PROCEDURAL, seeds, &base, &novel)];
    method_summary(ctx, Protocol::Base2novel, rows, &mut log)
}

/// One class subsample of the procedural world: per seed, train on it (few-shot) and test
/// on it, or with `import` only test a loaded learner. Writes the summary.
pub fn procedural_train_and_test<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    world: &Arc<Downstream>,
    subsample: Subsample,
    seeds: &[u64],
    import: Option<&ImportSpec>,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let _lock = FolderLock::acquire(&ctx.output_dir)?;
    let mut log = RunLog::new(&ctx.output_dir.join("log.txt"), observer);
    let image_size = ctx.backbone.image_size(ctx.config);
    let classes = ClassSet::from(subsample);
    let mut acc = Vec::new();
    for &seed in seeds {
        let (train, test) = subsample_sets(world, &split(ctx.config, image_size, seed), subsample)?;
        let run_dir = ctx.output_dir.join(PROCEDURAL).join(format!("seed{seed}"));
        let half = (subsample != Subsample::All).then_some(ClassSet::Base);
        let (learner, protocol) = match import {
            Some(spec) => (
                LearnerFrom::Import(spec.resolve(PROCEDURAL, seed, half)?),
                Protocol::Eval,
            ),
            None => (LearnerFrom::Train(&train), Protocol::Train),
        };
        let evals = vec![EvalSpec::new(PROCEDURAL, classes, move || Ok(test))];
        let r = run_seed(
            ctx, protocol, PROCEDURAL, seed, &run_dir, learner, evals, &mut log,
        )?;
        acc.push(evaluated(&r, PROCEDURAL, classes)?);
    }
    let rows = vec![SummaryRow::accuracy(
        &format!("{PROCEDURAL} ({classes})"),
        seeds,
        &acc,
        None,
    )];
    let protocol = if import.is_some() {
        Protocol::Eval
    } else {
        Protocol::Train
    };
    method_summary(ctx, protocol, rows, &mut log)
}
