//! CLIP architecture hyper-parameters: presets, inference from weight shapes (with the
//! checks that keep malformed weights from reaching the backend) and validation.

use burn::config::Config;

use crate::error::{ClipError, Result};

/// Hyper-parameters of a CLIP model with a ViT image tower.
///
/// Field names follow OpenAI's `clip.build_model`. Heads are `width / 64` in every
/// released model; [`ClipConfig::from_shapes`] derives them the same way.
#[derive(Config, Debug, PartialEq)]
pub struct ClipConfig {
    /// Joint embedding dimension (output of both projections).
    pub embed_dim: usize,
    /// Input image side in pixels (square).
    pub image_resolution: usize,
    /// Number of residual blocks in the image tower.
    pub vision_layers: usize,
    /// Residual width of the image tower.
    pub vision_width: usize,
    /// Number of attention heads in the image tower.
    pub vision_heads: usize,
    /// Patch side in pixels.
    pub vision_patch_size: usize,
    /// Text context length (77 for every released model).
    pub context_length: usize,
    /// Token vocabulary size (49408 for the CLIP BPE).
    pub vocab_size: usize,
    /// Residual width of the text tower.
    pub transformer_width: usize,
    /// Number of attention heads in the text tower.
    pub transformer_heads: usize,
    /// Number of residual blocks in the text tower.
    pub transformer_layers: usize,
    /// LayerNorm epsilon (1e-5 in CLIP).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl ClipConfig {
    /// OpenAI ViT-B/32 (224 px, 12+12 layers, widths 768/512, embed 512).
    pub fn vit_b32() -> Self {
        Self::new(512, 224, 12, 768, 12, 32, 77, 49408, 512, 8, 12)
    }

    /// OpenAI ViT-B/16 (224 px, 12+12 layers, widths 768/512, embed 512): MaPLe's backbone.
    pub fn vit_b16() -> Self {
        Self::new(512, 224, 12, 768, 12, 16, 77, 49408, 512, 8, 12)
    }

    /// OpenAI ViT-L/14 (224 px, 24+12 layers, widths 1024/768, embed 768).
    pub fn vit_l14() -> Self {
        Self::new(768, 224, 24, 1024, 16, 14, 77, 49408, 768, 12, 12)
    }

    /// Number of patches per image side.
    pub fn grid_size(&self) -> usize {
        self.image_resolution / self.vision_patch_size
    }

    /// Number of image tokens before any prompt: class token + patches.
    pub fn vision_tokens(&self) -> usize {
        1 + self.grid_size() * self.grid_size()
    }

    /// Infers the configuration from tensor shapes in OpenAI naming, as
    /// `clip.build_model` does. `shape` returns the shape of a tensor or `None`.
    ///
    /// # Errors
    /// The first tensor that is missing or malformed, as [`ShapeProblem`] (the same checks
    /// as [`ClipConfig::infer`], which reads the layer counts from the full key list).
    pub fn from_shapes(shape: impl Fn(&str) -> Option<Vec<usize>>) -> Result<Self, ShapeProblem> {
        // Without the key list, layers are the consecutive `.{i}.attn.in_proj_weight` found.
        let layers = |prefix: &str| {
            (0..)
                .take_while(|i| shape(&format!("{prefix}.{i}.attn.in_proj_weight")).is_some())
                .count()
        };
        Self::infer_with(&shape, &layers)
    }

