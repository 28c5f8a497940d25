//! IAD (Zhu et al. 2022), introspective adversarial distillation.
//! Inner: ARD's (PGD-CE from a uniform start).
//! Outer: `tau^2 KL(p_T^tau(x) || p_S^tau(x'))`, plus from epoch 60 (`iad_begin`)
//! `mean_i (1 - a_i) KL(p_S(x) || p_S(x'))` with `a_i = p_T(x')_{y_i}^0.1` (a constant).

use super::{BatchContext, BatchLoss, Method};
use crate::attacks::{ObjectiveKind, Start};
use crate::losses::{kl_div, kl_div_temperature};
use burn::tensor::activation::softmax;

pub struct Iad;

impl Method for Iad {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let p = ctx.params;
        let x_adv = ctx.inner_max(&ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, Start::Uniform);
        let teacher_clean = ctx.teacher().forward(ctx.x.clone());
        let teacher_adv = ctx.teacher().forward(x_adv.clone());
        let adv = ctx.student.forward(x_adv.clone());
        let mut loss = kl_div_temperature(teacher_clean, adv.clone(), p.iad_tau).mean().mul_scalar(p.iad_tau * p.iad_tau);
        if ctx.epoch >= p.iad_begin {
            let [b, _] = teacher_adv.dims();
            let trust = softmax(teacher_adv.clone(), 1).gather(1, ctx.y.clone().reshape([b, 1])).reshape([b]).powf_scalar(p.iad_power);
            let clean = ctx.student.forward(ctx.x.clone());
            loss = loss + (trust.neg().add_scalar(1.0).detach() * kl_div(clean, adv.clone())).mean();
        }
        BatchLoss { loss, logits: adv.clone(), x_adv: Some(x_adv), teacher_adv: Some(teacher_adv), student_adv: Some(adv) }
    }
}
