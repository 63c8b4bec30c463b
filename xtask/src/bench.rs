//! `cargo xtask bench`: speed of the MaPLe workloads on a randomly initialised CLIP,
//! optionally against the PyTorch baseline (the repository's `bench/torch_maple.py`, a
//! copy of the shared reference script) run on the same machine in the same invocation.
//!
//! The workloads, shapes, flags and JSON fields are those of the PyTorch script:
//!
//! - `train-step`: one SGD step of the prompt learner (all class prompts through the text
//!   tower, a batch of images through the image tower, cross-entropy, backward, update),
//!   on [`TrainBackend`] (autodiff);
//! - `encode-images`: prompted image features for a batch, on [`Backend`];
//! - `encode-text`: prompted text features for all classes, on [`Backend`].
//!
//! Class prompts are built as the script's `fake_tokens`: `SOT`, `n_ctx + n + 1` random
//! ids with `n` uniform in `1..=5`, `EOT`. The text tower computes only the first
//! `max(EOT) + 1` positions (exact: attention is causal); the script always runs all 77.
//! `--full-context` makes one class prompt fill the context, so both compute 77 positions.
//!
//! Besides wall time (the median is the reported figure) each iteration records the
//! process CPU seconds (all threads; on a machine shared with other work the wall time
//! grows while the CPU time stays close), and each workload its peak resident memory
//! (Linux: `VmHWM`, reset before the workload; the PyTorch script reports its process
//! maximum as `peak_bytes`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor};
use clap::ValueEnum;
use maple_burn::backend::{describe, device, Backend, TrainBackend};
use maple_burn::clip_model::tokenizer::Tokenizer;
use maple_burn::clip_model::Precision;
use maple_burn::clip_model::{Clip, ClipConfig};
use maple_burn::maple_prompts::{ClassTokens, Maple, MapleConfig, PromptedClip, Sgd, SgdConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// CLIP start/end-of-text ids and context length (as the script's constants).
const SOT: u32 = 49406;
const EOT: u32 = 49407;
/// The script's SGD learning rate.
const LR: f64 = 0.0035;

/// A benchmark workload (the script's `--workload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// One SGD step of the prompt learner (forward of both towers, loss, backward, update).
    TrainStep,
    /// Prompted image features for a batch (no autodiff).
    EncodeImages,
    /// Prompted text features for all classes (no autodiff).
    EncodeText,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::TrainStep => "train-step",
            Workload::EncodeImages => "encode-images",
            Workload::EncodeText => "encode-text",
        }
    }
}

/// A CLIP size (the script's `--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// ViT-B/16 (MaPLe's backbone).
    #[value(name = "vit-b16")]
    VitB16,
    /// ViT-B/32.
    #[value(name = "vit-b32")]
    VitB32,
    /// ViT-L/14.
    #[value(name = "vit-l14")]
    VitL14,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::VitB16 => "vit-b16",
            Model::VitB32 => "vit-b32",
            Model::VitL14 => "vit-l14",
        }
    }

    fn config(self) -> ClipConfig {
        match self {
            Model::VitB16 => ClipConfig::vit_b16(),
            Model::VitB32 => ClipConfig::vit_b32(),
            Model::VitL14 => ClipConfig::vit_l14(),
        }
    }
}

