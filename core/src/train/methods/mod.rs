//! Training methods (METHOD.md sections 2 and 5). Each file states its inner maximisation (how
//! the training input is crafted against the student) and its outer loss; they share the
//! training loop, the attack module and the per-sample losses in [`crate::losses`].
//!
//! Reductions: every KL is summed over classes per sample and averaged over the batch
//! (PyTorch `batchmean`), every CE is averaged over the batch; the presets of ARD, RSLAD and
//! AdaAD switch their KL to PyTorch's `mean` over batch x classes ([`KlReduction`]).
//!
//! Defaults: the constants of the SAAD authors' comparison (github HongsinLee/saad: ard.py,
//! rslad.py, adaad.py, igdm.py, saad.py, utils.py); where that code has no script (TRADES, IAD)
//! the original authors' code. Each method file names its source; [`Preset`] offers each
//! original paper's own recipe by name.

pub mod adaad;
pub mod ard;
pub mod iad;
pub mod igdm;
pub mod natural;
pub mod pgd_at;
pub mod rslad;
pub mod saad;
pub mod trades;

use crate::attacks::{Objective, Pgd, STANDARD_EPS, STANDARD_STEP, Start};
use crate::losses::saad::{SaadLossConfig, SaadWeighting};
use crate::models::Net;
use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What one batch of a method needs.
pub struct BatchContext<'a> {
    /// The student in training mode on an autodiff device.
    pub student: &'a Net,
    /// The frozen teacher in eval mode without parameter gradients (distillation methods).
    pub teacher: Option<&'a Net>,
    /// Clean images `[batch, channels, height, width]` in [0,1] on the plain device.
    pub x: Tensor<4>,
    /// Labels `[batch]`.
    pub y: Tensor<1, Int>,
    /// 1-based epoch (for ramps and schedules).
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// The training attack's radius, step and iterations.
    pub attack: &'a AttackSettings,
    /// The method constants.
    pub params: &'a MethodParams,
}

impl BatchContext<'_> {
    /// The teacher.
    ///
    /// # Panics
    /// If none is set (the trainer checks that distillation methods get one).
    pub fn teacher(&self) -> &Net {
        self.teacher
            .expect("this method distils from a teacher; the trainer checks that one is given")
    }

    /// Linear ramp `e / E` of the input-gradient-matching term.
    pub fn ramp(&self) -> f64 {
        self.epoch as f64 / self.epochs.max(1) as f64
    }

    /// The inner maximisation: `attack.steps` signed-gradient steps on `objective` against the
    /// student in eval mode (BatchNorm running statistics), from `start`.
    pub fn inner_max(&self, objective: &dyn Objective, start: Start) -> Tensor<4> {
        let eval = self.student.valid();
        let a = self.attack;
        let pgd = Pgd { eps: a.eps, alpha: a.alpha, steps: a.steps, start, restarts: 1 };
        pgd.run(&|x| eval.forward(x), objective, &self.x)
    }

    /// The Gaussian start `x + sigma N(0, I)` of TRADES, RSLAD, AdaAD, IGDM and SAAD.
    pub fn gaussian_start(&self) -> Start {
        Start::Gaussian(self.params.init_sigma)
    }
}

/// The training attack's radius, step and iterations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSettings {
    /// L-infinity radius (8/255).
    pub eps: f32,
    /// Step size (2/255).
    pub alpha: f32,
    /// Iterations (10).
    pub steps: usize,
}

impl Default for AttackSettings {
    fn default() -> Self {
        Self { eps: STANDARD_EPS, alpha: STANDARD_STEP, steps: 10 }
    }
}

