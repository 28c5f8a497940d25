//! AutoAttack (Croce & Hein 2020): the standard ensemble APGD-CE, APGD-T (DLR, the top-9
//! non-true classes of the clean logits), FAB-T (9 targets), Square (5000 queries), each run
//! only on the points every earlier attack left robust; robust accuracy is the point-wise worst
//! case. The runner keeps the robust flags on the host (one read per attack and batch) and the
//! adversarial batch on the device, and re-checks the returned examples at the end.
//!
//! `standard` is the composition of the reference (fra31/auto-attack, autoattack/autoattack.py,
//! version 'standard'); `fast` (APGD-CE + APGD-T) is a lab preset and is labelled as not
//! standard; `square-paper` is the standard ensemble with the paper's Square (see
//! [`Square::paper`]), also labelled as not standard; `custom` runs a chosen subset in the
//! standard order.

use super::apgd::Apgd;
use super::attack::{Attack, AttackOutcome, TopClassTargets, break_still_robust};
use super::fab::Fab;
use super::objective::ObjectiveKind;
use super::square::Square;
use super::{Forward, loss_and_gradient};
use crate::host_copy::read_f32;
use crate::losses::correct;
use crate::rng::derive_seed;
use burn::prelude::*;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One attack of the ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AaAttack {
    /// APGD with the cross-entropy loss (`apgd-ce`).
    ApgdCe,
    /// Targeted APGD with the DLR loss towards the top non-true clean classes (`apgd-t`).
    ApgdT,
    /// Targeted FAB towards the top non-true clean classes (`fab-t`).
    FabT,
    /// The black-box Square Attack with the margin loss (`square`).
    Square,
}

impl AaAttack {
    /// The standard ensemble in its running order: APGD-CE, APGD-T, FAB-T, Square.
    pub const STANDARD: [AaAttack; 4] =
        [AaAttack::ApgdCe, AaAttack::ApgdT, AaAttack::FabT, AaAttack::Square];

    /// Command-line name: `apgd-ce`, `apgd-t`, `fab-t` or `square`.
    pub fn name(self) -> &'static str {
        match self {
            AaAttack::ApgdCe => "apgd-ce",
            AaAttack::ApgdT => "apgd-t",
            AaAttack::FabT => "fab-t",
            AaAttack::Square => "square",
        }
    }
}

impl FromStr for AaAttack {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::STANDARD.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            format!("unknown AutoAttack attack {s:?}; expected apgd-ce, apgd-t, fab-t or square")
        })
    }
}

/// Which composition to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// The reference's version 'standard': APGD-CE, APGD-T, FAB-T and Square.
    Standard,
    /// APGD-CE + APGD-T: a quick lab preset, not the standard evaluation.
    Fast,
    /// The four standard attacks with Square's schedule rescaled to its budget and windows
    /// anywhere in the image ([`Square::paper`]): not the standard evaluation.
    SquarePaper,
    /// The listed attacks, run in the standard order.
    Custom(Vec<AaAttack>),
}

impl Version {
    /// The attacks this composition runs, in the standard order.
    pub fn attacks(&self) -> Vec<AaAttack> {
        match self {
            Version::Standard | Version::SquarePaper => AaAttack::STANDARD.to_vec(),
            Version::Fast => vec![AaAttack::ApgdCe, AaAttack::ApgdT],
            Version::Custom(list) => {
                AaAttack::STANDARD.into_iter().filter(|a| list.contains(a)).collect()
            }
        }
    }