/// Arguments of `bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Workloads to run, comma-separated (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub workload: Vec<Workload>,
    /// CLIP size (random weights).
    #[arg(long, value_enum, default_value = "vit-b16")]
    pub model: Model,
    /// Images per batch (train-step, encode-images).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Number of classes (train-step, encode-text).
    #[arg(long, default_value_t = 50)]
    pub classes: usize,
    /// MaPLe context tokens.
    #[arg(long, default_value_t = 2)]
    pub n_ctx: usize,
    /// MaPLe prompt depth.
    #[arg(long, default_value_t = 9)]
    pub depth: usize,
    /// CPU threads for both implementations (rayon and matrixmultiply here, torch.set_num_threads there).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Threads of matrixmultiply's own pool (`MATMUL_NUM_THREADS`, at most 4; default:
    /// --threads). burn-ndarray runs batched matmuls on rayon and each one on this pool.
    #[arg(long)]
    pub matmul_threads: Option<usize>,
    /// Untimed iterations before timing.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Make the longest class prompt fill the 77-token context, so the text tower computes
    /// every position as the PyTorch script does (by default only `max(EOT) + 1` are computed).
    #[arg(long)]
    pub full_context: bool,
    /// Precision of our CLIP (f32, f16, bf16; half needs a backend that computes in it).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Keep CLIP as `Clip::init` leaves it instead of freezing it as the PyTorch script does
    /// (`Clip::init` creates the blocks' Linear/LayerNorm weights trainable, so the backward
    /// pass also computes their gradients; weights loaded from a file are frozen).
    #[arg(long)]
    pub no_freeze: bool,
    /// Also run the PyTorch baseline and print ratios ours/pytorch (lower is better for us).
    #[arg(long)]
    pub compare: bool,
    /// Python interpreter with torch for `--compare` (default: `.venv-bench/bin/python` at the
    /// repository root if it has torch, else `python3` on PATH if it has torch, else
    /// `.venv-bench` created with `python3 -m venv` and `pip install torch numpy`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The PyTorch baseline script (default: `bench/torch_maple.py` in the repository).
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// The reference's device for `--compare` (the script's `--device`: cpu, cuda, cuda:N;
    /// default: the script's, cpu).
    #[arg(long)]
    pub torch_device: Option<String>,
    /// The reference's precision for `--compare` (the script's `--precision`: fp32, fp16,
    /// bf16; default: the script's, fp32).
    #[arg(long)]
    pub torch_precision: Option<String>,
    /// Leave glibc's malloc at its defaults (see [`tune_malloc`]).
    #[arg(long)]
    pub no_malloc_tuning: bool,
    /// Also write the final JSON object to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One timing, in the script's JSON layout (plus fields it does not have).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Timing {
    #[serde(rename = "impl")]
    implementation: String,
    model: String,
    workload: String,
    batch: usize,
    classes: usize,
    n_ctx: usize,
    depth: usize,
    threads: usize,
    iters: usize,
    median_s: f64,
    min_s: f64,
    max_s: f64,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

impl Timing {
    /// Median process CPU seconds per iteration, if recorded (`cpu_s`).
    fn cpu_median(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .extra
            .get("cpu_s")?
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .filter(|x| x.is_finite())
            .collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// Peak resident memory in bytes, if recorded (`peak_bytes`).
    fn peak_bytes(&self) -> Option<f64> {
        self.extra.get("peak_bytes")?.as_f64()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

/// Sets the CPU thread count before any tensor work: rayon's global pool (burn-ndarray's
/// parallel ops) and matrixmultiply's own pool (`MATMUL_NUM_THREADS`, at most 4). Returns
/// (rayon threads, matrixmultiply threads).
fn set_threads(n: usize, matmul: Option<usize>) -> Result<(usize, usize)> {
    let m = matmul.unwrap_or(n);
    if n == 0 || m == 0 {
        bail!("--threads and --matmul-threads must be at least 1");
    }
    // Edition 2021: set_var is safe; nothing else runs yet.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("MATMUL_NUM_THREADS", m.to_string());
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
    {
        eprintln!(
            "warning: could not size rayon's global pool ({e}); it has {} threads",
            rayon::current_num_threads()
        );
    }
    Ok((rayon::current_num_threads(), m.clamp(1, 4)))
}

/// Token rows as the script's `fake_tokens`: `SOT`, `n_ctx + n + 1` random ids with `n`
/// uniform in `1..=5`, `EOT`, zero padding. With `full_context`, the last class's body
/// is long enough that its EOT is the last position of the context.
fn fake_rows(classes: usize, n_ctx: usize, context: usize, full_context: bool) -> Vec<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(0);
    (0..classes)
        .map(|c| {
            let n: usize = rng.random_range(1..6);
            let body = if full_context && c + 1 == classes {
                context - 2
            } else {
                (n_ctx + n + 1).min(context - 2)
            };
            let mut row = vec![0u32; context];
            row[0] = SOT;
            for t in row.iter_mut().skip(1).take(body) {
                *t = rng.random_range(1..49000);
            }
            row[body + 1] = EOT;
            row
        })
        .collect()
}

/// The class prompts on `clip`'s device, as `ClassTokens::new` builds them, from `rows`.
fn class_tokens<B: burn::tensor::backend::Backend>(
    clip: &Clip<B>,
    rows: &[Vec<u32>],
) -> ClassTokens<B> {
    let eot = maple_burn::clip_model::eot_positions(rows);
    let len = eot.iter().max().map_or(1, |m| m + 1);
    let emb = clip.text.embed_rows(rows, &clip.device());
    let [n, _, w] = emb.dims();
    ClassTokens {
        embeddings: emb.slice([0..n, 0..len, 0..w]),
        eot,
        rows: rows.to_vec(),
        name_lens: vec![1; n],
        class_names: (0..n).map(|i| format!("class_{i}")).collect(),
    }
}

/// Counts the float parameters (tensors, elements) that require a gradient.
#[derive(Default)]
struct Trainable {
    tensors: usize,
    elements: usize,
}

impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Trainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        if t.is_require_grad() {
            self.tensors += 1;
            self.elements += t.shape().num_elements();
        }
    }
}

