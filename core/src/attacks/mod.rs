//! White-box L-infinity attacks. One implementation serves training, evaluation and the page.
//!
//! Every attack takes the model as a forward function (`&dyn Fn(Tensor<4>) -> Tensor<2>`, the
//! model in eval mode without parameter gradients, e.g. `|x| model.valid().forward(x)`) and an
//! [`Objective`] that turns logits into a per-sample loss to maximise.

pub mod fgsm;
pub mod objective;
pub mod pgd;
pub mod step;

pub use fgsm::fgsm;
pub use objective::{FnObjective, Objective, ObjectiveKind};
pub use pgd::{Pgd, Start};

use burn::prelude::*;

/// The model under attack: a forward pass from images in [0,1] to logits.
pub type Forward<'a> = &'a dyn Fn(Tensor<4>) -> Tensor<2>;

/// Gradient of `sum_i loss_i(x_i)` with respect to `x`, with `x` as a fresh leaf.
/// Samples are independent in eval mode, so this is the per-sample input gradient.
pub fn input_gradient(forward: Forward, objective: &dyn Objective, x: &Tensor<4>) -> Tensor<4> {
    let leaf = x.clone().without_autodiff().autodiff().require_grad();
    let logits = forward(leaf.clone());
    let loss = objective.loss(&leaf, logits).sum();
    let grads = loss.backward();
    leaf.grad(&grads).expect("the input is a leaf of the attack graph")
}
