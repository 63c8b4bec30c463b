//! Loader throughput with the test transform (decode, bicubic resize, center crop, normalise).
//!
//! Writes `--count` synthetic `--width`x`--height` JPEGs into `--dir` (kept,
//! so `loader_throughput.py` can time Pillow on the same files), then loads
//! them in batches with 1 and `--threads` decoding threads.
//!
//! ```text
//! cargo run --release -p datasets --example loader_throughput -- --threads 2
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use datasets::{Datum, Loader, LoaderConfig, Transform};
use image::{Rgb, RgbImage};

#[derive(Parser)]
struct Args {
    /// Folder for the generated JPEGs (reused if already filled).
    #[arg(long, default_value = "/tmp/datasets-throughput")]
    dir: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 400)]
    count: usize,
    /// Image width.
    #[arg(long, default_value_t = 500)]
    width: u32,
    /// Image height.
    #[arg(long, default_value_t = 375)]
    height: u32,
    /// Decoding threads of the second run.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Output side.
    #[arg(long, default_value_t = 224)]
    size: u32,
}

/// A photo-like image: smooth gradients plus deterministic texture, so JPEG sizes are realistic.
fn synth(w: u32, h: u32, k: u32) -> RgbImage {
    let mut state = 0x9e37_79b9u32.wrapping_mul(k + 1);
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 48) as i32 - 24;
        let f = |base: i32| (base + n).clamp(0, 255) as u8;
        Rgb([
            f(((x * 255) / w) as i32),
            f(((y * 255) / h) as i32),
            f(
                (((x + y + k * 7) % 256) as i32 + ((x as f32 / 9.0).sin() * 40.0) as i32)
                    .rem_euclid(256),
            ),
        ])
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let mut items = Vec::with_capacity(args.count);
    let mut bytes = 0u64;
    for k in 0..args.count {
        let name = format!("img_{k:05}.jpg");
        let path = args.dir.join(&name);
        if !path.is_file() {
            synth(args.width, args.height, k as u32).save(&path)?;
        }
        bytes += std::fs::metadata(&path)?.len();
        items.push(Datum::new(name, k % 10));
    }
    println!(
        "{} JPEGs of {}x{} in {} (mean {:.0} KiB), test transform to {s}x{s}, batch {}",
        args.count,
        args.width,
        args.height,
        args.dir.display(),
        bytes as f64 / args.count as f64 / 1024.0,
        args.batch,
        s = args.size
    );
    println!("{:>8} {:>10} {:>10}", "threads", "seconds", "images/s");
    for threads in [1, args.threads] {
        let config = LoaderConfig {
            num_threads: threads,
            ..LoaderConfig::test(args.batch)
        };
        let loader = Loader::new(
            "bench",
            "test",
            &args.dir,
            items.clone(),
            Transform::test(args.size),
            config,
        )?;
        // Warm the page cache and the pool once.
        loader.epoch(0).take(1).for_each(drop);
        let start = Instant::now();
        let mut n = 0;
        for batch in loader.epoch(0) {
            n += batch?.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{threads:>8} {secs:>10.3} {:>10.1}", n as f64 / secs);
    }
    Ok(())
}
