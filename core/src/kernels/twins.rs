//! Each kernel measured against its tensor-op twin on random inputs, written once: `saad
//! selftest` reports these differences on a user's GPU, the tests bound them on lavapipe, and
//! `saad bench --kernels` times the same inputs.

use super::{
    Activation, Route, RunningAverage, SaadKernels, SgdHyper, batch_norm_running, batch_norm_train,
    pgd_update, relu_through, saad_loss, scale_shift_activation, sgd_update, transfer_sums,
};
use crate::losses::saad::{SaadLogits, SaadLossConfig, SaadWeighting};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

/// A tensor's values on the host (synchronous: for checks, not for the hot loops, whose reads
/// go through `host_copy`, a layer above this one).
fn read_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// The larger of two differences, NaN when either is: a kernel that produced NaN must fail its
/// check, and `f64::max` would drop the NaN.
pub fn worst(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Largest absolute difference of two value lists (infinite when their lengths differ, NaN when
/// any difference is).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, worst)
}

/// Largest absolute value.
pub fn max_abs(a: &[f32]) -> f64 {
    a.iter().map(|x| x.abs() as f64).fold(0.0, f64::max)
}

/// Logits `[batch, classes]` drawn from N(0, scale²).
pub fn random_logits(device: &Device, batch: usize, classes: usize, scale: f64) -> Tensor<2> {
    Tensor::random([batch, classes], Distribution::Normal(0.0, scale), device)
}

/// The six logit tensors of SAAD's loss: teacher ones from N(0, 4), student ones from N(0, 1).
pub fn random_saad_logits(device: &Device, batch: usize, classes: usize) -> SaadLogits {
    let l = |scale| random_logits(device, batch, classes, scale);
    SaadLogits {
        t0: l(2.0),
        t_plus: l(2.0),
        t_minus: l(2.0),
        s0: l(1.0),
        s_plus: l(1.0),
        s_minus: l(1.0),
    }
}

/// Labels `i mod classes` for a batch, `[batch]`.
pub fn cyclic_labels(device: &Device, batch: usize, classes: usize) -> Tensor<1, Int> {
    let y: Vec<i64> = (0..batch as i64).map(|i| i % classes as i64).collect();
    Tensor::from_data(TensorData::new(y, [batch]), device)
}

/// `pgd_step` against its twin on a random batch of `shape` (a tenth of the gradient exactly 0,
/// where sign is 0 on both paths; about a third of the samples inactive): the largest absolute
/// difference of the stepped points.
pub fn pgd_step_difference(device: &Device, shape: [usize; 4]) -> f64 {
    let b = shape[0];
    let x = Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), device);
    let x_adv = (x.clone() + x.random_like(Distribution::Uniform(-0.05, 0.05))).clamp(0.0, 1.0);
    let grad = x
        .random_like(Distribution::Normal(0.0, 1.0))
        .mask_fill(x.random_like(Distribution::Uniform(0.0, 1.0)).lower_elem(0.1), 0.0);
    let eps = Tensor::<1>::random([b], Distribution::Uniform(0.0, 0.06), device);
    let alpha = Tensor::<1>::random([b], Distribution::Uniform(0.0, 0.02), device);
    let active =
        Tensor::<1>::random([b], Distribution::Uniform(0.0, 1.0), device).greater_elem(0.3).float();
    let twin = pgd_update(
        Route::TensorOps,
        x_adv.clone(),
        grad.clone(),
        &x,
        eps.clone(),
        alpha.clone(),
        active.clone(),
    );
    let kernel = pgd_update(Route::Kernel, x_adv, grad, &x, eps, alpha, active);
    max_abs_diff(&read_f32(twin), &read_f32(kernel))
}

/// How far the SAAD loss kernel is from its twin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaadLossDifference {
    /// Loss difference relative to `max(|twin loss|, 1)`.
    pub loss: f64,
    /// Largest absolute difference of the weights `w`.
    pub w: f64,
    /// Largest absolute difference of `w^`.
    pub w_hat: f64,
}

