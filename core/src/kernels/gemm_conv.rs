//! A convolution as one matrix product over explicit columns (im2col), in burn tensor ops, for
//! cubecl (wgpu) devices.
//!
//! Why: burn-cubecl 0.22.1 tunes a convolution's forward pass among the direct kernel, a 1x1
//! im2col and implicit-GEMM kernels whose tiles are all tensor-core tiles (CMMA/MMA, see its
//! `kernel/conv/forward/tune.rs`); with f32 through Vulkan none of those apply, so every k>1
//! convolution ran the direct kernel, 68-76% of an H100's time in the PGD-AT and SAAD steps
//! (`bench/NOTES.md`, section 5). Here the columns of the whole batch are built with strided
//! slices (one per kernel tap) and multiplied by the weights with cubecl's tuned matmul, which
//! has f32 kernels for every device. Autodiff differentiates the tensor ops (slices into
//! slice-assigns, the product into two products), so the input and weight gradients are matrix
//! products as well. The price is memory: the columns hold k*k copies of the input.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Slice};

/// `conv2d(x, weight)` with the given stride and symmetric zero padding, no bias, groups 1,
/// dilation 1: `x [N, C, H, W]`, `weight [O, C, kh, kw]` -> `[N, O, Ho, Wo]`.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: [usize; 2], pad: [usize; 2]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [o, ci, kh, kw] = weight.dims();
    assert_eq!(c, ci, "gemm_conv::conv2d: the input has {c} channels, the weight {ci}");
    let (hp, wp) = (h + 2 * pad[0], w + 2 * pad[1]);
    assert!(hp >= kh && wp >= kw, "gemm_conv::conv2d: a {kh}x{kw} kernel on a padded {hp}x{wp} input");
    let (ho, wo) = ((hp - kh) / stride[0] + 1, (wp - kw) / stride[1] + 1);
    // Channels first, so that the columns are `[C * kh * kw, N * Ho * Wo]` and one product
    // serves the whole batch (its weight gradient is one product too, not a batch of them).
    let mut xc = x.swap_dims(0, 1);
    if pad != [0, 0] {
        xc = xc.pad([(pad[0], pad[0]), (pad[1], pad[1])], PadMode::Constant(0.0));
    }
    let span = |start: usize, len: usize, step: usize| Slice::new(start as isize, Some((start + (len - 1) * step + 1) as isize), step as isize);
    let taps: Vec<Tensor<4>> = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| xc.clone().slice([Slice::from(0..c), Slice::from(0..n), span(i, ho, stride[0]), span(j, wo, stride[1])]))
        .collect();
    // [C, kh*kw, N, Ho, Wo]: row (c, i, j) of the columns, as the weight's [O, C, kh, kw] flattens.
    let columns = Tensor::stack::<5>(taps, 1).reshape([c * kh * kw, n * ho * wo]);
    let y = weight.reshape([o, c * kh * kw]).matmul(columns);
    y.reshape([o, n, ho, wo]).swap_dims(0, 1)
}

/// The layer's forward pass through [`conv2d`] when it applies: a cubecl (wgpu) device with the
/// project's kernels on, f32, groups 1, dilation 1, a kernel larger than 1x1 (burn tunes an
/// im2col kernel for 1x1 itself), symmetric padding. `None`: use burn's.
pub fn try_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [_, _, kh, kw] = conv.weight.dims();
    if !super::kernels_enabled() || !super::has_kernels(&x.device()) || x.dtype() != DType::F32 || conv.groups != 1 || conv.dilation != [1, 1] || kh * kw == 1 {
        return None;
    }
    let pad = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return None,
    };
    let y = conv2d(x.clone(), conv.weight.val(), conv.stride, pad);
    Some(match &conv.bias {
        Some(bias) => {
            let o = bias.dims()[0];
            y + bias.val().reshape([1, o, 1, 1])
        }
        None => y,
    })
}
