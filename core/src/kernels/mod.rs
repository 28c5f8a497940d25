//! The WGSL kernels (`shaders/*.wgsl`) as burn custom operations on the wgpu backend (Vulkan,
//! Metal, DX12 and the browser's WebGPU all run WGSL), each with a twin in plain tensor ops that
//! every other backend (flex) runs: same function, same results. The public functions here pick
//! the kernel on a cubecl (wgpu) device and the twin elsewhere; `Route` forces either, for tests
//! and benchmarks.

mod autodiff;
mod cube;
pub mod params;
pub mod twins;

pub use cube::{SHARED_WGSL_FILES, wgsl_sources};
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_batch_norm;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_box_projection;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_conv;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_shifted;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_silu;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_tap_sums;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_winograd;
pub mod gemm_conv;
pub mod tiled_conv;

use crate::losses::saad::{SaadLogits, SaadLossConfig, SaadWeighting, saad_outer_loss_and_weights};
use crate::losses::transfer_stats::TransferBatch;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::Tensor;
use params::{
    BatchNormParams, BatchNormRunningParams, FoldParams, SaadLossParams, ScaleShiftParams,
    SgdStepParams, TransferStatsParams,
};

/// The custom operations. Only the cubecl backend (and autodiff over it) implements them; the
/// wrappers below never route another backend here.
#[backend_extension(Cube: cfg(all()), Autodiff)]
pub trait SaadKernels: Backend {
    /// `pgd_step.wgsl`: see [`pgd_update`].
    fn pgd_step(
        x_adv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        x: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
        active: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `saad_loss_terms.wgsl` + `saad_loss_reduce.wgsl`: the SAAD batch loss `[1]` and the
    /// weights `[w (batch), w^ (batch), loss]` from logits stacked `[3, batch, classes]`.
    fn saad_loss(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `saad_loss_backward.wgsl`: d loss / d student logits, `[3, batch, classes]`.
    fn saad_loss_backward(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        upstream: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> FloatTensor<Self>;

    /// `batch_norm_stats.wgsl` + `batch_norm_forward.wgsl`: training-mode BatchNorm of
    /// `[batch, channels, ...]`, `(output, mean, biased variance)` (see [`batch_norm_train`]);
    /// only `params.eps` is read.
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `batch_norm_backward_reduce.wgsl` + `batch_norm_backward.wgsl`: the gradients
    /// `(x, gamma, beta)` of [`SaadKernels::batch_norm_train`] from its output's gradient.
    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `scale_shift_activation.wgsl`: `act(x * scale + shift)` per channel in one dispatch
    /// (see [`scale_shift_activation`]); only `params.silu` is read.
    fn scale_shift_activation(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self>;

    /// `scale_shift_activation_backward.wgsl`: the input gradient of
    /// [`SaadKernels::scale_shift_activation`].
    fn scale_shift_activation_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self>;

    /// `batch_norm_running.wgsl`: the running mean and variance after a batch (see
    /// [`batch_norm_running`]); `params.channels` is not read.
    fn batch_norm_running(
        batch_mean: FloatTensor<Self>,
        batch_var: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        count: FloatTensor<Self>,
        params: BatchNormRunningParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `fold_conv_batch_norm.wgsl`: a bias-free convolution's weight `[out, in, kh, kw]` and
    /// the eval-mode BatchNorm after it merged, `(weight stored channels last, bias)`; only
    /// `params.eps` is read (see [`fold_conv_batch_norm`]).
    fn fold_conv_batch_norm(
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        params: FoldParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `sgd_step.wgsl`: one SGD step of a parameter, `(parameter, velocity)` after it (see
    /// [`crate::train::sgd`]); `velocity` is not read when `params.has_velocity` is 0.
    fn sgd_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        params: SgdStepParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `relu_forward.wgsl`: ReLU in one dispatch, the output laid out in memory as the input
    /// (see [`relu`]).
    fn relu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `relu_backward.wgsl`: ReLU's input gradient from its output and the output's gradient,
    /// in one dispatch.
    fn relu_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `transfer_stats.wgsl`: the transfer sums of one batch (see [`transfer_sums`]).
    fn transfer_stats(
        teacher_adv: FloatTensor<Self>,
        student_adv: FloatTensor<Self>,
        labels: FloatTensor<Self>,
        params: TransferStatsParams,
    ) -> FloatTensor<Self>;
}

thread_local! {
    /// Whether this thread uses the project's kernels: on, except inside [`with_kernels`].
    static KERNELS_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with the project's own kernels on or off on this thread (off: the tensor-op twins
/// and burn's convolutions), restoring the previous setting afterwards, also when `f` panics.
/// For comparing results with and without them; scoped to the caller, so a test or a benchmark
/// that turns them off cannot leak the setting into another thread's work.
pub fn with_kernels<R>(on: bool, f: impl FnOnce() -> R) -> R {
    with_thread_setting(&KERNELS_ON, on, f)
}

/// Runs `f` with this thread's `setting` at `value`, restoring the previous value afterwards,
/// also when `f` panics: the scoped switches [`with_kernels`], `flex_conv::with_winograd` and
/// `flex_shifted::with_shifted`.
pub(crate) fn with_thread_setting<T: Copy + 'static, R>(
    setting: &'static std::thread::LocalKey<std::cell::Cell<T>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<std::cell::Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|s| s.set(self.1));
        }
    }
    let _restore = Restore(setting, setting.with(|s| s.replace(value)));
    f()
}

/// Which implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The WGSL kernel on a wgpu device, the tensor-op twin elsewhere.
    Auto,
    /// Always the tensor-op twin.
    TensorOps,
    /// Always the kernel (panics off wgpu).
    Kernel,
}

/// Whether a device runs our WGSL kernels (a cubecl device compiling WGSL: wgpu / WebGPU).
pub fn has_kernels(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Cube(_)
    )
}

/// Whether the project's own kernels (WGSL, the CPU convolution of [`flex_conv`] and the
/// wgpu convolution of [`gemm_conv`]) are on.
pub fn kernels_enabled() -> bool {
    KERNELS_ON.with(|k| k.get())
}

/// A layer's padding as the project's convolutions take it: symmetric `[rows, columns]`, or
/// `None` for anything else (`Same`, asymmetric), which is left to burn.
pub(crate) fn symmetric_padding(conv: &burn::nn::conv::Conv2d) -> Option<[usize; 2]> {
    match conv.padding {
        burn::nn::PaddingConfig2d::Valid => Some([0, 0]),
        burn::nn::PaddingConfig2d::Explicit(top, left, bottom, right)
            if top == bottom && left == right =>
        {
            Some([top, left])
        }
        _ => None,
    }
}

/// The padding of a layer that the project's convolutions take, when its input and the
/// project's kernels allow them: kernels on, f32, groups 1, dilation 1, symmetric padding
/// ([`symmetric_padding`]). Which device and which convolution is each caller's check.
pub(crate) fn project_conv_padding(
    conv: &burn::nn::conv::Conv2d,
    x: &Tensor<4>,
) -> Option<[usize; 2]> {
    let plain = kernels_enabled()
        && x.dtype() == burn::tensor::DType::F32
        && conv.groups == 1
        && conv.dilation == [1, 1];
    if plain { symmetric_padding(conv) } else { None }
}

/// Adds a layer's bias, if it has one, to a convolution's output, as burn's convolution does.
pub(crate) fn add_conv_bias(y: Tensor<4>, conv: &burn::nn::conv::Conv2d) -> Tensor<4> {
    match &conv.bias {
        Some(bias) => {
            let o = bias.dims()[0];
            y + bias.val().reshape([1, o, 1, 1])
        }
        None => y,
    }
}

/// Whether `route` runs the kernel on `device`.
pub(crate) fn use_kernel(route: Route, device: &Device) -> bool {
    match route {
        Route::Auto => kernels_enabled() && has_kernels(device),
        Route::TensorOps => false,
        Route::Kernel => true,
    }
}

/// The projected signed-gradient step with per-sample `eps`, `alpha` and `active` (`[batch]`,
/// 1 = step, 0 = keep the sample as it is):
/// `x' = active ? clip_[0,1](clip_[x-eps, x+eps](x_adv + alpha * sign(grad))) : x_adv`.
pub fn pgd_update(
    route: Route,
    x_adv: Tensor<4>,
    grad: Tensor<4>,
    x: &Tensor<4>,
    eps: Tensor<1>,
    alpha: Tensor<1>,
    active: Tensor<1>,
) -> Tensor<4> {
    if use_kernel(route, &x_adv.device()) {
        return Tensor::from_dispatch(<burn::backend::Dispatch as SaadKernels>::pgd_step(
            x_adv.into_dispatch(),
            grad.into_dispatch(),
            x.clone().into_dispatch(),
            eps.into_dispatch(),
            alpha.into_dispatch(),
            active.into_dispatch(),
        ));
    }
    let [b, c, h, w] = x_adv.dims();
    let per = |t: Tensor<1>| t.reshape([b, 1, 1, 1]).expand([b, c, h, w]);
    let eps = per(eps);
    let stepped = (x_adv.clone() + grad.sign() * per(alpha))
        .max_pair(x.clone() - eps.clone())
        .min_pair(x.clone() + eps)
        .clamp(0.0, 1.0);
    x_adv.mask_where(per(active).equal_elem(0.0).bool_not(), stepped)
}

/// The activation after a BatchNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(z, 0)`.
    Relu,
    /// `z * sigmoid(z)`.
    Silu,
}

/// `act(x * scale + shift)` with per-channel `scale` and `shift` `[channels]` on `x`
/// `[batch, channels, h, w]`: a folded eval-mode BatchNorm and the activation after it (the
/// pre-activation blocks). On a wgpu device one dispatch forward and one backward where the
/// tensor ops take three or four and two or three; with SiLU on flex (native) one parallel
/// pass each way ([`flex_silu`]); elsewhere, with the kernels off, and when `scale` or `shift`
/// need a gradient (the kernels give the input's only), the tensor ops.
pub fn scale_shift_activation(
    route: Route,
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    activation: Activation,
) -> Tensor<4> {
    let constants = !scale.is_require_grad() && !shift.is_require_grad();
    if constants && use_kernel(route, &x.device()) {
        let params = ScaleShiftParams {
            elements: 0,
            groups_x: 0,
            channels: 0,
            channel_inner: 0,
            silu: (activation == Activation::Silu) as u32,
            dy: bytemuck::Zeroable::zeroed(),
        };
        return Tensor::from_dispatch(<Dispatch as SaadKernels>::scale_shift_activation(
            x.into_dispatch(),
            scale.detach().into_dispatch(),
            shift.detach().into_dispatch(),
            params,
        ));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if constants && activation == Activation::Silu && flex_kernel(route, &x) {
        return Tensor::from_dispatch(<Dispatch as flex_silu::FlexSilu>::flex_scale_shift_silu(
            x.into_dispatch(),
            scale.detach().into_dispatch(),
            shift.detach().into_dispatch(),
        ));
    }
    let z = scale_shift(x, scale, shift);
    match activation {
        Activation::Relu => relu_through(route, z),
        Activation::Silu => burn::tensor::activation::silu(z),
    }
}

/// `x * sigmoid(x)` of `x` `[batch, channels, h, w]` (the SiLU after a BatchNorm merged into
/// the convolution before it): on flex (native) the scale-shift-SiLU pass with a unit scale
/// ([`flex_silu`]), elsewhere burn's `silu`.
pub fn silu(x: Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_arch = "wasm32"))]
    if flex_kernel(Route::Auto, &x) {
        let (c, device) = (x.dims()[1], x.device());
        let (scale, shift) = (Tensor::ones([c], &device), Tensor::zeros([c], &device));
        return scale_shift_activation(Route::Auto, x, scale, shift, Activation::Silu);
    }
    burn::tensor::activation::silu(x)
}

