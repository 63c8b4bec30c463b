//! SGD and the learning-rate schedule with the reference's exact semantics.
//!
//! SGD as `torch.optim.SGD` (momentum, coupled L2 weight decay, no dampening, no
//! Nesterov): `d = g + wd * p; buf = d` on the first step, else `buf = m * buf + d`;
//! `p = p - lr * buf`. Momentum buffers are kept by parameter path (`proj.weight`,
//! `compound_prompts_text.0`, ...) so checkpoints can store them by name.
//!
//! The schedule is Dassl's `ConstantWarmupScheduler` around `CosineAnnealingLR`, stepped
//! once per epoch.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::path::ParamPath;

/// SGD hyper-parameters (reference: `OPTIM.*`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum factor.
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

/// SGD with momentum; state is the momentum buffer of each parameter, by path.
#[derive(Debug, Clone)]
pub struct Sgd<B: Backend> {
    /// Hyper-parameters.
    pub config: SgdConfig,
    /// Momentum buffers by parameter path, flattened.
    pub buffers: BTreeMap<String, Tensor<B, 1>>,
}

impl<B: Backend> Sgd<B> {
    /// A fresh optimizer (no momentum yet).
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            buffers: BTreeMap::new(),
        }
    }

    /// Applies one update to every parameter of `module` that requires a gradient and has
    /// one in `grads`; returns the updated module.
    pub fn step<AB, M>(&mut self, lr: f64, module: M, grads: &AB::Gradients) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        self.step_scaled::<AB, M>(lr, module, grads, 1.0)
    }

    /// [`Self::step`] with every gradient multiplied by `unscale` first (`1 / loss scale`
    /// of a loss-scaled backward pass, see `PromptedClip::scaled_backward`).
    pub fn step_scaled<AB, M>(
        &mut self,
        lr: f64,
        module: M,
        grads: &AB::Gradients,
        unscale: f64,
    ) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut mapper = StepMapper::<AB> {
            path: ParamPath::default(),
            grads,
            sgd: self,
            lr,
            unscale,
        };
        module.map(&mut mapper)
    }
}

struct StepMapper<'a, AB: AutodiffBackend> {
    path: ParamPath,
    grads: &'a AB::Gradients,
    sgd: &'a mut Sgd<AB::InnerBackend>,
    lr: f64,
    unscale: f64,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for StepMapper<'_, AB> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.enter(name, container);
    }

    fn exit_module(&mut self, _: &str, container: &str) {
        self.path.exit(container);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let grad = if tensor.is_require_grad() {
            tensor.grad(self.grads)
        } else {
            None
        };
        let Some(grad) = grad else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.path.current();
        let SgdConfig {
            momentum,
            weight_decay,
        } = self.sgd.config;
        let p = tensor.inner();
        let shape = p.dims();
        let numel = shape.iter().product::<usize>();
        let grad = if self.unscale == 1.0 {
            grad
        } else {
            grad * self.unscale
        };
        let d = grad + p.clone() * weight_decay;
        let buf = match self.sgd.buffers.get(&name) {
            Some(b) => b.clone().reshape(shape) * momentum + d,
            None => d,
        };
        let updated = p - buf.clone() * self.lr;
        self.sgd.buffers.insert(name, buf.reshape([numel]));
        Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}

/// Learning rate per epoch: Dassl's constant warm-up followed by cosine annealing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Base learning rate (`OPTIM.LR`).
    pub lr: f64,
    /// Number of epochs (`OPTIM.MAX_EPOCH`), the cosine period.
    pub max_epoch: usize,
    /// Warm-up epochs at the constant rate (`OPTIM.WARMUP_EPOCH`).
    pub warmup_epochs: usize,
    /// Warm-up learning rate (`OPTIM.WARMUP_CONS_LR`).
    pub warmup_lr: f64,
}

impl LrSchedule {
    /// The reference base-to-novel schedule shape for `lr` over `max_epoch` epochs.
    pub fn maple(lr: f64, max_epoch: usize) -> Self {
        Self {
            lr,
            max_epoch,
            warmup_epochs: 1,
            warmup_lr: 1e-5,
        }
    }

