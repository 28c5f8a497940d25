//! White-box L-infinity attacks. One implementation serves training, evaluation and the page.
//!
//! Every attack takes the model as a forward function (`&dyn Fn(Tensor<4>) -> Tensor<2>`, the
//! model in eval mode without parameter gradients, e.g. `|x| model.valid().forward(x)`) and an
//! [`Objective`] that turns logits into a per-sample loss to maximise. The evaluation attacks
//! share one interface, [`Attack`] (`run(forward, x, y) -> AttackOutcome`; targeted ones
//! [`TargetedAttack`], run over the top classes by [`TopClassTargets`]), and the bookkeeping of
//! attacking only the points still robust is [`break_still_robust`].

pub mod apgd;
pub mod attack;
pub mod autoattack;
pub mod fab;
pub mod fgsm;
pub mod objective;
pub mod pgd;
pub mod square;
pub mod step;

pub use attack::{Attack, AttackOutcome, TargetedAttack, TopClassTargets, break_still_robust};
pub use fgsm::fgsm;
pub use objective::{FnObjective, Objective, ObjectiveKind};
pub use pgd::{Pgd, Start};

use burn::prelude::*;

/// The L-infinity radius of the CIFAR and Tiny-ImageNet robustness literature and of
/// RobustBench's L-infinity track: 8/255.
pub const STANDARD_EPS: f32 = 8.0 / 255.0;

/// The step of the training attacks (PGD-10) and of PGD-20 / CW evaluation in that literature:
/// 2/255.
pub const STANDARD_STEP: f32 = 2.0 / 255.0;

/// The model under attack: a forward pass from images in [0,1] to logits.
pub type Forward<'a> = &'a dyn Fn(Tensor<4>) -> Tensor<2>;

/// Gradient of `sum_i loss_i(x_i)` with respect to `x`, with `x` as a fresh leaf.
/// Samples are independent in eval mode, so this is the per-sample input gradient.
pub fn input_gradient(forward: Forward, objective: &dyn Objective, x: &Tensor<4>) -> Tensor<4> {
    loss_and_gradient(forward, objective, x).2
}

/// Per-sample loss (constant), logits (constant) and input gradient at `x` in one
/// forward+backward. A model that cuts the graph to its input (masked gradients) gets a zero
/// gradient, as PyTorch would report.
pub fn loss_and_gradient(
    forward: Forward,
    objective: &dyn Objective,
    x: &Tensor<4>,
) -> (Tensor<1>, Tensor<2>, Tensor<4>) {
    let leaf = x.clone().without_autodiff().autodiff().require_grad();
    let logits = forward(leaf.clone());
    let loss = objective.loss(&leaf, logits.clone());
    let out = (loss.clone().detach().without_autodiff(), logits.detach().without_autodiff());
    if !loss.is_tracked() {
        return (out.0, out.1, x.zeros_like().without_autodiff());
    }
    let grads = loss.sum().backward();
    let grad = leaf.grad(&grads).unwrap_or_else(|| x.zeros_like().without_autodiff());
    (out.0, out.1, grad)
}
