//! Running a protocol command: settings first (validated before any model is loaded), then
//! CLIP, then the protocol for the chosen method, then the summary table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use maple_burn::backend::{self, TrainBackend};
use maple_burn::datasets::{DatasetName, Subsample};
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::protocol::{self, Context, ImportSpec, ZeroShotSets, PROCEDURAL};
use maple_burn::trainer::train::learner_file::checkpoint_method;
use maple_burn::trainer::{Backbone, ClassSet, Protocol, RunConfig, Summary, TrainerError};
use maple_ui::Bars;

use crate::args::{self, default_output, load_config, Common, MethodArg};

/// What a command runs.
pub enum Job {
    /// One dataset, one subsample: train and test.
    Train {
        /// Data root.
        root: PathBuf,
        /// Dataset.
        dataset: DatasetName,
        /// Classes.
        subsample: Subsample,
    },
    /// Evaluate checkpoints on one dataset.
    Eval {
        /// Data root.
        root: PathBuf,
        /// Dataset.
        dataset: DatasetName,
        /// Classes.
        subsample: Subsample,
        /// The checkpoints.
        import: ImportSpec,
    },
    /// Base-to-novel on benchmark datasets.
    BaseToNovel {
        /// Data root.
        root: PathBuf,
        /// Datasets.
        datasets: Vec<DatasetName>,
        /// Checkpoints to evaluate instead of training.
        import: Option<ImportSpec>,
    },
    /// Cross-dataset transfer or domain generalisation.
    Transfer {
        /// `xd` or `dg`.
        protocol: Protocol,
        /// Data root.
        root: PathBuf,
        /// Training dataset.
        source: DatasetName,
        /// Test datasets.
        targets: Vec<DatasetName>,
        /// Checkpoints to evaluate instead of training.
        import: Option<ImportSpec>,
    },
    /// Base-to-novel on the procedural world.
    ProceduralBaseToNovel {
        /// Checkpoints to evaluate instead of training.
        import: Option<ImportSpec>,
    },
    /// One subsample of the procedural world.
    ProceduralTrain {
        /// Classes.
        subsample: Subsample,
        /// Checkpoints to evaluate instead of training.
        import: Option<ImportSpec>,
    },
}

impl Job {
    fn import(&self) -> Option<&ImportSpec> {
        match self {
            Job::Eval { import, .. } => Some(import),
            Job::BaseToNovel { import, .. }
            | Job::Transfer { import, .. }
            | Job::ProceduralBaseToNovel { import }
            | Job::ProceduralTrain { import, .. } => import.as_ref(),
            Job::Train { .. } => None,
        }
    }

    fn is_procedural(&self) -> bool {
        matches!(
            self,
            Job::ProceduralBaseToNovel { .. } | Job::ProceduralTrain { .. }
        )
    }

    /// Where the first checkpoint to import is (to recognise its method).
    fn first_checkpoint(&self, seed: u64) -> Option<Result<PathBuf>> {
        let (dataset, half) = match self {
            Job::Eval {
                dataset, subsample, ..
            } => (
                dataset.as_str(),
                (*subsample != Subsample::All).then_some(ClassSet::Base),
            ),
            Job::BaseToNovel { datasets, .. } => (datasets.first()?.as_str(), Some(ClassSet::Base)),
            Job::Transfer { source, .. } => (source.as_str(), None),
            Job::ProceduralBaseToNovel { .. } => (PROCEDURAL, Some(ClassSet::Base)),
            Job::ProceduralTrain { subsample, .. } => (
                PROCEDURAL,
                (*subsample != Subsample::All).then_some(ClassSet::Base),
            ),
            Job::Train { .. } => return None,
        };
        Some(
            self.import()?
                .resolve(dataset, seed, half)
                .map_err(anyhow::Error::from),
        )
    }
}

/// The method of a command: `--method`, else the imported checkpoint's, else the
/// config file's, else MaPLe.
fn resolve_method(common: &Common, job: &Job) -> Result<MethodArg> {
    if let Some(m) = common.method {
        return Ok(m);
    }
    if job.import().is_some() {
        let seed = common
            .seeds
            .as_ref()
            .and_then(|s| s.first().copied())
            .unwrap_or(1);
        if let Some(path) = job.first_checkpoint(seed) {
            let path = path?;
            let m = checkpoint_method(&path)?;
            log::info!("{} holds a {m} learner", path.display());
            return Ok(MethodArg::Learner(m));
        }
    }
    if let Some(path) = &common.config {
        return Ok(MethodArg::Learner(RunConfig::load(path)?.learner.method()));
    }
    Ok(MethodArg::Learner(Method::Maple))
}

