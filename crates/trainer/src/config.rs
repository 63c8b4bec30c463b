//! Run configurations: the reference's hyper-parameters as presets and as JSON files
//! (`configs/*.json` at the repository root hold the same values as the presets).

use std::path::Path;

use clip_model::Precision;
use maple_prompts::{LrSchedule, MapleConfig, Method, MethodConfig, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};

/// Everything a training run is configured by, apart from the dataset, the seed and the
/// data root. Field names follow the reference's config keys loosely; see
/// `docs/PROTOCOL.md` §1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Short name, used in output paths and result files (the reference's config file stem).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Default CLIP weights: a safetensors file, a folder, or a hub id `owner/name`.
    pub weights: String,
    /// The prompt method and its settings (`{"method": "maple", "n_ctx": 2, ...}`).
    pub learner: MethodConfig,
    /// Optimizer and schedule.
    pub optim: OptimSettings,
    /// Training images per batch (`DATALOADER.TRAIN_X.BATCH_SIZE`).
    pub batch_size: usize,
    /// Evaluation images per batch (`DATALOADER.TEST.BATCH_SIZE`).
    pub test_batch_size: usize,
    /// Shots per class for training (`DATASET.NUM_SHOTS`).
    pub shots: usize,
    /// Seeds of the repeated runs.
    pub seeds: Vec<u64>,
    /// Input side in pixels; `None` takes the CLIP's own resolution.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Training augmentation (random resized crop and flip, as the reference); `false`
    /// trains on the evaluation transform (resize and center crop).
    #[serde(default = "yes")]
    pub train_augment: bool,
    /// Precision the frozen CLIP computes in: `f32` (default), `f16` or `bf16`. Half runs
    /// the towers' weights and activations in half behind an f32 boundary; prompts, their
    /// gradients, the optimizer state and the loss stay f32 (see `clip_model::precision`).
    /// Needs a backend that computes in it (wgpu, cuda, flex for f16; cuda, flex for bf16).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

fn yes() -> bool {
    true
}

/// SGD and the per-epoch schedule (`OPTIM.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSettings {
    /// Base learning rate.
    pub lr: f64,
    /// Epochs (`MAX_EPOCH`), also the cosine period.
    pub max_epoch: usize,
    /// Constant warm-up epochs.
    pub warmup_epochs: usize,
    /// Warm-up learning rate.
    pub warmup_lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
}

impl RunConfig {
    /// The reference base-to-novel setting (`MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml`):
    /// ViT-B/16, 2 context tokens from "a photo of a", depth 9, SGD lr 0.0035, 5 epochs,
    /// batch 4, test batch 100, 16 shots, seeds 1 2 3.
    pub fn base_to_novel() -> Self {
        RunConfig {
            name: "vit_b16_c2_ep5_batch4_2ctx".into(),
            description:
                "MaPLe base-to-novel generalisation (reference config vit_b16_c2_ep5_batch4_2ctx)"
                    .into(),
            weights: "openai/clip-vit-base-patch16".into(),
            learner: MethodConfig::Maple(
                MapleConfig::new()
                    .with_n_ctx(2)
                    .with_ctx_init(Some("a photo of a".into()))
                    .with_depth(9),
            ),
            optim: OptimSettings {
                lr: 0.0035,
                max_epoch: 5,
                warmup_epochs: 1,
                warmup_lr: 1e-5,
                momentum: 0.9,
                weight_decay: 5e-4,
            },
            batch_size: 4,
            test_batch_size: 100,
            shots: 16,
            seeds: vec![1, 2, 3],
            image_size: None,
            train_augment: true,
            precision: Precision::F32,
        }
    }

    /// The reference cross-dataset / domain-generalisation setting
    /// (`..._cross_datasets.yaml`): as [`RunConfig::base_to_novel`] with depth 3,
    /// lr 0.0026 and 2 epochs.
    pub fn cross_dataset() -> Self {
        let mut c = Self::base_to_novel();
        c.name = "vit_b16_c2_ep5_batch4_2ctx_cross_datasets".into();
        c.description = "MaPLe cross-dataset transfer and domain generalisation (reference config vit_b16_c2_ep5_batch4_2ctx_cross_datasets)".into();
        c.learner = MethodConfig::Maple(
            MapleConfig::new()
                .with_n_ctx(2)
                .with_ctx_init(Some("a photo of a".into()))
                .with_depth(3),
        );
        c.optim.lr = 0.0026;
        c.optim.max_epoch = 2;
        c
    }

