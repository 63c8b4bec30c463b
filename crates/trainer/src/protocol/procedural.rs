//! Base-to-novel on the procedural world ([`datasets::procedural`]): the protocol of
//! [`super::base_to_novel()`] on images rendered on the fly, so every method runs offline.

use std::sync::Arc;

use burn::tensor::backend::{AutodiffBackend, Backend};
use datasets::procedural::Downstream;

use crate::config::RunConfig;
use crate::error::Result;
use crate::eval::evaluate_zero_shot;
use crate::lock::FolderLock;
use crate::observer::{Observer, RunLog};
use crate::procedural::{base_to_novel_sets, ProceduralSplit};
use crate::results::{ClassSet, Protocol, Summary, SummaryRow, ZERO_SHOT};
use crate::train::Backbone;

use super::base_to_novel::evaluated;
use super::run::{run_seed, EvalSpec, LearnerFrom};
use super::{method_summary, Context};

/// The dataset name of the procedural world in records and paths.
pub const PROCEDURAL: &str = "procedural";

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

/// The context's method trained on the procedural world's base classes and tested on
/// the base and novel classes, per seed (resumable, one run folder per seed). Writes the
/// summary into the output folder.
pub fn procedural_base_to_novel<B: AutodiffBackend>(
    ctx: &Context<'_, B>,
    world: &Arc<Downstream>,
    seeds: &[u64],
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
        let evals = vec![
            EvalSpec::new(PROCEDURAL, ClassSet::Base, move || Ok(base_test)),
            EvalSpec::new(PROCEDURAL, ClassSet::Novel, move || Ok(novel_test)),
        ];
        let r = run_seed(
            ctx,
            Protocol::Base2novel,
            PROCEDURAL,
            seed,
            &run_dir,
            LearnerFrom::Train(&train),
            evals,
            &mut log,
        )?;
        base.push(evaluated(&r, PROCEDURAL, ClassSet::Base)?);
        novel.push(evaluated(&r, PROCEDURAL, ClassSet::Novel)?);
    }
    let rows = vec![SummaryRow::base_to_novel(PROCEDURAL, seeds, &base, &novel)];
    method_summary(ctx, Protocol::Base2novel, rows, &mut log)
}
