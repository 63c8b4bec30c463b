//! Shared test helpers: the tiny fixture CLIP, small dataset trees in their real layout,
//! a tiny run configuration, and the backend the tests run on.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use maple_prompts::{MapleConfig, MethodConfig};
use serde_json::json;
use trainer::config::OptimSettings;
use trainer::RunConfig;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The tiny random CLIP of the parity fixtures (32 px, 4+4 layers).
pub fn tiny_clip() -> PathBuf {
    workspace().join("tests/fixtures/maple-tiny/clip.safetensors")
}

/// EuroSAT class folders and names (the json holds the renamed names).
pub const CLASSES: [(&str, &str); 4] = [
    ("AnnualCrop", "Annual Crop Land"),
    ("Forest", "Forest"),
    ("Highway", "Highway or Road"),
    ("SeaLake", "Sea or Lake"),
];

/// Writes `<root>/eurosat/split_zhou_EuroSAT.json` and its PNGs under `2750/`:
/// `train` / `val` / `test` images per class, 40x36 pixels (so resizing is exercised),
/// coloured by class with per-image variation.
pub fn eurosat_tree(root: &Path, train: usize, val: usize, test: usize) {
    let dir = root.join("eurosat");
    let mut tag = 0u32;
    let mut split = |n: usize, name: &str| -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for i in 0..n {
            for (label, (folder, classname)) in CLASSES.iter().enumerate() {
                tag += 1;
                let rel = format!("{folder}/{folder}_{name}{i}.png");
                let path = dir.join("2750").join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let base = [
                    (label * 60) as u32,
                    (255 - label * 50) as u32,
                    (label * 90 % 256) as u32,
                ];
                let img = RgbImage::from_fn(40, 36, |x, y| {
                    Rgb([
                        ((base[0] + x * 3 + tag * 7) % 256) as u8,
                        ((base[1] + y * 5 + tag * 3) % 256) as u8,
                        ((base[2] + (x ^ y) + tag) % 256) as u8,
                    ])
                });
                img.save(&path).unwrap();
                out.push(json!([rel, label, classname]));
            }
        }
        out
    };
    let doc = json!({"train": split(train, "train"), "val": split(val, "val"), "test": split(test, "test")});
    std::fs::write(
        dir.join("split_zhou_EuroSAT.json"),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
}

/// A run configuration small enough for tests: depth 3 of the tiny CLIP's 4 layers,
/// 3 epochs of batch 2 on 2 shots, lr 0.05 (so the prompts move visibly).
pub fn tiny_config() -> RunConfig {
    RunConfig {
        name: "tiny".into(),
        description: "test".into(),
        weights: tiny_clip().display().to_string(),
        learner: MethodConfig::Maple(
            MapleConfig::new()
                .with_n_ctx(2)
                .with_ctx_init(Some("a photo of a".into()))
                .with_depth(3),
        ),
        optim: OptimSettings {
            lr: 0.05,
            max_epoch: 3,
            warmup_epochs: 1,
            warmup_lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
        },
        batch_size: 2,
        test_batch_size: 5,
        shots: 3,
        seeds: vec![1],
        image_size: None,
        train_augment: true,
        precision: clip_model::Precision::F32,
    }
}

fn write_png(path: &Path, label: usize, tag: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(36, 40, |x, y| {
        Rgb([
            ((label as u32 * 80 + x * 2 + tag) % 256) as u8,
            ((y * 4 + tag * 13) % 256) as u8,
            (label * 100 % 256) as u8,
        ])
    })
    .save(path)
    .unwrap();
}

/// ImageNet wnids and names used by [`imagenet_tree`] and [`imagenet_r_tree`].
pub const WNIDS: [(&str, &str); 3] = [
    ("n01440764", "tench"),
    ("n01443537", "goldfish"),
    ("n01484850", "great white shark"),
];

/// `<root>/imagenet/`: `classnames.txt`, `images/train/<wnid>/` (`train` PNGs each; the
/// reader takes any file) and `images/val/<wnid>/` (`test` each).
pub fn imagenet_tree(root: &Path, train: usize, test: usize) {
    let dir = root.join("imagenet");
    let names: String = WNIDS.iter().map(|(w, n)| format!("{w} {n}\n")).collect();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("classnames.txt"), names).unwrap();
    let mut tag = 0;
    for (label, (wnid, _)) in WNIDS.iter().enumerate() {
        for (split, n) in [("train", train), ("val", test)] {
            for i in 0..n {
                tag += 1;
                write_png(
                    &dir.join(format!("images/{split}/{wnid}/{wnid}_{split}_{i}.JPEG.png")),
                    label,
                    tag,
                );
            }
        }
    }
}

/// `<root>/imagenet-rendition/`: `classnames.txt` and `imagenet-r/<wnid>/` for the first
/// two wnids (`n` PNGs each) plus the README the reference skips.
pub fn imagenet_r_tree(root: &Path, n: usize) {
    let dir = root.join("imagenet-rendition");
    let names: String = WNIDS.iter().map(|(w, n)| format!("{w} {n}\n")).collect();
    std::fs::create_dir_all(dir.join("imagenet-r")).unwrap();
    std::fs::write(dir.join("classnames.txt"), names).unwrap();
    std::fs::write(dir.join("imagenet-r/README.txt"), "readme").unwrap();
    for (label, (wnid, _)) in WNIDS.iter().take(2).enumerate() {
        for i in 0..n {
            write_png(
                &dir.join(format!("imagenet-r/{wnid}/r_{i}.png")),
                label,
                100 + i as u32,
            );
        }
    }
}

/// The backend of these tests: the library chooses none, so the tests pick the CPU one.
pub mod backend {
    /// Inference backend.
    pub type Backend = burn::backend::NdArray<f32>;
    /// Training backend.
    pub type TrainBackend = burn::backend::Autodiff<Backend>;

    /// The CPU device (the index is ignored).
    pub fn device(_index: usize) -> burn::backend::ndarray::NdArrayDevice {
        Default::default()
    }

    /// A short description for summaries.
    pub fn describe(device: &burn::backend::ndarray::NdArrayDevice) -> String {
        format!("ndarray (cpu) {device:?}")
    }
}
