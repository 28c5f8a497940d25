//! BatchNorm2d with PyTorch semantics and PyTorch parameter names.
//!
//! burn's own `BatchNorm` updates the running variance with the biased batch variance and
//! names its affine parameters `gamma`/`beta`; PyTorch uses the unbiased variance
//! (`n / (n - 1)`), `weight`/`bias`, and counts batches in `num_batches_tracked`. Matching PyTorch
//! keeps the statistics of a model trained here equal to PyTorch's and the state dict 1:1.

use crate::kernels::{
    Activation, Route, RunningAverage, batch_norm_running, batch_norm_train, relu, scale_shift,
    scale_shift_activation, silu,
};
use burn::module::{Flag, Module, Param, RunningState};
use burn::prelude::*;

/// `torch.nn.BatchNorm2d(num_features, eps, momentum)`.
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Per-channel scale `[num_features]` (PyTorch `weight`, burn's `gamma`), initially 1.
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift `[num_features]` (PyTorch `bias`, burn's `beta`), initially 0.
    pub bias: Param<Tensor<1>>,
    /// Running per-channel mean `[num_features]` used in eval mode, initially 0.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running per-channel unbiased variance `[num_features]` used in eval mode, initially 1.
    pub running_var: RunningState<Tensor<1>>,
    /// Batches seen in training mode (a float here; exported as PyTorch's int64 buffer).
    pub num_batches_tracked: RunningState<Tensor<1>>,
    /// Training behaviour (batch statistics) iff this is on and the input is on an autodiff device.
    pub training: Param<Flag>,
    /// PyTorch `momentum=None`: running statistics are the plain average over all batches seen
    /// since `num_batches_tracked` was 0 (used to recompute the statistics of averaged weights).
    pub cumulative: Param<Flag>,
    /// Weight of the newest batch in the running averages (PyTorch `momentum`).
    pub momentum: f64,
    /// Added to the variance before the square root (1e-5, PyTorch's default).
    pub eps: f64,
    /// What [`forward`](Self::forward) computes: the BatchNorm itself for every trained or loaded
    /// model; an eval-mode copy made by [`super::fold`] may compute less. Not a parameter, not in
    /// checkpoints.
    #[module(skip)]
    pub form: BatchNormForm,
}

/// How a [`BatchNorm2d`] is computed (see [`super::fold`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchNormForm {
    /// Batch statistics in training mode, running statistics in eval mode.
    #[default]
    Normalize,
    /// Nothing: its eval-mode affine map is merged into the convolution before it.
    MergedIntoConv,
    /// `weight * x + bias` per channel: an eval-mode copy whose `weight` and `bias` hold the
    /// folded scale and shift (its running statistics are unused).
    ScaleShift,
}

impl BatchNorm2d {
    /// A layer over `num_features` channels in PyTorch's initial state, in training mode
    /// (`momentum` 0.1 is PyTorch's default; the DM WideResNets use 0.01).
    pub fn new(num_features: usize, momentum: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([num_features], device)),
            bias: Param::from_tensor(Tensor::zeros([num_features], device)),
            running_mean: RunningState::new(Tensor::zeros([num_features], device)),
            running_var: RunningState::new(Tensor::ones([num_features], device)),
            num_batches_tracked: RunningState::new(Tensor::zeros([1], device)),
            training: Param::from_bool(true),
            cumulative: Param::from_bool(false),
            momentum,
            eps: 1e-5,
            form: BatchNormForm::Normalize,
        }
    }

    /// Normalises `[batch, channels, h, w]`: with batch statistics (updating the running ones)
    /// in training mode on an autodiff device, with the running statistics otherwise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self.form {
            BatchNormForm::Normalize => {}
            BatchNormForm::MergedIntoConv => return x,
            BatchNormForm::ScaleShift => {
                return scale_shift(x, self.weight.val(), self.bias.val());
            }
        }
        if x.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(x)
        } else {
            let device = x.device();
            burn::tensor::module::batch_norm(
                x,
                self.weight.val(),
                self.bias.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.eps,
            )
        }
    }

    /// `activation(self.forward(x))`; in the folded scale-shift form one fused operation
    /// ([`scale_shift_activation`]).
    pub fn forward_activated(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        if self.form == BatchNormForm::ScaleShift {
            let (scale, shift) = (self.weight.val(), self.bias.val());
            return scale_shift_activation(Route::Auto, x, scale, shift, activation);
        }
        let y = self.forward(x);
        match activation {
            Activation::Relu => relu(y),
            Activation::Silu => silu(y),
        }
    }

    fn forward_train(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let n = (b * h * w) as f64;
        let device = x.device();
        let (output, batch_mean, batch_variance) =
            batch_norm_train(Route::Auto, x, self.weight.val(), self.bias.val(), self.eps);
        let mean = self.running_mean.value_sync().to_device(&device).detach();
        let var = self.running_var.value_sync().to_device(&device).detach();
        let count =
            self.num_batches_tracked.value_sync().to_device(&device).detach().add_scalar(1.0);
        let rule = match self.cumulative.is_enabled() {
            true => RunningAverage::Cumulative,
            false => RunningAverage::Momentum(self.momentum),
        };
        // PyTorch stores the unbiased variance in the running estimate.
        let (mean, var) = batch_norm_running(
            Route::Auto,
            batch_mean.detach(),
            batch_variance.detach(),
            n as usize,
            mean,
            var,
            count.clone(),
            rule,
        );
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        self.num_batches_tracked.update(count.detach());
        // `RunningState` keeps updates per thread until synced, and neither its record nor
        // `value()` sees a pending update: sync now so checkpoints and eval read the latest.
        let _ = (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
            self.num_batches_tracked.value_sync(),
        );
        output
    }
}
