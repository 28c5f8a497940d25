//! Robust accuracy under the evaluation protocol's attacks (METHOD.md section 4), model in eval
//! mode. Counts stay on the device and are read once at the end.

use crate::attacks::{Attack, AttackOutcome, Forward, Objective, ObjectiveKind, Pgd, fgsm};
use crate::data::DeviceSet;
use crate::losses;
use crate::models::Net;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One evaluation attack.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum EvalAttack {
    /// No attack: accuracy on the clean images.
    Clean,
    /// One step of size eps, no random start, CE.
    Fgsm,
    /// PGD-K with CE, uniform start, step 2/255.
    Pgd {
        /// Steps per run (K).
        steps: usize,
        /// Runs, keeping the worst point per sample (1: a single run).
        restarts: usize,
    },
    /// CW-inf: margin loss, step 2/255, K steps, R restarts keeping the worst per sample.
    Cw {
        /// Steps per run (K).
        steps: usize,
        /// Runs, keeping the worst point per sample (R).
        restarts: usize,
    },
}

impl EvalAttack {
    /// Clean, FGSM, PGD-20 and CW-inf (50 steps, 10 restarts): the protocol's white-box set.
    pub const STANDARD: [EvalAttack; 4] = [
        EvalAttack::Clean,
        EvalAttack::Fgsm,
        EvalAttack::Pgd { steps: 20, restarts: 1 },
        EvalAttack::Cw { steps: 50, restarts: 10 },
    ];

    /// Adversarial examples for a batch (the clean batch for `Clean`).
    pub fn craft(
        &self,
        forward: Forward,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        eps: f32,
    ) -> Tensor<4> {
        let ce = ObjectiveKind::CrossEntropy { labels: y.clone() };
        let alpha = crate::attacks::STANDARD_STEP;
        match *self {
            EvalAttack::Clean => x.clone(),
            EvalAttack::Fgsm => fgsm(forward, &ce as &dyn Objective, x, eps),
            EvalAttack::Pgd { steps, restarts } => {
                Pgd { eps, alpha, steps, start: crate::attacks::Start::Uniform, restarts }
                    .run_with_restarts(forward, &ce, x, y)
            }
            EvalAttack::Cw { steps, restarts } => {
                Pgd { eps, alpha, steps, start: crate::attacks::Start::Uniform, restarts }
                    .run_with_restarts(
                        forward,
                        &ObjectiveKind::CwMargin { labels: y.clone() },
                        x,
                        y,
                    )
            }
        }
    }
}

/// One of the protocol's white-box attacks at a radius, behind the interface every attack shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WhiteBox {
    /// The attack.
    pub attack: EvalAttack,
    /// L-infinity radius (inputs in [0,1]).
    pub eps: f32,
}

impl Attack for WhiteBox {
    fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> AttackOutcome {
        let x_adv = self.attack.craft(forward, x, y, self.eps);
        let fooled = losses::correct(forward(x_adv.clone()), y.clone()).neg().add_scalar(1.0);
        AttackOutcome { x_adv, fooled }
    }
}

impl fmt::Display for EvalAttack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalAttack::Clean => write!(f, "clean"),
            EvalAttack::Fgsm => write!(f, "fgsm"),
            EvalAttack::Pgd { steps, restarts: 1 } => write!(f, "pgd{steps}"),
            EvalAttack::Pgd { steps, restarts } => write!(f, "pgd{steps}x{restarts}"),
            EvalAttack::Cw { steps: 50, restarts: 10 } => write!(f, "cw-inf"),
            EvalAttack::Cw { steps, restarts } => write!(f, "cw{steps}x{restarts}"),
        }
    }
}

impl FromStr for EvalAttack {
    type Err = String;
    /// `clean`, `fgsm`, `pgdK[xR]` (e.g. `pgd20`), `cw-inf` (= `cw50x10`), `cwK[xR]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown attack {s:?}; expected clean, fgsm, pgd20 (pgdK[xR]), cw-inf (cwK[xR])"
            )
        };
        let steps_restarts = |t: &str| -> Result<(usize, usize), String> {
            let mut it = t.split('x');
            let steps =
                it.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).ok_or_else(bad)?;
            let restarts = match it.next() {
                Some(r) => r.parse().ok().filter(|&v| v > 0).ok_or_else(bad)?,
                None => 1,
            };
            Ok((steps, restarts))
        };
        match s {
            "clean" => Ok(EvalAttack::Clean),
            "fgsm" => Ok(EvalAttack::Fgsm),
            "cw-inf" | "cw" => Ok(EvalAttack::Cw { steps: 50, restarts: 10 }),
            _ if s.starts_with("pgd") => {
                steps_restarts(&s[3..]).map(|(steps, restarts)| EvalAttack::Pgd { steps, restarts })
            }
            _ if s.starts_with("cw") => {
                steps_restarts(&s[2..]).map(|(steps, restarts)| EvalAttack::Cw { steps, restarts })
            }
            _ => Err(bad()),
        }
    }
}

