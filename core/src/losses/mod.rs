//! Per-sample losses on logits `[batch, classes]`, each returning `[batch]`. Reductions are the
//! caller's: `mean()` over the batch is PyTorch's `batchmean` for KL and `mean` for CE.
//!
//! The bottom layer of the core: it imports nothing from the crate. SAAD's outer loss and the
//! transfer-statistics layout live here ([`saad`], [`transfer_stats`]) because the kernels above
//! implement them and the methods above the kernels use them.

pub mod saad;
pub mod transfer_stats;

pub use saad::saad_weights;

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

/// Cross-entropy `-log softmax(z)_y`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    log_softmax(logits, 1).gather(1, labels.reshape([b, 1])).reshape([b]).neg()
}

/// `KL(softmax(target) || softmax(input)) = sum_c p_c (log p_c - log q_c)`, summed over classes.
/// `target_logits` is treated as a constant by the callers that pass detached logits.
pub fn kl_div(target_logits: Tensor<2>, input_logits: Tensor<2>) -> Tensor<1> {
    let [b, _] = target_logits.dims();
    let log_p = log_softmax(target_logits, 1);
    let log_q = log_softmax(input_logits, 1);
    (log_p.clone().exp() * (log_p - log_q)).sum_dim(1).reshape([b])
}

/// `onehot[i, c] = (labels[i] == c)`, built on the device. burn's `one_hot` checks its indices
/// by reading them back to the host (a synchronous read: a stall on a GPU, a panic in the
/// browser), so the hot loops use this instead.
pub fn one_hot(labels: Tensor<1, Int>, classes: usize) -> Tensor<2, Bool> {
    let [b] = labels.dims();
    let device = labels.device();
    let class_ids = Tensor::<1, Int>::arange(0..classes as i64, &device)
        .reshape([1, classes])
        .expand([b, classes]);
    labels.reshape([b, 1]).expand([b, classes]).equal(class_ids)
}

/// The Carlini-Wagner margin used as a loss to maximise: `max_{j != y} z_j - z_y`
/// (positive exactly when the sample is misclassified).
pub fn cw_margin(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, c] = logits.dims();
    let onehot = one_hot(labels.clone(), c);
    let true_logit = logits.clone().gather(1, labels.reshape([b, 1])).reshape([b]);
    // Push the true class far below every other logit before taking the max.
    let others = logits.mask_fill(onehot, -1.0e30);
    others.max_dim(1).reshape([b]) - true_logit
}

/// Shannon entropy of `softmax(z)`: `-sum_c p_c log(p_c + 1e-12)`.
pub fn entropy(logits: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let p = softmax(logits, 1);
    (p.clone() * p.add_scalar(1e-12).log()).sum_dim(1).reshape([b]).neg()
}

/// 1.0 where `argmax(logits) == label`, else 0.0.
pub fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    logits.argmax(1).reshape([b]).equal(labels).float()
}

/// Rényi entropy of order `gamma` of `softmax(z)`: `log(sum_c p_c^gamma + 1e-12) / (1 - gamma)`,
/// and Shannon entropy ([`entropy`]) when `|gamma - 1| < 1e-6`, as the SAAD authors' utils.py
/// `samplewise_renyi_entropy` (github HongsinLee/saad). Near 1 the quotient is rounding noise
/// over a tiny denominator, hence the wide Shannon band.
pub fn renyi_entropy(logits: Tensor<2>, gamma: f64) -> Tensor<1> {
    if (gamma - 1.0).abs() < 1e-6 {
        return entropy(logits);
    }
    let [b, _] = logits.dims();
    let p = softmax(logits, 1);
    p.powf_scalar(gamma).sum_dim(1).reshape([b]).add_scalar(1e-12).log().div_scalar(1.0 - gamma)
}

/// `softmax(z / tau)` KL as used by distillation with temperature: `KL(softmax(t/tau) || softmax(s/tau))`.
pub fn kl_div_temperature(
    target_logits: Tensor<2>,
    input_logits: Tensor<2>,
    tau: f64,
) -> Tensor<1> {
    kl_div(target_logits.div_scalar(tau), input_logits.div_scalar(tau))
}

/// Logits sorted in descending order along classes.
fn sorted_desc(logits: Tensor<2>) -> Tensor<2> {
    logits.sort_descending(1)
}

/// The DLR loss of Croce & Hein (2020): `-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)`,
/// with `z_pi` the logits in decreasing order (needs at least 3 classes).
pub fn dlr(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, c] = logits.dims();
    assert!(c >= 3, "the DLR loss needs at least 3 classes");
    let sorted = sorted_desc(logits.clone());
    let col = |k: usize| sorted.clone().slice([0..b, k..k + 1]).reshape([b]);
    let (first, second, third) = (col(0), col(1), col(2));
    let z_y = logits.clone().gather(1, labels.clone().reshape([b, 1])).reshape([b]);
    // The best other class: the runner-up if y is on top, else the top.
    let y_on_top = logits.argmax(1).reshape([b]).equal(labels);
    let best_other = first.clone().mask_where(y_on_top, second);
    (z_y - best_other).neg() / (first - third).add_scalar(1e-12)
}

/// The targeted DLR loss: `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`; with fewer
/// than 4 classes the last logit stands in for the missing ones.
pub fn dlr_targeted(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    targets: Tensor<1, Int>,
) -> Tensor<1> {
    let [b, c] = logits.dims();
    let sorted = sorted_desc(logits.clone());
    let col = |k: usize| sorted.clone().slice([0..b, k.min(c - 1)..k.min(c - 1) + 1]).reshape([b]);
    let z_y = logits.clone().gather(1, labels.reshape([b, 1])).reshape([b]);
    let z_t = logits.gather(1, targets.reshape([b, 1])).reshape([b]);
    (z_y - z_t).neg() / (col(0) - (col(2) + col(3)).mul_scalar(0.5)).add_scalar(1e-12)
}
