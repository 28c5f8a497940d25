//! FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps from the clean input,
//! no random start, clipped to [0,1].

use super::{Forward, Objective, input_gradient, step::pgd_update};
use burn::prelude::*;

/// The FGSM batch `clip_[0,1](x + eps * sign(grad_x loss))`, `[batch, channels, height, width]`.
pub fn fgsm(forward: Forward, objective: &dyn Objective, x: &Tensor<4>, eps: f32) -> Tensor<4> {
    let grad = input_gradient(forward, objective, x);
    pgd_update(x.clone(), grad, x, eps, eps)
}
