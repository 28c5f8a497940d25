//! SAAD (Lee & Chung, TMLR 2026), sample-wise adaptive adversarial distillation
//! (METHOD.md sections 1 and 2).
//!
//! Inner: one teacher forward+backward on clean x gives `z_T(x)` and the true-class input
//! gradient `g_i = d z_T,y_i(x_i) / d x_i`. From `x' = x + 0.001 N` (not uniform), K steps
//! maximise `sum_i KL(softmax(z~_i) || softmax(z_S(x'_i)))` with the first-order teacher surrogate
//! `z~_i = z_T(x_i) + lambda <g_i, x'_i - x_i> onehot(y_i)` (gradient flows through `<g, d>`).
//!
//! Outer, with d = x' - x, teacher constants `z_T0 = T(x)`, `z_T+ = T(x+d)`, `z_T- = T(x-d)` and
//! three student forwards in train mode `z_S+ = S(x+d)`, `z_S- = S(x-d)`, `z_S0 = S(x)`:
//! `H_i` = entropy of `p_T+` (Rényi order gamma, Shannon at 1), `w_i = 5 (H_i - min_j H_j)` (not
//! renormalised), `w^_i = w_i / (max_j w_j + 1e-8)`;
//! `Loss = mean_i [ w_i (KL(p_T+ || p_S+) + alpha_IG (e/E) KL(softmax(z_T+ - z_T-) || softmax(z_S+ - z_S-)))
//!                 + beta (1 - w^_i) KL(p_T0 || p_S0) ]`, beta = 0 by default. Weights carry no
//! gradient; x - d is not clipped to [0,1].
//!
//! Defaults from the SAAD authors' code (github HongsinLee/saad, saad.py, attacks.py
//! `saad_inner_loss`, utils.py `samplewise_renyi_entropy`, main.sh): scale 5, gamma 1, beta 0,
//! lambda 1, alpha_IG 1, weight averaging from epoch 95 of 200.

use super::{BatchContext, BatchLoss, Method, MethodInfo};
use crate::attacks::{Objective, Pgd};
use crate::kernels::{self, Route};
pub use crate::losses::saad::{SaadLogits, ig_matching, saad_outer_loss, saad_outer_loss_in_batch};
use crate::losses::{self, kl_div};
use crate::models::Net;
use burn::prelude::*;

/// SAAD: teacher-entropy-weighted distillation on student-crafted adversarial examples.
pub struct Saad;

/// The registry's entry for SAAD.
pub const INFO: MethodInfo = MethodInfo {
    name: "saad",
    title: "SAAD",
    summary: "SAAD (Lee & Chung 2026): IGDM weighted per sample by the teacher's entropy",
    needs_teacher: true,
    reference_swa_start: Some(95),
    method: &Saad,
};

/// `z_T(x)` (constant) and `g_i = d z_T,y_i(x_i) / d x_i`: one teacher forward+backward, the only
/// autodiff graph the teacher takes part in.
pub fn teacher_true_class_gradient(
    teacher: &Net,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
) -> (Tensor<2>, Tensor<4>) {
    let leaf = x.clone().without_autodiff().autodiff().require_grad();
    let logits = teacher.forward(leaf.clone());
    let [b, _] = logits.dims();
    let true_logits = logits.clone().gather(1, y.clone().reshape([b, 1])).sum();
    let g = leaf.grad(&true_logits.backward()).expect("the input is a leaf of the teacher graph");
    (logits.detach().without_autodiff(), g)
}

/// The first-order surrogate of the teacher's logits at `x_adv`:
/// `z_T(x) + lambda <g, x_adv - x> onehot(y)` (only the true-class logit moves).
pub fn surrogate_teacher_logits(
    z_t0: &Tensor<2>,
    g: &Tensor<4>,
    x: &Tensor<4>,
    x_adv: &Tensor<4>,
    y: &Tensor<1, Int>,
    lambda: f64,
) -> Tensor<2> {
    let [b, c] = z_t0.dims();
    let dot = (g.clone() * (x_adv.clone() - x.clone()))
        .sum_dims(&[1, 2, 3])
        .reshape([b, 1])
        .expand([b, c]);
    let onehot = losses::one_hot(y.clone(), c).float();
    z_t0.clone() + onehot * dot.mul_scalar(lambda)
}

