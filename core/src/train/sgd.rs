//! The optimizer of every method: SGD with heavy-ball momentum and weight decay, burn's `Sgd`
//! (`SgdConfig` + `MomentumConfig { nesterov: false }` + `WeightDecayConfig`) computed by
//! [`kernels::sgd_update`]: on wgpu one dispatch per parameter tensor instead of burn's seven
//! (about 370 fewer launches per ResNet-18 step), elsewhere burn's operations in burn's order.
//! Its state record is burn's (`momentum.velocity` per parameter), so checkpoints written with
//! burn's `Sgd` resume here and the other way round.

use crate::kernels::{self, Route, SgdHyper};
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::prelude::*;

/// SGD with momentum and weight decay (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Momentum factor (0.9 in the recipe).
    pub momentum: f64,
    /// Dampening of the momentum (0 in the recipe, as PyTorch's default).
    pub dampening: f64,
    /// L2 penalty added to the gradient (0: none).
    pub weight_decay: f64,
}

impl Sgd {
    /// The optimizer over a whole module.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// A parameter's state: its velocity once it has taken a step.
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    /// The momentum buffer.
    pub velocity: Option<Tensor<D>>,
}

/// The record path of the velocity, as burn's derived `SgdState { momentum: Option<MomentumState
/// { velocity } > }` names it.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(v) = &self.velocity {
            out.push_tensor(
                &burn::optim::join_path(prefix, MOMENTUM),
                VELOCITY,
                v.clone().into_data(),
            );
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = burn::optim::join_path(prefix, MOMENTUM);
        let velocity = if src.has_under(&path) {
            Some(Tensor::from_data(src.take_tensor(&path, VELOCITY)?, device))
        } else {
            None
        };
        Some(Self { velocity })
    }
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let hyper = SgdHyper {
            lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
        };
        let velocity = state.and_then(|s| s.velocity);
        let (tensor, velocity) = kernels::sgd_update(Route::Auto, tensor, grad, velocity, hyper);
        (tensor, Some(SgdState { velocity: Some(velocity) }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState { velocity: state.velocity.map(|v| v.to_device(device)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, ModelSpec, Net};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{GradientsParams, SgdConfig};

    const SGD: Sgd = Sgd { momentum: 0.9, dampening: 0.0, weight_decay: 5e-4 };

    fn burns() -> ModuleOptimizer {
        SgdConfig::new()
            .with_momentum(Some(MomentumConfig { momentum: 0.9, dampening: 0.0, nesterov: false }))
            .with_weight_decay(Some(WeightDecayConfig { penalty: 5e-4 }))
            .init()
    }

    fn floats(net: &Net) -> Vec<f32> {
        net.named_tensors()
            .into_iter()
            .flat_map(|t| t.tensor.into_data().iter::<f32>().collect::<Vec<_>>())
            .collect()
    }

    /// A small CNN, a fixed batch and `steps` steps of `optim` at changing learning rates.
    fn train(mut optim: ModuleOptimizer, mut net: Net, steps: usize) -> (Net, ModuleOptimizer) {
        // Inputs from a formula, not the device RNG, which tests running beside this one draw from.
        let values: Vec<f32> = (0..4 * 3 * 8 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(values, [4, 3, 8, 8]),
            &Device::flex().autodiff(),
        );
        for step in 0..steps {
            let loss = net.forward(x.clone()).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.1 / (step + 1) as f64, net, grads);
        }
        (net, optim)
    }

    fn small_cnn() -> Net {
        ModelSpec::new(Arch::SmallCnn { width: 2 }, 10).init(&Device::flex().autodiff())
    }

    /// On a device without the kernel the steps are burn's own, bit for bit.
    #[test]
    fn steps_equal_burns_sgd_bit_for_bit() {
        let net = small_cnn();
        let (ours, _) = train(SGD.init(), net.clone(), 3);
        let (burn, _) = train(burns(), net, 3);
        assert_eq!(floats(&ours), floats(&burn));
    }

    /// The state record is burn's: each optimizer resumes from the other's bytes and takes the
    /// same next step.
    #[test]
    fn state_bytes_resume_across_burns_sgd_and_this_one() {
        let start = small_cnn();
        let (net, ours) = train(SGD.init(), start.clone(), 2);
        let (_, burn) = train(burns(), start, 2);
        let ours_bytes = ours.into_bytes().unwrap();
        let burn_bytes = burn.into_bytes().unwrap();
        let (a, _) = train(SGD.init().from_bytes(burn_bytes.clone()).unwrap(), net.clone(), 1);
        let (b, _) = train(burns().from_bytes(ours_bytes.clone()).unwrap(), net.clone(), 1);
        let (c, _) = train(burns().from_bytes(burn_bytes).unwrap(), net.clone(), 1);
        assert_eq!(floats(&a), floats(&c));
        assert_eq!(floats(&b), floats(&c));
        // And a step from the restored state is not the first step's (the velocity was read).
        let (fresh, _) = train(SGD.init(), net, 1);
        assert_ne!(floats(&fresh), floats(&c));
    }
}