/// The SAAD loss forward pass, kernel against twin.
pub fn saad_loss_difference(logits: &SaadLogits, config: &SaadLossConfig) -> SaadLossDifference {
    let twin = saad_loss(Route::TensorOps, logits, config);
    let kern = saad_loss(Route::Kernel, logits, config);
    let (lt, lk) = (read_f32(twin.loss)[0] as f64, read_f32(kern.loss)[0] as f64);
    SaadLossDifference {
        loss: (lt - lk).abs() / lt.abs().max(1.0),
        w: max_abs_diff(&read_f32(twin.w), &read_f32(kern.w)),
        w_hat: max_abs_diff(&read_f32(twin.w_hat), &read_f32(kern.w_hat)),
    }
}

/// The gradients of the SAAD loss with respect to the student logits `s0`, `s+`, `s-` through
/// `route` (the kernel's backward, or autodiff of the twin).
pub fn saad_loss_gradients(
    logits: &SaadLogits,
    config: &SaadLossConfig,
    route: Route,
) -> [Vec<f32>; 3] {
    let leaf = |t: &Tensor<2>| t.clone().autodiff().require_grad();
    let (s0, s_plus, s_minus) = (leaf(&logits.s0), leaf(&logits.s_plus), leaf(&logits.s_minus));
    let l = SaadLogits {
        t0: logits.t0.clone(),
        t_plus: logits.t_plus.clone(),
        t_minus: logits.t_minus.clone(),
        s0: s0.clone(),
        s_plus: s_plus.clone(),
        s_minus: s_minus.clone(),
    };
    let grads = saad_loss(route, &l, config).loss.backward();
    [s0, s_plus, s_minus].map(|s| read_f32(s.grad(&grads).expect("student logits are leaves")))
}

/// The SAAD loss backward pass, kernel against autodiff of the twin: per student logit tensor,
/// the largest difference relative to the largest twin gradient.
pub fn saad_loss_backward_difference(logits: &SaadLogits, config: &SaadLossConfig) -> [f64; 3] {
    let twin = saad_loss_gradients(logits, config, Route::TensorOps);
    let kern = saad_loss_gradients(logits, config, Route::Kernel);
    [0, 1, 2].map(|k| max_abs_diff(&twin[k], &kern[k]) / max_abs(&twin[k]).max(1e-6))
}

/// The transfer sums, kernel against twin: the largest difference of a sum relative to
/// `max(|twin sum|, 1)`.
pub fn transfer_stats_difference(
    teacher_adv: &Tensor<2>,
    student_adv: Option<&Tensor<2>>,
    labels: &Tensor<1, Int>,
    weighting: SaadWeighting,
) -> f64 {
    let sums = |route| {
        read_f32(transfer_sums(
            route,
            teacher_adv.clone(),
            student_adv.cloned(),
            labels.clone(),
            weighting,
        ))
    };
    let (twin, kern) = (sums(Route::TensorOps), sums(Route::Kernel));
    twin.iter()
        .zip(&kern)
        .map(|(a, k)| (a - k).abs() as f64 / (a.abs() as f64).max(1.0))
        .fold(0.0, worst)
}

/// `x` of `shape` `[b, c, h, w]` laid out as a contiguous `[b, h, w, c]` (channels last, as
/// burn's convolutions leave their outputs), viewed as `[b, c, h, w]`.
fn channels_last(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([b, h * w * c]).reshape([b, h, w, c]).permute([0, 3, 1, 2])
}

