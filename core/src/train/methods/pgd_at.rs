//! PGD adversarial training (Madry et al. 2018).
//! Inner: maximise `CE(S(x'), y)` from a uniform random start.
//! Outer: `CE(S(x'), y)`.
//!
//! No constants of its own: the attack is `--eps`/`--alpha`/`--attack-steps` (METHOD.md section
//! 5). The SAAD authors' code has no PGD-AT script (its teachers come from RobustBench).

use super::{BatchContext, BatchLoss, Method, MethodInfo};
use crate::attacks::{ObjectiveKind, Start};
use crate::losses::cross_entropy;

/// PGD-AT: CE on the student's PGD adversarial examples.
pub struct PgdAt;

/// The registry's entry for PGD-AT.
pub const INFO: MethodInfo = MethodInfo {
    name: "pgd-at",
    title: "PGD-AT",
    summary: "PGD adversarial training (Madry et al. 2018): cross-entropy on PGD examples",
    needs_teacher: false,
    reference_swa_start: None,
    method: &PgdAt,
};

impl Method for PgdAt {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let x_adv =
            ctx.inner_max(&ObjectiveKind::CrossEntropy { labels: ctx.y.clone() }, Start::Uniform);
        let logits = ctx.student.forward(x_adv.clone());
        BatchLoss {
            loss: cross_entropy(logits.clone(), ctx.y.clone()).mean(),
            logits: logits.clone(),
            x_adv: Some(x_adv),
            teacher_adv: None,
            student_adv: Some(logits),
        }
    }
}
