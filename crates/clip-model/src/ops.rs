//! Normalisations whose gradients stay exact on every backend.
//!
//! Burn's autodiff differentiates a division `a / b` with respect to `a` as
//! `grad * recip(b)`, and `log(x)` as `grad * recip(x)`. On the ndarray backend `recip` of
//! an f32 tensor with 32 or more elements runs on the CPU's *approximate* reciprocal
//! instruction (`rcpps`, about 12 correct bits: relative error up to 3.7e-4). Through the
//! LayerNorms and softmaxes of a transformer that put up to 2.4e-4 of the largest
//! gradient into MaPLe's prompt gradients (PyTorch's own fp32 rounding: 2e-5).
//!
//! The functions here compute the same values as Burn's `layer_norm`, `softmax`,
//! `log_softmax` and `x / ‖x‖`, but when the backend records gradients they are written
//! so that every division in the graph has an untracked numerator (its backward is then an
//! exact division) and no `log` is differentiated; there the forward follows PyTorch's CPU
//! kernels (LayerNorm multiplies by `1 / sqrt(var + eps)`, softmax by `1 / sum`). Without
//! autodiff, `softmax`, `log_softmax` and `LayerNorm` call the backend's kernels (fused
//! row kernels on flex; Burn's default compositions, which divide, on ndarray), and
//! `l2_normalize` divides.

use burn::module::{Module, Param};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

/// `1 / x` with an exact forward (a true division) and an exact gradient.
fn reciprocal<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::ones_like(&x).detach() / x
}

/// Layer normalisation over the last dimension with an affine transform (CLIP's
/// `LayerNorm`, weights `gamma`/`beta` = the checkpoint's `weight`/`bias`).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[width]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift, `[width]`.
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Identity-initialised (`gamma` 1, `beta` 0) and frozen.
    pub fn new(width: usize, epsilon: f64, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([width], device)).set_require_grad(false),
            beta: Param::from_tensor(Tensor::zeros([width], device)).set_require_grad(false),
            epsilon,
        }
    }

    /// `(x - mean) / sqrt(var + eps) * gamma + beta` over the last dimension (biased
    /// variance, as PyTorch).
    ///
    /// # Shapes
    /// - `x`: `[..., width]` → same shape
    ///
    /// Computed in the parameters' precision (f32 when the model runs in half, see
    /// [`crate::precision`]); the result has `x`'s dtype.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let master = self.gamma.val().dtype();
        if dtype == master {
            return self.normalize(x);
        }
        self.normalize(x.cast(master)).cast(dtype)
    }

    /// [`Self::forward`] with `x` in the parameters' dtype.
    fn normalize<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if !B::ad_enabled(&x.device()) {
            // One fused pass where the backend has a kernel (flex), Burn's composition elsewhere.
            return Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
                x.into_primitive().tensor(),
                self.gamma.val().into_primitive().tensor(),
                Some(self.beta.val().into_primitive().tensor()),
                self.epsilon,
            )));
        }
        let d = x.dims()[D - 1];
        let centered = x.clone() - x.mean_dim(D - 1);
        let var = centered.clone().powi_scalar(2).mean_dim(D - 1);
        let std = (var + self.epsilon).sqrt();
        let normalized = centered * reciprocal(std);
        let mut shape = [1usize; D];
        shape[D - 1] = d;
        normalized * self.gamma.val().reshape(shape) + self.beta.val().reshape(shape)
    }
}

/// Softmax along `dim`.
///
/// # Shapes
/// - `x`: any → same shape
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    if !B::ad_enabled(&x.device()) {
        return activation::softmax(x, dim);
    }
    let e = (x.clone() - x.detach().max_dim(dim)).exp();
    let sum = e.clone().sum_dim(dim);
    e * reciprocal(sum)
}

/// Log-softmax along `dim`. Under autodiff the value is `shifted - log(sum)` with the
/// logarithm taken on detached values; its gradient, `softmax`, enters through
/// `sum * (1 / sum)` (exactly 1 up to one rounding), so no `log` is differentiated.
///
/// # Shapes
/// - `x`: any → same shape
pub fn log_softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    if !B::ad_enabled(&x.device()) {
        return activation::log_softmax(x, dim);
    }
    let shifted = x.clone() - x.detach().max_dim(dim);
    let sum = shifted.clone().exp().sum_dim(dim);
    let log_sum = sum.clone().detach().log();
    // d/dsum [sum * c] = c = 1/sum: the derivative of log(sum), with c a constant.
    let linear = sum.clone() * reciprocal(sum.detach()) - 1.0;
    shifted - (log_sum + linear)
}

