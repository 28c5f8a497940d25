//! The projected signed-gradient step shared by every L-infinity attack.

use crate::kernels::{self, Route};
use burn::prelude::*;

/// `clip_[0,1](clip_[x-eps, x+eps](x_adv + alpha * sign(grad)))`: one fused WGSL dispatch on
/// wgpu (`shaders/pgd_step.wgsl`), the tensor-op twin elsewhere (see [`kernels::pgd_update`]).
pub fn pgd_update(
    x_adv: Tensor<4>,
    grad: Tensor<4>,
    x: &Tensor<4>,
    eps: f32,
    alpha: f32,
) -> Tensor<4> {
    let b = x_adv.dims()[0];
    let device = x_adv.device();
    let full = |v: f32| Tensor::<1>::full([b], v, &device);
    kernels::pgd_update(Route::Auto, x_adv, grad, x, full(eps), full(alpha), full(1.0))
}

/// Projection onto the eps-ball around `x` intersected with the image box [0,1].
pub fn project(x_adv: Tensor<4>, x: &Tensor<4>, eps: f32) -> Tensor<4> {
    x_adv.max_pair(x.clone().sub_scalar(eps)).min_pair(x.clone().add_scalar(eps)).clamp(0.0, 1.0)
}