/// Accuracy under one attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// The attack's name as [`EvalAttack`] displays it (e.g. `pgd20`, `cw-inf`).
    pub attack: String,
    /// Fraction of points classified correctly under the attack, in [0,1].
    pub accuracy: f64,
    /// Points classified correctly under the attack.
    pub correct: usize,
    /// Points evaluated.
    pub total: usize,
}

/// Evaluates `model` (eval mode: pass `net.valid()`) on `data` under each attack.
/// `on_batch(attack index, batches done, batches total)` reports progress.
pub fn evaluate(
    model: &Net,
    data: &DeviceSet,
    attacks: &[EvalAttack],
    eps: f32,
    batch: usize,
    on_batch: &mut dyn FnMut(usize, usize, usize),
) -> Vec<EvalResult> {
    let device = data.images.device();
    let model = &model.folded();
    let nb = data.len.div_ceil(batch);
    let mut counts = Vec::new();
    for (ai, attack) in attacks.iter().enumerate() {
        let mut correct = Tensor::<1>::zeros([1], &device);
        let white_box = WhiteBox { attack: *attack, eps };
        for (bi, (x, y)) in data.batches_in_order(batch).enumerate() {
            let fooled = white_box.run(&|x| model.forward(x), &x, &y).fooled;
            correct = correct + fooled.neg().add_scalar(1.0).sum();
            on_batch(ai, bi + 1, nb);
        }
        counts.push(correct);
    }
    let counts = crate::host_copy::read_f32(Tensor::cat(counts, 0));
    attacks
        .iter()
        .zip(counts)
        .map(|(a, c)| EvalResult {
            attack: a.to_string(),
            accuracy: c as f64 / data.len as f64,
            correct: c as usize,
            total: data.len,
        })
        .collect()
}

/// A white-box attack's result with its wall time, as `saad eval` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedEvalResult {
    /// The result.
    #[serde(flatten)]
    pub result: EvalResult,
    /// Wall time (s).
    pub seconds: f64,
}

/// The report of one `saad eval` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The evaluated checkpoint's path.
    pub checkpoint: String,
    /// Its architecture.
    pub model: String,
    /// The dataset (its test split).
    pub dataset: String,
    /// Points evaluated.
    pub n: usize,
    /// L-infinity radius.
    pub eps: f64,
    /// Seed of the random starts.
    pub seed: u64,
    /// The device, in words.
    pub device: String,
    /// The white-box attacks, in the order run.
    pub results: Vec<TimedEvalResult>,
    /// The AutoAttack runs, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub autoattack: Vec<crate::attacks::autoattack::AutoAttackReport>,
    /// The result card.
    pub card: ResultCard,
}

impl EvalReport {
    /// Accuracy under the white-box attack named `attack` (as [`EvalAttack`] displays it).
    pub fn accuracy(&self, attack: &str) -> Option<f64> {
        self.results.iter().find(|r| r.result.attack == attack).map(|r| r.result.accuracy)
    }
}

/// A white-box attack's accuracy on a [`ResultCard`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardAttack {
    /// The attack's name.
    pub attack: String,
    /// Accuracy under it, in [0,1].
    pub accuracy: f64,
}

/// The software that measured a [`ResultCard`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Software {
    /// This project's version.
    pub saad: String,
    /// burn's version.
    pub burn: String,
}

/// The result card of one evaluation: RobustBench's model-info fields where they apply
/// (`clean_acc`, `autoattack_acc`, `eps`, `dataset`, `architecture`, threat model), plus what
/// makes the numbers reproducible (n, attack versions, seed, device, software, time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultCard {
    /// The model's name: its run folder for `runs/x/model.saad`, else the file's stem.
    pub model_id: String,
    /// The checkpoint's path.
    pub checkpoint: String,
    /// The architecture.
    pub architecture: String,
    /// The training method, when the checkpoint records one.
    pub method: Option<String>,
    /// Which weights (e.g. the weight average), when the checkpoint says.
    pub weights: Option<String>,
    /// The dataset.
    pub dataset: String,
    /// `Linf`.
    pub threat_model: String,
    /// L-infinity radius.
    pub eps: f64,
    /// The radius as a fraction of 255 (e.g. `8/255`).
    pub eps_fraction: String,
    /// Points evaluated.
    pub n: usize,
    /// Clean accuracy, in [0,1].
    pub clean_acc: Option<f64>,
    /// AutoAttack's robust accuracy, in [0,1].
    pub autoattack_acc: Option<f64>,
    /// The AutoAttack composition.
    pub autoattack_version: Option<String>,
    /// Whether it was the standard composition.
    pub autoattack_standard: Option<bool>,
    /// The attacks it ran.
    pub autoattack_attacks: Option<Vec<String>>,
    /// The other white-box attacks.
    pub other_attacks: Vec<CardAttack>,
    /// Seed of the random starts.
    pub seed: u64,
    /// The device, in words.
    pub device: String,
    /// The software.
    pub software: Software,
    /// Wall time of the evaluation (s).
    pub seconds: f64,
}