    /// Reads a JSON config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        let config: RunConfig = serde_json::from_str(&text).map_err(|e| TrainerError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| TrainerError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// The reference's settings for `method` in base-to-novel generalisation (each equals
    /// a file in `configs/`): MaPLe as [`RunConfig::base_to_novel`]; CoOp
    /// (`CoOp/vit_b16.yaml`: 16 random context vectors, batch 32, lr 0.002, 200 epochs);
    /// Co-CoOp (`CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml`: 4 vectors from "a photo of a",
    /// batch 1, lr 0.002, 10 epochs); IVLP (`IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml`: 2
    /// text and 2 vision prompts at depth 12, batch 4, lr 0.0035, 5 epochs); VPT
    /// (`VPT/vit_b16_c2_ep5_batch4_4.yaml`: 8 vision prompts at depth 12, batch 4,
    /// lr 0.0025, 5 epochs). All: SGD momentum 0.9, weight decay 5e-4, cosine schedule after
    /// one constant warm-up epoch at 1e-5, 16 shots, test batch 100, seeds 1 2 3.
    pub fn preset(method: Method) -> Self {
        let base = Self::base_to_novel();
        let (name, lr, max_epoch, batch_size) = match method {
            Method::Maple => return base,
            Method::CoOp => ("vit_b16", 0.002, 200, 32),
            Method::CoCoOp => ("vit_b16_c4_ep10_batch1_ctxv1", 0.002, 10, 1),
            Method::Ivlp => ("vit_b16_c2_ep5_batch4_2+2ctx", 0.0035, 5, 4),
            Method::Vpt => ("vit_b16_c2_ep5_batch4_4", 0.0025, 5, 4),
        };
        RunConfig {
            name: name.into(),
            description: format!(
                "{} base-to-novel generalisation (reference config {}/{name})",
                method.display_name(),
                match method {
                    Method::CoOp => "CoOp",
                    Method::CoCoOp => "CoCoOp",
                    Method::Ivlp => "IVLP",
                    _ => "VPT",
                }
            ),
            learner: MethodConfig::reference(method),
            optim: OptimSettings {
                lr,
                max_epoch,
                ..base.optim
            },
            batch_size,
            ..base
        }
    }

    /// Largest batch, evaluation batch and image side accepted: far beyond any real run,
    /// small enough that a typo cannot ask for a terabyte allocation.
    pub const MAX_BATCH: usize = 1 << 16;
    /// Largest image side accepted, in pixels.
    pub const MAX_IMAGE_SIZE: usize = 1 << 13;
    /// Largest number of shots per class accepted.
    pub const MAX_SHOTS: usize = 1 << 20;

