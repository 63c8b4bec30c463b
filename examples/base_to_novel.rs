//! Base-to-novel generalisation, the paper's comparison: zero-shot CLIP, CoOp, Co-CoOp and
//! MaPLe trained on the base classes and tested on the base and novel classes, with the
//! harmonic mean (HM) and MaPLe's gain over Co-CoOp.
//!
//! With no flags it runs on the procedural world (coloured, textured shapes rendered on
//! the fly; no download) with the project's toy CLIP, `weights/toy-clip.safetensors`
//! (made by `cargo xtask pretrain-toy-clip`), seeds 1 2 3:
//!
//! ```text
//! cargo run --release --example base_to_novel
//! cargo run --release --example base_to_novel -- --methods clip,maple,ivlp,vpt
//! ```
//!
//! Every method starts from the reference's own configuration (`configs/`), adapted to the
//! toy CLIP in the same way for all (`trainer::protocol::demo_config`): learning rate times
//! 100 / exp(logit_scale) (the toy CLIP's logit scale is not CLIP's 100), prompt depths
//! rescaled to its layers, and the reference epochs times one common factor
//! (`DEMO_EPOCH_FACTOR`, 1: CoOp 200, Co-CoOp 10, IVLP/VPT/MaPLe 5). It runs in about 2.5
//! minutes on 2 cores (ndarray).
//!
//! With a dataset it runs the real protocol with the reference's ViT-B/16 settings,
//! resumable, with outputs under `output/base2novel/<method>/`:
//!
//! ```text
//! cargo run --release --example base_to_novel -- \
//!     --dataset eurosat --data-root ~/data --weights openai/clip-vit-base-patch16
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use maple_burn::backend::{self, TrainBackend};
use maple_burn::datasets::DatasetName;
use maple_burn::maple_prompts::Method;
use maple_burn::trainer::protocol::{self, Context};
use maple_burn::trainer::results::{method_display_name, Table, ZERO_SHOT};
use maple_burn::trainer::{Backbone, RunConfig, Summary};

#[derive(Parser)]
#[command(
    about = "Base-to-novel generalisation: CLIP, CoOp, Co-CoOp and MaPLe (procedural world by default)"
)]
struct Args {
    /// Methods to compare (comma separated): clip (zero-shot), coop, cocoop, ivlp, vpt, maple.
    #[arg(long, value_delimiter = ',', default_value = "clip,coop,cocoop,maple")]
    methods: Vec<String>,
    /// A benchmark dataset (e.g. eurosat); without it, the procedural world is used.
    #[arg(long, value_name = "NAME", requires = "data_root")]
    dataset: Option<DatasetName>,
    /// The data root holding the dataset folders.
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// CLIP weights (file, folder or hub id). Default: weights/toy-clip.safetensors for
    /// the procedural world, openai/clip-vit-base-patch16 for a dataset.
    #[arg(long, value_name = "FILE|DIR|HUB_ID")]
    weights: Option<String>,
    /// Seeds. Default: 1 2 3.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Output folder. Default: a temporary folder (procedural world),
    /// output/base2novel (dataset).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Device index (GPU backends).
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Precision of the frozen CLIP: f32, f16 (wgpu, cuda, flex) or bf16 (cuda, flex).
    #[arg(long, default_value = "f32")]
    precision: maple_burn::clip_model::Precision,
}

/// A method of the comparison: a learner, or zero-shot CLIP.
#[derive(Clone, Copy, PartialEq)]
enum Row {
    ZeroShot,
    Learner(Method),
}