/// Loads CLIP and runs `job` for the method of `common`; prints the summary.
pub fn with_context(
    common: &Common,
    protocol: Protocol,
    command: &str,
    job: Job,
    bars: &mut Bars,
) -> Result<()> {
    let method = resolve_method(common, &job)?;
    let mut common = common.clone();
    common.method = Some(method);
    if job.is_procedural() && common.weights.is_none() && common.config.is_none() {
        common.weights = Some(args::toy_weights());
    }
    // Every setting is checked before CLIP is loaded.
    let mut config = load_config(&common, protocol)?;
    if job.import().is_some() && method == MethodArg::ZeroShot {
        bail!("zero-shot CLIP has no checkpoint to import; drop --method clip or --import");
    }
    if matches!(job, Job::Train { .. }) && method == MethodArg::ZeroShot {
        bail!("zero-shot CLIP does not train: use `maple zeroshot`");
    }

    let device = backend::device(common.device);
    backend::probe(&device)?;
    let described = backend::describe(&device);
    bars.say(&format!(
        "device: {described}; loading CLIP from {}",
        config.weights
    ));
    let started = Instant::now();
    let backbone = Backbone::<TrainBackend>::load(&config.weights, &device)
        .with_context(|| format!("loading CLIP weights {:?}", config.weights))?
        .with_precision(config.precision)?;
    if job.is_procedural() && common.config.is_none() {
        // The reference settings adapted to the toy CLIP, as the example does, then the
        // command line's overrides again.
        config = protocol::demo_config(&config, &backbone, &config.weights.clone());
        args::apply_overrides(&common, &mut config)?;
    }
    backbone.check(&config)?;
    let method_name = match method {
        MethodArg::Learner(m) => m.as_str(),
        MethodArg::ZeroShot => maple_burn::trainer::results::ZERO_SHOT,
    };
    let output_dir = common
        .output_dir
        .clone()
        .unwrap_or_else(|| default_output(command, method_name, &config));
    let ctx = Context {
        backbone: &backbone,
        config: &config,
        output_dir: output_dir.clone(),
        stop_after: common.stop_after.map(|n| n as usize),
        device: described.clone(),
    };
    let seeds = config.seeds.clone();
    let result: maple_burn::trainer::Result<Summary> = match (method, job) {
        (MethodArg::ZeroShot, job) => zero_shot(&ctx, job, bars),
        (MethodArg::Learner(_), job) => match job {
            Job::Train {
                root,
                dataset,
                subsample,
            } => protocol::train_and_test(&ctx, &root, dataset, subsample, &seeds, bars),
            Job::Eval {
                root,
                dataset,
                subsample,
                import,
            } => protocol::evaluate_checkpoints(
                &ctx, &root, dataset, subsample, &seeds, &import, bars,
            ),
            Job::BaseToNovel {
                root,
                datasets,
                import,
            } => protocol::base_to_novel(&ctx, &root, &datasets, &seeds, import.as_ref(), bars),
            Job::Transfer {
                protocol: p,
                root,
                source,
                targets,
                import,
            } => protocol::cross_dataset(
                &ctx,
                p,
                &root,
                source,
                &targets,
                &seeds,
                import.as_ref(),
                bars,
            ),
            Job::ProceduralBaseToNovel { import } => {
                let world = protocol::demo_world(&backbone)?;
                protocol::procedural_base_to_novel(&ctx, &world, &seeds, import.as_ref(), bars)
            }
            Job::ProceduralTrain { subsample, import } => {
                let world = protocol::demo_world(&backbone)?;
                protocol::procedural_train_and_test(
                    &ctx,
                    &world,
                    subsample,
                    &seeds,
                    import.as_ref(),
                    bars,
                )
            }
        },
    };
    match result {
        Ok(summary) => {
            println!("{}", summary.table());
            println!(
                "results: {} ({:.1}s on {described})",
                output_dir.join("results.json").display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(TrainerError::Stopped { completed, total }) => {
            bars.say(&format!(
                "stopped after epoch {completed} of {total} as asked (--stop-after); run the same command without it to continue"
            ));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Zero-shot CLIP for the datasets of `job`.
fn zero_shot(
    ctx: &Context<'_, TrainBackend>,
    job: Job,
    bars: &mut Bars,
) -> maple_burn::trainer::Result<Summary> {
    let valid = ctx.backbone.valid();
    let size = ctx.config.test_batch_size;
    match job {
        Job::BaseToNovel { root, datasets, .. } => protocol::zero_shot(
            &valid,
            ZeroShotSets {
                root: &root,
                datasets: &datasets,
                all_classes: false,
            },
            size,
            &ctx.output_dir,
            &ctx.device,
            bars,
        ),
        Job::Transfer {
            root,
            source,
            targets,
            ..
        } => {
            let all: Vec<DatasetName> = std::iter::once(source).chain(targets).collect();
            protocol::zero_shot(
                &valid,
                ZeroShotSets {
                    root: &root,
                    datasets: &all,
                    all_classes: true,
                },
                size,
                &ctx.output_dir,
                &ctx.device,
                bars,
            )
        }
        Job::ProceduralBaseToNovel { .. } | Job::ProceduralTrain { .. } => {
            let world = protocol::demo_world(&valid)?;
            protocol::procedural_zero_shot(
                &valid,
                ctx.config,
                &world,
                &ctx.output_dir,
                &ctx.device,
                bars,
            )
        }
        Job::Train { .. } | Job::Eval { .. } => Err(TrainerError::Invalid(
            "zero-shot CLIP neither trains nor loads checkpoints: use `maple zeroshot`".into(),
        )),
    }
}
