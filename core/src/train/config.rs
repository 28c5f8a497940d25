//! Training configuration: every knob of a run, stored in the checkpoint so `--resume` continues
//! the same run.

use super::methods::{AttackSettings, MethodKind, MethodParams};
use super::schedule::LrSchedule;
use crate::data::Augment;
use serde::{Deserialize, Serialize};

/// Every setting of a training run ([`TrainConfig::reference`] gives the reference recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Training method.
    pub method: MethodKind,
    /// Total epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Base learning rate of SGD, before the schedule.
    pub lr: f64,
    /// SGD momentum with PyTorch semantics (dampening 0).
    pub momentum: f64,
    /// SGD weight decay, added to the gradient as in PyTorch (0: none).
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Run seed: initial weights, data order and every batch's random draws derive from it.
    pub seed: u64,
    /// The training attack (eps, step, iterations).
    pub attack: AttackSettings,
    /// Crop/flip augmentation; `None` trains on the images as they are.
    pub augment: Option<Augment>,
    /// Method constants (reference defaults).
    #[serde(default)]
    pub params: MethodParams,
    /// Average the student's weights at the end of each epoch from this (1-based) epoch on;
    /// the average, with BatchNorm statistics recomputed, is the reported model. `None`: off.
    #[serde(default)]
    pub swa_start: Option<usize>,
}

impl TrainConfig {
    /// The reference recipe (METHOD.md section 3) for `method`: SGD 0.1, momentum 0.9, weight
    /// decay 2e-4, batch 128, 200 epochs, lr x0.1 after epochs 100 and 150, crop 4 + flip, and
    /// for SAAD weight averaging from epoch 95.
    pub fn reference(method: MethodKind) -> Self {
        Self {
            method,
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 2e-4,
            schedule: LrSchedule::MultiStep { milestones: vec![100, 150], gamma: 0.1 },
            seed: 0,
            attack: AttackSettings::default(),
            augment: Some(Augment { pad: 4, flip: true }),
            params: MethodParams::default(),
            swa_start: method.info().reference_swa_start,
        }
    }
}