/// `x * scale + shift` per channel of `x` `[batch, channels, h, w]` in tensor ops: a folded
/// eval-mode BatchNorm without an activation after it, and the twin of
/// [`scale_shift_activation`].
pub fn scale_shift(x: Tensor<4>, scale: Tensor<1>, shift: Tensor<1>) -> Tensor<4> {
    let c = scale.dims()[0];
    x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}

/// How a BatchNorm's running statistics follow each batch (PyTorch's rule).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunningAverage {
    /// `old * (1 - momentum) + batch * momentum`.
    Momentum(f64),
    /// `old + (batch - old) / count`: the plain average of every batch since the reset
    /// (PyTorch `momentum=None`), `count` counting this batch.
    Cumulative,
}

/// A BatchNorm's running `(mean, variance)` after a batch with statistics `batch_mean` and
/// `batch_var` (biased, over `n` values per channel; the running variance gets the unbiased one,
/// `batch_var * n / (n - 1)`, as PyTorch's). `count` `[1]` is the number of batches seen including
/// this one. On a wgpu device one dispatch where the tensor ops take seven.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_running(
    route: Route,
    batch_mean: Tensor<1>,
    batch_var: Tensor<1>,
    n: usize,
    running_mean: Tensor<1>,
    running_var: Tensor<1>,
    count: Tensor<1>,
    rule: RunningAverage,
) -> (Tensor<1>, Tensor<1>) {
    let unbiased_factor = n as f64 / (n as f64 - 1.0).max(1.0);
    if use_kernel(route, &batch_mean.device()) {
        let (cumulative, momentum) = match rule {
            RunningAverage::Momentum(m) => (0, m as f32),
            RunningAverage::Cumulative => (1, 0.0),
        };
        let params = BatchNormRunningParams {
            channels: 0,
            cumulative,
            momentum,
            unbiased_factor: unbiased_factor as f32,
        };
        let (m, v) = <Dispatch as SaadKernels>::batch_norm_running(
            batch_mean.into_dispatch(),
            batch_var.into_dispatch(),
            running_mean.into_dispatch(),
            running_var.into_dispatch(),
            count.into_dispatch(),
            params,
        );
        return (Tensor::from_dispatch(m), Tensor::from_dispatch(v));
    }
    let unbiased = batch_var.mul_scalar(unbiased_factor);
    let update = |old: Tensor<1>, new: Tensor<1>| match rule {
        RunningAverage::Cumulative => old.clone() + (new - old) / count.clone(),
        RunningAverage::Momentum(m) => old.mul_scalar(1.0 - m) + new.mul_scalar(m),
    };
    (update(running_mean, batch_mean), update(running_var, unbiased))
}