/// The ReLU kernels against burn's relu on `shape` (`[b, c, h, w]`; an eighth of the inputs
/// exactly 0): forward values and input gradients for inputs laid out contiguous, channels last
/// and as a strided slice, with output gradients laid out the same way and the other way, and the
/// backward kernel alone with a broadcast output gradient. Both compute `x <= 0 ? 0 : x` and
/// `y <= 0 ? 0 : dy`, so the largest absolute difference is 0 unless an element is misplaced.
pub fn relu_difference(device: &Device, shape: [usize; 4]) -> f64 {
    let [b, c, h, w] = shape;
    let base = Tensor::<4>::random([b, c, h, w + 1], Distribution::Normal(0.0, 1.0), device);
    let base = base
        .clone()
        .mask_fill(base.random_like(Distribution::Uniform(0.0, 1.0)).lower_elem(0.125), 0.0);
    let contiguous =
        base.clone().slice([0..b, 0..c, 0..h, 0..w]).reshape([b * c * h * w]).reshape(shape);
    let inputs = [
        contiguous.clone(),
        channels_last(contiguous.clone()),
        base.slice([0..b, 0..c, 0..h, 1..w + 1]),
    ];
    let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let upstreams = [upstream.clone(), channels_last(upstream)];
    let mut worst_diff = 0.0;
    for x in &inputs {
        let values = |route| read_f32(relu_through(route, x.clone()));
        worst_diff =
            worst(worst_diff, max_abs_diff(&values(Route::TensorOps), &values(Route::Kernel)));
        for dy in &upstreams {
            let gradient = |route| {
                let leaf = x.clone().autodiff().require_grad();
                let grads =
                    (relu_through(route, leaf.clone()) * dy.clone().autodiff()).sum().backward();
                read_f32(leaf.grad(&grads).expect("the input is a leaf"))
            };
            worst_diff = worst(
                worst_diff,
                max_abs_diff(&gradient(Route::TensorOps), &gradient(Route::Kernel)),
            );
        }
    }
    // The backward kernel alone: an output gradient broadcast along the channels (stride 0).
    let y = burn::tensor::activation::relu(inputs[1].clone());
    let dy =
        Tensor::<4>::random([b, 1, h, w], Distribution::Normal(0.0, 1.0), device).expand(shape);
    let twin = dy.clone().mask_fill(y.clone().lower_equal_elem(0.0), 0.0);
    let kernel =
        Tensor::<4>::from_dispatch(<burn::backend::Dispatch as SaadKernels>::relu_backward(
            y.into_dispatch(),
            dy.into_dispatch(),
        ));
    worst(worst_diff, max_abs_diff(&read_f32(twin), &read_f32(kernel)))
}

/// The SGD step kernel against its twin (burn's operations) on a parameter of `shape`: the first
/// step (no velocity) and a later one, with and without weight decay, the gradient laid out
/// contiguous and channels last (as burn's convolutions return weight gradients). The largest
/// absolute difference of the new parameters and velocities (values of order 1).
pub fn sgd_step_difference(device: &Device, shape: [usize; 4]) -> f64 {
    let normal = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let (param, grad, velocity) = (normal(), normal(), normal());
    let mut worst_diff = 0.0;
    for weight_decay in [0.0, 5e-4] {
        let hyper = SgdHyper { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay };
        for grad in [grad.clone(), channels_last(grad.clone())] {
            for velocity in [None, Some(velocity.clone())] {
                let step = |route| {
                    let (p, v) =
                        sgd_update(route, param.clone(), grad.clone(), velocity.clone(), hyper);
                    (read_f32(p), read_f32(v))
                };
                let ((tp, tv), (kp, kv)) = (step(Route::TensorOps), step(Route::Kernel));
                worst_diff =
                    worst(worst_diff, worst(max_abs_diff(&tp, &kp), max_abs_diff(&tv, &kv)));
            }
        }
    }
    worst_diff
}

/// Largest absolute difference of two value lists relative to the largest absolute value of the
/// first (at least `floor`).
fn relative_diff(twin: &[f32], kernel: &[f32], floor: f64) -> f64 {
    max_abs_diff(twin, kernel) / max_abs(twin).max(floor)
}

