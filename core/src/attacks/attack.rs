//! The interface the evaluation attacks share (APGD-CE, APGD-T, FAB-T, Square, and FGSM, PGD
//! and CW through [`crate::eval::EvalAttack`]), and the bookkeeping of "attack only the points
//! still robust, keep what breaks them", written once for AutoAttack and the targeted runs.

use super::Forward;
use crate::host_copy::read_f32;
use burn::prelude::*;
use burn::tensor::{IndexingUpdateOp, TensorData};

/// What an attack found for a batch.
pub struct AttackOutcome {
    /// Each sample's adversarial point `[batch, channels, height, width]` (its input where the
    /// attack found nothing).
    pub x_adv: Tensor<4>,
    /// `[batch]`: 1.0 where the attack broke the sample, as the attack itself judges it.
    pub fooled: Tensor<1>,
}

/// An attack on a batch of labelled images in [0,1].
pub trait Attack {
    /// Attacks `x` with labels `y` against `forward` (the model in eval mode).
    fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> AttackOutcome;
}

/// An attack towards given target classes (APGD with the targeted DLR loss, FAB-T).
pub trait TargetedAttack {
    /// Attacks `x` with labels `y` towards `targets` `[batch]`.
    fn run_targeted(
        &self,
        forward: Forward,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        targets: &Tensor<1, Int>,
    ) -> AttackOutcome;
}

/// A targeted attack run once per target class, over the top `targets` non-true classes of the
/// clean logits: the k-th run targets the (k+1)-th largest clean logit, on the samples earlier
/// runs left robust (AutoAttack's APGD-T and FAB-T).
pub struct TopClassTargets<A> {
    /// The targeted attack.
    pub attack: A,
    /// How many target classes (9 in AutoAttack; at most classes - 1).
    pub targets: usize,
}

impl<A: TargetedAttack> Attack for TopClassTargets<A> {
    fn run(&self, forward: Forward, x: &Tensor<4>, y: &Tensor<1, Int>) -> AttackOutcome {
        let n = y.dims()[0];
        let order = forward(x.clone()).argsort_descending(1);
        let mut x_adv = x.clone();
        let mut robust = vec![true; n];
        for k in 1..=self.targets {
            let live: Vec<usize> = (0..n).filter(|&i| robust[i]).collect();
            if live.is_empty() {
                break;
            }
            break_still_robust(&live, &mut x_adv, &mut robust, |ix| {
                let t = order.clone().select(0, ix.clone()).slice([0..live.len(), k..k + 1]);
                let (xs, ys) = (x.clone().select(0, ix.clone()), y.clone().select(0, ix.clone()));
                self.attack.run_targeted(forward, &xs, &ys, &t.reshape([live.len()]))
            });
        }
        let fooled: Vec<f32> = robust.iter().map(|&r| if r { 0.0 } else { 1.0 }).collect();
        AttackOutcome {
            x_adv,
            fooled: Tensor::from_data(TensorData::new(fooled, [n]), &x.device()),
        }
    }
}

/// Indices as a device tensor.
fn indices(ix: &[usize], device: &Device) -> Tensor<1, Int> {
    let ix: Vec<i64> = ix.iter().map(|&i| i as i64).collect();
    let n = ix.len();
    Tensor::from_data(TensorData::new(ix, [n]), device)
}

/// Attacks the samples `candidates` (indices into `x_adv`'s batch; `attack` gets them as a
/// device tensor and returns its outcome for them, in that order) and keeps what breaks them:
/// their adversarial points go into `x_adv` and their `still_robust` flags are cleared. Returns
/// how many broke. One read: the fooled mask.
pub fn break_still_robust(
    candidates: &[usize],
    x_adv: &mut Tensor<4>,
    still_robust: &mut [bool],
    attack: impl FnOnce(&Tensor<1, Int>) -> AttackOutcome,
) -> usize {
    if candidates.is_empty() {
        return 0;
    }
    let device = x_adv.device();
    let outcome = attack(&indices(candidates, &device));
    let broken: Vec<usize> = read_f32(outcome.fooled)
        .into_iter()
        .enumerate()
        .filter(|(_, f)| *f > 0.5)
        .map(|(k, _)| k)
        .collect();
    if !broken.is_empty() {
        let global: Vec<usize> = broken.iter().map(|&k| candidates[k]).collect();
        *x_adv = x_adv.clone().select_assign(
            0,
            indices(&global, &device),
            outcome.x_adv.select(0, indices(&broken, &device)),
            IndexingUpdateOp::Assign,
        );
        for g in global {
            still_robust[g] = false;
        }
    }
    broken.len()
}