/// SAAD's inner objective `KL(softmax(z~(x')) || softmax(z_S(x')))` with the first-order teacher
/// surrogate, built from one teacher forward+backward at x.
pub struct SaadObjective {
    /// Teacher logits on the clean batch `z_T(x)`, `[batch, classes]` (constant).
    pub t0: Tensor<2>,
    /// True-class teacher input gradient `g`, `[batch, channels, height, width]` (constant).
    pub g: Tensor<4>,
    /// Clean batch `[batch, channels, height, width]` in [0,1].
    pub x: Tensor<4>,
    /// Labels `[batch]`.
    pub y: Tensor<1, Int>,
    /// First-order coefficient `lambda` of the surrogate (1 in the SAAD authors' code).
    pub lambda: f64,
}

impl SaadObjective {
    /// The objective from one teacher forward+backward at `x`
    /// ([`teacher_true_class_gradient`]).
    pub fn new(teacher: &Net, x: &Tensor<4>, y: &Tensor<1, Int>, lambda: f64) -> Self {
        let (t0, g) = teacher_true_class_gradient(teacher, x, y);
        Self { t0, g, x: x.clone(), y: y.clone(), lambda }
    }
}

impl Objective for SaadObjective {
    fn loss(&self, x_adv: &Tensor<4>, student_logits: Tensor<2>) -> Tensor<1> {
        kl_div(
            surrogate_teacher_logits(&self.t0, &self.g, &self.x, x_adv, &self.y, self.lambda),
            student_logits,
        )
    }
}

/// SAAD's inner maximisation against `student` (eval mode), returning `z_T(x)` and x'.
/// Serves training, `saad transfer` and the page alike.
pub fn saad_inner_max(
    student: &Net,
    teacher: &Net,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    pgd: &Pgd,
    lambda: f64,
) -> (Tensor<2>, Tensor<4>) {
    let objective = SaadObjective::new(teacher, x, y, lambda);
    let x_adv = pgd.run(&|x| student.forward(x), &objective, x);
    (objective.t0, x_adv)
}

impl Method for Saad {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss {
        let p = ctx.params;
        let teacher = ctx.teacher();
        let a = ctx.attack;
        let pgd = Pgd {
            eps: a.eps,
            alpha: a.alpha,
            steps: a.steps,
            start: ctx.gaussian_start(),
            restarts: 1,
        };
        let (t0, x_plus) =
            saad_inner_max(&ctx.attacked_student(), teacher, &ctx.x, &ctx.y, &pgd, p.saad_lambda);
        let x_minus = ctx.x.clone().mul_scalar(2.0) - x_plus.clone();

        // One teacher pass over both: the teacher is in eval mode, so each image's logits do not
        // depend on the others, and one pass of twice the batch launches half the kernels.
        let b = ctx.x.dims()[0];
        let t_both = teacher.forward(Tensor::cat(vec![x_plus.clone(), x_minus.clone()], 0));
        let (t_plus, t_minus) = (t_both.clone().slice(0..b), t_both.slice(b..2 * b));
        let s_plus = ctx.student.forward(x_plus.clone());
        let s_minus = ctx.student.forward(x_minus);
        let s0 = ctx.student.forward(ctx.x.clone());

        let logits =
            SaadLogits { t0, t_plus: t_plus.clone(), t_minus, s0, s_plus: s_plus.clone(), s_minus };
        let config = p.saad_loss_config(ctx.ramp());
        let loss = match ctx.shards {
            // One shard of a data-parallel step: the weights take the whole batch's entropy
            // range (tensor ops; the fused kernel sees one shard).
            Some(_) => {
                saad_outer_loss_in_batch(&logits, &config, &|h| ctx.whole_batch(h)).0.mean()
            }
            // Two fused dispatches forward and one backward on wgpu (shaders/saad_loss_*.wgsl).
            None => kernels::saad_loss(Route::Auto, &logits, &config).loss,
        };
        BatchLoss {
            loss,
            logits: s_plus.clone(),
            x_adv: Some(x_plus),
            teacher_adv: Some(t_plus),
            student_adv: Some(s_plus),
        }
    }
}