/// The training-mode BatchNorm kernels (WGSL on wgpu, the two-pass CPU kernel on flex) against
/// burn's `batch_norm_train` on `shape`
/// (`[b, c, h, w]`, inputs with a non-zero mean per channel): output, batch mean and variance,
/// and the gradients of input, gamma and beta, for inputs laid out contiguous and channels last
/// and output gradients laid out either way. The largest difference relative to the largest
/// value of each compared tensor.
pub fn batch_norm_difference(device: &Device, shape: [usize; 4]) -> f64 {
    let c = shape[1];
    let offsets = Tensor::<1>::random([c], Distribution::Uniform(-2.0, 2.0), device);
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.5), device)
        + offsets.reshape([1, c, 1, 1]);
    let gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), device);
    let beta = Tensor::<1>::random([c], Distribution::Uniform(-0.5, 0.5), device);
    let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let mut worst_diff = 0.0;
    for x in [x.clone(), channels_last(x)] {
        for dy in [upstream.clone(), channels_last(upstream.clone())] {
            let run = |route| {
                let leaves = (
                    x.clone().autodiff().require_grad(),
                    gamma.clone().autodiff().require_grad(),
                    beta.clone().autodiff().require_grad(),
                );
                let (y, mean, variance) = batch_norm_train(
                    route,
                    leaves.0.clone(),
                    leaves.1.clone(),
                    leaves.2.clone(),
                    1e-5,
                );
                let values = [read_f32(y.clone()), read_f32(mean), read_f32(variance)];
                let grads = (y * dy.clone().autodiff()).sum().backward();
                let gradients = [
                    read_f32(leaves.0.grad(&grads).expect("x is a leaf")),
                    read_f32(leaves.1.grad(&grads).expect("gamma is a leaf")),
                    read_f32(leaves.2.grad(&grads).expect("beta is a leaf")),
                ];
                (values, gradients)
            };
            // Auto: the WGSL kernels on wgpu, the two-pass CPU kernel on flex.
            let ((tv, tg), (kv, kg)) = (run(Route::TensorOps), run(Route::Auto));
            for (t, k) in tv.iter().zip(&kv).chain(tg.iter().zip(&kg)) {
                worst_diff = worst(worst_diff, relative_diff(t, k, 1e-3));
            }
        }
    }
    worst_diff
}

/// The running-statistics kernel against its twin for `channels` channels, in momentum and in
/// cumulative mode: the largest difference of the new running mean and variance relative to
/// their largest value.
pub fn batch_norm_running_difference(device: &Device, channels: usize) -> f64 {
    let draw =
        |low, high| Tensor::<1>::random([channels], Distribution::Uniform(low, high), device);
    let (batch_mean, batch_var) = (draw(-2.0, 2.0), draw(0.1, 3.0));
    let (running_mean, running_var) = (draw(-1.0, 1.0), draw(0.5, 2.0));
    let count = Tensor::<1>::from_data(TensorData::new(vec![7.0f32], [1]), device);
    let mut worst_diff = 0.0;
    for rule in [RunningAverage::Momentum(0.1), RunningAverage::Cumulative] {
        let run = |route| {
            let (m, v) = batch_norm_running(
                route,
                batch_mean.clone(),
                batch_var.clone(),
                50,
                running_mean.clone(),
                running_var.clone(),
                count.clone(),
                rule,
            );
            (read_f32(m), read_f32(v))
        };
        let ((tm, tv), (km, kv)) = (run(Route::TensorOps), run(Route::Kernel));
        worst_diff =
            worst(worst_diff, worst(relative_diff(&tm, &km, 1e-3), relative_diff(&tv, &kv, 1e-3)));
    }
    worst_diff
}