/// A bias-free convolution weight `[out, in, kh, kw]` with the eval-mode BatchNorm after it
/// merged in (`models::fold`): `w'[o] = w[o] * s[o]` and the bias `b'[o] = t[o]`, with
/// `s = gamma / sqrt(running_var + eps)` and `t = beta - running_mean * s`. On a wgpu device one
/// dispatch that also stores `w'` channels last (the layout burn's convolutions read) where the
/// tensor ops take six and a copy; `None` elsewhere and with the kernels off (the caller folds
/// with tensor ops).
pub fn fold_conv_batch_norm(
    weight: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    running_mean: Tensor<1>,
    running_var: Tensor<1>,
    eps: f64,
) -> Option<(Tensor<4>, Tensor<1>)> {
    if !use_kernel(Route::Auto, &weight.device()) {
        return None;
    }
    let params =
        FoldParams { elements: 0, groups_x: 0, outputs: 0, inputs: 0, kernel: 0, eps: eps as f32 };
    let (w, b) = <Dispatch as SaadKernels>::fold_conv_batch_norm(
        weight.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        running_mean.into_dispatch(),
        running_var.into_dispatch(),
        params,
    );
    Some((Tensor::from_dispatch(w), Tensor::from_dispatch(b)))
}

/// Training-mode BatchNorm of `x` `[batch, channels, h, w]` with the batch's statistics:
/// `(output, mean, biased variance)`, the latter two `[channels]` and without gradient, as
/// burn's `module::batch_norm_train` returns them. On a wgpu device two dispatches forward and two
/// backward (`batch_norm_*.wgsl`, in any memory order of `x`) where burn's operations take about
/// 12 and 17; on flex (native) two passes each way ([`flex_batch_norm`]) with `Route::Auto`;
/// elsewhere, and with the kernels off, burn's.
pub fn batch_norm_train(
    route: Route,
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if use_kernel(route, &x.device()) {
        let params = BatchNormParams {
            elements: 0,
            groups_x: 0,
            channels: 0,
            channel_inner: 0,
            eps: eps as f32,
            dy: bytemuck::Zeroable::zeroed(),
        };
        return batch_norm_outputs(<Dispatch as SaadKernels>::batch_norm_train(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            params,
        ));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if flex_kernel(route, &x) {
        return batch_norm_outputs(
            <Dispatch as flex_batch_norm::FlexBatchNorm>::flex_batch_norm_train(
                x.into_dispatch(),
                gamma.into_dispatch(),
                beta.into_dispatch(),
                eps,
            ),
        );
    }
    let out = burn::tensor::module::batch_norm_train(x, gamma, beta, eps);
    (out.output, out.mean, out.variance)
}

/// Whether `x`'s operation runs the project's flex kernel (`flex_batch_norm`, `flex_silu`,
/// `flex_box_projection`): an f32 tensor on flex (native), `Route::Auto`, kernels on.
/// `Route::Kernel` names the wgpu kernels, which flex does not have.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn flex_kernel<const D: usize>(route: Route, x: &Tensor<D>) -> bool {
    route == Route::Auto
        && kernels_enabled()
        && on_flex(&x.device())
        && x.dtype() == burn::tensor::DType::F32
}

