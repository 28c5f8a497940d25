//! APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
//! diverse parameter-free attacks"), L-infinity, with the CE loss or the targeted DLR loss.
//!
//! Step size 2 eps, momentum 0.75 (none on the first step); checkpoints after 22% of the
//! iterations, the interval shrinking by 3% of them down to 6%; at a checkpoint a sample halves
//! its step and restarts from its best point if fewer than rho = 75% of the steps since the last
//! checkpoint raised its loss, or if its step was not halved at the last checkpoint and its best
//! loss has not improved since. All per-sample state stays on the device: one run reads nothing.

use super::attack::{Attack, AttackOutcome, TargetedAttack};
use super::objective::{FnObjective, Objective};
use super::{Forward, loss_and_gradient, step::project};
use crate::losses::{correct, cross_entropy, dlr_targeted};
use burn::prelude::*;
use burn::tensor::Distribution;

/// APGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Apgd {
    /// L-infinity radius of the perturbation (inputs in [0,1]).
    pub eps: f32,
    /// Iterations of one run (100 in AutoAttack's standard version).
    pub n_iter: usize,
    /// Fraction of improving steps below which the step is halved (0.75).
    pub rho: f32,
}

impl Apgd {
    /// APGD at radius `eps` with AutoAttack's standard settings: 100 iterations, rho 0.75.
    pub fn new(eps: f32) -> Self {
        Self { eps, n_iter: 100, rho: 0.75 }
    }

    /// One APGD run maximising `objective`. Returns the adversarial points (the clean point
    /// where none was found) and the mask of samples misclassified at some iterate (1.0).
    pub fn maximise(
        &self,
        forward: Forward,
        objective: &dyn Objective,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
    ) -> AttackOutcome {
        let [b, c, h, w] = x.dims();
        let device = x.device();
        let eps = self.eps;
        let n = self.n_iter;
        let n_iter_2 = ((0.22 * n as f64) as usize).max(1);
        let n_iter_min = ((0.06 * n as f64) as usize).max(1);
        let size_decr = ((0.03 * n as f64) as usize).max(1);
        let per_sample = |m: Tensor<1>| m.reshape([b, 1, 1, 1]).expand([b, c, h, w]);

        // Start: x + eps * t / max|t| with t uniform in [-1, 1]^d, clipped to the box.
        let t = x.random_like(Distribution::Uniform(-1.0, 1.0));
        let t_max = t.clone().abs().max_dims(&[1, 2, 3]).add_scalar(1e-12);
        let mut x_adv = (x.clone() + (t / t_max).mul_scalar(eps)).clamp(0.0, 1.0);
        let (mut loss, logits, mut grad) = loss_and_gradient(forward, objective, &x_adv);
        let mut acc = correct(logits, y.clone());
        let mut x_best = x_adv.clone();
        let mut x_best_adv = x_adv.clone();
        let mut loss_best = loss.clone();
        let mut grad_best = grad.clone();
        let mut step = Tensor::<4>::full([b, 1, 1, 1], 2.0 * eps, &device);
        let mut x_adv_old = x_adv.clone();
        let mut k = n_iter_2;
        let mut counter = 0;
        let mut loss_best_last_check = loss_best.clone();
        let mut reduced_last_check = Tensor::<1>::ones([b], &device);
        // Loss per iteration; the oscillation check of the first checkpoint reads one entry
        // before iteration 0, which the reference takes from the (still zero) last row.
        let mut loss_steps: Vec<Tensor<1>> = vec![Tensor::zeros([b], &device); n];

        for i in 0..n {
            let grad2 = x_adv.clone() - x_adv_old;
            x_adv_old = x_adv.clone();
            let a = if i > 0 { 0.75 } else { 1.0 };
            let z = project(x_adv.clone() + grad.sign() * step.clone(), x, eps);
            x_adv = project(
                x_adv.clone() + (z - x_adv).mul_scalar(a) + grad2.mul_scalar(1.0 - a),
                x,
                eps,
            );

            let (l, logits, g) = loss_and_gradient(forward, objective, &x_adv);
            loss = l;
            grad = g;
            let pred = correct(logits, y.clone());
            acc = acc.min_pair(pred.clone());
            x_best_adv = x_best_adv
                .mask_where(per_sample(pred.lower_elem(0.5).float()).bool(), x_adv.clone());
            loss_steps[i] = loss.clone();
            let improved = loss.clone().greater(loss_best.clone());
            x_best = x_best.mask_where(per_sample(improved.clone().float()).bool(), x_adv.clone());
            grad_best =
                grad_best.mask_where(per_sample(improved.clone().float()).bool(), grad.clone());
            loss_best = loss_best.mask_where(improved, loss.clone());

            counter += 1;
            if counter == k {
                let mut increases = Tensor::<1>::zeros([b], &device);
                for c5 in 0..k {
                    let now = &loss_steps[(i + n - c5) % n];
                    let before = &loss_steps[(i + n - c5 - 1) % n];
                    increases = increases + now.clone().greater(before.clone()).float();
                }
                let oscillation = increases.lower_equal_elem(k as f64 * self.rho as f64).float();
                let no_improvement = reduced_last_check.neg().add_scalar(1.0)
                    * loss_best_last_check.greater_equal(loss_best.clone()).float();
                let flag = oscillation.max_pair(no_improvement);
                reduced_last_check = flag.clone();
                loss_best_last_check = loss_best.clone();
                let fl = flag.greater_elem(0.5);
                step =
                    step.clone().mask_where(fl.clone().reshape([b, 1, 1, 1]), step.mul_scalar(0.5));
                x_adv = x_adv.mask_where(per_sample(fl.clone().float()).bool(), x_best.clone());
                grad = grad.mask_where(per_sample(fl.float()).bool(), grad_best.clone());
                k = k.saturating_sub(size_decr).max(n_iter_min);
                counter = 0;
            }
        }
        let fooled = acc.neg().add_scalar(1.0);
        let x_adv = x.clone().mask_where(per_sample(fooled.clone()).bool(), x_best_adv);
        AttackOutcome { x_adv, fooled }
    }
}

/// APGD-CE: APGD with the cross-entropy loss.
impl Attack for Apgd {
    fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> AttackOutcome {
        let objective =
            FnObjective(|_: &Tensor<4>, logits: Tensor<2>| cross_entropy(logits, y.clone()));
        self.maximise(forward, &objective, x, y)
    }
}

/// APGD-T's single run: APGD with the targeted DLR loss towards `targets`.
impl TargetedAttack for Apgd {
    fn run_targeted(
        &self,
        forward: Forward,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        targets: &Tensor<1, Int>,
    ) -> AttackOutcome {
        let objective = FnObjective(|_: &Tensor<4>, logits: Tensor<2>| {
            dlr_targeted(logits, y.clone(), targets.clone())
        });
        self.maximise(forward, &objective, x, y)
    }
}