    /// Infers the configuration from the shapes of all tensors of a weights file in OpenAI
    /// naming (`key -> shape`), checking every shape it reads.
    ///
    /// Each width is taken from all the tensors that carry it, by majority (the first listed
    /// wins a tie), so that one malformed tensor is blamed itself rather than its well-formed
    /// neighbours; layer counts are one more than the highest block index present, so a
    /// block missing a tensor is reported as that missing tensor.
    ///
    /// Checked here: ranks of the tensors that define the architecture, patch and grid sizes
    /// of at least 1 (positional rows `1 + grid^2`), widths that are positive multiples of 64
    /// (heads = width / 64, as in every released CLIP), at least one block per tower, a
    /// non-empty vocabulary and a context of at least [`MIN_CONTEXT_LENGTH`] positions. The
    /// remaining shapes are checked exactly by the loader against the inferred configuration.
    /// Whether the vocabulary covers a tokenizer's ids depends on the tokenizer (small test
    /// models use small vocabularies): check it with [`ClipConfig::check_tokenizer`].
    pub fn infer<'a>(
        shapes: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    ) -> Result<Self, ShapeProblem> {
        let map: std::collections::HashMap<&str, &[usize]> = shapes.into_iter().collect();
        let shape = |k: &str| map.get(k).map(|s| s.to_vec());
        let layers = |prefix: &str| {
            let prefix = format!("{prefix}.");
            map.keys()
                .filter_map(|k| {
                    k.strip_prefix(&prefix)?
                        .split('.')
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .map(|i| i.saturating_add(1))
                .max()
                .unwrap_or(0)
        };
        Self::infer_with(&shape, &layers)
    }

    fn infer_with(
        shape: &dyn Fn(&str) -> Option<Vec<usize>>,
        layers: &dyn Fn(&str) -> usize,
    ) -> Result<Self, ShapeProblem> {
        let missing = |key: &str, expected: &str| ShapeProblem::Missing {
            key: key.to_string(),
            expected: expected.to_string(),
        };
        let bad = |key: &str, expected: String, found: &[usize]| ShapeProblem::Invalid {
            key: key.to_string(),
            expected,
            found: found.to_vec(),
        };
        // A tensor of a given rank.
        let get = |key: &str, rank: usize, expected: &str| -> Result<Vec<usize>, ShapeProblem> {
            let s = shape(key).ok_or_else(|| missing(key, expected))?;
            if s.len() != rank {
                return Err(bad(key, expected.to_string(), &s));
            }
            Ok(s)
        };
        // The most common value of a dimension among the tensors carrying it (present, of
        // the right rank); `None` when none does.
        let vote = |carriers: &[(&str, usize, usize)]| -> Option<usize> {
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for &(key, rank, dim) in carriers {
                if let Some(s) = shape(key).filter(|s| s.len() == rank) {
                    match counts.iter_mut().find(|(v, _)| *v == s[dim]) {
                        Some((_, c)) => *c += 1,
                        None => counts.push((s[dim], 1)),
                    }
                }
            }
            // `max_by_key` returns the last maximum: reverse so the first listed wins ties.
            counts.iter().rev().max_by_key(|(_, c)| *c).map(|(v, _)| *v)
        };
        let width_rule = |key: &str, what: &str, w: usize, found: &[usize]| {
            if w == 0 || !w.is_multiple_of(64) {
                Err(bad(
                    key,
                    format!("{what} with a width that is a positive multiple of 64 (heads = width / 64)"),
                    found,
                ))
            } else {
                Ok(())
            }
        };

        // Image tower.
        let conv_exp = "[width, 3, patch, patch] with patch >= 1";
        let conv = get("visual.conv1.weight", 4, conv_exp)?;
        if conv[1] != 3 || conv[2] != conv[3] || conv[2] == 0 {
            return Err(bad("visual.conv1.weight", conv_exp.into(), &conv));
        }
        let vision_patch_size = conv[2];
        let vision_width = vote(&[
            ("visual.class_embedding", 1, 0),
            ("visual.conv1.weight", 4, 0),
            ("visual.positional_embedding", 2, 1),
            ("visual.ln_pre.weight", 1, 0),
            ("visual.ln_pre.bias", 1, 0),
            ("visual.ln_post.weight", 1, 0),
            ("visual.ln_post.bias", 1, 0),
            ("visual.proj", 2, 0),
        ])
        .unwrap_or(conv[0]);
        width_rule("visual.conv1.weight", conv_exp, vision_width, &conv)?;
        let pos_exp = "[1 + grid^2, width] with grid >= 1";
        let pos = get("visual.positional_embedding", 2, pos_exp)?;
        let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
        if grid == 0 || grid.checked_mul(grid).and_then(|g| g.checked_add(1)) != Some(pos[0]) {
            return Err(bad("visual.positional_embedding", pos_exp.into(), &pos));
        }
        let vision_layers = layers("visual.transformer.resblocks");
        if vision_layers == 0 {
            return Err(missing(
                "visual.transformer.resblocks.0.attn.in_proj_weight",
                "[3 * width, width] (at least one image block)",
            ));
        }

        // Text tower.
        let transformer_width = vote(&[
            ("ln_final.weight", 1, 0),
            ("ln_final.bias", 1, 0),
            ("token_embedding.weight", 2, 1),
            ("positional_embedding", 2, 1),
            ("text_projection", 2, 0),
        ])
        .ok_or_else(|| missing("ln_final.weight", "[width]"))?;
        let ln = get("ln_final.weight", 1, "[width]")?;
        width_rule("ln_final.weight", "[width]", transformer_width, &ln)?;
        let tp_exp = "[width, embed_dim] with embed_dim >= 1";
        let tp = get("text_projection", 2, tp_exp)?;
        let embed_dim = vote(&[("text_projection", 2, 1), ("visual.proj", 2, 1)]).unwrap_or(tp[1]);
        if embed_dim == 0 {
            return Err(bad("text_projection", tp_exp.into(), &tp));
        }
        let ctx_exp =
            format!("[context_length, width] with context_length >= {MIN_CONTEXT_LENGTH}");
        let ctx = get("positional_embedding", 2, &ctx_exp)?;
        if ctx[0] < MIN_CONTEXT_LENGTH {
            return Err(bad("positional_embedding", ctx_exp, &ctx));
        }
        let vocab_exp = "[vocab_size, width] with vocab_size >= 1";
        let vocab = get("token_embedding.weight", 2, vocab_exp)?;
        if vocab[0] == 0 {
            return Err(bad("token_embedding.weight", vocab_exp.into(), &vocab));
        }
        let transformer_layers = layers("transformer.resblocks");
        if transformer_layers == 0 {
            return Err(missing(
                "transformer.resblocks.0.attn.in_proj_weight",
                "[3 * width, width] (at least one text block)",
            ));
        }
        let config = Self::new(
            embed_dim,
            vision_patch_size * grid,
            vision_layers,
            vision_width,
            vision_width / 64,
            vision_patch_size,
            ctx[0],
            vocab[0],
            transformer_width,
            transformer_width / 64,
            transformer_layers,
        );
        Ok(config)
    }

    /// Checks that the configuration describes a model the towers can run: every size
    /// positive, widths divisible by their head counts, the image resolution a whole number of
    /// patches. Returns what is wrong.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("embed_dim", self.embed_dim),
            ("image_resolution", self.image_resolution),
            ("vision_layers", self.vision_layers),
            ("vision_width", self.vision_width),
            ("vision_heads", self.vision_heads),
            ("vision_patch_size", self.vision_patch_size),
            ("context_length", self.context_length),
            ("vocab_size", self.vocab_size),
            ("transformer_width", self.transformer_width),
            ("transformer_heads", self.transformer_heads),
            ("transformer_layers", self.transformer_layers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ClipError::Invalid(format!("CLIP config: {name} is 0")));
        }
        for (w, h, tower) in [
            (self.vision_width, self.vision_heads, "vision"),
            (self.transformer_width, self.transformer_heads, "text"),
        ] {
            if !w.is_multiple_of(h) {
                return Err(ClipError::Invalid(format!(
                    "CLIP config: {tower} width {w} is not divisible by its {h} heads"
                )));
            }
        }
        if !self.image_resolution.is_multiple_of(self.vision_patch_size) {
            return Err(ClipError::Invalid(format!(
                "CLIP config: image_resolution {} is not a multiple of the patch size {}",
                self.image_resolution, self.vision_patch_size
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(ClipError::Invalid(format!(
                "CLIP config: layer_norm_eps {} is not a positive number",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Checks that the text tower can embed every id `tokenizer` emits (its vocabulary is at
    /// least the tokenizer's) in rows of `context_length` (at most this model's context).
    /// Call it where a tokenizer is paired with weights: an id past the embedding table
    /// would fail inside the backend.
    pub fn check_tokenizer(
        &self,
        tokenizer: &crate::tokenizer::Tokenizer,
        context_length: usize,
    ) -> Result<()> {
        if self.vocab_size < tokenizer.vocab_size() {
            return Err(ClipError::Invalid(format!(
                "the text tower's token_embedding.weight has {} rows, but the tokenizer emits \
                 ids up to {}: the weights do not belong to this tokenizer",
                self.vocab_size,
                tokenizer.vocab_size() - 1
            )));
        }
        if context_length > self.context_length {
            return Err(ClipError::Invalid(format!(
                "token rows of {context_length} ids do not fit the text tower's positional \
                 embedding of {} rows",
                self.context_length
            )));
        }
        Ok(())
    }

    /// Checks tokenized rows before they reach the text tower: all of one length, at most
    /// `context_length`, every id below `vocab_size`.
    pub fn check_token_rows(&self, rows: &[Vec<u32>]) -> Result<()> {
        let len = rows.first().map_or(0, Vec::len);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != len || len > self.context_length {
                return Err(ClipError::Invalid(format!(
                    "token row {i} has {} ids; rows must all have the same length, at most {}",
                    r.len(),
                    self.context_length
                )));
            }
            if let Some(&id) = r.iter().find(|&&id| id as usize >= self.vocab_size) {
                return Err(ClipError::Invalid(format!(
                    "token row {i} holds id {id}, past the vocabulary of {} ids",
                    self.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// Checks that square images of side `size` fit the image tower: the positional
    /// embedding has `1 + grid^2` rows, so only `size = grid * patch` (the model's
    /// `image_resolution`) can be embedded. Call it before preprocessing or running anything:
    /// the forward functions take tensors and cannot report an error.
    pub fn check_image_size(&self, size: usize) -> Result<()> {
        let (p, g) = (self.vision_patch_size, self.grid_size());
        if p == 0 || size != g * p {
            return Err(ClipError::Invalid(format!(
                "image size {size} does not fit this CLIP: its positional embedding has \
                 1 + {g}^2 rows, for {g}x{g} patches of {p} px, i.e. {} px images",
                g * p
            )));
        }
        Ok(())
    }
}

/// Smallest context a text tower may have: room for `<|startoftext|>` and `<|endoftext|>`.
pub const MIN_CONTEXT_LENGTH: usize = 2;

/// Why a configuration cannot be inferred from weight shapes ([`ClipConfig::infer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeProblem {
    /// A tensor the architecture is read from is absent.
    Missing {
        /// The tensor (OpenAI naming).
        key: String,
        /// The shape it should have.
        expected: String,
    },
    /// A tensor has a shape no CLIP can have.
    Invalid {
        /// The tensor (OpenAI naming).
        key: String,
        /// The shape it should have.
        expected: String,
        /// The shape it has.
        found: Vec<usize>,
    },
}

impl std::fmt::Display for ShapeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { key, expected } => {
                write!(f, "missing tensor `{key}` (expected shape {expected})")
            }
            Self::Invalid {
                key,
                expected,
                found,
            } => write!(f, "tensor `{key}` has shape {found:?}, expected {expected}"),
        }
    }
}

impl std::error::Error for ShapeProblem {}