/// A training-mode BatchNorm kernel's `(output, mean, variance)` as tensors.
fn batch_norm_outputs(
    (y, mean, variance): (FloatTensor<Dispatch>, FloatTensor<Dispatch>, FloatTensor<Dispatch>),
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    (Tensor::from_dispatch(y), Tensor::from_dispatch(mean), Tensor::from_dispatch(variance))
}

/// Whether a device is the flex CPU backend (with or without autodiff); only the native flex
/// kernels ask.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn on_flex(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

/// The hyper-parameters of one SGD step (burn's `SgdConfig` with `MomentumConfig` without
/// Nesterov and `WeightDecayConfig`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    /// Learning rate of this step.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient (0: none).
    pub weight_decay: f64,
}

/// One SGD step of a parameter with weight decay and momentum, in the order of operations of
/// burn's `Sgd`: `g = p * wd + grad`, `v' = g * (1 - dampening) + v * momentum` (`v' = g` on the
/// first step, when `velocity` is `None`), `p' = p - v' * lr`. Returns `(p', v')`. On a wgpu
/// device one dispatch (`sgd_step.wgsl`) where the tensor ops take seven.
pub fn sgd_update<const D: usize>(
    route: Route,
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    hyper: SgdHyper,
) -> (Tensor<D>, Tensor<D>) {
    if use_kernel(route, &param.device()) {
        let params = SgdStepParams {
            elements: 0,
            groups_x: 0,
            has_velocity: velocity.is_some() as u32,
            lr: hyper.lr as f32,
            momentum: hyper.momentum as f32,
            dampening_complement: (1.0 - hyper.dampening) as f32,
            weight_decay: hyper.weight_decay as f32,
        };
        let velocity = velocity.unwrap_or_else(|| grad.clone());
        let (p, v) = <Dispatch as SaadKernels>::sgd_step(
            param.into_dispatch(),
            grad.into_dispatch(),
            velocity.into_dispatch(),
            params,
        );
        return (Tensor::from_dispatch(p), Tensor::from_dispatch(v));
    }
    // burn-optim 0.22.1's `WeightDecay::transform`, `Momentum::transform` and `Sgd::step`, op
    // for op (the momentum factor as f32, as burn keeps it).
    let grad = if hyper.weight_decay > 0.0 {
        param.clone().mul_scalar(hyper.weight_decay as f32).add(grad)
    } else {
        grad
    };
    let velocity = match velocity {
        Some(v) => grad.mul_scalar(1.0 - hyper.dampening).add(v.mul_scalar(hyper.momentum as f32)),
        None => grad,
    };
    (param - velocity.clone().mul_scalar(hyper.lr), velocity)
}