    /// Whether this composition is the standard one (a custom list holding all four counts).
    pub fn is_standard(&self) -> bool {
        *self == Version::Standard
            || matches!(self, Version::Custom(l) if AaAttack::STANDARD.iter().all(|a| l.contains(a)))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Standard => write!(f, "standard"),
            Version::Fast => write!(f, "fast (APGD-CE + APGD-T; NOT the standard AutoAttack)"),
            Version::SquarePaper => write!(
                f,
                "square-paper (Square's schedule rescaled, windows anywhere; NOT the standard AutoAttack)"
            ),
            Version::Custom(l) => {
                write!(f, "custom ({})", l.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// AutoAttack settings (the reference's defaults but eps and seed).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoAttackConfig {
    /// L-infinity radius (inputs in [0,1]).
    pub eps: f32,
    /// Which composition runs.
    pub version: Version,
    /// Base seed; each attack and batch derives its own seed from it.
    pub seed: u64,
    /// Points per batch of the clean pass, each attack and the re-check (250, as
    /// the reference's `run_standard_evaluation`).
    pub batch: usize,
    /// Iterations of APGD-CE and APGD-T (100).
    pub apgd_iter: usize,
    /// Iterations of FAB-T (100).
    pub fab_iter: usize,
    /// Query budget of Square (5000).
    pub square_queries: usize,
    /// Target classes of APGD-T and FAB-T (9; at most classes - 1).
    pub n_target_classes: usize,
}

impl AutoAttackConfig {
    /// The standard version at radius `eps`: seed 0, batch 250, 100 APGD and FAB iterations,
    /// 5000 Square queries, 9 target classes.
    pub fn standard(eps: f32) -> Self {
        Self {
            eps,
            version: Version::Standard,
            seed: 0,
            batch: 250,
            apgd_iter: 100,
            fab_iter: 100,
            square_queries: 5000,
            n_target_classes: 9,
        }
    }
}

/// Robust accuracy after one attack of the ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackStep {
    /// The attack that ran.
    pub attack: AaAttack,
    /// Points this attack broke.
    pub broken: usize,
    /// Robust points after it.
    pub robust: usize,
}

/// The state of an evaluation: the data, the adversarial examples so far, the robust flags.
pub struct AutoAttack<'a> {
    /// The evaluation's settings.
    pub config: AutoAttackConfig,
    forward: Forward<'a>,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    /// Adversarial examples: the clean image where no attack succeeded.
    pub x_adv: Tensor<4>,
    /// Per point: still robust.
    pub robust: Vec<bool>,
    /// Points the model classifies correctly without attack.
    pub clean_correct: usize,
    /// One entry per attack run so far, in running order.
    pub steps: Vec<AttackStep>,
    /// Warnings about the evaluation's reliability (a non-deterministic forward pass, zero input
    /// gradients, points only Square broke, fewer target classes than configured).
    pub flags: Vec<String>,
    num_classes: usize,
}

impl<'a> AutoAttack<'a> {
    /// Clean accuracy and the sanity checks of the reference on the first batch: randomness in
    /// the forward pass and zero input gradients.
    pub fn new(
        forward: Forward<'a>,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        config: AutoAttackConfig,
    ) -> Self {
        let n = y.dims()[0];
        let mut correct_flags = Vec::with_capacity(n);
        let mut num_classes = 0;
        for start in (0..n).step_by(config.batch.max(1)) {
            let end = (start + config.batch).min(n);
            let logits = forward(x.clone().slice(start..end));
            num_classes = logits.dims()[1];
            correct_flags.extend(
                read_f32(correct(logits, y.clone().slice(start..end))).into_iter().map(|v| v > 0.5),
            );
        }
        let clean_correct = correct_flags.iter().filter(|c| **c).count();
        let mut me = Self {
            x_adv: x.clone(),
            x,
            y,
            forward,
            robust: correct_flags,
            clean_correct,
            steps: Vec::new(),
            flags: Vec::new(),
            num_classes,
            config,
        };
        me.check_model();
        if me.config.n_target_classes + 1 > me.num_classes {
            me.flags.push(format!(
                "only {} classes: APGD-T and FAB-T use {} target classes instead of {}",
                me.num_classes,
                me.num_classes - 1,
                me.config.n_target_classes
            ));
        }
        me
    }

    fn check_model(&mut self) {
        let end = self.config.batch.min(self.y.dims()[0]);
        if end == 0 {
            return;
        }
        let xb = self.x.clone().slice(0..end);
        let yb = self.y.clone().slice(0..end);
        let a = (self.forward)(xb.clone());
        let b = (self.forward)(xb.clone());
        let diff = read_f32((a - b).abs().max())[0];
        if diff > 0.0 {
            self.flags.push(format!(
                "the forward pass is not deterministic (two runs differ by up to {diff:.3e}): randomised defences need EOT, which the standard version does not use"
            ));
        }
        let (_, _, g) =
            loss_and_gradient(self.forward, &ObjectiveKind::CrossEntropy { labels: yb }, &xb);
        let zero =
            read_f32(g.abs().sum_dims(&[1, 2, 3]).reshape([end]).equal_elem(0.0).float().sum())[0]
                as usize;
        if zero > 0 {
            self.flags.push(format!(
                "{zero} of {end} points have an all-zero input gradient: a sign of gradient masking; white-box results may overestimate robustness"
            ));
        }
    }

    /// Points still robust after the attacks run so far.
    pub fn robust_count(&self) -> usize {
        self.robust.iter().filter(|r| **r).count()
    }

    fn targets(&self) -> usize {
        self.config.n_target_classes.min(self.num_classes.saturating_sub(1))
    }

