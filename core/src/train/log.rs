//! One line of a run's `log.jsonl`: what an epoch did. Written by the `saad` command after each
//! epoch (and kept in the checkpoint's history), read back by the demo's tables and plots.

use super::MethodKind;
use super::TransferStats;
use serde::{Deserialize, Serialize};

/// One epoch of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// The training method.
    pub method: MethodKind,
    /// Learning rate of the epoch's last batch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy on the inputs the method trains on, in [0,1].
    pub train_acc: f64,
    /// Wall time of the training pass (s).
    pub train_seconds: f64,
    /// Training throughput (images/s).
    pub images_per_sec: f64,
    /// Transfer attack success of the epoch's student-crafted examples (distillation methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tas: Option<f64>,
    /// Fraction of them that fool the student itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_asr: Option<f64>,
    /// Mean teacher entropy on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_entropy_mean: Option<f64>,
    /// Its standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_entropy_std: Option<f64>,
    /// Mean SAAD weight `w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saad_weight_mean: Option<f64>,
    /// Histogram of `w^` over [0,1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saad_weight_hist: Option<Vec<usize>>,
    /// Which models this epoch's test evaluation covers (`student`, or `student and weight
    /// average`), when it was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<String>,
    /// The student's clean test accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_clean_acc: Option<f64>,
    /// The student's PGD-20 test accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_pgd20_acc: Option<f64>,
    /// The weight average's clean test accuracy (BatchNorm recomputed), once averaging began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_test_clean_acc: Option<f64>,
    /// The weight average's PGD-20 test accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_test_pgd20_acc: Option<f64>,
    /// Wall time of the evaluation (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_seconds: Option<f64>,
}

impl EpochLog {
    /// Sets the transfer fields from an epoch's statistics.
    pub fn with_transfer(mut self, t: &TransferStats) -> Self {
        self.tas = Some(t.tas);
        self.student_asr = t.student_asr;
        self.teacher_entropy_mean = Some(t.teacher_entropy_mean);
        self.teacher_entropy_std = Some(t.teacher_entropy_std);
        self.saad_weight_mean = Some(t.weight_mean);
        self.saad_weight_hist = Some(t.weight_hist.clone());
        self
    }
}
