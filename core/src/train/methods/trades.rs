//! TRADES (Zhang et al. 2019).
//! Inner: maximise `KL(p_S(x) || p_S(x'))` from `x + 0.001 N`, with `p_S(x)` fixed.
//! Outer: `CE(S(x), y) + beta * KL(p_S(x) || p_S(x'))`, beta = 6, gradient through both.
//!
//! Defaults from the original (github yaodongyu/TRADES, trades.py and train_trades_cifar10.py:
//! beta 6, `KLDivLoss(size_average=False)` / batch size, i.e. batchmean); the SAAD authors' code
//! has no TRADES script. Preset `trades-original` names the original's eps 0.031 / step 0.007
//! schedule.

use super::{BatchContext, BatchLoss, Method, MethodInfo};
use crate::attacks::ObjectiveKind;
use crate::losses::{cross_entropy, kl_div};
use burn::module::Module;

/// TRADES: `CE(S(x), y) + beta * KL(p_S(x) || p_S(x'))` on the student's own adversarial input.
pub struct Trades;

/// The registry's entry for TRADES.
pub const INFO: MethodInfo = MethodInfo {
    name: "trades",
    title: "TRADES",
    summary: "TRADES (Zhang et al. 2019): clean CE + 6 KL(clean || adversarial), no teacher",
    needs_teacher: false,
    reference_swa_start: None,
    method: &Trades,
};

impl Method for Trades {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let clean_target = ctx.student.valid().forward(ctx.x.clone()).detach();
        let x_adv = ctx.inner_max(
            &ObjectiveKind::KlToTarget { target_logits: clean_target },
            ctx.gaussian_start(),
        );
        let clean = ctx.student.forward(ctx.x.clone());
        let adv = ctx.student.forward(x_adv.clone());
        let loss = cross_entropy(clean.clone(), ctx.y.clone())
            + kl_div(clean.clone(), adv.clone()).mul_scalar(ctx.params.trades_beta);
        BatchLoss {
            loss: loss.mean(),
            logits: clean,
            x_adv: Some(x_adv),
            teacher_adv: None,
            student_adv: Some(adv),
        }
    }
}
