//! Square Attack, L-infinity (Andriushchenko et al. 2020), as AutoAttack's standard version runs
//! it: margin loss, 5000 queries, p_init 0.8, the reference's schedule of square sizes *not*
//! rescaled to the query budget, and window corners drawn as the reference draws them
//! (fra31/auto-attack, autoattack/square.py, `SquareAttack(..., resc_schedule=False)` in
//! autoattack/autoattack.py). [`Square::paper`] is the non-standard variant: schedule rescaled
//! to the budget, windows anywhere in the image.
//!
//! Black-box: only forward passes. Start from vertical stripes of +-eps; each iteration moves
//! one random s x s window (the same window for every image of the batch, a random sign per
//! channel) to the opposite face of the eps-box and keeps it where the margin loss falls or
//! the image becomes misclassified. Finished samples stop; every 100 iterations the batch is
//! shrunk to the samples still correct (one read).

use super::Forward;
use super::attack::{Attack, AttackOutcome};
use crate::rng::SplitMix64;
use burn::prelude::*;
use burn::tensor::{Distribution, IndexingUpdateOp, TensorData};

/// Square settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Square {
    /// L-infinity radius (inputs in [0,1]).
    pub eps: f32,
    /// Iterations, one forward pass of the still-correct samples each (5000 in AutoAttack's
    /// standard version).
    pub n_queries: usize,
    /// f64 as in the reference, so the side lengths round exactly as there.
    pub p_init: f64,
    /// Seed of the window positions (the initial stripes and the channel signs come from the
    /// device's random stream).
    pub seed: u64,
    /// Map iteration i to `i / n_queries * 10000` before the schedule (the reference's
    /// `resc_schedule`; off in AutoAttack's standard version, so with 5000 queries the squares
    /// never shrink below p_init / 128).
    pub rescale_schedule: bool,
    /// Where a window's corner may fall.
    pub corners: Corners,
}

/// Where the top-left corner of an s x s window may fall along a side of length h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corners {
    /// `{0, ..., h - s - 1}` (just 0 when s = h): the reference's `random_int(0, h - s)`. Once
    /// s < h the last row and column are never moved after the initial stripes.
    Reference,
    /// `{0, ..., h - s}`: every position inside the image, as the paper describes the attack.
    Full,
}

/// Margin `z_y - max_{j != y} z_j` (the loss Square minimises; <= 0 means misclassified).
fn margin(logits: Tensor<2>, y: &Tensor<1, Int>) -> Tensor<1> {
    crate::losses::cw_margin(logits, y.clone()).neg()
}

impl Square {
    /// AutoAttack's standard Square.
    pub fn new(eps: f32, seed: u64) -> Self {
        Self {
            eps,
            n_queries: 5000,
            p_init: 0.8,
            seed,
            rescale_schedule: false,
            corners: Corners::Reference,
        }
    }

    /// NOT the standard version: the schedule rescaled to the query budget and windows that
    /// reach the last row and column (which matters on small images such as 8x8 digits).
    pub fn paper(eps: f32, seed: u64) -> Self {
        Self { rescale_schedule: true, corners: Corners::Full, ..Self::new(eps, seed) }
    }

