//! Projected gradient descent in L-infinity (Madry et al. 2018), with uniform or Gaussian
//! random start and restarts that keep, per sample, the worst point found.

use super::{Forward, Objective, ObjectiveKind, input_gradient, step};
use crate::losses;
use burn::prelude::*;
use burn::tensor::{Distribution, IndexingUpdateOp, TensorData};

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
    /// L-infinity radius (inputs in [0,1]).
    pub eps: f32,
    /// Size of each signed-gradient step.
    pub alpha: f32,
    /// Steps per run.
    pub steps: usize,
    /// How each run draws its first iterate.
    pub start: Start,
    /// Runs of [`run_with_restarts`](Pgd::run_with_restarts), keeping the worst point per
    /// sample (1: a single run).
    pub restarts: usize,
}

impl Pgd {
    /// The evaluation protocol's PGD-20: CE, uniform start, step 2/255.
    pub fn pgd20(eps: f32) -> Self {
        Self { eps, alpha: super::STANDARD_STEP, steps: 20, start: Start::Uniform, restarts: 1 }
    }

    /// The training attack of PGD-AT: 10 steps of 2/255 from a uniform start.
    pub fn train10(eps: f32) -> Self {
        Self { eps, alpha: super::STANDARD_STEP, steps: 10, start: Start::Uniform, restarts: 1 }
    }

    /// The evaluation protocol's CW-inf: margin loss, 50 steps of 2/255, 10 restarts.
    pub fn cw50(eps: f32) -> Self {
        Self { eps, alpha: super::STANDARD_STEP, steps: 50, start: Start::Uniform, restarts: 10 }
    }

    fn start_point(&self, x: &Tensor<4>) -> Tensor<4> {
        match self.start {
            Start::Clean => x.clone(),
            Start::Uniform => {
                let noise = x.random_like(Distribution::Uniform(-self.eps as f64, self.eps as f64));
                (x.clone() + noise).clamp(0.0, 1.0)
            }
            Start::Gaussian(sigma) => {
                x.clone() + x.random_like(Distribution::Normal(0.0, sigma as f64))
            }
        }
    }

    /// One run: start, then `steps` projected signed-gradient ascent steps on `objective`.
    pub fn run(&self, forward: Forward, objective: &dyn Objective, x: &Tensor<4>) -> Tensor<4> {
        self.run_traced(forward, objective, x, false).0
    }

    /// [`run`](Self::run), also returning the start and every iterate when `keep` is set (for
    /// the page's step-through view; nothing is read back here).
    pub fn run_traced(
        &self,
        forward: Forward,
        objective: &dyn Objective,
        x: &Tensor<4>,
        keep: bool,
    ) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut x_adv = self.start_point(x);
        let mut iterates = Vec::new();
        if keep {
            iterates.push(x_adv.clone());
        }
        for _ in 0..self.steps {
            let grad = input_gradient(forward, objective, &x_adv);
            x_adv = step::pgd_update(x_adv, grad, x, self.eps, self.alpha);
            if keep {
                iterates.push(x_adv.clone());
            }
        }
        (x_adv, iterates)
    }

    /// `restarts` runs keeping the worst point per sample: a misclassified point beats a correct
    /// one, and among correct points the larger objective wins. A sample already misclassified
    /// cannot get worse, so each further run attacks only the samples still classified
    /// correctly (as AutoAttack does): one read of the correctness mask per restart.
    pub fn run_with_restarts(
        &self,
        forward: Forward,
        objective: &ObjectiveKind,
        x: &Tensor<4>,
        labels: &Tensor<1, Int>,
    ) -> Tensor<4> {
        let mut best = self.run(forward, objective, x);
        let device = x.device();
        for _ in 1..self.restarts {
            let correct = losses::correct(forward(best.clone()), labels.clone());
            let keep: Vec<i64> = crate::host_copy::read_f32(correct)
                .into_iter()
                .enumerate()
                .filter(|(_, c)| *c > 0.5)
                .map(|(i, _)| i as i64)
                .collect();
            if keep.is_empty() {
                break;
            }
            let k = keep.len();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(keep, [k]), &device);
            let (xs, sub) = (x.clone().select(0, idx.clone()), objective.select(&idx));
            let cand = self.run(forward, &sub, &xs);
            let cand_logits = forward(cand.clone());
            let cand_wrong =
                losses::correct(cand_logits.clone(), labels.clone().select(0, idx.clone()))
                    .lower_elem(0.5);
            let cand_loss = sub.loss(&cand, cand_logits).detach();
            let old = best.clone().select(0, idx.clone());
            let old_loss = sub.loss(&old, forward(old.clone())).detach();
            let better = cand_wrong
                .bool_or(cand_loss.greater(old_loss))
                .reshape([k, 1, 1, 1])
                .expand(xs.dims());
            best =
                best.select_assign(0, idx, old.mask_where(better, cand), IndexingUpdateOp::Assign);
        }
        best
    }
}