/// Rows scaled to unit L2 norm.
///
/// # Shapes
/// - `x`: `[n, d]` → `[n, d]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    if B::ad_enabled(&x.device()) {
        x * reciprocal(norm)
    } else {
        x / norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::LayerNormConfig;
    use burn::tensor::Distribution;

    type B = NdArray<f32>;
    type AB = Autodiff<NdArray<f32>>;

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().to_vec::<f64>().unwrap()
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        let m = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / m
    }

    /// The autodiff forms compute Burn's values (up to f32 rounding).
    #[test]
    fn autodiff_forms_compute_the_same_values() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([4, 9, 64], Distribution::Normal(0.5, 2.0), &device);
        let gamma = Tensor::<B, 1>::random([64], Distribution::Normal(1.0, 0.2), &device);
        let beta = Tensor::<B, 1>::random([64], Distribution::Normal(0.0, 0.2), &device);
        let mut burn_ln = LayerNormConfig::new(64).init::<B>(&device);
        burn_ln.gamma = Param::from_tensor(gamma.clone());
        burn_ln.beta = Some(Param::from_tensor(beta.clone()));
        let ln = LayerNorm::<AB> {
            gamma: Param::from_tensor(Tensor::from_inner(gamma)),
            beta: Param::from_tensor(Tensor::from_inner(beta)),
            epsilon: 1e-5,
        };
        let xa = Tensor::<AB, 3>::from_inner(x.clone());
        let pairs = [
            (
                values(ln.forward(xa.clone()).inner()),
                values(burn_ln.forward(x.clone())),
            ),
            (
                values(burn::module::AutodiffModule::valid(&ln).forward(x.clone())),
                values(burn_ln.forward(x.clone())),
            ),
            (
                values(softmax(xa.clone(), 2).inner()),
                values(activation::softmax(x.clone(), 2)),
            ),
            (
                values(log_softmax(xa.clone(), 1).inner()),
                values(activation::log_softmax(x.clone(), 1)),
            ),
            (
                values(l2_normalize(xa.clone().reshape([36, 64])).inner()),
                values(l2_normalize(x.clone().reshape([36, 64]))),
            ),
        ];
        for (i, (a, b)) in pairs.iter().enumerate() {
            assert!(max_rel(a, b) < 1e-6, "form {i}: rel err {}", max_rel(a, b));
        }
    }

    /// Gradients in f32 agree with the analytic gradients evaluated in f64 on the host to
    /// f32 rounding, far inside the approximate reciprocal's 3.7e-4 (which Burn's own
    /// division backward shows on ndarray). Rows of 64, 75 rows: the SIMD path.
    #[test]
    fn f32_gradients_match_analytic_f64_gradients() {
        let device = Default::default();
        let (rows, d) = (75usize, 64usize);
        let x0 = Tensor::<B, 2>::random([rows, d], Distribution::Normal(0.2, 0.7), &device);
        let w0 = Tensor::<B, 2>::random([rows, d], Distribution::Normal(0.0, 1.0), &device);
        let (xs, ws) = (values(x0.clone()), values(w0.clone()));
        let ln = LayerNorm::<AB>::new(d, 1e-5, &device);
        for which in 0..4 {
            let x = Tensor::<AB, 2>::from_inner(x0.clone()).require_grad();
            let y = match which {
                0 => ln.forward(x.clone()),
                1 => softmax(x.clone(), 1),
                2 => log_softmax(x.clone(), 1),
                _ => l2_normalize(x.clone()),
            };
            let g = (y * Tensor::from_inner(w0.clone())).sum().backward();
            let got = values(x.grad(&g).unwrap());
            let mut want = Vec::with_capacity(rows * d);
            for r in 0..rows {
                let x = &xs[r * d..(r + 1) * d];
                let w = &ws[r * d..(r + 1) * d];
                let n = d as f64;
                let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
                match which {
                    0 => {
                        let mu = x.iter().sum::<f64>() / n;
                        let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
                        let s = (var + 1e-5).sqrt();
                        let xh: Vec<f64> = x.iter().map(|v| (v - mu) / s).collect();
                        let (mg, mgx) = (w.iter().sum::<f64>() / n, dot(w, &xh) / n);
                        want.extend((0..d).map(|i| (w[i] - mg - xh[i] * mgx) / s));
                    }
                    1 | 2 => {
                        let m = x.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
                        let z = e.iter().sum::<f64>();
                        let p: Vec<f64> = e.iter().map(|v| v / z).collect();
                        if which == 1 {
                            let wp = dot(w, &p);
                            want.extend((0..d).map(|i| p[i] * (w[i] - wp)));
                        } else {
                            let sw = w.iter().sum::<f64>();
                            want.extend((0..d).map(|i| w[i] - p[i] * sw));
                        }
                    }
                    _ => {
                        let norm = dot(x, x).sqrt();
                        let wy = dot(w, x) / norm;
                        want.extend((0..d).map(|i| (w[i] - x[i] / norm * wy) / norm));
                    }
                }
            }
            let err = max_rel(&got, &want);
            assert!(err < 5e-6, "op {which}: f32 gradient rel err {err}");
        }
    }
}
