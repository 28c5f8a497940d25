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

/// The registry: each method is a module of this folder with a [`Method`] and its
/// [`MethodInfo`] `INFO`. Adding a method is its file plus its name here.
macro_rules! registry {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every method, in the order the CLI and the page list them.
        pub static METHODS: &[&MethodInfo] = &[$(&$module::INFO),*];
    };
}

registry!(natural, pgd_at, trades, ard, iad, rslad, adaad, igdm, saad);

use crate::attacks::{Objective, Pgd, STANDARD_EPS, STANDARD_STEP, Start};
use crate::losses::saad::{SaadLossConfig, SaadWeighting};
use crate::models::Net;
use crate::train::data_parallel::ShardExchange;
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
    /// In a data-parallel step: the exchange between the shards and this shard's index (`x` is
    /// then one shard of the global batch). `None` on one device.
    pub shards: Option<(&'a ShardExchange, usize)>,
}

impl BatchContext<'_> {
    /// Per-sample `values` of this shard completed to the whole global batch (every shard's, in
    /// shard order), for what a method computes over the batch, such as SAAD's entropy range.
    /// On one device, `values` itself.
    pub fn whole_batch(&self, values: Tensor<1>) -> Tensor<1> {
        match self.shards {
            Some((exchange, k)) => exchange.all_gather(k, values),
            None => values,
        }
    }

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

    /// The student as every inner maximisation attacks it: eval mode (BatchNorm running
    /// statistics), folded once for the whole attack, since the weights stay fixed over its steps.
    pub fn attacked_student(&self) -> Net {
        self.student.valid().folded()
    }

    /// The inner maximisation: `attack.steps` signed-gradient steps on `objective` against
    /// [`attacked_student`](Self::attacked_student), from `start`.
    pub fn inner_max(&self, objective: &dyn Objective, start: Start) -> Tensor<4> {
        let eval = self.attacked_student();
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
                method: MethodKind::ARD,
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
                method: MethodKind(&iad::INFO),
                params: d.clone(),
                source: "github ZFancy/IAD, IAD-I.py",
                note: "the defaults (tau 1, begin 60 counted from 0, beta 0.1, batchmean). The same learning-rate helper as ARD's: --schedule multistep:100. Not reproduced: PGD with BatchNorm in training mode from an unclipped uniform start.",
            },
            Preset {
                name: "rslad-original",
                method: MethodKind::RSLAD,
                params: MethodParams { rslad_reduction: KlReduction::Mean, ..d.clone() },
                source: "github zibojia/RSLAD, resnet18_rslad_cifar10.py and rslad_loss.py",
                note: "5/6 and 1/6, KL averaged over batch x classes. 300 epochs, lr x0.1 after epochs 215, 260, 285: --epochs 300 --schedule multistep:215,260,285. Its KL adds 1e-5 inside the teacher's log, a constant that changes the reported loss, not the gradient.",
            },
            Preset {
                name: "adaad-original",
                method: MethodKind::ADAAD,
                params: MethodParams { adaad_reduction: KlReduction::Mean, ..d.clone() },
                source: "github boyellow/AdaAD, main.py (method AdaAD, CIFAR10 branch) and AT_helper.py",
                note: "AdaAD_alpha 1, KLDivLoss() 'mean' over batch x classes (its CIFAR100 branch uses batchmean, the default). Weight decay 5e-4: --weight-decay 5e-4; lr x0.1 after epochs 100 and 150 (the default).",
            },
            Preset {
                name: "trades-original",
                method: MethodKind(&trades::INFO),
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

/// A training method: how one batch's loss is computed (its inner maximisation and outer loss).
pub trait Method: Sync {
    /// The loss of one batch, with what the trainer reports from it.
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss;
}

/// What the CLI, the page, the checkpoints and the trainer know of a method: one per method
/// file (its `INFO`), listed in [`METHODS`].
pub struct MethodInfo {
    /// Name on the command line and in checkpoints and reports (kebab-case).
    pub name: &'static str,
    /// Name for people (tables, the page).
    pub title: &'static str,
    /// One line for `--help` and the page: the method, its source and its idea.
    pub summary: &'static str,
    /// Whether the method distils from a teacher.
    pub needs_teacher: bool,
    /// First averaged epoch (1-based) of the reference's 200-epoch recipe, when the reference
    /// averages weights.
    pub reference_swa_start: Option<usize>,
    /// The method itself.
    pub method: &'static dyn Method,
}

/// A method chosen by name: a handle on its [`MethodInfo`]. Compared, printed and stored by
/// name (checkpoints hold `"method": "saad"`).
#[derive(Clone, Copy)]
pub struct MethodKind(&'static MethodInfo);

impl MethodKind {
    /// Natural training.
    pub const NATURAL: Self = Self(&natural::INFO);
    /// PGD-AT.
    pub const PGD_AT: Self = Self(&pgd_at::INFO);
    /// ARD.
    pub const ARD: Self = Self(&ard::INFO);
    /// RSLAD.
    pub const RSLAD: Self = Self(&rslad::INFO);
    /// AdaAD.
    pub const ADAAD: Self = Self(&adaad::INFO);
    /// SAAD.
    pub const SAAD: Self = Self(&saad::INFO);

    /// Every registered method, in [`METHODS`] order.
    pub fn all() -> impl Iterator<Item = MethodKind> {
        METHODS.iter().map(|info| MethodKind(info))
    }

    /// The method's registry entry.
    pub fn info(self) -> &'static MethodInfo {
        self.0
    }

    /// The method.
    pub fn method(self) -> &'static dyn Method {
        self.0.method
    }

    /// Whether the method distils from a teacher.
    pub fn needs_teacher(self) -> bool {
        self.0.needs_teacher
    }

    /// The method's name (`saad`, `pgd-at`, ...).
    pub fn name(self) -> &'static str {
        self.0.name
    }
}

impl PartialEq for MethodKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for MethodKind {}

impl fmt::Debug for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MethodKind({})", self.name())
    }
}

impl FromStr for MethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::all().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::all().map(|m| m.name()).collect();
            format!("unknown method {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl Serialize for MethodKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for MethodKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
