//! The pre-LayerNorm residual attention block shared by both CLIP towers.
//!
//! Inside a block the residual stream is kept as a 2-D `[batch * seq, width]` matrix, so
//! every Linear is one 2-D GEMM (a 3-D input would run one GEMM per sequence, re-packing
//! the weight each time, and its autodiff backward would copy the transposed weight).
//! Only attention sees the per-sequence layout.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;
use burn::tensor::{Bool, FloatDType, Int, Tensor, TensorData};

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

/// Columns `start..start + len` of a Linear layer applied to `x` (a view of the weight:
/// no copy).
fn linear_columns<B: Backend>(
    layer: &Linear<B>,
    start: usize,
    len: usize,
    x: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let weight = layer.weight.val().narrow(1, start, len);
    let bias = layer.bias.as_ref().map(|b| b.val().narrow(0, start, len));
    linear(x.cast(weight.dtype()), weight, bias)
}

/// `x` in the dtype of `layer`'s weight (the precision the layer computes in).
fn cast_to_weight<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.cast(layer.weight.val().dtype())
}

/// `softmax(q k^T / sqrt(head_dim) [+ causal mask]) v` spelled out in tensor ops, with the
/// exact-gradient softmax of [`crate::ops::softmax`] (a fused kernel without autodiff).
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, heads, seq, head_dim]` → `[batch, heads, seq, head_dim]`
pub fn explicit_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
) -> Tensor<B, 4> {
    let [n, h, l, hd] = q.dims();
    let mask = causal.then(|| {
        // `tril_mask` is true strictly above the diagonal: the future positions to hide.
        Tensor::<B, 2, Bool>::tril_mask([l, l], 0, &q.device())
            .unsqueeze_dims::<4>(&[0, 1])
            .expand([n, h, l, l])
    });
    attention_core(q, k, v, mask, Some(1.0 / (hd as f64).sqrt()))
}

/// [`explicit_attention`] with an optional mask (`true` = hidden) and the scale applied to
/// the scores (`Some`) or already folded into `q` (`None`).
fn attention_core<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
    score_scale: Option<f64>,
) -> Tensor<B, 4> {
    // Both operands may be strided views of the projections: the GEMM reads them as they are.
    // With half q and k the scores are computed, scaled, masked and normalised in f32 (a
    // half score of 20 is off by up to 0.008, which the softmax turns into a relative error
    // of the probabilities: measured, it was most of the half model's logit error); the
    // probabilities go back to the values' precision for the second product.
    let dtype = v.dtype();
    let scores = crate::precision::upcast(q).matmul(crate::precision::upcast(k).swap_dims(2, 3));
    let scores = match score_scale {
        Some(s) => scores * s,
        None => scores,
    };
    // The mask value is finite: an infinite one turns into NaN where autodiff multiplies
    // it by zero, while exp(-1e30 - max) is exactly 0 in f32 like exp(-inf).
    let scores = match mask {
        Some(m) => scores.mask_fill(m, -1e30),
        None => scores,
    };
    crate::ops::softmax(scores, 3).cast(dtype).matmul(v)
}

/// Row indices `i * seq + pooled[i]` of the pooled positions of row-stacked sequences.
fn pooled_rows<B: Backend>(pooled: &[usize], seq: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let rows: Vec<i64> = pooled
        .iter()
        .enumerate()
        .map(|(i, &p)| (i * seq + p) as i64)
        .collect();
    Tensor::from_data(TensorData::new(rows, [pooled.len()]), device)
}

impl<B: Backend> SelfAttention<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [n, l, d] = x.dims();
        self.forward_rows(x.reshape([n * l, d]), n, causal)
            .reshape([n, l, d])
    }

    /// Projections `first..first + parts` of q/k/v (0 = q) of `batch` row-stacked sequences,
    /// each as heads `[batch, heads, seq, head_dim]`; `q_scale` multiplies q.
    ///
    /// Without autodiff one GEMM and strided views; with autodiff one GEMM per part (the
    /// backward of a slice of a tracked tensor zero-fills a tensor of the whole input's size).
    fn heads(
        &self,
        x: Tensor<B, 2>,
        batch: usize,
        first: usize,
        parts: usize,
        q_scale: Option<f64>,
    ) -> Vec<Tensor<B, 4>> {
        let [rows, d] = x.dims();
        let (n, l, h) = (batch, rows / batch, self.heads);
        let hd = d / h;
        if B::ad_enabled(&x.device()) {
            (first..first + parts)
                .map(|p| {
                    let t = linear_columns(&self.in_proj, p * d, d, x.clone());
                    let t = match q_scale {
                        Some(s) if p == 0 => t * s,
                        _ => t,
                    };
                    t.reshape([n, l, h, hd]).swap_dims(1, 2)
                })
                .collect()
        } else {
            let t = linear_columns(&self.in_proj, first * d, parts * d, x);
            let t = match q_scale {
                Some(s) if first == 0 => t * s,
                _ => t,
            };
            // Contiguous `[n, l, parts * h, hd]`: the swap and the narrows are views.
            let t = t.reshape([n, l, parts * h, hd]).swap_dims(1, 2);
            (0..parts).map(|p| t.clone().narrow(1, p * h, h)).collect()
        }
    }

    /// Attention on the rows of `batch` equally long sequences stacked in one matrix.
    ///
    /// # Shapes
    /// - `x`: `[batch * seq, width]` → `[batch * seq, width]`
    pub fn forward_rows(&self, x: Tensor<B, 2>, batch: usize, causal: bool) -> Tensor<B, 2> {
        let [rows, d] = x.dims();
        let (n, l, h) = (batch, rows / batch, self.heads);
        let hd = d / h;
        let scale = 1.0 / (hd as f64).sqrt();
        // Scale the smaller operand: q (before the head split, while it is contiguous) when
        // seq > head_dim and autodiff keeps separate projections, else the scores.
        let scale_q = l > hd && B::ad_enabled(&x.device());
        let mut qkv = self.heads(x, n, 0, 3, scale_q.then_some(scale));
        let v = qkv.pop().expect("three parts");
        let k = qkv.pop().expect("three parts");
        let q = qkv.pop().expect("three parts");
        let mask = causal.then(|| {
            Tensor::<B, 2, Bool>::tril_mask([l, l], 0, &q.device())
                .unsqueeze_dims::<4>(&[0, 1])
                .expand([n, h, l, l])
        });
        let ctx = attention_core(q, k, v, mask, (!scale_q).then_some(scale));
        self.out_proj.forward(cast_to_weight(
            &self.out_proj,
            ctx.swap_dims(1, 2).reshape([rows, d]),
        ))
    }

    /// Attention output at one position per sequence (`pooled[i]` of sequence `i`), which
    /// attends to every position (or, `causal`, to positions up to its own).
    ///
    /// # Shapes
    /// - `x`: `[batch * seq, width]`, `pooled`: `batch` positions → `[batch, width]`
    pub fn forward_pooled(&self, x: Tensor<B, 2>, pooled: &[usize], causal: bool) -> Tensor<B, 2> {
        let [rows, d] = x.dims();
        let (n, h) = (pooled.len(), self.heads);
        let (l, hd) = (rows / n, d / h);
        let device = x.device();
        let xq = x.clone().select(0, pooled_rows::<B>(pooled, l, &device));
        let q = self.heads(xq, n, 0, 1, None).pop().expect("one part");
        let mut kv = self.heads(x, n, 1, 2, None);
        let v = kv.pop().expect("two parts");
        let k = kv.pop().expect("two parts");
        let mask = causal.then(|| {
            let hidden: Vec<bool> = pooled
                .iter()
                .flat_map(|&p| (0..l).map(move |j| j > p))
                .collect();
            Tensor::<B, 4, Bool>::from_data(TensorData::new(hidden, [n, 1, 1, l]), &device)
                .expand([n, h, 1, l])
        });
        let ctx = attention_core(q, k, v, mask, Some(1.0 / (hd as f64).sqrt()));
        self.out_proj
            .forward(cast_to_weight(&self.out_proj, ctx.reshape([n, d])))
    }
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, l, d] = x.dims();
        self.forward_rows(x.reshape([n * l, d])).reshape([n, l, d])
    }

    /// # Shapes
    /// - `x`: `[rows, width]` → `[rows, width]`
    pub fn forward_rows(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = quick_gelu(self.c_fc.forward(cast_to_weight(&self.c_fc, x)));
        self.c_proj.forward(cast_to_weight(&self.c_proj, h))
    }
}

impl<B: Backend> ResidualBlock<B> {
    /// Applies the block; `causal` masks attention to earlier positions (text tower).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, width]` → `[batch, seq, width]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [n, l, d] = x.dims();
        self.forward_rows(x.reshape([n * l, d]), n, causal)
            .reshape([n, l, d])
    }

    /// The block on `batch` equally long sequences stacked row-wise.
    ///
    /// # Shapes
    /// - `x`: `[batch * seq, width]` → `[batch * seq, width]`
    ///
    /// The residual stream keeps `x`'s dtype; the attention and the MLP run in the dtype of
    /// the block's weights (half after [`crate::Clip::with_precision`]), entered after each
    /// LayerNorm and left before each residual addition (see [`crate::precision`]).
    pub fn forward_rows(&self, x: Tensor<B, 2>, batch: usize, causal: bool) -> Tensor<B, 2> {
        let (stream, compute) = (x.dtype(), self.compute_dtype());
        let attn =
            self.attn
                .forward_rows(self.ln_1.forward(x.clone()).cast(compute), batch, causal);
        let x = x + attn.cast(stream);
        let mlp = self
            .mlp
            .forward_rows(self.ln_2.forward(x.clone()).cast(compute));
        x + mlp.cast(stream)
    }

    /// The dtype the block's attention and MLP compute in (its Linear weights').
    pub fn compute_dtype(&self) -> FloatDType {
        self.mlp.c_fc.weight.val().dtype().into()
    }

    /// The block's output at one position per sequence only (`pooled[i]` of sequence
    /// `i`): what a tower's last block must compute for its pooled features. Keys and
    /// values are computed for every position, everything else for the pooled rows only.
    ///
    /// # Shapes
    /// - `x`: `[batch * seq, width]`, `pooled`: `batch` positions → `[batch, width]`
    pub fn forward_pooled(&self, x: Tensor<B, 2>, pooled: &[usize], causal: bool) -> Tensor<B, 2> {
        let seq = x.dims()[0] / pooled.len();
        let (stream, compute) = (x.dtype(), self.compute_dtype());
        let rows = pooled_rows::<B>(pooled, seq, &x.device());
        let attn =
            self.attn
                .forward_pooled(self.ln_1.forward(x.clone()).cast(compute), pooled, causal);
        let y = x.select(0, rows) + attn.cast(stream);
        let mlp = self
            .mlp
            .forward_rows(self.ln_2.forward(y.clone()).cast(compute));
        y + mlp.cast(stream)
    }
}

/// A Linear layer with its weight and bias in `dtype`.
fn cast_linear<B: Backend>(layer: Linear<B>, dtype: FloatDType) -> Linear<B> {
    Linear {
        weight: layer.weight.map(|t| t.cast(dtype)),
        bias: layer.bias.map(|b| b.map(|t| t.cast(dtype))),
    }
}

impl<B: Backend> ResidualBlock<B> {
    /// The block with its four Linear layers in `dtype` (the LayerNorms keep theirs: they
    /// normalise in their own precision, see [`crate::precision`]).
    pub fn cast_weights(self, dtype: FloatDType) -> Self {
        Self {
            attn: SelfAttention {
                in_proj: cast_linear(self.attn.in_proj, dtype),
                out_proj: cast_linear(self.attn.out_proj, dtype),
                heads: self.attn.heads,
            },
            mlp: Mlp {
                c_fc: cast_linear(self.mlp.c_fc, dtype),
                c_proj: cast_linear(self.mlp.c_proj, dtype),
            },
            ..self
        }
    }
}

/// The dtype a tower's blocks compute in (the first block's; `otherwise` for none).
pub(crate) fn blocks_compute_dtype<B: Backend>(
    blocks: &[ResidualBlock<B>],
    otherwise: FloatDType,
) -> FloatDType {
    blocks
        .first()
        .map_or(otherwise, ResidualBlock::compute_dtype)
}

/// A tower's blocks with their Linear weights in `dtype`.
pub(crate) fn cast_blocks<B: Backend>(
    blocks: Vec<ResidualBlock<B>>,
    dtype: FloatDType,
) -> Vec<ResidualBlock<B>> {
    blocks.into_iter().map(|b| b.cast_weights(dtype)).collect()
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

    fn max_err(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// The autodiff attention path (separate projections) and the inference path agree, with and without
    /// the causal mask, for sequences shorter and longer than the head size; and a causal
    /// block's output at position i ignores later positions.
    #[test]
    fn autodiff_and_inference_attention_paths_agree() {
        let device = Default::default();
        let ad_block = residual_block::<AB>(64, 2, 1e-5, &device);
        let block = burn::module::AutodiffModule::valid(&ad_block);
        for seq in [7, 40] {
            let x = Tensor::<B, 3>::random(
                [2, seq, 64],
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
                let err = max_err(&fused, &explicit);
                assert!(err < 1e-5, "seq {seq}, causal={causal}: max abs err {err}");
            }
        }
        let x = Tensor::<B, 3>::random(
            [2, 7, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
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
        let err = max_err(&full, &short);
        assert!(err < 1e-5, "causal prefix changed by later tokens: {err}");
    }

    /// The row-stacked block equals the 3-D block, and the per-sequence form agrees with
    /// running each sequence alone (the 2-D GEMM mixes no rows).
    #[test]
    fn row_stacked_block_equals_per_sequence_blocks() {
        let device = Default::default();
        let block = residual_block::<B>(64, 4, 1e-5, &device);
        let x = Tensor::<B, 3>::random(
            [3, 5, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let all = block
            .forward(x.clone(), true)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let mut each = Vec::new();
        for i in 0..3 {
            each.extend(
                block
                    .forward(x.clone().narrow(0, i, 1), true)
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap(),
            );
        }
        let err = max_err(&all, &each);
        assert!(err < 1e-5, "batched vs per-sequence: {err}");
    }

    /// The pooled form of a block equals the full block's output at the pooled positions,
    /// with and without autodiff, causal or not (its gradient is checked by the towers'
    /// tests and the parity suite).
    #[test]
    fn pooled_block_equals_full_block_at_pooled_positions() {
        let device = Default::default();
        let ad_block = residual_block::<AB>(64, 4, 1e-5, &device);
        let block = burn::module::AutodiffModule::valid(&ad_block);
        let (n, l, d) = (3, 9, 64);
        let x = Tensor::<B, 3>::random(
            [n, l, d],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let pooled = [0usize, 8, 4];
        for causal in [false, true] {
            let full = block
                .forward(x.clone(), causal)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let want: Vec<f32> = pooled
                .iter()
                .enumerate()
                .flat_map(|(i, &p)| full[(i * l + p) * d..(i * l + p + 1) * d].to_vec())
                .collect();
            let got = block
                .forward_pooled(x.clone().reshape([n * l, d]), &pooled, causal)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let got_ad = ad_block
                .forward_pooled(
                    Tensor::from_inner(x.clone().reshape([n * l, d])),
                    &pooled,
                    causal,
                )
                .inner()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            assert!(
                max_err(&got, &want) < 1e-5,
                "causal={causal}: {}",
                max_err(&got, &want)
            );
            assert!(
                max_err(&got_ad, &want) < 1e-5,
                "autodiff, causal={causal}: {}",
                max_err(&got_ad, &want)
            );
        }
    }
}
