//! CLIP architecture hyper-parameters: presets and inference from weight shapes.

use burn::config::Config;

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
    /// Returns the name of the first tensor that is missing or malformed on failure.
    pub fn from_shapes(shape: impl Fn(&str) -> Option<Vec<usize>>) -> Result<Self, String> {
        let get = |k: &str| shape(k).ok_or_else(|| k.to_string());
        let conv = get("visual.conv1.weight")?;
        if conv.len() != 4 || conv[2] != conv[3] {
            return Err(format!(
                "visual.conv1.weight has shape {conv:?}, expected [width, 3, patch, patch]"
            ));
        }
        let vision_width = conv[0];
        let vision_patch_size = conv[2];
        let pos = get("visual.positional_embedding")?;
        let grid = ((pos[0].saturating_sub(1)) as f64).sqrt().round() as usize;
        if grid * grid + 1 != pos[0] {
            return Err(format!(
                "visual.positional_embedding has {} rows, not 1 + grid^2",
                pos[0]
            ));
        }
        let count_layers = |prefix: &str| {
            (0..)
                .take_while(|i| shape(&format!("{prefix}.{i}.attn.in_proj_weight")).is_some())
                .count()
        };
        let vision_layers = count_layers("visual.transformer.resblocks");
        let transformer_layers = count_layers("transformer.resblocks");
        let embed_dim = *get("text_projection")?.get(1).ok_or("text_projection")?;
        let context_length = get("positional_embedding")?[0];
        let vocab_size = get("token_embedding.weight")?[0];
        let transformer_width = *get("ln_final.weight")?.first().ok_or("ln_final.weight")?;
        if vision_width % 64 != 0 || transformer_width % 64 != 0 {
            return Err(format!(
                "widths {vision_width}/{transformer_width} are not multiples of 64 (heads = width / 64)"
            ));
        }
        Ok(Self::new(
            embed_dim,
            vision_patch_size * grid,
            vision_layers,
            vision_width,
            vision_width / 64,
            vision_patch_size,
            context_length,
            vocab_size,
            transformer_width,
            transformer_width / 64,
            transformer_layers,
        ))
    }
}
