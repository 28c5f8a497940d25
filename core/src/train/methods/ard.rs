//! ARD (Goldblum et al. 2020).
//! Inner: maximise `CE(S(x'), y)` by PGD from a uniform start.
//! Outer: `a * tau^2 * KL(p_T^tau(x) || p_S^tau(x')) + (1 - a) * CE(S(x), y)`, tau = 30, a = 1
//! (ARD's public defaults). Reduction: batchmean (ARD's code divides by batch x classes).

use super::{BatchContext, BatchLoss, Method};
use crate::attacks::{ObjectiveKind, Start};
use crate::losses::{cross_entropy, kl_div_temperature};

pub struct Ard;

impl Method for Ard {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let p = ctx.params;
        let x_adv = ctx.inner_max(&ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, Start::Uniform);
        let teacher_clean = ctx.teacher().forward(ctx.x.clone());
        let adv = ctx.student.forward(x_adv.clone());
        let mut loss = kl_div_temperature(teacher_clean, adv.clone(), p.ard_tau).mean().mul_scalar(p.ard_alpha * p.ard_tau * p.ard_tau);
        if p.ard_alpha < 1.0 {
            let clean = ctx.student.forward(ctx.x.clone());
            loss = loss + cross_entropy(clean, ctx.y.clone()).mean().mul_scalar(1.0 - p.ard_alpha);
        }
        BatchLoss { loss, logits: adv.clone(), x_adv: Some(x_adv), teacher_adv: None, student_adv: Some(adv) }
    }
}
