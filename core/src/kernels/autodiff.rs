//! The kernels on the autodiff device: the SAAD loss, ReLU and training-mode BatchNorm record
//! backward nodes whose gradients are their backward kernels; the other kernels produce
//! constants.

use super::SaadKernels;
use super::params::{
    BatchNormParams, BatchNormRunningParams, FoldParams, SaadLossParams, ScaleShiftParams,
    SgdStepParams, TransferStatsParams,
};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend};
use burn_cubecl::CubeBackend;

type Prim = FloatTensor<CubeBackend>;

/// A result without a graph node (no gradient flows through it).
#[derive(Debug)]
struct Constant;

impl<B: Backend> Backward<B, 0> for Constant {
    type State = ();
    fn backward(self, _ops: Ops<(), 0>, _grads: &mut Gradients, _checkpointer: &mut Checkpointer) {}
}

/// `p` on the autodiff device as a constant: the WGSL kernels' results here, the flex
/// BatchNorm's batch statistics in `flex_batch_norm`.
pub(super) fn constant<B: Backend, C: CheckpointStrategy>(
    p: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
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

/// The ReLU node: its one parent is the input; the state is the output, as burn's own ReLU
/// keeps it.
#[derive(Debug)]
struct ReluNode;

impl Backward<CubeBackend, 1> for ReluNode {
    type State = Prim;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let output = ops.state;
        unary::<CubeBackend, _>(ops.parents, ops.node, grads, |grad| {
            CubeBackend::relu_backward(output, grad)
        });
    }
}

/// The training-mode BatchNorm node: parents input, gamma, beta; the state is what the backward
/// kernels read (the statistics as the forward pass computed them, like burn's own node).
#[derive(Debug)]
struct BatchNormNode;

impl Backward<CubeBackend, 3> for BatchNormNode {
    /// Input, gamma, batch mean, batch variance, eps.
    type State = (Prim, Prim, Prim, Prim, BatchNormParams);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<CubeBackend>(&ops.node);
        let (x, gamma, mean, variance, params) = ops.state;
        let (x_grad, gamma_grad, beta_grad) =
            CubeBackend::batch_norm_train_backward(x, gamma, mean, variance, grad, params);
        for (node, g) in [(node_x, x_grad), (node_gamma, gamma_grad), (node_beta, beta_grad)] {
            if let Some(node) = node {
                grads.register::<CubeBackend>(node.id, g);
            }
        }
    }
}

/// The scale-shift-activation node: its one parent is the input (the scale and shift are the
/// constants of a folded copy); the state is what the backward kernel reads.
#[derive(Debug)]
struct ScaleShiftNode;

impl Backward<CubeBackend, 1> for ScaleShiftNode {
    /// Input, scale, shift, the activation.
    type State = (Prim, Prim, Prim, ScaleShiftParams);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, scale, shift, params) = ops.state;
        unary::<CubeBackend, _>(ops.parents, ops.node, grads, |grad| {
            CubeBackend::scale_shift_activation_backward(x, scale, shift, grad, params)
        });
    }
}

impl<C: CheckpointStrategy> SaadKernels for Autodiff<CubeBackend, C> {
    fn scale_shift_activation(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self> {
        let x_p = x.primitive().clone();
        let (scale, shift) = (scale.into_primitive(), shift.into_primitive());
        let y =
            CubeBackend::scale_shift_activation(x_p.clone(), scale.clone(), shift.clone(), params);
        match ScaleShiftNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x_p, scale, shift, params), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn scale_shift_activation_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self> {
        let [x, s, t, g] = [x, scale, shift, grad].map(|t| t.into_primitive());
        constant::<_, C>(CubeBackend::scale_shift_activation_backward(x, s, t, g, params))
    }

    fn batch_norm_running(
        batch_mean: FloatTensor<Self>,
        batch_var: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        count: FloatTensor<Self>,
        params: BatchNormRunningParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [bm, bv, rm, rv, n] =
            [batch_mean, batch_var, running_mean, running_var, count].map(|t| t.into_primitive());
        let (m, v) = CubeBackend::batch_norm_running(bm, bv, rm, rv, n, params);
        (constant::<_, C>(m), constant::<_, C>(v))
    }

    fn fold_conv_batch_norm(
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        params: FoldParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [w, g, b, m, v] =
            [weight, gamma, beta, running_mean, running_var].map(|t| t.into_primitive());
        let (w, b) = CubeBackend::fold_conv_batch_norm(w, g, b, m, v, params);
        (constant::<_, C>(w), constant::<_, C>(b))
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_p, gamma_p) = (x.primitive().clone(), gamma.primitive().clone());
        let (y, mean, variance) = CubeBackend::batch_norm_train(
            x_p.clone(),
            gamma_p.clone(),
            beta.primitive().clone(),
            params,
        );
        let prep = BatchNormNode.prepare::<C>([x.node(), gamma.node(), beta.node()]);
        let y = match prep.compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((x_p, gamma_p, mean.clone(), variance.clone(), params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, constant::<_, C>(mean), constant::<_, C>(variance))
    }

    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, g, m, v, d] = [x, gamma, mean, variance, grad].map(|t| t.into_primitive());
        let (dx, dg, db) = CubeBackend::batch_norm_train_backward(x, g, m, v, d, params);
        (constant::<_, C>(dx), constant::<_, C>(dg), constant::<_, C>(db))
    }

    fn sgd_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        params: SgdStepParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [p, g, v] = [param, grad, velocity].map(|t| t.into_primitive());
        let (p, v) = CubeBackend::sgd_step(p, g, v, params);
        (constant::<_, C>(p), constant::<_, C>(v))
    }

    fn relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let y = CubeBackend::relu(x.primitive().clone());
        match ReluNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn relu_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let [o, g] = [output, grad].map(|t| t.into_primitive());
        constant::<_, C>(CubeBackend::relu_backward(o, g))
    }

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
        constant::<_, C>(CubeBackend::pgd_step(x_adv, grad, x, eps, alpha, active))
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
        (loss, constant::<_, C>(weights))
    }

    fn saad_loss_backward(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        upstream: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> FloatTensor<Self> {
        let [t, s, w, u] = [teacher, student, weights, upstream].map(|t| t.into_primitive());
        constant::<_, C>(CubeBackend::saad_loss_backward(t, s, w, u, params))
    }

    fn transfer_stats(
        teacher_adv: FloatTensor<Self>,
        student_adv: FloatTensor<Self>,
        labels: FloatTensor<Self>,
        params: TransferStatsParams,
    ) -> FloatTensor<Self> {
        let [t, s, l] = [teacher_adv, student_adv, labels].map(|t| t.into_primitive());
        constant::<_, C>(CubeBackend::transfer_stats(t, s, l, params))
    }
}
