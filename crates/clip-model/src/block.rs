//! The pre-LayerNorm residual attention block shared by both CLIP towers.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::ops::LayerNorm;

/// Multi-head self-attention with a fused input projection, as `nn.MultiheadAttention`.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    /// Packed q/k/v projection, `[width, 3 * width]` (`attn.in_proj_weight` transposed).
    pub in_proj: Linear<B>,
    /// Output projection (`attn.out_proj`).
    pub out_proj: Linear<B>,
    /// Number of heads.
    pub heads: usize,
}

/// Two-layer MLP with QuickGELU (`x * sigmoid(1.702 x)`).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Up-projection `mlp.c_fc`, `[width, 4 * width]`.
    pub c_fc: Linear<B>,
    /// Down-projection `mlp.c_proj`, `[4 * width, width]`.
    pub c_proj: Linear<B>,
}

/// `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct ResidualBlock<B: Backend> {
    /// Pre-attention LayerNorm.
    pub ln_1: LayerNorm<B>,
    /// Self-attention.
    pub attn: SelfAttention<B>,
    /// Pre-MLP LayerNorm.
    pub ln_2: LayerNorm<B>,
    /// Feed-forward network.
    pub mlp: Mlp<B>,
}

/// Creates a residual block of the given width and head count (random weights).
pub fn residual_block<B: Backend>(
    width: usize,
    heads: usize,
    eps: f64,
    device: &B::Device,
) -> ResidualBlock<B> {
    let ln = || LayerNorm::new(width, eps, device);
    ResidualBlock {
        ln_1: ln(),
        attn: SelfAttention {
            in_proj: LinearConfig::new(width, 3 * width).init(device),
            out_proj: LinearConfig::new(width, width).init(device),
            heads,
        },
        ln_2: ln(),
        mlp: Mlp {
            c_fc: LinearConfig::new(width, 4 * width).init(device),
            c_proj: LinearConfig::new(4 * width, width).init(device),
        },
    }
}

/// QuickGELU, CLIP's activation: `x * sigmoid(1.702 x)`.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * sigmoid(x * 1.702)
}

impl<B: Backend> SelfAttention<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [n, l, d] = x.dims();
        let h = self.heads;
        let hd = d / h;
        let qkv = self
            .in_proj
            .forward(x)
            .reshape([n, l, 3, h, hd])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).squeeze_dim::<4>(0);
        let k = qkv.clone().narrow(0, 1, 1).squeeze_dim::<4>(0);
        let v = qkv.narrow(0, 2, 1).squeeze_dim::<4>(0);
        let ctx = if B::ad_enabled(&q.device()) {
            // Under autodiff Burn's fused attention falls back to decomposed ops anyway;
            // this form keeps the backward graph small and explicit. The mask value is
            // finite: an infinite one turns into NaN where autodiff multiplies it by zero,
            // while exp(-1e30 - max) is exactly 0 in f32 like exp(-inf).
            let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt());
            let scores = if causal {
                // `tril_mask` is true strictly above the diagonal: the future positions to hide.
                let mask =
                    Tensor::<B, 2, burn::tensor::Bool>::tril_mask([l, l], 0, &scores.device());
                scores.mask_fill(
                    mask.unsqueeze_dims::<4>(&[0, 1]).expand([n, h, l, l]),
                    -1e30,
                )
            } else {
                scores
            };
            crate::ops::softmax(scores, 3).matmul(v)
        } else {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            };
            attention(q, k, v, None, None, options)
        };
        self.out_proj
            .forward(ctx.swap_dims(1, 2).reshape([n, l, d]))
    }
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.c_proj.forward(quick_gelu(self.c_fc.forward(x)))
    }
}

impl<B: Backend> ResidualBlock<B> {
    /// Applies the block; `causal` masks attention to earlier positions (text tower).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), causal);
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }
}

/// A frozen parameter drawn from `N(0, std)`.
pub(crate) fn frozen_normal<B: Backend, const D: usize>(
    shape: [usize; D],
    std: f64,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    frozen(Tensor::random(
        shape,
        burn::tensor::Distribution::Normal(0.0, std),
        device,
    ))
}

/// Builds a parameter from a tensor that will not be trained.
pub(crate) fn frozen<B: Backend, const D: usize>(t: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::from_tensor(t).set_require_grad(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = NdArray<f32>;
    type AB = Autodiff<NdArray<f32>>;

    /// The explicit (autodiff) attention path and the fused path agree, with and without
    /// the causal mask; and a causal block's output at position i ignores later positions.
    #[test]
    fn autodiff_attention_path_matches_fused_path() {
        let device = Default::default();
        let ad_block = residual_block::<AB>(64, 2, 1e-5, &device);
        let block = burn::module::AutodiffModule::valid(&ad_block);
        let x = Tensor::<B, 3>::random(
            [2, 7, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        for causal in [false, true] {
            let fused = block
                .forward(x.clone(), causal)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let explicit = ad_block
                .forward(Tensor::from_inner(x.clone()), causal)
                .inner()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let err = fused
                .iter()
                .zip(&explicit)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "causal={causal}: max abs err {err}");
        }
        let full = block
            .forward(x.clone(), true)
            .slice([0..2, 0..4])
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let short = block
            .forward(x.slice([0..2, 0..4]), true)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let err = full
            .iter()
            .zip(&short)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "causal prefix changed by later tokens: {err}");
    }
}