    /// Fraction of the image a square covers at iteration `it` (0-based; the reference's
    /// `p_selection`).
    pub fn p_selection(&self, it: usize) -> f64 {
        let it = if self.rescale_schedule {
            (it as f64 / self.n_queries as f64 * 10000.0) as usize
        } else {
            it
        };
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

    /// Side of the square for fraction `p` of a `c x h x w` image: `round(sqrt(p h w))` clamped
    /// to [1, min(h, w)], computed as the reference does (`p * n_features / c` in f64, Python's
    /// round half to even).
    pub fn side(p: f64, c: usize, h: usize, w: usize) -> usize {
        let s = (p * (c * h * w) as f64 / c as f64).sqrt().round_ties_even() as usize;
        s.clamp(1, h.min(w))
    }

    /// How many corner positions a window of side `s` has along a side of length `len`.
    pub fn corner_choices(&self, len: usize, s: usize) -> usize {
        match self.corners {
            Corners::Reference => (len - s).max(1),
            Corners::Full => len - s + 1,
        }
    }
}

/// Runs on a batch: the best points and the mask (1.0) of misclassified ones.
impl Attack for Square {
    fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> AttackOutcome {
        let [b, c, h, w] = x.dims();
        let device = x.device();
        let eps = self.eps as f64;
        let mut rng = SplitMix64::new(self.seed);
        let stripes = Tensor::<4>::random([b, c, 1, w], Distribution::Uniform(-1.0, 1.0), &device)
            .sign()
            .expand([b, c, h, w]);
        let mut x_best = (x.clone() + stripes.mul_scalar(eps)).clamp(0.0, 1.0);
        let mut margin_min = margin(forward(x_best.clone()), y);
        let mut loss_min = margin_min.clone();
        // The eps-box within [0, 1]: clamping to it is clamping to the eps-box, then to [0, 1].
        let lower = x.clone().sub_scalar(eps).clamp_min(0.0);
        let upper = x.clone().add_scalar(eps).clamp_max(1.0);

        // The active subset (samples with margin > 0) and where they sit in the full batch.
        let mut idx: Option<Tensor<1, Int>> = None;
        let (mut lower_s, mut upper_s, mut ys, mut best_s, mut margin_s, mut loss_s) = (
            lower.clone(),
            upper.clone(),
            y.clone(),
            x_best.clone(),
            margin_min.clone(),
            loss_min.clone(),
        );
        for i in 0..self.n_queries {
            if i % 100 == 0 {
                // Write the subset back and keep only the samples still correct.
                if let Some(ix) = idx.take() {
                    x_best = x_best.select_assign(
                        0,
                        ix.clone(),
                        best_s.clone(),
                        IndexingUpdateOp::Assign,
                    );
                    margin_min = margin_min.select_assign(
                        0,
                        ix.clone(),
                        margin_s.clone(),
                        IndexingUpdateOp::Assign,
                    );
                    loss_min =
                        loss_min.select_assign(0, ix, loss_s.clone(), IndexingUpdateOp::Assign);
                }
                let active: Vec<i64> = crate::host_copy::read_f32(margin_min.clone())
                    .into_iter()
                    .enumerate()
                    .filter(|(_, m)| *m > 0.0)
                    .map(|(i, _)| i as i64)
                    .collect();
                if active.is_empty() {
                    break;
                }
                let ix = Tensor::<1, Int>::from_data(
                    TensorData::new(active.clone(), [active.len()]),
                    &device,
                );
                lower_s = lower.clone().select(0, ix.clone());
                upper_s = upper.clone().select(0, ix.clone());
                ys = y.clone().select(0, ix.clone());
                best_s = x_best.clone().select(0, ix.clone());
                margin_s = margin_min.clone().select(0, ix.clone());
                loss_s = loss_min.clone().select(0, ix.clone());
                idx = Some(ix);
            }
            let n = ys.dims()[0];
            let s = Self::side(self.p_selection(i), c, h, w);
            let vh = rng.below(self.corner_choices(h, s) as u64) as i64;
            let vw = rng.below(self.corner_choices(w, s) as u64) as i64;
            let signs =
                Tensor::<4>::random([1, c, 1, 1], Distribution::Uniform(-1.0, 1.0), &device).sign();
            // Only the window moves: elsewhere the candidate is the best point, already inside
            // the box, so the window alone is moved and clamped (the same values as moving and
            // clamping the whole image, in a pass over the window instead of four over all).
            let window = [0..n, 0..c, vh as usize..vh as usize + s, vw as usize..vw as usize + s];
            let moved = (best_s.clone().slice(window.clone()) + signs.mul_scalar(2.0 * eps))
                .max_pair(lower_s.clone().slice(window.clone()))
                .min_pair(upper_s.clone().slice(window.clone()));
            let x_new = best_s.clone().slice_assign(window, moved);
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
        AttackOutcome { x_adv: x_best, fooled }
    }
}