/// Every method constant, each defaulting to its reference value (METHOD.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MethodParams {
    /// Standard deviation of the Gaussian start (TRADES, RSLAD, AdaAD, IGDM, SAAD): 0.001.
    pub init_sigma: f32,
    /// TRADES weight of the KL term: 6.
    pub trades_beta: f64,
    /// ARD temperature (1 in the SAAD authors' ard.py; 30 in the original).
    pub ard_tau: f64,
    /// ARD weight of the distillation term (1; the clean CE gets the rest).
    pub ard_alpha: f64,
    /// ARD KL reduction (batchmean; the original uses PyTorch's default `mean`).
    pub ard_reduction: KlReduction,
    /// IAD temperature (1).
    pub iad_tau: f64,
    /// IAD 0-based epoch index from which the introspection term is on (60: the reference tests
    /// `epoch >= 60` with epochs counted from 0, so the term starts in the 61st epoch).
    pub iad_begin: usize,
    /// IAD exponent of the teacher's true-class probability (0.1).
    pub iad_power: f64,
    /// RSLAD weight of the adversarial term (5/6; the clean term gets the rest).
    pub rslad_adv_weight: f64,
    /// RSLAD KL reduction (batchmean; the original uses `mean` over batch x classes).
    pub rslad_reduction: KlReduction,
    /// AdaAD KL reduction (batchmean; the original's CIFAR-10 branch uses `mean`).
    pub adaad_reduction: KlReduction,
    /// Weight of the input-gradient-matching term (IGDM, SAAD): 1 for CIFAR-10, 10 for
    /// CIFAR-100 and Tiny-ImageNet.
    pub alpha_ig: f64,
    /// SAAD scale of the entropy weights (5).
    pub saad_scale: f64,
    /// SAAD order of the Rényi entropy (1 = Shannon).
    pub saad_gamma: f64,
    /// SAAD weight of the inverse-weighted clean term (0).
    pub saad_beta: f64,
    /// SAAD first-order coefficient `lambda` of the teacher surrogate (1).
    pub saad_lambda: f64,
}

impl MethodParams {
    /// SAAD's sample weighting (also what the transfer statistics report).
    pub fn saad_weighting(&self) -> SaadWeighting {
        SaadWeighting { gamma: self.saad_gamma, scale: self.saad_scale }
    }

    /// SAAD's outer-loss constants at the ramp `e / E` of the input-gradient term.
    pub fn saad_loss_config(&self, ramp: f64) -> SaadLossConfig {
        SaadLossConfig {
            weighting: self.saad_weighting(),
            ig: self.alpha_ig * ramp,
            beta: self.saad_beta,
        }
    }
}

impl Default for MethodParams {
    fn default() -> Self {
        Self {
            init_sigma: 0.001,
            trades_beta: 6.0,
            ard_tau: 1.0,
            ard_alpha: 1.0,
            ard_reduction: KlReduction::BatchMean,
            iad_tau: 1.0,
            iad_begin: 60,
            iad_power: 0.1,
            rslad_adv_weight: 5.0 / 6.0,
            rslad_reduction: KlReduction::BatchMean,
            adaad_reduction: KlReduction::BatchMean,
            alpha_ig: 1.0,
            saad_scale: 5.0,
            saad_gamma: 1.0,
            saad_beta: 0.0,
            saad_lambda: 1.0,
        }
    }
}

impl MethodParams {
    /// `self` with the constants named in a JSON object replaced (`--params` on top of a
    /// preset); unknown keys are an error.
    pub fn with_overrides(&self, json: &str) -> Result<Self, String> {
        let bad = |e: String| format!("bad method constants {json:?}: {e}");
        let over: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(mut all) =
            serde_json::to_value(self).map_err(|e| bad(e.to_string()))?
        else {
            unreachable!("MethodParams serialises to an object")
        };
        for (k, v) in over {
            if !all.contains_key(&k) {
                let keys: Vec<&str> = all.keys().map(String::as_str).collect();
                return Err(bad(format!("unknown key {k:?}; expected one of {}", keys.join(", "))));
            }
            all.insert(k, v);
        }
        serde_json::from_value(serde_json::Value::Object(all)).map_err(|e| bad(e.to_string()))
    }
}

