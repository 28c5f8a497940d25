//! Natural training. Inner: none. Outer: `CE(S(x), y)`.

use super::{BatchContext, BatchLoss, Method, MethodInfo};
use crate::losses::cross_entropy;

/// Natural training: `CE(S(x), y)` on clean images.
pub struct Natural;

/// The registry's entry for Natural.
pub const INFO: MethodInfo = MethodInfo {
    name: "natural",
    title: "Natural",
    summary: "natural training: cross-entropy on clean images (no attack, no teacher)",
    needs_teacher: false,
    reference_swa_start: None,
    method: &Natural,
};

impl Method for Natural {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let logits = ctx.student.forward(ctx.x.clone());
        BatchLoss::plain(cross_entropy(logits.clone(), ctx.y.clone()).mean(), logits)
    }
}