    /// Learning rate used during `epoch` (0-based). With `WARMUP_RECOUNT` the cosine
    /// restarts after the warm-up: `0.5 * lr * (1 + cos(pi * (epoch - warmup) / max_epoch))`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup_epochs {
            self.warmup_lr
        } else {
            let t = (epoch - self.warmup_epochs) as f64;
            0.5 * self.lr * (1.0 + (std::f64::consts::PI * t / self.max_epoch as f64).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Ta, Tb};
    use burn::module::Module;
    use burn::tensor::TensorData;

    /// One trainable vector and one frozen one.
    #[derive(Module, Debug)]
    struct Two<B: Backend> {
        w: Param<Tensor<B, 1>>,
        frozen: Param<Tensor<B, 1>>,
    }

    fn two(w: [f32; 2]) -> Two<Ta> {
        let device = Default::default();
        let t = |v: [f32; 2]| Tensor::<Ta, 1>::from_data(TensorData::from(v), &device);
        Two {
            w: Param::from_tensor(t(w).require_grad()),
            frozen: Param::from_tensor(t([5.0, 6.0])).set_require_grad(false),
        }
    }

    fn values(p: &Param<Tensor<Ta, 1>>) -> Vec<f32> {
        p.val().into_data().to_vec::<f32>().unwrap()
    }

    /// loss = sum(c * w) (+ the frozen vector, whose gradient must not be used): grad = c.
    fn step(sgd: &mut Sgd<Tb>, lr: f64, m: Two<Ta>, c: [f32; 2]) -> Two<Ta> {
        let device = Default::default();
        let c = Tensor::<Ta, 1>::from_data(TensorData::from(c), &device);
        let loss = (m.w.val() * c).sum() + m.frozen.val().sum();
        let grads = loss.backward();
        sgd.step::<Ta, _>(lr, m, &grads)
    }

    #[test]
    fn steps_follow_torch_sgd_with_momentum_and_coupled_weight_decay() {
        let (mu, wd, lr) = (0.9f64, 0.1f64, 0.5f64);
        let mut sgd = Sgd::<Tb>::new(SgdConfig {
            momentum: mu,
            weight_decay: wd,
        });
        let (mut w, mut buf) = ([1.0f64, -2.0], [0.0f64; 2]);
        let mut m = two([1.0, -2.0]);
        for (i, c) in [[1.0f32, 2.0], [-1.0, 0.5], [0.25, -3.0]]
            .into_iter()
            .enumerate()
        {
            m = step(&mut sgd, lr, m, c);
            // torch.optim.SGD: d = g + wd * p; buf = d (first step) or mu * buf + d; p -= lr * buf.
            for k in 0..2 {
                let d = c[k] as f64 + wd * w[k];
                buf[k] = if i == 0 { d } else { mu * buf[k] + d };
                w[k] -= lr * buf[k];
            }
            for (got, want) in values(&m.w).iter().zip(w) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "step {i}: {got} vs {want}"
                );
            }
        }
        // The frozen parameter never moves and gets no momentum buffer.
        assert_eq!(values(&m.frozen), vec![5.0, 6.0]);
        assert_eq!(sgd.buffers.keys().collect::<Vec<_>>(), vec!["w"]);
        let b = sgd.buffers["w"]
            .clone()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for (got, want) in b.iter().zip(buf) {
            assert!((*got as f64 - want).abs() < 1e-5);
        }
    }

    /// A loss-scaled step (gradients of `scale * loss`, unscaled by `1 / scale`) is the
    /// plain step, bit for bit for a power-of-two scale: weight decay and momentum see
    /// the true gradient.
    #[test]
    fn scaled_step_equals_plain_step() {
        let config = SgdConfig {
            momentum: 0.9,
            weight_decay: 0.1,
        };
        let (mut plain, mut scaled) = (Sgd::<Tb>::new(config), Sgd::<Tb>::new(config));
        let (mut a, mut b) = (two([1.0, -2.0]), two([1.0, -2.0]));
        let device = Default::default();
        for c in [[1.0f32, 2.0], [-1.0, 0.5]] {
            a = step(&mut plain, 0.5, a, c);
            let ct = Tensor::<Ta, 1>::from_data(TensorData::from(c), &device);
            let grads = ((b.w.val() * ct).sum() * 1024.0).backward();
            b = scaled.step_scaled::<Ta, _>(0.5, b, &grads, 1.0 / 1024.0);
            assert_eq!(values(&a.w), values(&b.w));
        }
    }

    #[test]
    fn schedule_is_a_constant_warm_up_then_a_cosine_restarted_after_it() {
        let s = LrSchedule::maple(0.0035, 5);
        assert_eq!((s.warmup_epochs, s.warmup_lr), (1, 1e-5));
        assert_eq!(s.lr_at(0), 1e-5);
        // Epoch 1 (the first after the warm-up) is the full rate: the cosine restarts.
        assert!((s.lr_at(1) - 0.0035).abs() < 1e-15);
        let cos = |t: f64| 0.5 * 0.0035 * (1.0 + (std::f64::consts::PI * t / 5.0).cos());
        for e in 1..5 {
            assert!(
                (s.lr_at(e) - cos((e - 1) as f64)).abs() < 1e-15,
                "epoch {e}"
            );
            assert!(s.lr_at(e + 1) < s.lr_at(e), "not decreasing at {e}");
        }
        let none = LrSchedule {
            warmup_epochs: 0,
            ..s
        };
        assert!((none.lr_at(0) - 0.0035).abs() < 1e-15);
    }
}