    /// Runs one attack on the points still robust; `on_batch(done, total)` reports progress.
    pub fn run_attack(
        &mut self,
        attack: AaAttack,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> AttackStep {
        let device = self.x.device();
        let idx: Vec<usize> = (0..self.robust.len()).filter(|&i| self.robust[i]).collect();
        let total = idx.len().div_ceil(self.config.batch.max(1));
        let mut broken = 0;
        for (bi, chunk) in idx.chunks(self.config.batch.max(1)).enumerate() {
            let seed = derive_seed(self.config.seed, &[attack as u64, bi as u64]);
            device.seed(seed);
            let runner = self.attack(attack, seed);
            let forward = self.forward;
            let (x, y) = (&self.x, &self.y);
            broken += break_still_robust(chunk, &mut self.x_adv, &mut self.robust, |ix| {
                let (xb, yb) = (x.clone().select(0, ix.clone()), y.clone().select(0, ix.clone()));
                let x_adv = runner.run(forward, &xb, &yb).x_adv;
                // Accept only points the model really misclassifies (as the reference checks).
                let fooled = correct(forward(x_adv.clone()), yb).neg().add_scalar(1.0);
                AttackOutcome { x_adv, fooled }
            });
            on_batch(bi + 1, total);
        }
        let step = AttackStep { attack, broken, robust: self.robust_count() };
        if attack == AaAttack::Square
            && broken > 0
            && self.steps.iter().any(|s| s.attack != AaAttack::Square)
        {
            self.flags.push(format!(
                "Square (black-box) broke {broken} points the white-box attacks did not: a sign of gradient masking; the white-box evaluation is unreliable"
            ));
        }
        self.steps.push(step.clone());
        step
    }

    /// One attack of the ensemble with this run's settings; `seed` seeds Square's draws.
    fn attack(&self, which: AaAttack, seed: u64) -> Box<dyn Attack> {
        let c = &self.config;
        let apgd = Apgd { n_iter: c.apgd_iter, ..Apgd::new(c.eps) };
        match which {
            AaAttack::ApgdCe => Box::new(apgd),
            AaAttack::ApgdT => Box::new(TopClassTargets { attack: apgd, targets: self.targets() }),
            AaAttack::FabT => Box::new(TopClassTargets {
                attack: Fab { n_iter: c.fab_iter, ..Fab::new(c.eps) },
                targets: self.targets(),
            }),
            AaAttack::Square => {
                let base = if c.version == Version::SquarePaper {
                    Square::paper(c.eps, seed)
                } else {
                    Square::new(c.eps, seed)
                };
                Box::new(Square { n_queries: c.square_queries, ..base })
            }
        }
    }

    /// Re-checks the returned examples: accuracy of the model on `x_adv` (must equal the
    /// robust accuracy) and the largest L-infinity distance to the clean images.
    pub fn recheck(&self) -> (usize, f32) {
        let n = self.y.dims()[0];
        let mut correct_count = 0usize;
        let mut max_linf = 0f32;
        for start in (0..n).step_by(self.config.batch.max(1)) {
            let end = (start + self.config.batch).min(n);
            let xa = self.x_adv.clone().slice(start..end);
            let c = correct((self.forward)(xa.clone()), self.y.clone().slice(start..end)).sum();
            let d = (xa - self.x.clone().slice(start..end)).abs().max();
            let v: Vec<f32> = read_f32(Tensor::cat(vec![c, d], 0));
            correct_count += v[0] as usize;
            max_linf = max_linf.max(v[1]);
        }
        (correct_count, max_linf)
    }
}

/// One attack's line in an [`AutoAttackReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackStepReport {
    /// The attack's name (`apgd-ce`, `apgd-t`, `fab-t`, `square`).
    pub attack: String,
    /// Points it broke.
    pub broken: usize,
    /// Robust points after it.
    pub robust: usize,
    /// Robust accuracy after it, in [0,1].
    pub robust_acc: f64,
    /// Wall time (s).
    pub seconds: f64,
}

/// The report of one AutoAttack run: what `saad eval` writes and prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoAttackReport {
    /// The composition, as [`Version`] displays it.
    pub version: String,
    /// Whether it is the standard composition.
    pub standard: bool,
    /// L-infinity radius.
    pub eps: f64,
    /// Points evaluated.
    pub n: usize,
    /// Base seed.
    pub seed: u64,
    /// Clean accuracy, in [0,1].
    pub clean_acc: f64,
    /// Wall time of the clean pass and the sanity checks (s).
    pub clean_seconds: f64,
    /// Each attack in the order run.
    pub steps: Vec<AttackStepReport>,
    /// Robust accuracy after every attack, in [0,1].
    pub robust_acc: f64,
    /// Robust points.
    pub robust: usize,
    /// Accuracy on the returned adversarial examples, classified again.
    pub recheck_acc: f64,
    /// Whether the re-check agrees with the robust accuracy.
    pub recheck_agrees: bool,
    /// Largest L-infinity distance of a returned example to its clean image.
    pub max_linf: f64,
    /// Warnings of the reference's sanity checks (randomness, zero gradients, Square breaking
    /// points the white-box attacks did not).
    pub flags: Vec<String>,
    /// Wall time of the whole run (s).
    pub seconds: f64,
}
