//! IAD (Zhu et al. 2022), introspective adversarial distillation (IAD-I, on ARD).
//! Inner: ARD's (PGD-CE from a uniform start).
//! Outer: `tau^2 KL(p_T^tau(x) || p_S^tau(x'))`, plus from the 61st epoch (0-based index
//! `iad_begin` = 60) `mean_i (1 - a_i) KL(p_S(x) || p_S(x'))` with `a_i = p_T(x')_{y_i}^0.1`
//! (a constant; the gradient flows through both student terms). Both KLs batchmean.
//!
//! Defaults from the original (github ZFancy/IAD, IAD-I.py: temp 1, alpha 1, beta 0.1,
//! begin 60 tested as `epoch >= args.begin` with 0-based epochs); the SAAD authors' code has
//! no IAD script. Preset `iad-original` is the same recipe.

use super::{BatchContext, BatchLoss, Method, MethodParams, MethodInfo};
use crate::attacks::{ObjectiveKind, Start};
use crate::losses::{kl_div, kl_div_temperature};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// IAD-I: ARD's loss plus the introspection term from epoch `iad_begin` (0-based) on.
pub struct Iad;

/// The registry's entry for IAD.
pub const INFO: MethodInfo = MethodInfo {
    name: "iad",
    title: "IAD",
    summary: "IAD (Zhu et al. 2022): ARD plus introspection weighted by the teacher's confidence",
    needs_teacher: true,
    reference_swa_start: None,
    method: &Iad,
};

/// Whether the introspection term is on in 1-based `epoch`: the reference's 0-based
/// `epoch - 1 >= iad_begin`.
pub fn introspection_on(epoch: usize, p: &MethodParams) -> bool {
    epoch > p.iad_begin
}

/// IAD's batch loss `[1]` from the teacher's and student's logits on x and x'; `s_clean` is
/// needed only when the introspection term is on.
pub fn iad_outer_loss(
    t_clean: Tensor<2>,
    t_adv: Tensor<2>,
    s_adv: Tensor<2>,
    s_clean: Option<Tensor<2>>,
    y: Tensor<1, Int>,
    epoch: usize,
    p: &MethodParams,
) -> Tensor<1> {
    let mut loss = kl_div_temperature(t_clean, s_adv.clone(), p.iad_tau)
        .mean()
        .mul_scalar(p.iad_tau * p.iad_tau);
    if introspection_on(epoch, p) {
        let [b, _] = t_adv.dims();
        let trust =
            softmax(t_adv, 1).gather(1, y.reshape([b, 1])).reshape([b]).powf_scalar(p.iad_power);
        let clean = s_clean.expect("IAD's introspection term needs the student's clean logits");
        loss = loss + (trust.neg().add_scalar(1.0).detach() * kl_div(clean, s_adv)).mean();
    }
    loss
}

impl Method for Iad {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let p = ctx.params;
        let x_adv =
            ctx.inner_max(&ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, Start::Uniform);
        let teacher_clean = ctx.teacher().forward(ctx.x.clone());
        let teacher_adv = ctx.teacher().forward(x_adv.clone());
        let adv = ctx.student.forward(x_adv.clone());
        let clean = introspection_on(ctx.epoch, p).then(|| ctx.student.forward(ctx.x.clone()));
        let loss = iad_outer_loss(
            teacher_clean,
            teacher_adv.clone(),
            adv.clone(),
            clean,
            ctx.y.clone(),
            ctx.epoch,
            p,
        );
        BatchLoss {
            loss,
            logits: adv.clone(),
            x_adv: Some(x_adv),
            teacher_adv: Some(teacher_adv),
            student_adv: Some(adv),
        }
    }
}