fn trainable<B: burn::tensor::backend::Backend, M: Module<B>>(m: &M) -> Trainable {
    let mut v = Trainable::default();
    m.visit(&mut v);
    v
}

/// The prompted model on random weights; CLIP frozen (all parameters without gradient, as
/// the script's `requires_grad_(False)`) unless `--no-freeze`. Returns it with the number
/// of CLIP parameter elements that required a gradient straight out of `Clip::init`.
fn build<B: burn::tensor::backend::Backend>(
    args: &Args,
    cfg: &ClipConfig,
    dev: &B::Device,
) -> Result<(PromptedClip<B, Maple<B>>, usize)> {
    B::seed(dev, 0);
    let clip = Clip::<B>::init(cfg, dev);
    let init_trainable = trainable(&clip).elements;
    let clip = if args.no_freeze { clip } else { clip.no_grad() };
    let clip = clip.with_precision(args.precision).context("--precision")?;
    let maple_cfg = MapleConfig::new()
        .with_n_ctx(args.n_ctx)
        .with_depth(args.depth);
    let learner = Maple::<B>::new(&maple_cfg, &clip, &Tokenizer::new())
        .context("building the MaPLe learner")?;
    Ok((PromptedClip { clip, learner }, init_trainable))
}

/// Process CPU time (user + system, all threads) in seconds, where the OS tells it
/// (Linux `/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Hands memory freed by earlier workloads back to the OS (glibc `malloc_trim`; with
/// [`tune_malloc`] it would otherwise stay resident and count in the next peak).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap memory to the OS.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Resets the process's peak resident set size (Linux `clear_refs`), so that
/// [`peak_rss_bytes`] measures from here.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last [`reset_peak_rss`] (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Seconds per timed iteration: wall clock and process CPU time.
struct Times {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

/// Runs `step` `warmup` times untimed, then `iters` times timed.
fn time_it(
    name: &str,
    warmup: usize,
    iters: usize,
    mut step: impl FnMut() -> Result<()>,
) -> Result<Times> {
    for i in 0..warmup {
        let t = Instant::now();
        step()?;
        eprintln!(
            "  ours {name}: warm-up {}/{warmup}: {:.3} s",
            i + 1,
            t.elapsed().as_secs_f64()
        );
    }
    let mut times = Times {
        wall: Vec::with_capacity(iters),
        cpu: Vec::with_capacity(iters),
    };
    for i in 0..iters {
        let (t, c) = (Instant::now(), cpu_seconds());
        step()?;
        let s = t.elapsed().as_secs_f64();
        let cpu = match (c, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        eprintln!(
            "  ours {name}: iteration {}/{iters}: {s:.3} s (cpu {cpu:.2} s)",
            i + 1
        );
        times.wall.push(s);
        times.cpu.push(cpu);
    }
    Ok(times)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn sync<B: burn::tensor::backend::Backend>(dev: &B::Device) -> Result<()> {
    B::sync(dev).map_err(|e| anyhow::anyhow!("backend sync failed: {e:?}"))
}

/// Runs one workload of ours and returns its timing.
fn run_ours(args: &Args, workload: Workload, threads: (usize, usize)) -> Result<Timing> {
    let cfg = args.model.config();
    let dev = device(0);
    let res = cfg.image_resolution;
    let rows = fake_rows(
        args.classes,
        args.n_ctx,
        cfg.context_length,
        args.full_context,
    );
    let mut rng = StdRng::seed_from_u64(1);
    let labels: Vec<i64> = (0..args.batch)
        .map(|_| rng.random_range(0..args.classes as i64))
        .collect();
    let setup = Instant::now();
    release_free_memory();
    reset_peak_rss();
    let mut clip_trainable = None;
    let (times, text_positions) = match workload {
        Workload::TrainStep => {
            let (model, init_trainable) = build::<TrainBackend>(args, &cfg, &dev)?;
            let now_trainable = trainable(&model.clip).elements;
            clip_trainable = Some((init_trainable, now_trainable));
            if init_trainable > 0 {
                eprintln!(
                    "  note: Clip::init left {init_trainable} CLIP parameter elements trainable; {}",
                    if args.no_freeze { "kept (--no-freeze)".to_string() } else { format!("frozen for the bench ({now_trainable} left)") }
                );
            }
            let classes = class_tokens(&model.clip, &rows);
            let images = Tensor::<TrainBackend, 4>::random(
                [args.batch, 3, res, res],
                Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let labels: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
            let mut sgd = Sgd::new(SgdConfig::default());
            let len = classes.embeddings.dims()[1];
            eprintln!(
                "  ours {}: model built in {:.1} s",
                workload.name(),
                setup.elapsed().as_secs_f64()
            );
            let mut model = model;
            let times = time_it(workload.name(), args.warmup, args.iters, || {
                model.train_step(&mut sgd, LR, images.clone(), &labels, &classes)?;
                sync::<TrainBackend>(&dev)
            })?;
            (times, len)
        }
        Workload::EncodeImages | Workload::EncodeText => {
            let (model, _) = build::<Backend>(args, &cfg, &dev)?;
            let classes = class_tokens(&model.clip, &rows);
            let images = Tensor::<Backend, 4>::random(
                [args.batch, 3, res, res],
                Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let len = classes.embeddings.dims()[1];
            eprintln!(
                "  ours {}: model built in {:.1} s",
                workload.name(),
                setup.elapsed().as_secs_f64()
            );
            let times = time_it(workload.name(), args.warmup, args.iters, || {
                let out = if workload == Workload::EncodeImages {
                    model.encode_image(images.clone())
                } else {
                    model.encode_text(&classes)?
                };
                // Make sure the result exists (lazy/asynchronous backends).
                let _ = out.into_data();
                sync::<Backend>(&dev)
            })?;
            (times, len)
        }
    };
    let mut extra = serde_json::Map::new();
    extra.insert("burn".into(), json!("0.21.0"));
    extra.insert("backend".into(), json!(describe(&dev)));
    extra.insert("rayon_threads".into(), json!(threads.0));
    extra.insert("matmul_threads".into(), json!(threads.1));
    extra.insert("warmup".into(), json!(args.warmup));
    extra.insert("malloc_tuned".into(), json!(!args.no_malloc_tuning));
    if workload != Workload::EncodeImages {
        extra.insert("text_positions".into(), json!(text_positions));
    }
    if let Some((init, used)) = clip_trainable {
        extra.insert("clip_init_trainable_params".into(), json!(init));
        extra.insert("clip_trainable_params".into(), json!(used));
    }
    extra.insert("times_s".into(), json!(times.wall));
    extra.insert("cpu_s".into(), json!(times.cpu));
    extra.insert("precision".into(), json!(args.precision.name()));
    if let Some(mem) = maple_burn::backend::device_memory(&dev) {
        // GPU: the device pool's reservation, which only grows: the high-water mark of
        // this and the earlier workloads of the run (torch reports max_memory_allocated).
        extra.insert("peak_bytes".into(), json!(mem.reserved));
        extra.insert("peak_kind".into(), json!("device_pool_reserved"));
        if let Some(rss) = peak_rss_bytes() {
            extra.insert("peak_rss_bytes".into(), json!(rss));
        }
    } else if let Some(peak) = peak_rss_bytes() {
        extra.insert("peak_bytes".into(), json!(peak));
        extra.insert("peak_kind".into(), json!("workload_max_rss"));
    }
    Ok(Timing {
        implementation: "burn".into(),
        model: args.model.name().into(),
        workload: workload.name().into(),
        batch: args.batch,
        classes: args.classes,
        n_ctx: args.n_ctx,
        depth: args.depth,
        threads: args.threads,
        iters: args.iters,
        median_s: median(&times.wall),
        min_s: times.wall.iter().copied().fold(f64::INFINITY, f64::min),
        max_s: times.wall.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        extra,
    })
}

/// The PyTorch baseline script.
fn find_script(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.script {
        if !p.is_file() {
            bail!("--script {}: no such file", p.display());
        }
        return Ok(p.clone());
    }
    let script = repo_root().join("bench/torch_maple.py");
    if !script.is_file() {
        bail!(
            "the PyTorch baseline script {} is missing; pass --script PATH",
            script.display()
        );
    }
    Ok(script)
}

/// Runs a command, returning (success, combined stdout+stderr).
fn run_captured(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn python_has_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python with torch: `--python`, or the repository's `.venv-bench`, created and filled
/// from PyPI if needed.
fn find_python(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.python {
        let (ok, out) = run_captured(
            Command::new(p).args(["-c", "import torch, numpy; print(torch.__version__)"]),
        )
        .with_context(|| format!("--python {}: cannot run it", p.display()))?;
        if !ok {
            bail!(
                "--python {}: cannot import torch and numpy:\n{}",
                p.display(),
                tail(&out, 5)
            );
        }
        return Ok(p.clone());
    }
    let venv = repo_root().join(".venv-bench");
    let python = venv.join("bin/python");
    if python.exists() && python_has_torch(&python) {
        return Ok(python);
    }
    if let Some(sys) = which_python3().filter(|p| python_has_torch(p)) {
        return Ok(sys);
    }
    if !python.exists() {
        let sys = which_python3().context(
            "--compare needs Python 3 to run the PyTorch baseline, but `python3` is not on PATH; \
             install Python 3 (with venv) or pass --python PATH to an interpreter that has torch",
        )?;
        eprintln!("creating {} with {}", venv.display(), sys.display());
        let (ok, out) = run_captured(Command::new(&sys).arg("-m").arg("venv").arg(&venv))?;
        if !ok {
            bail!(
                "`{} -m venv {}` failed (on Debian/Ubuntu install python3-venv):\n{}",
                sys.display(),
                venv.display(),
                tail(&out, 10)
            );
        }
    }
    eprintln!(
        "installing torch and numpy from PyPI into {} (large download, once)",
        venv.display()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "torch",
            "numpy",
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("could not run {} -m pip", python.display()))?;
    if !status.success() {
        bail!(
            "`{} -m pip install torch numpy` failed ({status}); check network access to PyPI and disk space, \
             or pass --python PATH to an interpreter that has torch",
            python.display()
        );
    }
    if !python_has_torch(&python) {
        bail!(
            "torch was installed into {} but `import torch, numpy` still fails",
            venv.display()
        );
    }
    Ok(python)
}

fn which_python3() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
}

/// Runs one workload of the PyTorch script and parses its JSON line.
fn run_torch(args: &Args, python: &Path, script: &Path, workload: Workload) -> Result<Timing> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--model", args.model.name(), "--workload", workload.name()])
        .args([
            "--batch",
            &args.batch.to_string(),
            "--classes",
            &args.classes.to_string(),
        ])
        .args([
            "--n-ctx",
            &args.n_ctx.to_string(),
            "--depth",
            &args.depth.to_string(),
        ])
        .args(["--threads", &args.threads.to_string()])
        .args([
            "--warmup",
            &args.warmup.to_string(),
            "--iters",
            &args.iters.to_string(),
        ])
        .args(
            args.torch_device
                .as_deref()
                .map(|d| ["--device", d])
                .into_iter()
                .flatten(),
        )
        .args(
            args.torch_precision
                .as_deref()
                .map(|p| ["--precision", p])
                .into_iter()
                .flatten(),
        )
        // Our thread variables must not leak into torch's OpenMP pool sizing.
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("MATMUL_NUM_THREADS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("  pytorch {}: {:?}", workload.name(), cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", python.display()))?;
    // Stream stderr (warnings) so a long run is visibly alive; keep stdout for the JSON.
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::io::Result::ok)
        {
            eprintln!("  pytorch: {line}");
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let out = child
        .wait_with_output()
        .context("waiting for the PyTorch script")?;
    let err = err_thread.join().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the PyTorch script failed ({}) for {}:\n{}{}",
            out.status,
            workload.name(),
            tail(&stdout, 5),
            tail(&err, 20)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| {
            format!(
                "the PyTorch script printed no JSON line; its output:\n{}",
                tail(&stdout, 10)
            )
        })?;
    serde_json::from_str(line).with_context(|| format!("parsing the PyTorch script's JSON: {line}"))
}

fn fmt_s(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// Keeps freed memory in the process for reuse (glibc only; returns whether it applied).
///
/// By default glibc hands large freed blocks back to the OS (mmap'd blocks, and the heap
/// top above 128 KiB); every large tensor of the next op is then a fresh mapping whose
/// pages fault and are zeroed on first touch, 5-10% of a step here (docs/PERFORMANCE.md).
/// With the mmap threshold at its maximum (32 MiB) and no trimming, freed blocks are reused.
/// The `maple` binary should make the same call at startup.
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let malloc_tuned = !args.no_malloc_tuning && tune_malloc();
    // Before any tensor work: thread pools are sized once.
    let threads = set_threads(args.threads, args.matmul_threads)?;
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    if args.classes == 0 || args.batch == 0 {
        bail!("--classes and --batch must be at least 1");
    }
    let workloads = if args.workload.is_empty() {
        vec![
            Workload::TrainStep,
            Workload::EncodeImages,
            Workload::EncodeText,
        ]
    } else {
        args.workload.clone()
    };
    // Resolve the baseline first so a missing Python fails before minutes of benchmarking.
    let torch = if args.compare {
        let script = find_script(&args)?;
        let python = find_python(&args)?;
        Some((python, script))
    } else {
        None
    };
    let dev = device(0);
    eprintln!(
        "bench: {} on {}, batch {}, classes {}, n_ctx {}, depth {}, threads {} (rayon {}, matrixmultiply {}), warm-up {}, iterations {}, malloc {}{}",
        args.model.name(),
        describe(&dev),
        args.batch,
        args.classes,
        args.n_ctx,
        args.depth,
        args.threads,
        threads.0,
        threads.1,
        args.warmup,
        args.iters,
        if malloc_tuned { "tuned" } else { "default" },
        if args.full_context { ", full text context" } else { "" }
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for &w in &workloads {
        eprintln!("{}:", w.name());
        let t = run_ours(&args, w, threads)?;
        eprintln!("  ours {}: median {}", w.name(), fmt_s(t.median_s));
        ours.push(t);
        if let Some((python, script)) = &torch {
            let t = run_torch(&args, python, script, w)?;
            eprintln!("  pytorch {}: median {}", w.name(), fmt_s(t.median_s));
            theirs.push(t);
        }
    }

    let mut ratios = serde_json::Map::new();
    let mut cpu_ratios = serde_json::Map::new();
    let mut peak_ratios = serde_json::Map::new();
    for (o, p) in ours.iter().zip(&theirs) {
        let r = o.median_s / p.median_s;
        println!(
            "{}: ratio={r:.3} (ours {:.4} s/iter, pytorch {:.4} s/iter; median of {})",
            o.workload, o.median_s, p.median_s, o.iters
        );
        ratios.insert(o.workload.clone(), json!(r));
        if let (Some(a), Some(b)) = (o.cpu_median(), p.cpu_median()) {
            cpu_ratios.insert(o.workload.clone(), json!(a / b));
        }
        if let (Some(a), Some(b)) = (o.peak_bytes(), p.peak_bytes()) {
            peak_ratios.insert(o.workload.clone(), json!(a / b));
        }
    }

    // Human table.
    println!();
    let mib = |t: &Timing| {
        t.peak_bytes()
            .map_or("-".to_string(), |b| format!("{:.0} MiB", b / 1048576.0))
    };
    let cpu = |t: &Timing| t.cpu_median().map_or("-".to_string(), fmt_s);
    if torch.is_some() {
        println!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7} {:>9} {:>9} {:>6}",
            "workload",
            "ours med",
            "ours min",
            "ours cpu",
            "torch med",
            "torch min",
            "torch cpu",
            "ratio",
            "cpu r.",
            "ours peak",
            "torch pk",
            "mem r."
        );
        for (o, p) in ours.iter().zip(&theirs) {
            let opt = |m: &serde_json::Map<String, Value>| {
                m.get(&o.workload)
                    .and_then(Value::as_f64)
                    .map_or("-".to_string(), |r| format!("{r:.3}"))
            };
            println!(
                "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7.3} {:>7} {:>9} {:>9} {:>6}",
                o.workload,
                fmt_s(o.median_s),
                fmt_s(o.min_s),
                cpu(o),
                fmt_s(p.median_s),
                fmt_s(p.min_s),
                cpu(p),
                o.median_s / p.median_s,
                opt(&cpu_ratios),
                mib(o),
                mib(p),
                opt(&peak_ratios)
            );
        }
        if let Some(p) = theirs.first() {
            let v = p.extra.get("torch").and_then(Value::as_str).unwrap_or("?");
            println!(
                "pytorch {v}, {} threads; ours: {} threads (rayon {}, matrixmultiply {}); \
                 cpu = median process CPU seconds per iteration (all threads); peak = resident memory",
                p.threads, args.threads, threads.0, threads.1
            );
        }
        if !args.full_context && workloads.iter().any(|w| *w != Workload::EncodeImages) {
            let len = ours
                .iter()
                .find_map(|o| o.extra.get("text_positions").cloned())
                .unwrap_or(Value::Null);
            println!(
                "note: our text tower computes each class prompt up to its EOT (at most {len} positions); \
                 the PyTorch script computes 77. --full-context compares the same work."
            );
        }
    } else {
        println!(
            "{:<14} {:>12} {:>12} {:>12} {:>12} {:>10}",
            "workload", "median", "min", "max", "cpu med", "peak"
        );
        for o in &ours {
            println!(
                "{:<14} {:>12} {:>12} {:>12} {:>12} {:>10}",
                o.workload,
                fmt_s(o.median_s),
                fmt_s(o.min_s),
                fmt_s(o.max_s),
                cpu(o),
                mib(o)
            );
        }
    }
    println!();

    let mut summary = json!({ "ours": ours });
    if torch.is_some() {
        summary["pytorch"] = json!(theirs);
        summary["ratios"] = Value::Object(ratios);
        summary["cpu_ratios"] = Value::Object(cpu_ratios);
        summary["peak_ratios"] = Value::Object(peak_ratios);
    }
    let text = serde_json::to_string(&summary)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
