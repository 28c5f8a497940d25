//! FAB, targeted, L-infinity (Croce & Hein 2020, "Minimally distorted adversarial examples with
//! a fast adaptive boundary attack"), as run by AutoAttack: 100 iterations, alpha_max 0.1,
//! eta 1.05, beta 0.9, no random start.
//!
//! Each iteration linearises the boundary between the true class y and the target t at the
//! current iterate, projects both the iterate and the original point onto that hyperplane
//! (within the image box, minimal L-infinity distance), takes a convex combination biased
//! towards the original point, and after every success steps back towards the original point.
//! The result is the smallest perturbation found; it counts only if within eps.

use super::attack::{AttackOutcome, TargetedAttack};
use super::objective::FnObjective;
use super::{Forward, loss_and_gradient};
use crate::losses::correct;
use burn::prelude::*;

/// FAB settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fab {
    /// L-infinity radius within which a found perturbation counts.
    pub eps: f32,
    /// Iterations (100 in AutoAttack).
    pub n_iter: usize,
    /// Largest weight of the original point's projection in the convex combination (0.1).
    pub alpha_max: f32,
    /// Overshoot factor of both projections onto the linearised boundary (1.05).
    pub eta: f32,
    /// Factor by which a successful perturbation shrinks towards the original point (0.9).
    pub beta: f32,
}

impl Fab {
    /// FAB at radius `eps` with AutoAttack's settings: 100 iterations, alpha_max 0.1, eta 1.05,
    /// beta 0.9.
    pub fn new(eps: f32) -> Self {
        Self { eps, n_iter: 100, alpha_max: 0.1, eta: 1.05, beta: 0.9 }
    }
}

/// Targeted FAB towards `targets`. Returns the smallest adversarial point found (the clean
/// point where none was found) and the mask (1.0) of samples broken within eps.
impl TargetedAttack for Fab {
    fn run_targeted(
        &self,
        forward: Forward,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        targets: &Tensor<1, Int>,
    ) -> AttackOutcome {
        let [b, c, h, w] = x.dims();
        let d = c * h * w;
        let device = x.device();
        let per_sample = |m: Tensor<1, Bool>| m.reshape([b, 1, 1, 1]).expand([b, c, h, w]);
        // z_t - z_y and its input gradient.
        let diff = FnObjective(|_: &Tensor<4>, logits: Tensor<2>| {
            let z_y = logits.clone().gather(1, y.clone().reshape([b, 1])).reshape([b]);
            let z_t = logits.gather(1, targets.clone().reshape([b, 1])).reshape([b]);
            z_t - z_y
        });
        let x0 = x.clone().reshape([b, d]);
        let mut x1 = x.clone();
        let mut adv = x.clone();
        let mut best = Tensor::<1>::full([b], 1e10, &device);
        for _ in 0..self.n_iter {
            let (df, _, dg) = loss_and_gradient(forward, &diff, &x1);
            let wv = dg.reshape([b, d]);
            // The linearised boundary {z : <w, z> = <w, x1> - df}.
            let hb = (wv.clone() * x1.clone().reshape([b, d])).sum_dim(1).reshape([b]) - df;
            let both = Tensor::cat(vec![x1.clone().reshape([b, d]), x0.clone()], 0);
            let d3 = linf_box_projection(
                both,
                Tensor::cat(vec![wv.clone(), wv], 0),
                Tensor::cat(vec![hb.clone(), hb], 0),
            );
            let norms = d3.clone().abs().max_dim(1).reshape([2 * b]).clamp_min(1e-8);
            let (a1, a2) = (norms.clone().slice(0..b), norms.slice(b..2 * b));
            let alpha = (a1.clone() / (a1 + a2)).clamp(0.0, self.alpha_max).reshape([b, 1]);
            let (d1, d2) = (d3.clone().slice([0..b, 0..d]), d3.slice([b..2 * b, 0..d]));
            let step = (x1.clone().reshape([b, d]) + d1.mul_scalar(self.eta))
                * alpha.clone().neg().add_scalar(1.0)
                + (x0.clone() + d2.mul_scalar(self.eta)) * alpha;
            x1 = step.clamp(0.0, 1.0).reshape([b, c, h, w]);

            let is_adv =
                correct(forward(x1.clone()).detach().without_autodiff(), y.clone()).lower_elem(0.5);
            let dist = (x1.clone() - x.clone()).abs().max_dims(&[1, 2, 3]).reshape([b]);
            let better = is_adv.clone().bool_and(dist.clone().lower(best.clone()));
            adv = adv.mask_where(per_sample(better.clone()), x1.clone());
            best = best.mask_where(better, dist);
            // Backward step towards the original point after a success.
            x1 = x1
                .clone()
                .mask_where(per_sample(is_adv), x.clone() + (x1 - x.clone()).mul_scalar(self.beta));
        }
        let found = best.clone().lower_equal_elem(self.eps as f64);
        let x_adv = x.clone().mask_where(per_sample(found.clone()), adv);
        AttackOutcome { x_adv, fooled: found.float() }
    }
}

