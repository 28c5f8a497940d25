//! What an attack maximises, per sample.

use crate::losses;
use burn::prelude::*;

/// A per-sample loss of the adversarial input and the model's logits on it, to be maximised.
/// `x_adv` is passed so objectives may depend on the input itself (SAAD's teacher surrogate).
pub trait Objective {
    /// Per-sample loss `[batch]` of the logits `[batch, classes]` the model gives at `x_adv`.
    fn loss(&self, x_adv: &Tensor<4>, logits: Tensor<2>) -> Tensor<1>;
}

/// The standard objectives.
#[derive(Clone, Debug)]
pub enum ObjectiveKind {
    /// Cross-entropy with the true labels.
    CrossEntropy {
        /// True labels `[batch]`.
        labels: Tensor<1, Int>,
    },
    /// `KL(softmax(target) || softmax(z))` with fixed target logits (TRADES, RSLAD, ...).
    KlToTarget {
        /// Target logits `[batch, classes]` (constants).
        target_logits: Tensor<2>,
    },
    /// Carlini-Wagner margin `max_{j != y} z_j - z_y`.
    CwMargin {
        /// True labels `[batch]`.
        labels: Tensor<1, Int>,
    },
}

impl ObjectiveKind {
    /// The same objective restricted to the samples at `indices`.
    pub fn select(&self, indices: &Tensor<1, Int>) -> Self {
        let i = indices.clone();
        match self {
            ObjectiveKind::CrossEntropy { labels } => {
                ObjectiveKind::CrossEntropy { labels: labels.clone().select(0, i) }
            }
            ObjectiveKind::KlToTarget { target_logits } => {
                ObjectiveKind::KlToTarget { target_logits: target_logits.clone().select(0, i) }
            }
            ObjectiveKind::CwMargin { labels } => {
                ObjectiveKind::CwMargin { labels: labels.clone().select(0, i) }
            }
        }
    }
}

impl Objective for ObjectiveKind {
    fn loss(&self, _x_adv: &Tensor<4>, logits: Tensor<2>) -> Tensor<1> {
        match self {
            ObjectiveKind::CrossEntropy { labels } => losses::cross_entropy(logits, labels.clone()),
            ObjectiveKind::KlToTarget { target_logits } => {
                losses::kl_div(target_logits.clone(), logits)
            }
            ObjectiveKind::CwMargin { labels } => losses::cw_margin(logits, labels.clone()),
        }
    }
}

/// An objective given as a closure `(x_adv, logits) -> per-sample loss` (the distillation
/// methods' inner maximisations, which may run the teacher inside).
pub struct FnObjective<F>(pub F);

impl<F: Fn(&Tensor<4>, Tensor<2>) -> Tensor<1>> Objective for FnObjective<F> {
    fn loss(&self, x_adv: &Tensor<4>, logits: Tensor<2>) -> Tensor<1> {
        (self.0)(x_adv, logits)
    }
}