fn parse_methods(names: &[String]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for n in names {
        let row = if n.eq_ignore_ascii_case("clip") || n.eq_ignore_ascii_case(ZERO_SHOT) {
            Row::ZeroShot
        } else {
            Row::Learner(n.parse::<Method>()?)
        };
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    if rows.is_empty() {
        bail!("--methods lists no method");
    }
    Ok(rows)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let observer = &mut maple_ui::terminal();
    let rows = parse_methods(&args.methods)?;
    let device = backend::device(args.device);
    backend::probe(&device)?;
    let described = backend::describe(&device);
    let started = Instant::now();
    let procedural = args.dataset.is_none();
    let weights = args.weights.clone().unwrap_or_else(|| {
        if procedural {
            default_toy_weights()
        } else {
            RunConfig::base_to_novel().weights
        }
    });
    let backbone = Backbone::<TrainBackend>::load(&weights, &device).with_context(|| {
        format!("loading CLIP weights {weights:?} (the toy CLIP is made by `cargo xtask pretrain-toy-clip`)")
    })?
    .with_precision(args.precision)?;
    let tmp = tempfile::tempdir()?;
    let out = args.output_dir.clone().unwrap_or_else(|| {
        if procedural {
            tmp.path().to_path_buf()
        } else {
            PathBuf::from("output/base2novel")
        }
    });
    let world = if procedural {
        Some(protocol::demo_world(&backbone)?)
    } else {
        None
    };

    let mut summaries: Vec<(Row, Summary)> = Vec::new();
    let mut settings = Vec::new();
    for &row in &rows {
        let method_dir = |name: &str| out.join(name);
        let summary = match row {
            Row::ZeroShot => {
                let config = RunConfig::base_to_novel();
                let valid = backbone.valid();
                match (&world, &args.dataset, &args.data_root) {
                    (Some(world), _, _) => protocol::procedural_zero_shot(
                        &valid,
                        &config,
                        world,
                        &method_dir(ZERO_SHOT),
                        &described,
                        observer,
                    )?,
                    (None, Some(dataset), Some(root)) => protocol::zero_shot(
                        &valid,
                        protocol::ZeroShotSets {
                            root,
                            datasets: &[*dataset],
                            all_classes: false,
                        },
                        config.test_batch_size,
                        &method_dir(ZERO_SHOT),
                        &described,
                        observer,
                    )?,
                    _ => bail!("--dataset needs --data-root"),
                }
            }
            Row::Learner(method) => {
                let reference = RunConfig::preset(method);
                let mut config = if procedural {
                    protocol::demo_config(&reference, &backbone, &weights)
                } else {
                    let mut c = reference;
                    c.weights = weights.clone();
                    c
                };
                if let Some(s) = &args.seeds {
                    config.seeds = s.clone();
                }
                config.precision = args.precision;
                config.validate()?;
                backbone.check(&config)?;
                settings.push(format!(
                    "{}: lr {:.4}, {} epochs, batch {}",
                    method.display_name(),
                    config.optim.lr,
                    config.optim.max_epoch,
                    config.batch_size
                ));
                let ctx = Context {
                    backbone: &backbone,
                    config: &config,
                    output_dir: method_dir(method.as_str()).join(&config.name),
                    stop_after: None,
                    device: described.clone(),
                };
                let seeds = config.seeds.clone();
                match (&world, &args.dataset, &args.data_root) {
                    (Some(world), _, _) => {
                        protocol::procedural_base_to_novel(&ctx, world, &seeds, None, observer)?
                    }
                    (None, Some(dataset), Some(root)) => {
                        protocol::base_to_novel(&ctx, root, &[*dataset], &seeds, None, observer)?
                    }
                    _ => bail!("--dataset needs --data-root"),
                }
            }
        };
        summaries.push((row, summary));
    }

    let seeds = args
        .seeds
        .clone()
        .unwrap_or_else(|| RunConfig::base_to_novel().seeds);
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    match (&world, &args.dataset) {
        (Some(world), _) => println!(
            "\nBase-to-novel on the procedural world: {} base + {} novel classes, 16 shots, seeds {}, weights {}",
            world.num_base(),
            world.num_classes() - world.num_base(),
            seeds.join(" "),
            weights
        ),
        (None, Some(d)) => println!(
            "\nBase-to-novel on {d}: 16 shots, seeds {}, weights {}",
            seeds.join(" "),
            backbone.origin
        ),
        _ => {}
    }
    print_table(&summaries);
    for s in &settings {
        println!("  {s}");
    }
    if args.output_dir.is_some() {
        println!(
            "results: {} (`maple report {}` for plots)",
            out.display(),
            out.display()
        );
    }
    println!(
        "device: {described}; time {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The comparison table, one row per method, and MaPLe's gain over Co-CoOp.
fn print_table(summaries: &[(Row, Summary)]) {
    let mut t = Table::default();
    t.row(vec![
        "Dataset".into(),
        "Method".into(),
        "Base".into(),
        "Novel".into(),
        "HM".into(),
    ]);
    let mut means = Vec::new();
    for (_, s) in summaries {
        for r in &s.rows {
            let (b, n) = (
                r.base.as_ref().map_or(f64::NAN, |x| x.mean),
                r.novel.as_ref().map_or(f64::NAN, |x| x.mean),
            );
            let hm = r.hm.unwrap_or(f64::NAN);
            t.row(vec![
                r.dataset.clone(),
                method_display_name(&s.method),
                format!("{b:.2}"),
                format!("{n:.2}"),
                format!("{hm:.2}"),
            ]);
            means.push((s.method.clone(), n, hm));
        }
    }
    print!("{}", t.render());
    let get = |id: &str| {
        means
            .iter()
            .find(|(m, ..)| m == id)
            .map(|&(_, n, h)| (n, h))
    };
    if let (Some((mn, mh)), Some((cn, ch))) = (get("maple"), get("cocoop")) {
        println!(
            "MaPLe vs Co-CoOp: {:+.2} novel, {:+.2} HM (paper, 11 datasets: +3.45 novel, +2.72 HM)",
            mn - cn,
            mh - ch
        );
    }
}

/// `weights/toy-clip.safetensors`, relative to the working folder when it is there, else
/// to the repository.
fn default_toy_weights() -> String {
    let local = Path::new("weights/toy-clip.safetensors");
    if local.is_file() {
        return local.display().to_string();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(local)
        .display()
        .to_string()
}