/// `max(x, 0)` (NaN stays NaN): on a wgpu device one dispatch forward and one backward
/// (`relu_forward.wgsl`, `relu_backward.wgsl`) where burn's relu takes two each (compare, then
/// mask-fill), 34 fewer launches per forward and backward pass of a ResNet-18; elsewhere, and
/// with the kernels off, burn's `activation::relu`. The kernels keep the memory order of the
/// activations (NHWC after burn's convolutions), so no copy is added either way.
pub fn relu(x: Tensor<4>) -> Tensor<4> {
    relu_through(Route::Auto, x)
}

/// [`relu`] through the implementation `route` picks.
pub fn relu_through(route: Route, x: Tensor<4>) -> Tensor<4> {
    if use_kernel(route, &x.device()) {
        return Tensor::from_dispatch(<Dispatch as SaadKernels>::relu(x.into_dispatch()));
    }
    burn::tensor::activation::relu(x)
}

/// SAAD's outer loss over a batch and its weights: `loss` `[1]` (the batch mean of
/// [`saad_outer_loss`](crate::losses::saad::saad_outer_loss)), `w` and `w^` `[batch]`. The
/// kernel route computes it in two dispatches and its gradient with respect to the student
/// logits in one.
pub struct SaadLoss {
    /// Batch mean of the outer loss, `[1]`.
    pub loss: Tensor<1>,
    /// SAAD sample weights `w`, `[batch]`, constants (no gradient).
    pub w: Tensor<1>,
    /// The weights normalised by their maximum, `w^`, `[batch]` in [0,1], constants.
    pub w_hat: Tensor<1>,
}