/// For each row: the perturbation `d` of smallest L-infinity norm with `<w, t + d> = b` and
/// `t + d` in [0,1]; where the hyperplane is out of the box's reach, the move to the box corner
/// that gets closest. On flex one pass per row (`kernels::flex_box_projection`), elsewhere
/// [`linf_box_projection_tensor_ops`].
pub fn linf_box_projection(t: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    #[cfg(not(target_arch = "wasm32"))]
    if crate::kernels::flex_kernel(crate::kernels::Route::Auto, &t) {
        return crate::kernels::flex_box_projection::linf_box_projection(t, w, b);
    }
    linf_box_projection_tensor_ops(t, w, b)
}

/// [`linf_box_projection`] in tensor operations, vectorised over rows: with `room_i` the
/// distance to the box in the direction that moves `<w, z>` towards `b`, the reachable change
/// at radius `lambda` is `sum_i |w_i| min(lambda, room_i)`, piecewise linear in `lambda`;
/// sorting the rooms gives the segment holding the target and `lambda` in closed form.
pub fn linf_box_projection_tensor_ops(t: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    let [n, d] = t.dims();
    let r = b - (w.clone() * t.clone()).sum_dim(1).reshape([n]);
    let need = r.clone().abs().reshape([n, 1]);
    // +1 where the coordinate should grow, -1 where it should shrink, 0 where w_i = 0.
    let dir = w.clone().sign() * r.sign().reshape([n, 1]);
    let grow = dir.clone().greater_elem(0.0);
    let room = t
        .clone()
        .neg()
        .add_scalar(1.0)
        .mask_where(grow.bool_not(), t)
        .mask_where(dir.clone().equal_elem(0.0), Tensor::zeros([n, d], &w.device()));
    let aw = w.abs();
    let (room_sorted, order) = room.clone().sort_with_indices(1);
    let aw_sorted = aw.clone().gather(1, order);
    let weighted = aw_sorted.clone() * room_sorted.clone();
    let prefix = weighted.clone().cumsum(1) - weighted; // sum_{k<j} |w_k| room_k
    let total_w = aw_sorted.clone().sum_dim(1);
    let suffix = total_w - aw_sorted.clone().cumsum(1) + aw_sorted; // sum_{k>=j} |w_k|
    let reach = prefix.clone() + room_sorted * suffix.clone(); // change reachable at lambda = room_j
    let total = (aw * room.clone()).sum_dim(1); // the most the box allows
    let segment = reach.lower(need.clone().expand([n, d])).int().sum_dim(1).clamp_max(d as i64 - 1);
    let lambda = (need.clone() - prefix.gather(1, segment.clone()))
        / suffix.gather(1, segment).clamp_min(1e-12);
    let feasible = need.lower(total);
    let lambda =
        lambda.mask_where(feasible.bool_not(), Tensor::full([n, 1], f32::MAX, &room.device()));
    dir * room.min_pair(lambda.expand([n, d]))
}
