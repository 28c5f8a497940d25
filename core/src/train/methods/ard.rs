//! ARD (Goldblum et al. 2020).
//! Inner: maximise `CE(S(x'), y)` by PGD from a uniform start (clipped to [0,1]).
//! Outer: `a * tau^2 * KL(p_T^tau(x) || p_S^tau(x')) + (1 - a) * CE(S(x), y)`.
//!
//! Defaults from the SAAD authors' comparison (github HongsinLee/saad, ard.py): tau = 1, a = 1
//! (no CE term), `KLDivLoss(reduction="batchmean")`, PGD from attacks.py (student in eval mode).
//! The original (github goldblum/AdversariallyRobustDistillation, main.py) uses tau = 30, a = 1
//! and `KLDivLoss()`'s default `mean` over batch x classes: preset `ard-original`.

use super::{BatchContext, BatchLoss, Method, MethodParams, MethodInfo};
use crate::attacks::{ObjectiveKind, Start};
use crate::losses::{cross_entropy, kl_div_temperature};
use burn::prelude::*;

/// ARD: PGD-CE inside, temperature-scaled KL to the teacher's clean output outside.
pub struct Ard;

/// The registry's entry for ARD.
pub const INFO: MethodInfo = MethodInfo {
    name: "ard",
    title: "ARD",
    summary: "ARD (Goldblum et al. 2020): KL to the teacher's clean output at PGD-CE examples",
    needs_teacher: true,
    reference_swa_start: None,
    method: &Ard,
};

/// ARD's batch loss `[1]`; `student_clean` is needed only when `ard_alpha < 1`.
pub fn ard_outer_loss(
    teacher_clean: Tensor<2>,
    student_adv: Tensor<2>,
    student_clean: Option<Tensor<2>>,
    y: Tensor<1, Int>,
    p: &MethodParams,
) -> Tensor<1> {
    let [_, classes] = teacher_clean.dims();
    let kl = kl_div_temperature(teacher_clean, student_adv, p.ard_tau);
    let mut loss =
        p.ard_reduction.reduce(kl, classes).mul_scalar(p.ard_alpha * p.ard_tau * p.ard_tau);
    if p.ard_alpha < 1.0 {
        let clean = student_clean.expect("ARD with ard_alpha < 1 needs the student's clean logits");
        loss = loss + cross_entropy(clean, y).mean().mul_scalar(1.0 - p.ard_alpha);
    }
    loss
}

impl Method for Ard {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let p = ctx.params;
        let x_adv =
            ctx.inner_max(&ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, Start::Uniform);
        let teacher_clean = ctx.teacher().forward(ctx.x.clone());
        let adv = ctx.student.forward(x_adv.clone());
        let clean = (p.ard_alpha < 1.0).then(|| ctx.student.forward(ctx.x.clone()));
        let loss = ard_outer_loss(teacher_clean, adv.clone(), clean, ctx.y.clone(), p);
        BatchLoss {
            loss,
            logits: adv.clone(),
            x_adv: Some(x_adv),
            teacher_adv: None,
            student_adv: Some(adv),
        }
    }
}