/// How a KL term is reduced to the batch loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlReduction {
    /// Summed over classes, averaged over the batch (PyTorch `batchmean`).
    #[default]
    BatchMean,
    /// Averaged over batch x classes (PyTorch `KLDivLoss()`'s default `mean`): batchmean / C.
    Mean,
}

impl KlReduction {
    /// The batch loss `[1]` from per-sample KLs `[batch]` summed over `classes` classes.
    pub fn reduce(self, per_sample: Tensor<1>, classes: usize) -> Tensor<1> {
        match self {
            KlReduction::BatchMean => per_sample.mean(),
            KlReduction::Mean => per_sample.mean().div_scalar(classes as f64),
        }
    }
}

/// A named recipe: a method with the constants of its original paper's public code (the
/// defaults are those of the SAAD authors' comparison instead). Only the method constants are
/// set; `note` says what else that code does and which flags reproduce it.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// Name the preset is found by (e.g. `ard-original`).
    pub name: &'static str,
    /// The method.
    pub method: MethodKind,
    /// The method constants of the original code.
    pub params: MethodParams,
    /// The repository and file the constants come from.
    pub source: &'static str,
    /// What else the original code does and which flags reproduce it.
    pub note: &'static str,
}

impl Preset {
    /// Every preset.
    pub fn all() -> Vec<Preset> {
        let d = MethodParams::default();
        vec![
            Preset {
                name: "ard-original",
                method: MethodKind::Ard,
                params: MethodParams {
                    ard_tau: 30.0,
                    ard_alpha: 1.0,
                    ard_reduction: KlReduction::Mean,
                    ..d.clone()
                },
                source: "github goldblum/AdversariallyRobustDistillation, main.py",
                note: "tau 30, alpha 1, KLDivLoss() 'mean' over batch x classes. Its learning-rate helper lowers the rate once (0.01 from the 101st epoch; the second milestone sets 0.01 again): --schedule multistep:100. Not reproduced: its PGD runs with the student's BatchNorm in training mode from an unclipped uniform start.",
            },
            Preset {
                name: "iad-original",
                method: MethodKind::Iad,
                params: d.clone(),
                source: "github ZFancy/IAD, IAD-I.py",
                note: "the defaults (tau 1, begin 60 counted from 0, beta 0.1, batchmean). The same learning-rate helper as ARD's: --schedule multistep:100. Not reproduced: PGD with BatchNorm in training mode from an unclipped uniform start.",
            },
            Preset {
                name: "rslad-original",
                method: MethodKind::Rslad,
                params: MethodParams { rslad_reduction: KlReduction::Mean, ..d.clone() },
                source: "github zibojia/RSLAD, resnet18_rslad_cifar10.py and rslad_loss.py",
                note: "5/6 and 1/6, KL averaged over batch x classes. 300 epochs, lr x0.1 after epochs 215, 260, 285: --epochs 300 --schedule multistep:215,260,285. Its KL adds 1e-5 inside the teacher's log, a constant that changes the reported loss, not the gradient.",
            },
            Preset {
                name: "adaad-original",
                method: MethodKind::Adaad,
                params: MethodParams { adaad_reduction: KlReduction::Mean, ..d.clone() },
                source: "github boyellow/AdaAD, main.py (method AdaAD, CIFAR10 branch) and AT_helper.py",
                note: "AdaAD_alpha 1, KLDivLoss() 'mean' over batch x classes (its CIFAR100 branch uses batchmean, the default). Weight decay 5e-4: --weight-decay 5e-4; lr x0.1 after epochs 100 and 150 (the default).",
            },
            Preset {
                name: "trades-original",
                method: MethodKind::Trades,
                params: d,
                source: "github yaodongyu/TRADES, trades.py and train_trades_cifar10.py",
                note: "the defaults (beta 6, batchmean, start x + 0.001 N). Its CIFAR-10 run: eps 0.031, step 0.007, 76 epochs, lr x0.1 from the 75th: --eps 0.031 --alpha 0.007 --epochs 76 --schedule multistep:74.",
            },
        ]
    }

