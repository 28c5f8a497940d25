//! The projected signed-gradient step shared by every L-infinity attack.

use burn::prelude::*;

/// `clip_[0,1](clip_[x-eps, x+eps](x_adv + alpha * sign(grad)))`.
pub fn pgd_update(x_adv: Tensor<4>, grad: Tensor<4>, x: &Tensor<4>, eps: f32, alpha: f32) -> Tensor<4> {
    let stepped = x_adv + grad.sign().mul_scalar(alpha);
    project(stepped, x, eps)
}

/// Projection onto the eps-ball around `x` intersected with the image box [0,1].
pub fn project(x_adv: Tensor<4>, x: &Tensor<4>, eps: f32) -> Tensor<4> {
    x_adv
        .max_pair(x.clone().sub_scalar(eps))
        .min_pair(x.clone().add_scalar(eps))
        .clamp(0.0, 1.0)
}