/// The route to a device's own kernels: the WGSL ones on wgpu, the CPU ones on flex (which
/// `Route::Auto` picks there; `Route::Kernel` names the WGSL kernels).
fn own_route(device: &Device) -> Route {
    #[cfg(not(target_arch = "wasm32"))]
    if super::on_flex(device) {
        return Route::Auto;
    }
    let _ = device;
    Route::Kernel
}

/// The scale-shift-activation kernels against the tensor ops on `shape` (`[b, c, h, w]`), ReLU
/// and SiLU (on flex, SiLU only has a kernel): values and input gradients for inputs laid out
/// contiguous and channels last and output gradients laid out either way; the largest
/// difference relative to the largest value.
pub fn scale_shift_activation_difference(device: &Device, shape: [usize; 4]) -> f64 {
    let c = shape[1];
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), device);
    let scale = Tensor::<1>::random([c], Distribution::Uniform(-1.5, 1.5), device);
    let shift = Tensor::<1>::random([c], Distribution::Uniform(-0.5, 0.5), device);
    let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let mut worst_diff = 0.0;
    for activation in [Activation::Relu, Activation::Silu] {
        for x in [x.clone(), channels_last(x.clone())] {
            for dy in [upstream.clone(), channels_last(upstream.clone())] {
                let run = |route| {
                    let leaf = x.clone().autodiff().require_grad();
                    let (s, t) = (scale.clone().autodiff(), shift.clone().autodiff());
                    let y = scale_shift_activation(route, leaf.clone(), s, t, activation);
                    let values = read_f32(y.clone());
                    let grads = (y * dy.clone().autodiff()).sum().backward();
                    (values, read_f32(leaf.grad(&grads).expect("x is a leaf")))
                };
                let ((tv, tg), (kv, kg)) = (run(Route::TensorOps), run(own_route(device)));
                worst_diff = worst(worst_diff, relative_diff(&tv, &kv, 1e-3));
                worst_diff = worst(worst_diff, relative_diff(&tg, &kg, 1e-3));
            }
        }
    }
    worst_diff
}

/// The tiled convolution ([`super::tiled_conv`]) against burn's convolution on the same device,
/// for `[batch, in, out, h, w, kernel, stride, padding]`: output and the gradients of input,
/// weight and bias, the input laid out channels last and a random upstream gradient. The
/// largest difference relative to the largest value of each compared tensor.
pub fn tiled_conv_difference(device: &Device, case: [usize; 8]) -> f64 {
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    let [b, c, o, h, w, k, s, p] = case;
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let x = channels_last(Tensor::random([b, c, h, w], Distribution::Normal(0.0, 1.0), device));
    let weight = Tensor::<4>::random([o, c, k, k], Distribution::Normal(0.0, 0.3), device);
    let bias = Tensor::<1>::random([o], Distribution::Normal(0.0, 1.0), device);
    let upstream = Tensor::<4>::random([b, o, ho, wo], Distribution::Normal(0.0, 1.0), device);
    let run = |tiled: bool| {
        let xl = x.clone().autodiff().require_grad();
        let wl = weight.clone().autodiff().require_grad();
        let bl = bias.clone().autodiff().require_grad();
        let y = if tiled {
            super::tiled_conv::conv2d(xl.clone(), wl.clone(), Some(bl.clone()), [s, s], [p, p])
        } else {
            let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
            conv2d(xl.clone(), wl.clone(), Some(bl.clone()), options)
        };
        let grads = (y.clone() * upstream.clone().autodiff()).sum().backward();
        let grad = |t: &Tensor<4>| read_f32(t.grad(&grads).expect("a leaf"));
        let db = read_f32(bl.grad(&grads).expect("a leaf"));
        [read_f32(y.detach().without_autodiff()), grad(&xl), grad(&wl), db]
    };
    let (burns, tiled) = (run(false), run(true));
    burns
        .iter()
        .zip(&tiled)
        .map(|(twin, kernel)| relative_diff(twin, kernel, 1e-6))
        .fold(0.0, worst)
}
