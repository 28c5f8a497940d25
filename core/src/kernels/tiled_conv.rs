//! A convolution on cubecl (wgpu) devices as the project's own tiled implicit-GEMM WGSL kernels,
//! forward and both gradients (`shaders/conv_*.wgsl` over the shared `conv_tiles.wgsl`); a
//! run-time choice against burn's own convolution and the columns one ([`super::gemm_conv`]),
//! off by default until a GPU has measured it.
//!
//! Why: burn-cubecl 0.22.1 runs every f32 k>1 forward convolution on Vulkan/WGSL as its direct
//! kernel (its implicit-GEMM candidates need tensor-core tiles), 68-76% of an H100's kernel time
//! in the PGD-AT and SAAD steps (`bench/NOTES.md` section 5). Here each pass is one matrix
//! product whose operands are index maps onto the tensors (no columns in memory), computed in
//! 64x64 output tiles with 16-deep shared-memory tiles of both operands, 4x4 outputs per
//! invocation: forward `[N·Ho·Wo, kh·kw·C] x [kh·kw·C, O]`, input gradient `[N·H·W, kh·kw·O] x
//! [kh·kw·O, C]`, weight gradient `[O, N·Ho·Wo] x [N·Ho·Wo, kh·kw·C]` with its long depth cut
//! into slices summed afterwards (split-K). The tensors are read through their strides, so
//! burn's NHWC activations and the channels-last folded weights are read without a copy, and
//! the bias is added in the forward kernel: one launch forward, one for the input gradient,
//! one or two for the weight gradient. The tensor-op twin is burn's own convolution (every
//! other backend, and wgpu with this choice off).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

/// The convolution as a custom operation of the cubecl backend (and of autodiff over it).
#[backend_extension(Cube: cfg(all()), Autodiff)]
pub trait TiledConv: Backend {
    /// `conv2d(x, weight)` (groups 1, dilation 1, symmetric zero padding), the output NHWC in
    /// memory.
    fn tiled_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self>;

    /// [`TiledConv::tiled_conv2d`] plus a bias `[out]`, added in the same kernel.
    fn tiled_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self>;
}

type Prim = CubeTensor;

/// The input and weight gradients of one node, each only where its parent needs it.
fn register_gradients(
    parents: [Option<NodeId>; 2],
    grads: &mut Gradients,
    state: (Prim, Prim, [usize; 2], [usize; 2]),
    dy: Prim,
) {
    let (x, weight, stride, pad) = state;
    let [node_x, node_weight] = parents;
    if let Some(id) = node_x {
        let x_shape = x.meta.shape().dims::<4>();
        let dx = super::cube::tiled_conv2d_backward_data(
            x_shape,
            weight.clone(),
            dy.clone(),
            stride,
            pad,
        );
        grads.register::<CubeBackend>(id, dx);
    }
    if let Some(id) = node_weight {
        let dw = super::cube::tiled_conv2d_backward_weight(x, &weight, dy, stride, pad);
        grads.register::<CubeBackend>(id, dw);
    }
}

/// The node of a convolution without bias: parents input and weight.
#[derive(Debug)]
struct TiledConvNode;

impl Backward<CubeBackend, 2> for TiledConvNode {
    /// Input, weight, stride and padding of the forward pass.
    type State = (Prim, Prim, [usize; 2], [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<CubeBackend>(&ops.node);
        let [x, w] = ops.parents.map(|p| p.map(|node| node.id));
        register_gradients([x, w], grads, ops.state, dy);
    }
}

/// The node of a convolution with bias: parents input, weight and bias.
#[derive(Debug)]
struct TiledConvBiasNode;

impl Backward<CubeBackend, 3> for TiledConvBiasNode {
    /// Input, weight, stride and padding of the forward pass.
    type State = (Prim, Prim, [usize; 2], [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<CubeBackend>(&ops.node);
        let [x, w, b] = ops.parents.map(|p| p.map(|node| node.id));
        if let Some(id) = b {
            // The output gradient summed over batch and pixels.
            let o = dy.meta.shape()[1];
            let sum = [0, 2, 3].into_iter().fold(dy.clone(), CubeBackend::float_sum_dim);
            grads.register::<CubeBackend>(id, CubeBackend::float_reshape(sum, [o].into()));
        }
        register_gradients([x, w], grads, ops.state, dy);
    }
}

impl<C: CheckpointStrategy> TiledConv for Autodiff<CubeBackend, C> {
    fn tiled_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self> {
        let (x_p, w_p) = (x.primitive().clone(), weight.primitive().clone());
        let (stride, pad) = ([stride_h, stride_w], [pad_h, pad_w]);
        let y = super::cube::tiled_conv2d(x_p.clone(), w_p.clone(), None, stride, pad);
        match TiledConvNode.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x_p, w_p, stride, pad), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn tiled_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self> {
        let (x_p, w_p) = (x.primitive().clone(), weight.primitive().clone());
        let (stride, pad) = ([stride_h, stride_w], [pad_h, pad_w]);
        let b_p = bias.primitive().clone();
        let y = super::cube::tiled_conv2d(x_p.clone(), w_p.clone(), Some(b_p), stride, pad);
        let parents = [x.node(), weight.node(), bias.node()];
        match TiledConvBiasNode.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x_p, w_p, stride, pad), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// [`TiledConv`] on cubecl tensors.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    pad: [usize; 2],
) -> Tensor<4> {
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    let [sh, sw] = stride;
    let [ph, pw] = pad;
    Tensor::from_dispatch(match bias {
        None => <Dispatch as TiledConv>::tiled_conv2d(x, weight, sh, sw, ph, pw),
        Some(b) => {
            <Dispatch as TiledConv>::tiled_conv2d_bias(x, weight, b.into_dispatch(), sh, sw, ph, pw)
        }
    })
}

/// The layer's forward pass through [`conv2d`] when it applies: [`super::gemm_conv::WgpuConvolution::Tiled`]
/// chosen, a cubecl (wgpu) device with the project's kernels on, f32, groups 1, dilation 1,
/// symmetric padding. `None`: use burn's.
pub fn try_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    use super::gemm_conv::{WgpuConvolution, wgpu_convolution};
    if wgpu_convolution() != WgpuConvolution::Tiled || !super::has_kernels(&x.device()) {
        return None;
    }
    let pad = super::project_conv_padding(conv, x)?;
    let bias = conv.bias.as_ref().map(|b| b.val());
    Some(conv2d(x.clone(), conv.weight.val(), bias, conv.stride, pad))
}
