//! Square Attack, L-infinity (Andriushchenko et al. 2020), as run by AutoAttack: margin loss,
//! 5000 queries, p_init 0.8, the schedule of square sizes rescaled to the query budget.
//!
//! Black-box: only forward passes. Start from vertical stripes of +-eps; each iteration moves
//! one random s x s window (the same window for every image of the batch, a random sign per
//! channel) to the opposite face of the eps-box and keeps it where the margin loss falls or
//! the image becomes misclassified. Finished samples stop; every 100 iterations the batch is
//! shrunk to the samples still correct (one read).

use super::Forward;
use crate::rng::SplitMix64;
use burn::prelude::*;
use burn::tensor::{Distribution, IndexingUpdateOp, TensorData};

/// Square settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Square {
    pub eps: f32,
    pub n_queries: usize,
    pub p_init: f32,
    pub seed: u64,
}

/// Margin `z_y - max_{j != y} z_j` (the loss Square minimises; <= 0 means misclassified).
fn margin(logits: Tensor<2>, y: &Tensor<1, Int>) -> Tensor<1> {
    crate::losses::cw_margin(logits, y.clone()).neg()
}

impl Square {
    pub fn new(eps: f32, seed: u64) -> Self {
        Self { eps, n_queries: 5000, p_init: 0.8, seed }
    }

    /// Fraction of the image a square covers at iteration `it` (AutoAttack's schedule).
    pub fn p_selection(&self, it: usize) -> f32 {
        let it = (it as f64 / self.n_queries as f64 * 10000.0) as usize;
        let div = match it {
            0..=10 => 1.0,
            11..=50 => 2.0,
            51..=200 => 4.0,
            201..=500 => 8.0,
            501..=1000 => 16.0,
            1001..=2000 => 32.0,
            2001..=4000 => 64.0,
            4001..=6000 => 128.0,
            6001..=8000 => 256.0,
            _ => 512.0,
        };
        self.p_init / div
    }

    /// Runs on a batch; returns the best points and the mask (1.0) of misclassified ones.
    pub fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> (Tensor<4>, Tensor<1>) {
        let [b, c, h, w] = x.dims();
        let device = x.device();
        let eps = self.eps as f64;
        let mut rng = SplitMix64::new(self.seed);
        let stripes = Tensor::<4>::random([b, c, 1, w], Distribution::Uniform(-1.0, 1.0), &device).sign().expand([b, c, h, w]);
        let mut x_best = (x.clone() + stripes.mul_scalar(eps)).clamp(0.0, 1.0);
        let mut margin_min = margin(forward(x_best.clone()), y);
        let mut loss_min = margin_min.clone();
        let rows = Tensor::<1, Int>::arange(0..h as i64, &device).reshape([1, 1, h, 1]);
        let cols = Tensor::<1, Int>::arange(0..w as i64, &device).reshape([1, 1, 1, w]);
        let n_features = (c * h * w) as f32;

        // The active subset (samples with margin > 0) and where they sit in the full batch.
        let mut idx: Option<Tensor<1, Int>> = None;
        let (mut xs, mut ys, mut best_s, mut margin_s, mut loss_s) = (x.clone(), y.clone(), x_best.clone(), margin_min.clone(), loss_min.clone());
        for i in 0..self.n_queries {
            if i % 100 == 0 {
                // Write the subset back and keep only the samples still correct.
                if let Some(ix) = idx.take() {
                    x_best = x_best.select_assign(0, ix.clone(), best_s.clone(), IndexingUpdateOp::Assign);
                    margin_min = margin_min.select_assign(0, ix.clone(), margin_s.clone(), IndexingUpdateOp::Assign);
                    loss_min = loss_min.select_assign(0, ix, loss_s.clone(), IndexingUpdateOp::Assign);
                }
                let active: Vec<i64> = margin_min.clone().into_data().iter::<f32>().enumerate().filter(|(_, m)| *m > 0.0).map(|(i, _)| i as i64).collect();
                if active.is_empty() {
                    break;
                }
                let ix = Tensor::<1, Int>::from_data(TensorData::new(active.clone(), [active.len()]), &device);
                xs = x.clone().select(0, ix.clone());
                ys = y.clone().select(0, ix.clone());
                best_s = x_best.clone().select(0, ix.clone());
                margin_s = margin_min.clone().select(0, ix.clone());
                loss_s = loss_min.clone().select(0, ix.clone());
                idx = Some(ix);
            }
            let n = ys.dims()[0];
            let p = self.p_selection(i);
            let s = ((p * n_features / c as f32).sqrt().round() as usize).clamp(1, h.min(w));
            // Every window position inside the image, {0, ..., h - s} (the paper's sampling; the
            // reference code draws from {0, ..., h - s - 1} and never moves the last row and
            // column once windows are 1x1).
            let vh = rng.below((h - s + 1) as u64) as i64;
            let vw = rng.below((w - s + 1) as u64) as i64;
            let in_rows = rows.clone().greater_equal_elem(vh).bool_and(rows.clone().lower_elem(vh + s as i64));
            let in_cols = cols.clone().greater_equal_elem(vw).bool_and(cols.clone().lower_elem(vw + s as i64));
            let window = in_rows.expand([1, 1, h, w]).bool_and(in_cols.expand([1, 1, h, w])).float();
            let signs = Tensor::<4>::random([1, c, 1, 1], Distribution::Uniform(-1.0, 1.0), &device).sign();
            let delta = (window * signs).mul_scalar(2.0 * eps).expand([n, c, h, w]);
            let x_new = (best_s.clone() + delta).max_pair(xs.clone().sub_scalar(eps)).min_pair(xs.clone().add_scalar(eps)).clamp(0.0, 1.0);
            let m = margin(forward(x_new.clone()), &ys);
            let live = margin_s.clone().greater_elem(0.0);
            let improved = m.clone().lower(loss_s.clone()).bool_and(live.clone());
            loss_s = loss_s.mask_where(improved.clone(), m.clone());
            let take = improved.bool_or(m.clone().lower_equal_elem(0.0).bool_and(live));
            margin_s = margin_s.mask_where(take.clone(), m);
            best_s = best_s.mask_where(take.reshape([n, 1, 1, 1]).expand([n, c, h, w]), x_new);
        }
        if let Some(ix) = idx {
            x_best = x_best.select_assign(0, ix.clone(), best_s, IndexingUpdateOp::Assign);
            margin_min = margin_min.select_assign(0, ix, margin_s, IndexingUpdateOp::Assign);
        }
        let fooled = margin_min.lower_equal_elem(0.0).float();
        (x_best, fooled)
    }
}
