//! Natural training. Inner: none. Outer: `CE(S(x), y)`.

use super::{BatchContext, BatchLoss, Method};
use crate::losses::cross_entropy;

/// Natural training: `CE(S(x), y)` on clean images.
pub struct Natural;

impl Method for Natural {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let logits = ctx.student.forward(ctx.x.clone());
        BatchLoss::plain(cross_entropy(logits.clone(), ctx.y.clone()).mean(), logits)
    }
}