/// [`SaadLoss`] from the six logit tensors `l` (each `[batch, classes]`), computed by the kernel
/// or by the tensor-op twin as `route` picks.
pub fn saad_loss(route: Route, l: &SaadLogits, config: &SaadLossConfig) -> SaadLoss {
    let [b, c] = l.t_plus.dims();
    if use_kernel(route, &l.s_plus.device()) {
        let teacher =
            Tensor::stack::<3>(vec![l.t0.clone(), l.t_plus.clone(), l.t_minus.clone()], 0).detach();
        let student =
            Tensor::stack::<3>(vec![l.s0.clone(), l.s_plus.clone(), l.s_minus.clone()], 0);
        let (loss, weights) = <Dispatch as SaadKernels>::saad_loss(
            teacher.into_dispatch(),
            student.into_dispatch(),
            SaadLossParams {
                batch: b as u32,
                classes: c as u32,
                gamma: config.weighting.gamma as f32,
                scale: config.weighting.scale as f32,
                ig: config.ig as f32,
                beta: config.beta as f32,
            },
        );
        let weights = Tensor::<1>::from_dispatch(weights).detach();
        return SaadLoss {
            loss: Tensor::from_dispatch(loss),
            w: weights.clone().slice(0..b),
            w_hat: weights.slice(b..2 * b),
        };
    }
    let (loss, w, w_hat) = saad_outer_loss_and_weights(l, config);
    SaadLoss { loss: loss.mean(), w, w_hat }
}

/// The transfer sums of one batch ([`TransferBatch::sums`]): samples, teacher fooled, student
/// fooled, student seen, entropy sum and square sum, SAAD weight sum, 10-bin histogram of w^.
pub fn transfer_sums(
    route: Route,
    teacher_adv: Tensor<2>,
    student_adv: Option<Tensor<2>>,
    labels: Tensor<1, Int>,
    weighting: SaadWeighting,
) -> Tensor<1> {
    let teacher_adv = teacher_adv.detach().without_autodiff();
    if use_kernel(route, &teacher_adv.device()) {
        let [batch, classes] = teacher_adv.dims();
        let params = TransferStatsParams {
            batch: batch as u32,
            classes: classes as u32,
            gamma: weighting.gamma as f32,
            scale: weighting.scale as f32,
            has_student: student_adv.is_some() as u32,
        };
        let student = student_adv
            .map(|s| s.detach().without_autodiff())
            .unwrap_or_else(|| teacher_adv.clone());
        return Tensor::from_dispatch(<Dispatch as SaadKernels>::transfer_stats(
            teacher_adv.into_dispatch(),
            student.into_dispatch(),
            labels.float().into_dispatch(),
            params,
        ));
    }
    TransferBatch::new(teacher_adv, labels.clone(), weighting)
        .sums(student_adv.map(|s| (s, labels)))
}

/// How many distinct kernels `f` launches on cubecl devices (cubecl's launch collector): a lower
/// bound on its dispatches, equal to them when no kernel is launched twice.
pub fn distinct_kernels_launched(f: impl FnOnce()) -> usize {
    let collect = burn_cubecl::cubecl::launched::LaunchedKernels::new();
    f();
    collect.finish().len()
}

/// Counts every kernel launch on cubecl devices while installed (cubecl's launch observer, one
/// per process: a second replaces the first while it lives). On wgpu each launch costs the host
/// its share of burn's and wgpu's work, so launches per training step is what a step's time
/// follows once the kernels themselves are fast (`bench/NOTES.md`, section 5).
pub struct LaunchCounter {
    count: std::sync::Arc<CountLaunches>,
    _observation: burn_cubecl::cubecl::logging::LaunchObservation,
}

/// Launches per kernel name: which operations a step's launches come from.
#[derive(Default)]
struct CountLaunches(std::sync::Mutex<std::collections::HashMap<&'static str, u64>>);

impl burn_cubecl::cubecl::logging::LaunchObserver for CountLaunches {
    fn launched(&self, kernel: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(kernel).or_default() += 1;
    }
}

impl LaunchCounter {
    /// Starts counting.
    pub fn start() -> Self {
        let count = std::sync::Arc::new(CountLaunches::default());
        let _observation = burn_cubecl::cubecl::logging::LaunchObservation::new(count.clone());
        LaunchCounter { count, _observation }
    }

    /// Launches issued since [`LaunchCounter::start`].
    pub fn launches(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Launches since [`LaunchCounter::start`] per kernel name, most launched first (ties by
    /// name); the counts add up to [`LaunchCounter::launches`].
    pub fn by_kernel(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<_> = self.counts().into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }

    fn counts(&self) -> std::collections::HashMap<&'static str, u64> {
        self.count.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
