//! Natural training. Inner: none. Outer: `CE(S(x), y)`, batch mean.

use super::{BatchContext, BatchLoss, Method};
use crate::losses::cross_entropy;

pub struct Natural;

impl Method for Natural {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let logits = ctx.student.forward(ctx.x.clone());
        BatchLoss { loss: cross_entropy(logits.clone(), ctx.y.clone()).mean(), logits }
    }
}