    /// Checks values that cannot work, naming the field and the value.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainerError::Invalid(m));
        if self.name.trim().is_empty() || self.name.contains(['/', '\\']) || self.name == ".." {
            return bad(format!(
                "config name {:?} must be non-empty and hold no path separator",
                self.name
            ));
        }
        self.learner
            .validate()
            .map_err(|e| TrainerError::Invalid(format!("learner: {e}")))?;
        for (field, v) in [
            ("batch_size", self.batch_size),
            ("test_batch_size", self.test_batch_size),
        ] {
            if v == 0 || v > Self::MAX_BATCH {
                return bad(format!(
                    "{field} must be between 1 and {}, found {v}",
                    Self::MAX_BATCH
                ));
            }
        }
        if self.shots == 0 || self.shots > Self::MAX_SHOTS {
            return bad(format!(
                "shots must be between 1 and {}, found {}",
                Self::MAX_SHOTS,
                self.shots
            ));
        }
        let o = &self.optim;
        if o.max_epoch == 0 || o.max_epoch > 100_000 {
            return bad(format!(
                "optim.max_epoch must be between 1 and 100000, found {}",
                o.max_epoch
            ));
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return bad(format!(
                "optim.lr must be a positive number, found {}",
                o.lr
            ));
        }
        if !(o.warmup_lr.is_finite() && o.warmup_lr >= 0.0) {
            return bad(format!(
                "optim.warmup_lr must be a number >= 0, found {}",
                o.warmup_lr
            ));
        }
        if !(o.momentum.is_finite() && (0.0..1.0).contains(&o.momentum)) {
            return bad(format!(
                "optim.momentum must be in [0, 1), found {}",
                o.momentum
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return bad(format!(
                "optim.weight_decay must be a number >= 0, found {}",
                o.weight_decay
            ));
        }
        if self.seeds.is_empty() {
            return bad("seeds must list at least one seed".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(s) = self.seeds.iter().find(|s| !seen.insert(**s)) {
            return bad(format!(
                "seed {s} is listed twice in {:?}: each seed is one run",
                self.seeds
            ));
        }
        if let Some(size) = self.image_size {
            if size == 0 || size > Self::MAX_IMAGE_SIZE {
                return bad(format!(
                    "image_size must be between 1 and {}, found {size}",
                    Self::MAX_IMAGE_SIZE
                ));
            }
        }
        Ok(())
    }

    /// This reference configuration adapted to a small CLIP (the toy CLIP of the procedural
    /// demo), the same way for every method so that comparisons stay fair:
    ///
    /// - the learning rate times `100 / exp(logit_scale)`: the reference rates are tuned for
    ///   CLIP's logit scale of 100, and the prompt gradients scale with it;
    /// - prompt depths rescaled from ViT-B/16's 12 blocks to the CLIP's
    ///   ([`MethodConfig::scale_depth`]);
    /// - epochs times `epoch_factor`, rounded; a factor below 1 keeps at least the warm-up
    ///   plus 2 epochs (and never more than the reference's), so that every method still
    ///   trains after its constant warm-up epochs.
    pub fn scaled_to(
        &self,
        clip: &clip_model::ClipConfig,
        logit_scale: f64,
        epoch_factor: f64,
    ) -> Self {
        let mut c = self.clone();
        c.optim.lr *= 100.0 / logit_scale;
        let layers = clip.vision_layers.min(clip.transformer_layers);
        c.learner.scale_depth(12, layers);
        let reference = c.optim.max_epoch;
        let mut epochs = ((reference as f64 * epoch_factor).round() as usize).max(1);
        if epoch_factor < 1.0 {
            epochs = epochs.max(c.optim.warmup_epochs + 2).min(reference);
        }
        c.optim.max_epoch = epochs;
        c
    }

    /// The optimizer configuration.
    pub fn sgd_config(&self) -> SgdConfig {
        SgdConfig {
            momentum: self.optim.momentum,
            weight_decay: self.optim.weight_decay,
        }
    }

    /// The per-epoch learning-rate schedule.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            lr: self.optim.lr,
            max_epoch: self.optim.max_epoch,
            warmup_epochs: self.optim.warmup_epochs,
            warmup_lr: self.optim.warmup_lr,
        }
    }

    /// The settings that change what training computes (everything but the name, the
    /// description, the default weights, the evaluation batch and the seed list), as JSON.
    /// Two runs may share checkpoints only when these are equal.
    pub fn training_fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "learner": self.learner,
            "optim": self.optim,
            "batch_size": self.batch_size,
            "shots": self.shots,
            "image_size": self.image_size,
            "train_augment": self.train_augment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_reference_learning_rates_per_epoch() {
        let s = RunConfig::base_to_novel().schedule();
        let lrs: Vec<f64> = (0..5).map(|e| s.lr_at(e)).collect();
        let expected = [
            1e-5,
            0.0035,
            0.0031657797401561582,
            0.002290779740156158,
            0.001209220259843842,
        ];
        for (a, b) in lrs.iter().zip(expected) {
            // Closed form vs torch's recursive formula: equal to a few ulps.
            assert!((a - b).abs() < 1e-15, "{lrs:?}");
        }
        let x = RunConfig::cross_dataset().schedule();
        assert_eq!([x.lr_at(0), x.lr_at(1)], [1e-5, 0.0026]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut v = serde_json::to_value(RunConfig::base_to_novel()).unwrap();
        v["learning_rate"] = 1.0.into();
        assert!(serde_json::from_value::<RunConfig>(v).is_err());
    }
}
