//! Each kernel measured against its tensor-op twin on random inputs, written once: `saad
//! selftest` reports these differences on a user's GPU, the tests bound them on lavapipe, and
//! `saad bench --kernels` times the same inputs.

use super::{Route, pgd_update, saad_loss, transfer_sums};
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