    /// The preset called `name`.
    pub fn find(name: &str) -> Result<Preset, String> {
        let all = Self::all();
        let names: Vec<&str> = all.iter().map(|p| p.name).collect();
        let list = names.join(", ");
        all.into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("unknown preset {name:?}; expected one of {list}"))
    }
}

/// One batch's result.
pub struct BatchLoss {
    /// The scalar loss to minimise.
    pub loss: Tensor<1>,
    /// Logits whose accuracy is reported as training accuracy (on the input the method trains on).
    pub logits: Tensor<2>,
    /// The student-crafted adversarial batch, if the method crafts one.
    pub x_adv: Option<Tensor<4>>,
    /// Teacher logits on `x_adv`, when the method computed them anyway.
    pub teacher_adv: Option<Tensor<2>>,
    /// Student (train-mode) logits on `x_adv`, when the method computed them.
    pub student_adv: Option<Tensor<2>>,
}

impl BatchLoss {
    /// A result with no adversarial batch: the loss and the logits it was computed from.
    pub fn plain(loss: Tensor<1>, logits: Tensor<2>) -> Self {
        Self { loss, logits, x_adv: None, teacher_adv: None, student_adv: None }
    }
}

/// A training method.
pub trait Method {
    /// The loss of one batch and what the trainer reports from it.
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss;
}

/// The methods by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// Natural training on clean images ([`natural`]).
    Natural,
    /// PGD adversarial training, Madry et al. 2018 ([`pgd_at`]).
    PgdAt,
    /// TRADES, Zhang et al. 2019 ([`trades`]).
    Trades,
    /// ARD, Goldblum et al. 2020 ([`ard`]).
    Ard,
    /// IAD, Zhu et al. 2022 ([`iad`]).
    Iad,
    /// RSLAD, Zi et al. 2021 ([`rslad`]).
    Rslad,
    /// AdaAD, Huang et al. 2023 ([`adaad`]).
    Adaad,
    /// IGDM, Lee et al. 2024 ([`igdm`]).
    Igdm,
    /// SAAD, Lee & Chung, TMLR 2026 ([`saad`]).
    Saad,
}

impl MethodKind {
    /// Every method: the baselines in the order of METHOD.md section 5, then SAAD.
    pub const ALL: [MethodKind; 9] = [
        MethodKind::Natural,
        MethodKind::PgdAt,
        MethodKind::Trades,
        MethodKind::Ard,
        MethodKind::Iad,
        MethodKind::Rslad,
        MethodKind::Adaad,
        MethodKind::Igdm,
        MethodKind::Saad,
    ];

    /// The method's implementation.
    pub fn build(self) -> Box<dyn Method> {
        match self {
            MethodKind::Natural => Box::new(natural::Natural),
            MethodKind::PgdAt => Box::new(pgd_at::PgdAt),
            MethodKind::Trades => Box::new(trades::Trades),
            MethodKind::Ard => Box::new(ard::Ard),
            MethodKind::Iad => Box::new(iad::Iad),
            MethodKind::Rslad => Box::new(rslad::Rslad),
            MethodKind::Adaad => Box::new(adaad::AdaAd),
            MethodKind::Igdm => Box::new(igdm::Igdm),
            MethodKind::Saad => Box::new(saad::Saad),
        }
    }

    /// Whether the method distils from a teacher.
    pub fn needs_teacher(self) -> bool {
        !matches!(self, MethodKind::Natural | MethodKind::PgdAt | MethodKind::Trades)
    }

    /// Command-line and serialised name (kebab-case, e.g. `pgd-at`).
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Natural => "natural",
            MethodKind::PgdAt => "pgd-at",
            MethodKind::Trades => "trades",
            MethodKind::Ard => "ard",
            MethodKind::Iad => "iad",
            MethodKind::Rslad => "rslad",
            MethodKind::Adaad => "adaad",
            MethodKind::Igdm => "igdm",
            MethodKind::Saad => "saad",
        }
    }
}

impl FromStr for MethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
            format!("unknown method {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
