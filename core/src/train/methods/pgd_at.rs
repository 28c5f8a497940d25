//! PGD adversarial training (Madry et al. 2018).
//! Inner: maximise `CE(S(x'), y)` by PGD from a uniform random start, student in eval mode.
//! Outer: `CE(S(x'), y)` with the student in train mode, batch mean.

use super::{BatchContext, BatchLoss, Method};
use crate::attacks::{ObjectiveKind, Pgd, Start};
use crate::losses::cross_entropy;
use burn::module::Module;

pub struct PgdAt;

impl Method for PgdAt {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let eval = ctx.student.valid();
        let forward = |x| eval.forward(x);
        let a = ctx.attack;
        let pgd = Pgd { eps: a.eps, alpha: a.alpha, steps: a.steps, start: Start::Uniform, restarts: 1 };
        let x_adv = pgd.run(&forward, &ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, &ctx.x);
        let logits = ctx.student.forward(x_adv);
        BatchLoss { loss: cross_entropy(logits.clone(), ctx.y.clone()).mean(), logits }
    }
}
