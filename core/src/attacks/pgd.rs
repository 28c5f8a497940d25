//! Projected gradient descent in L-infinity (Madry et al. 2018), with uniform or Gaussian
//! random start and restarts that keep, per sample, the worst point found.

use super::{Forward, Objective, input_gradient, step};
use crate::losses;
use burn::prelude::*;
use burn::tensor::Distribution;

/// How the first iterate is drawn.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Start {
    /// From the clean input (deterministic).
    Clean,
    /// `x + U(-eps, eps)`, clipped to [0,1] (Madry PGD, the PGD-20 evaluation).
    Uniform,
    /// `x + sigma * N(0, I)`, not clipped (TRADES, RSLAD, SAAD use sigma = 0.001).
    Gaussian(f32),
}

/// PGD settings: radius, step, iterations, start and restarts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pgd {
    pub eps: f32,
    pub alpha: f32,
    pub steps: usize,
    pub start: Start,
    pub restarts: usize,
}

impl Pgd {
    /// The evaluation protocol's PGD-20: CE, uniform start, step 2/255.
    pub fn pgd20(eps: f32) -> Self {
        Self { eps, alpha: 2.0 / 255.0, steps: 20, start: Start::Uniform, restarts: 1 }
    }

    /// The training attack of PGD-AT: 10 steps of 2/255 from a uniform start.
    pub fn train10(eps: f32) -> Self {
        Self { eps, alpha: 2.0 / 255.0, steps: 10, start: Start::Uniform, restarts: 1 }
    }

    /// The evaluation protocol's CW-inf: margin loss, 50 steps of 2/255, 10 restarts.
    pub fn cw50(eps: f32) -> Self {
        Self { eps, alpha: 2.0 / 255.0, steps: 50, start: Start::Uniform, restarts: 10 }
    }

    fn start_point(&self, x: &Tensor<4>) -> Tensor<4> {
        match self.start {
            Start::Clean => x.clone(),
            Start::Uniform => {
                let noise = x.random_like(Distribution::Uniform(-self.eps as f64, self.eps as f64));
                (x.clone() + noise).clamp(0.0, 1.0)
            }
            Start::Gaussian(sigma) => x.clone() + x.random_like(Distribution::Normal(0.0, sigma as f64)),
        }
    }

    /// One run: start, then `steps` projected signed-gradient ascent steps on `objective`.
    pub fn run(&self, forward: Forward, objective: &dyn Objective, x: &Tensor<4>) -> Tensor<4> {
        let mut x_adv = self.start_point(x);
        for _ in 0..self.steps {
            let grad = input_gradient(forward, objective, &x_adv);
            x_adv = step::pgd_update(x_adv, grad, x, self.eps, self.alpha);
        }
        x_adv
    }

    /// `restarts` runs; per sample keeps a misclassified point over a correct one, and otherwise
    /// the point with the larger objective. With one restart this is [`run`](Self::run).
    pub fn run_with_restarts(&self, forward: Forward, objective: &dyn Objective, x: &Tensor<4>, labels: &Tensor<1, Int>) -> Tensor<4> {
        let mut best = self.run(forward, objective, x);
        if self.restarts <= 1 {
            return best;
        }
        let [b, ..] = x.dims();
        let score = |x_adv: &Tensor<4>| {
            let logits = forward(x_adv.clone());
            let wrong = losses::correct(logits.clone(), labels.clone()).neg().add_scalar(1.0);
            (wrong, objective.loss(x_adv, logits).detach())
        };
        let (mut best_wrong, mut best_loss) = score(&best);
        for _ in 1..self.restarts {
            let cand = self.run(forward, objective, x);
            let (wrong, loss) = score(&cand);
            // Better: newly wrong, or equally wrong with a larger loss.
            let better = wrong.clone().greater(best_wrong.clone()).bool_or(
                wrong.clone().equal(best_wrong.clone()).bool_and(loss.clone().greater(best_loss.clone())),
            );
            let mask4 = better.clone().reshape([b, 1, 1, 1]).expand(x.dims());
            best = best.mask_where(mask4, cand);
            best_wrong = best_wrong.mask_where(better.clone(), wrong);
            best_loss = best_loss.mask_where(better, loss);
        }
        best
    }
}
