//! The kernels on the autodiff device: the SAAD loss records a backward node whose gradient is
//! `saad_loss_backward.wgsl`; the other kernels produce constants.

use super::SaadKernels;
use super::params::{SaadLossParams, TransferStatsParams};
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn_cubecl::CubeBackend;

type Prim = FloatTensor<CubeBackend>;

/// A result without a graph node (no gradient flows through it).
#[derive(Debug)]
struct Constant;

impl Backward<CubeBackend, 0> for Constant {
    type State = ();
    fn backward(self, _ops: Ops<(), 0>, _grads: &mut Gradients, _checkpointer: &mut Checkpointer) {}
}

fn constant<C: CheckpointStrategy>(p: Prim) -> FloatTensor<Autodiff<CubeBackend, C>> {
    Constant.prepare::<C>([]).compute_bound().stateless(p)
}

/// The SAAD loss node: its one parent is the stacked student logits.
#[derive(Debug)]
struct SaadLossNode;

impl Backward<CubeBackend, 1> for SaadLossNode {
    /// Teacher logits, student logits, weights of the forward pass, the loss's parameters.
    type State = (Prim, Prim, Prim, SaadLossParams);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (teacher, student, weights, params) = ops.state;
        unary::<CubeBackend, _>(ops.parents, ops.node, grads, |upstream| {
            CubeBackend::saad_loss_backward(teacher, student, weights, upstream, params)
        });
    }
}

impl<C: CheckpointStrategy> SaadKernels for Autodiff<CubeBackend, C> {
    fn pgd_step(
        x_adv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        x: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
        active: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x_adv, grad, x, eps, alpha, active] =
            [x_adv, grad, x, eps, alpha, active].map(|t| t.into_primitive());
        constant::<C>(CubeBackend::pgd_step(x_adv, grad, x, eps, alpha, active))
    }

    fn saad_loss(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let teacher_p = teacher.into_primitive();
        let student_p = student.primitive().clone();
        let (loss, weights) = CubeBackend::saad_loss(teacher_p.clone(), student_p.clone(), params);
        let loss = match SaadLossNode.prepare::<C>([student.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((teacher_p, student_p, weights.clone(), params), loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        (loss, constant::<C>(weights))
    }

    fn saad_loss_backward(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        upstream: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> FloatTensor<Self> {
        let [t, s, w, u] = [teacher, student, weights, upstream].map(|t| t.into_primitive());
        constant::<C>(CubeBackend::saad_loss_backward(t, s, w, u, params))
    }

    fn transfer_stats(
        teacher_adv: FloatTensor<Self>,
        student_adv: FloatTensor<Self>,
        labels: FloatTensor<Self>,
        params: TransferStatsParams,
    ) -> FloatTensor<Self> {
        let [t, s, l] = [teacher_adv, student_adv, labels].map(|t| t.into_primitive());
        constant::<C>(CubeBackend::transfer_stats(t, s, l, params))
    }
}
