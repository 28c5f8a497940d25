//! A convolution's forward pass as one matrix product over explicit columns (im2col), for
//! cubecl (wgpu) devices; a run-time choice against burn's own convolution, off by default.
//!
//! Why: burn-cubecl 0.22.1 tunes a convolution's forward pass among the direct kernel, a 1x1
//! im2col and implicit-GEMM kernels whose tiles are all tensor-core tiles (CMMA/MMA, see its
//! `kernel/conv/forward/tune.rs`); with f32 through Vulkan none of those apply, so every k>1
//! convolution runs the direct kernel, which took 68-76% of an H100's kernel time in the PGD-AT
//! and SAAD steps (`bench/NOTES.md`, section 5). Here the columns `[C·kh·kw, N·Ho·Wo]` are a
//! strided view of the padded input (two `unfold`s, no copy) made contiguous by one copy, then
//! multiplied by the weights `[O, C·kh·kw]` with cubecl's tuned matmul, which has f32 kernels on
//! every device. The backward pass is burn's (its data and weight gradients are tuned matrix
//! products already). A first version in tensor ops (one strided slice per kernel tap, autodiff
//! through them) cut the kernel time ~5x but launched 1.7x the kernels, and on the H100 a step
//! follows its launch count: 2.09 -> 4.10 s per PGD-AT step. This one launches about as many
//! kernels as burn's convolution (pad, copy, matmul against three layout copies and the kernel).
//! Not yet measured on a GPU, hence off by default: `saad bench --wgpu-conv burn,columns`
//! measures both in one run.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which convolution the models run on a cubecl (wgpu) device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WgpuConvolution {
    /// burn's own (autotuned; on f32 Vulkan the direct kernel). The default: the one measured
    /// fastest end to end on a GPU so far.
    #[default]
    Burn,
    /// [`conv2d`]: columns times weights forward, burn's backward.
    Columns,
    /// [`super::tiled_conv`]: the project's tiled implicit-GEMM kernels, forward and both
    /// gradients.
    Tiled,
}

impl WgpuConvolution {
    /// Every choice, in the order `--wgpu-conv` lists them.
    pub const ALL: [WgpuConvolution; 3] =
        [WgpuConvolution::Burn, WgpuConvolution::Columns, WgpuConvolution::Tiled];

    /// The name `--wgpu-conv` takes.
    pub fn name(self) -> &'static str {
        match self {
            WgpuConvolution::Burn => "burn",
            WgpuConvolution::Columns => "columns",
            WgpuConvolution::Tiled => "tiled",
        }
    }
}

impl std::str::FromStr for WgpuConvolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown wgpu convolution '{s}': use burn, columns or tiled"))
    }
}

static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Chooses the convolution of wgpu devices for the whole process.
pub fn set_wgpu_convolution(choice: WgpuConvolution) {
    let index = WgpuConvolution::ALL.iter().position(|&c| c == choice).unwrap_or(0);
    CHOICE.store(index as u8, Ordering::SeqCst);
}

/// The convolution wgpu devices run now.
pub fn wgpu_convolution() -> WgpuConvolution {
    WgpuConvolution::ALL[CHOICE.load(Ordering::SeqCst) as usize]
}

/// The convolution as a custom operation of the cubecl backend (and of autodiff over it).
#[backend_extension(Cube: cfg(all()), Autodiff)]
pub trait ColumnsConv: Backend {
    /// `conv2d(x, weight)` without bias, groups 1, dilation 1, symmetric zero padding.
    fn columns_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self>;
}

fn options(stride: [usize; 2], pad: [usize; 2]) -> ConvOptions<2> {
    ConvOptions::new(stride, pad, [1, 1], 1)
}

impl ColumnsConv for CubeBackend {
    fn columns_conv2d(
        x: CubeTensor,
        weight: CubeTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> CubeTensor {
        let [n, c, h, w] = x.meta.shape().dims::<4>();
        let [o, ci, kh, kw] = weight.meta.shape().dims::<4>();
        assert_eq!(c, ci, "columns_conv2d: the input has {c} channels, the weight {ci}");
        let (hp, wp) = (h + 2 * pad_h, w + 2 * pad_w);
        assert!(
            hp >= kh && wp >= kw,
            "columns_conv2d: a {kh}x{kw} kernel on a padded {hp}x{wp} input"
        );
        let (ho, wo) = ((hp - kh) / stride_h + 1, (wp - kw) / stride_w + 1);
        let padded = if pad_h + pad_w > 0 {
            Self::float_pad(
                x,
                &[(0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)],
                PadMode::Constant(0.0),
            )
        } else {
            x
        };
        // Views, no copies: [N, C, Ho, Wp, kh] then [N, C, Ho, Wo, kh, kw].
        let windows =
            Self::float_unfold(Self::float_unfold(padded, 2, kh, stride_h), 3, kw, stride_w);
        // Rows (c, i, j) as the weight's [O, C, kh, kw] flattens; columns (n, y, x). The reshape
        // of the permuted view is the one copy.
        let columns = Self::float_reshape(
            Self::float_permute(windows, &[1, 4, 5, 0, 2, 3]),
            [c * kh * kw, n * ho * wo].into(),
        );
        let y = Self::float_matmul(Self::float_reshape(weight, [o, c * kh * kw].into()), columns);
        Self::float_swap_dims(Self::float_reshape(y, [o, n, ho, wo].into()), 0, 1)
    }
}

/// The convolution's graph node: parents input and weight; burn's gradients.
#[derive(Debug)]
struct ColumnsConvNode;

impl Backward<CubeBackend, 2> for ColumnsConvNode {
    /// Input, weight, stride and padding of the forward pass.
    type State = (CubeTensor, CubeTensor, [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, w, stride, pad) = ops.state;
        let (x2, w2) = (x.clone(), w.clone());
        binary::<CubeBackend, _, _>(
            ops.parents,
            ops.node,
            grads,
            move |dy| CubeBackend::conv2d_x_backward(x, w, dy, options(stride, pad)),
            move |dy| CubeBackend::conv2d_weight_backward(x2, w2, dy, options(stride, pad)),
        );
    }
}

impl<C: CheckpointStrategy> ColumnsConv for Autodiff<CubeBackend, C> {
    fn columns_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self> {
        let (x_p, w_p) = (x.primitive().clone(), weight.primitive().clone());
        let y =
            CubeBackend::columns_conv2d(x_p.clone(), w_p.clone(), stride_h, stride_w, pad_h, pad_w);
        match ColumnsConvNode.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((x_p, w_p, [stride_h, stride_w], [pad_h, pad_w]), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// [`ColumnsConv`] on cubecl tensors (no bias).
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: [usize; 2], pad: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ColumnsConv>::columns_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride[0],
        stride[1],
        pad[0],
        pad[1],
    ))
}

/// The layer's forward pass through [`conv2d`] when it applies: [`WgpuConvolution::Columns`]
/// chosen, a cubecl (wgpu) device with the project's kernels on, f32, groups 1, dilation 1, a
/// kernel larger than 1x1 (burn tunes an im2col kernel for 1x1 itself), symmetric padding.
/// `None`: use burn's.
pub fn try_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [_, _, kh, kw] = conv.weight.dims();
    if wgpu_convolution() != WgpuConvolution::Columns
        || !super::has_kernels(&x.device())
        || kh * kw == 1
    {
        return None;
    }
    let pad = super::project_conv_padding(conv, x)?;
    Some(super::add_conv_bias(conv2d(x.clone(), conv.weight.val(), conv.stride, pad), conv))
}
