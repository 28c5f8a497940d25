//! Transfer statistics of the training batches (the point of the paper): how often the
//! student-crafted adversarial examples fool the teacher (TAS), the teacher's entropy on them,
//! the SAAD weights they would get, and how often they fool the student itself. Summed on the
//! device batch by batch and read once per epoch.

use super::saad::{SaadWeighting, saad_weights};
use super::{correct, one_hot, renyi_entropy};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Bins of the SAAD weight histogram (of `w^` in [0,1]).
pub const WEIGHT_BINS: usize = 10;

/// The layout of the sum vector, one named offset per quantity: defined here once and handed to
/// `shaders/transfer_stats.wgsl` as WGSL constants of the same names (`kernels`), read back by
/// [`TransferStats::from_sums`].
pub mod sums {
    use super::WEIGHT_BINS;
    /// Samples seen.
    pub const SAMPLES: usize = 0;
    /// Samples whose adversarial example fools the teacher.
    pub const TEACHER_FOOLED: usize = 1;
    /// Samples whose adversarial example fools the student.
    pub const STUDENT_FOOLED: usize = 2;
    /// Samples for which the student's logits were given (0 or all of the batch).
    pub const STUDENT_SEEN: usize = 3;
    /// Sum of the teacher's entropies.
    pub const ENTROPY_SUM: usize = 4;
    /// Sum of their squares.
    pub const ENTROPY_SQUARE_SUM: usize = 5;
    /// Sum of the SAAD weights `w`.
    pub const WEIGHT_SUM: usize = 6;
    /// First of the [`WEIGHT_BINS`] histogram bins of `w^`.
    pub const HISTOGRAM: usize = 7;
    /// Length of the vector.
    pub const LEN: usize = HISTOGRAM + WEIGHT_BINS;
    /// Every named offset with its name, in order (for the shader's constants).
    pub const NAMED: [(&str, usize); 9] = [
        ("SAMPLES", SAMPLES),
        ("TEACHER_FOOLED", TEACHER_FOOLED),
        ("STUDENT_FOOLED", STUDENT_FOOLED),
        ("STUDENT_SEEN", STUDENT_SEEN),
        ("ENTROPY_SUM", ENTROPY_SUM),
        ("ENTROPY_SQUARE_SUM", ENTROPY_SQUARE_SUM),
        ("WEIGHT_SUM", WEIGHT_SUM),
        ("HISTOGRAM", HISTOGRAM),
        ("LEN", LEN),
    ];
}

/// Per-sample transfer quantities of one batch.
pub struct TransferBatch {
    /// 1 where the teacher misclassifies the adversarial example (it transfers).
    pub teacher_fooled: Tensor<1>,
    /// Teacher entropy on the adversarial example.
    pub entropy: Tensor<1>,
    /// SAAD weight `w`.
    pub weight: Tensor<1>,
    /// Its normalised `w^`.
    pub weight_hat: Tensor<1>,
}

impl TransferBatch {
    /// From the teacher's logits on the student-crafted adversarial batch.
    pub fn new(teacher_adv: Tensor<2>, labels: Tensor<1, Int>, weighting: SaadWeighting) -> Self {
        let teacher_adv = teacher_adv.detach().without_autodiff();
        let entropy = renyi_entropy(teacher_adv.clone(), weighting.gamma);
        let (weight, weight_hat) = saad_weights(entropy.clone(), weighting.scale);
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
        let hist = one_hot(bins, WEIGHT_BINS).float().sum_dim(0).reshape([WEIGHT_BINS]);
        // In the order of the offsets in [`sums`].
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
    /// Samples the statistics are over.
    pub samples: usize,
    /// Transfer attack success: fraction of student-crafted adversarial examples that fool the
    /// teacher.
    pub tas: f64,
    /// Fraction that fool the student itself (train-mode logits during training).
    pub student_asr: Option<f64>,
    /// Mean of the teacher's entropy on the adversarial examples.
    pub teacher_entropy_mean: f64,
    /// Its standard deviation.
    pub teacher_entropy_std: f64,
    /// Mean SAAD weight `w`.
    pub weight_mean: f64,
    /// Histogram of `w^` over [0,1] in [`WEIGHT_BINS`] bins.
    pub weight_hist: Vec<usize>,
}

impl TransferStats {
    /// From the sums of [`TransferBatch::sums`] (None when no sample was seen).
    pub fn from_sums(v: &[f32]) -> Option<Self> {
        let at = |offset: usize| v[offset] as f64;
        let n = at(sums::SAMPLES);
        if n == 0.0 {
            return None;
        }
        let mean = at(sums::ENTROPY_SUM) / n;
        let seen = at(sums::STUDENT_SEEN);
        Some(Self {
            samples: n as usize,
            tas: at(sums::TEACHER_FOOLED) / n,
            student_asr: (seen > 0.0).then(|| at(sums::STUDENT_FOOLED) / seen),
            teacher_entropy_mean: mean,
            teacher_entropy_std: (at(sums::ENTROPY_SQUARE_SUM) / n - mean * mean).max(0.0).sqrt(),
            weight_mean: at(sums::WEIGHT_SUM) / n,
            weight_hist: v[sums::HISTOGRAM..sums::LEN]
                .iter()
                .map(|&c| c.round() as usize)
                .collect(),
        })
    }
}
