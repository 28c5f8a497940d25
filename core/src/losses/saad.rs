//! SAAD's outer loss (Lee & Chung, TMLR 2026; METHOD.md section 2), written once for the
//! tensor-op path here and implemented again only by the WGSL kernels that are tested against it
//! (`shaders/saad_loss_*.wgsl`, `kernels::saad_loss`).
//!
//! With d = x' - x, teacher constants `z_T0 = T(x)`, `z_T+ = T(x+d)`, `z_T- = T(x-d)` and student
//! logits `z_S+ = S(x+d)`, `z_S- = S(x-d)`, `z_S0 = S(x)`: `H_i` = entropy of `p_T+` (Rényi order
//! gamma, Shannon at 1), `w_i = scale (H_i - min_j H_j)`, `w^_i = w_i / (max_j w_j + 1e-8)`, and
//! `loss_i = w_i (KL(p_T+ || p_S+) + ig KL(softmax(z_T+ - z_T-) || softmax(z_S+ - z_S-)))
//!           + beta (1 - w^_i) KL(p_T0 || p_S0)`.

use super::{kl_div, renyi_entropy};
use burn::prelude::*;

/// How SAAD weighs a sample by the teacher's entropy on its adversarial example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaadWeighting {
    /// Rényi order of the entropy (1 = Shannon; the SAAD authors' default).
    pub gamma: f64,
    /// Scale of the weights (5 in the SAAD authors' code).
    pub scale: f64,
}

/// The constants of SAAD's outer loss for one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaadLossConfig {
    /// The sample weighting.
    pub weighting: SaadWeighting,
    /// Weight of the input-gradient-matching term in this epoch: `alpha_IG · e / E`.
    pub ig: f64,
    /// Weight of the inverse-weighted clean term (0 by default).
    pub beta: f64,
}

/// SAAD sample weights from per-sample teacher entropies: `w_i = scale * (H_i - min_j H_j)` (not
/// renormalised; the lowest-entropy sample gets 0) and `w^_i = w_i / (max_j w_j + 1e-8)` in
/// [0,1]. Both are constants (no gradient).
pub fn saad_weights(entropy: Tensor<1>, scale: f64) -> (Tensor<1>, Tensor<1>) {
    saad_weights_in_batch(entropy.clone(), entropy, scale)
}

/// [`saad_weights`] of some samples of a batch whose entropies are `batch_entropy` (all of
/// them, these included): the minimum and maximum are the whole batch's. A data-parallel step
/// weighs each shard so, which gives every sample the weight it has on one device.
pub fn saad_weights_in_batch(
    entropy: Tensor<1>,
    batch_entropy: Tensor<1>,
    scale: f64,
) -> (Tensor<1>, Tensor<1>) {
    let (h, batch) = (entropy.detach(), batch_entropy.detach());
    let dims = h.dims();
    let min = batch.clone().min();
    let w = (h - min.clone().expand(dims)).mul_scalar(scale);
    // max_j w_j, computed as the batch's largest w is (the same float operations).
    let w_max = (batch.max() - min).mul_scalar(scale);
    let w_hat = w.clone() / w_max.add_scalar(1e-8).expand(dims);
    (w, w_hat)
}

/// The weights `(w, w^)` one sample of entropy `entropy` would get in a batch whose other
/// samples' entropies range over `[batch_min, batch_max]`: [`saad_weights`] of that batch with
/// the sample in it, for one image (the page's single-image view).
pub fn saad_weight_in_batch(
    entropy: f64,
    batch_min: f64,
    batch_max: f64,
    scale: f64,
) -> (f64, f64) {
    let (min, max) = (batch_min.min(entropy), batch_max.max(entropy));
    let w = scale * (entropy - min);
    (w, w / (scale * (max - min) + 1e-8))
}

/// The six logit tensors of SAAD's outer loss (teacher ones are constants).
pub struct SaadLogits {
    /// `z_T(x)`.
    pub t0: Tensor<2>,
    /// `z_T(x + d)`.
    pub t_plus: Tensor<2>,
    /// `z_T(x - d)`.
    pub t_minus: Tensor<2>,
    /// `z_S(x)`.
    pub s0: Tensor<2>,
    /// `z_S(x + d)`.
    pub s_plus: Tensor<2>,
    /// `z_S(x - d)`.
    pub s_minus: Tensor<2>,
}

/// The input-gradient-matching term `KL(softmax(z_T+ - z_T-) || softmax(z_S+ - z_S-))` (IGDM,
/// SAAD).
pub fn ig_matching(
    t_plus: Tensor<2>,
    t_minus: Tensor<2>,
    s_plus: Tensor<2>,
    s_minus: Tensor<2>,
) -> Tensor<1> {
    kl_div(t_plus - t_minus, s_plus - s_minus)
}

/// Per-sample SAAD outer loss `w_i (L_adv,i + ig L_IG,i) + beta (1 - w^_i) L_nat,i` (its batch
/// mean is the loss).
pub fn saad_outer_loss(l: &SaadLogits, config: &SaadLossConfig) -> Tensor<1> {
    saad_outer_loss_and_weights(l, config).0
}

/// [`saad_outer_loss`] with the weights `w` and `w^` it used (computed once).
pub fn saad_outer_loss_and_weights(
    l: &SaadLogits,
    config: &SaadLossConfig,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    saad_outer_loss_in_batch(l, config, &|entropy| entropy)
}

/// The teacher entropies `H_i` SAAD weighs by: of `p_T+`, Rényi order `gamma`.
pub fn saad_entropy(l: &SaadLogits, weighting: SaadWeighting) -> Tensor<1> {
    renyi_entropy(l.t_plus.clone(), weighting.gamma).detach()
}

/// [`saad_outer_loss_and_weights`] of one shard of a batch: `whole_batch` completes the shard's
/// entropies to the whole batch's (see [`saad_weights_in_batch`]).
pub fn saad_outer_loss_in_batch(
    l: &SaadLogits,
    config: &SaadLossConfig,
    whole_batch: &dyn Fn(Tensor<1>) -> Tensor<1>,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let weighting = config.weighting;
    let entropy = saad_entropy(l, weighting);
    let (w, w_hat) = saad_weights_in_batch(entropy.clone(), whole_batch(entropy), weighting.scale);
    let l_adv = kl_div(l.t_plus.clone(), l.s_plus.clone());
    let l_ig =
        ig_matching(l.t_plus.clone(), l.t_minus.clone(), l.s_plus.clone(), l.s_minus.clone())
            .mul_scalar(config.ig);
    let l_nat = kl_div(l.t0.clone(), l.s0.clone());
    let loss = w.clone() * (l_adv + l_ig)
        + w_hat.clone().neg().add_scalar(1.0).mul_scalar(config.beta) * l_nat;
    (loss, w, w_hat)
}
