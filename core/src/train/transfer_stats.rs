//! Transfer statistics of the training batches (the point of the paper): how often the
//! student-crafted adversarial examples fool the teacher (TAS), the teacher's entropy on them,
//! the SAAD weights they would get, and how often they fool the student itself. Summed on the
//! device batch by batch and read once per epoch.

use super::methods::MethodParams;
use crate::losses::{self, correct, renyi_entropy, saad_weights};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Bins of the SAAD weight histogram (of `w^` in [0,1]).
pub const WEIGHT_BINS: usize = 10;
/// Length of the sum vector: samples, teacher fooled, student fooled, student seen, entropy sum,
/// entropy square sum, weight sum, then the histogram.
pub const SUMS_LEN: usize = 7 + WEIGHT_BINS;

/// Per-sample transfer quantities of one batch.
pub struct TransferBatch {
    /// 1 where the teacher misclassifies the adversarial example (it transfers).
    pub teacher_fooled: Tensor<1>,
    /// Teacher entropy on the adversarial example.
    pub entropy: Tensor<1>,
    /// SAAD weight `w` and its normalised `w^`.
    pub weight: Tensor<1>,
    pub weight_hat: Tensor<1>,
}

impl TransferBatch {
    /// From the teacher's logits on the student-crafted adversarial batch.
    pub fn new(teacher_adv: Tensor<2>, labels: Tensor<1, Int>, params: &MethodParams) -> Self {
        let teacher_adv = teacher_adv.detach().without_autodiff();
        let entropy = renyi_entropy(teacher_adv.clone(), params.saad_gamma);
        let (weight, weight_hat) = saad_weights(entropy.clone(), params.saad_scale);
        Self {
            teacher_fooled: correct(teacher_adv, labels).neg().add_scalar(1.0),
            entropy,
            weight,
            weight_hat,
        }
    }

    /// This batch's contribution to the epoch sums (`student_adv`: the student's logits on the
    /// same batch, when the method computed them).
    pub fn sums(&self, student_adv: Option<(Tensor<2>, Tensor<1, Int>)>) -> Tensor<1> {
        let device = self.entropy.device();
        let n = self.entropy.dims()[0];
        let (student_fooled, student_seen) = match student_adv {
            Some((logits, y)) => (
                correct(logits.detach().without_autodiff(), y).neg().add_scalar(1.0).sum(),
                n as f32,
            ),
            None => (Tensor::zeros([1], &device), 0.0),
        };
        let bins = self
            .weight_hat
            .clone()
            .mul_scalar(WEIGHT_BINS as f64)
            .floor()
            .clamp(0.0, WEIGHT_BINS as f64 - 1.0)
            .int();
        let hist = losses::one_hot(bins, WEIGHT_BINS).float().sum_dim(0).reshape([WEIGHT_BINS]);
        Tensor::cat(
            vec![
                Tensor::from_floats([n as f32], &device),
                self.teacher_fooled.clone().sum(),
                student_fooled,
                Tensor::from_floats([student_seen], &device),
                self.entropy.clone().sum(),
                self.entropy.clone().square().sum(),
                self.weight.clone().sum(),
                hist,
            ],
            0,
        )
    }
}

/// One epoch's (or one test set's) transfer statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferStats {
    pub samples: usize,
    /// Transfer attack success: fraction of student-crafted adversarial examples that fool the
    /// teacher.
    pub tas: f64,
    /// Fraction that fool the student itself (train-mode logits during training).
    pub student_asr: Option<f64>,
    pub teacher_entropy_mean: f64,
    pub teacher_entropy_std: f64,
    /// Mean SAAD weight `w` and the histogram of `w^` over [0,1] in [`WEIGHT_BINS`] bins.
    pub weight_mean: f64,
    pub weight_hist: Vec<usize>,
}

impl TransferStats {
    /// From the sums of [`TransferBatch::sums`] (None when no sample was seen).
    pub fn from_sums(v: &[f32]) -> Option<Self> {
        let n = v[0] as f64;
        if n == 0.0 {
            return None;
        }
        let mean = v[4] as f64 / n;
        Some(Self {
            samples: n as usize,
            tas: v[1] as f64 / n,
            student_asr: (v[3] > 0.0).then(|| v[2] as f64 / v[3] as f64),
            teacher_entropy_mean: mean,
            teacher_entropy_std: (v[5] as f64 / n - mean * mean).max(0.0).sqrt(),
            weight_mean: v[6] as f64 / n,
            weight_hist: v[7..7 + WEIGHT_BINS].iter().map(|&c| c.round() as usize).collect(),
        })
    }
}
