//! The kernels' parameter structs, each defined once here: `#[repr(C)]` for the bytes uploaded to
//! the device, and the same declaration in WGSL ([`WgslLayout::WGSL`]) appended to the shaders
//! that read it, so a field can only be renamed, added or moved in one place.

use crate::losses::transfer_stats::{WEIGHT_BINS, sums};

/// Workgroup size of every kernel (WebGPU's default limit is 256 invocations); the shaders
/// receive it as the WGSL constant `WORKGROUP`.
pub const WORKGROUP: u32 = 256;

/// A parameter struct whose layout is also written out in WGSL.
pub trait WgslLayout: bytemuck::Pod {
    /// `struct Name { field: type, ... }` in WGSL, the same fields in the same order (all 4-byte
    /// scalars, so the WGSL storage layout equals `#[repr(C)]`).
    const WGSL: &'static str;
}

macro_rules! kernel_params {
    ($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident: $ty:ident,)* }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        impl WgslLayout for $name {
            const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)*
                "}\n"
            );
        }
    };
}

kernel_params! {
    /// `pgd_step.wgsl`: the batch's size and the 2-D launch's row width.
    PgdStepParams {
        /// Elements of the batch.
        elements: u32,
        /// Elements per sample.
        per_sample: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
    }
}

kernel_params! {
    /// `saad_loss_terms.wgsl`, `saad_loss_reduce.wgsl` and `saad_loss_backward.wgsl`: the shape
    /// of the stacked logits `[3, batch, classes]` and [`crate::losses::saad::SaadLossConfig`].
    SaadLossParams {
        /// Samples.
        batch: u32,
        /// Classes.
        classes: u32,
        /// Rényi order of the entropy (1 = Shannon).
        gamma: f32,
        /// Scale of the weights.
        scale: f32,
        /// Weight of the input-gradient-matching term.
        ig: f32,
        /// Weight of the inverse-weighted clean term.
        beta: f32,
    }
}

kernel_params! {
    /// `transfer_stats.wgsl`: the shape of the logits `[batch, classes]`, the SAAD weighting and
    /// whether the student's logits were given.
    TransferStatsParams {
        /// Samples.
        batch: u32,
        /// Classes.
        classes: u32,
        /// Rényi order of the entropy.
        gamma: f32,
        /// Scale of the weights.
        scale: f32,
        /// 1 when the student's logits were given, else 0.
        has_student: u32,
    }
}

kernel_params! {
    /// Where a second tensor's elements sit relative to a dense tensor's memory order, for the
    /// kernels that read two tensors of one shape laid out differently (burn's convolutions
    /// leave activations NHWC in memory and return some gradients NCHW). Element `i` of the
    /// dense tensor's memory has coordinates `(i0, i1, i2, i3)` along its axes from the outermost
    /// in memory (`extent_1..3`, the outermost extent is not needed), and the other tensor holds
    /// it at `i0 * stride_0 + i1 * stride_1 + i2 * stride_2 + i3 * stride_3`: WGSL
    /// `operand_index` ([`wgsl_shared`]). Tensors of rank under 4 are padded in front with
    /// extent-1 axes.
    OperandLayout {
        /// 1 when the other tensor has the dense tensor's strides (`operand_index(i) = i`).
        same_layout: u32,
        /// The second-outermost extent in memory order.
        extent_1: u32,
        /// The third-outermost extent.
        extent_2: u32,
        /// The innermost extent.
        extent_3: u32,
        /// The other tensor's stride along the outermost axis in memory.
        stride_0: u32,
        /// Along the second-outermost.
        stride_1: u32,
        /// Along the third-outermost.
        stride_2: u32,
        /// Along the innermost.
        stride_3: u32,
    }
}

kernel_params! {
    /// `relu_forward.wgsl` and `relu_backward.wgsl`: the tensor's size, the 2-D launch's row
    /// width, and for the backward pass the output gradient's layout relative to the
    /// activation's.
    ReluParams {
        /// Elements of the tensor.
        elements: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
        /// The output gradient relative to the activation (backward only).
        dy: OperandLayout,
    }
}

kernel_params! {
    /// `batch_norm_*.wgsl`: training-mode BatchNorm over a dense `[batch, channels, ...]` tensor
    /// in any memory order. Element `i` of its memory belongs to channel
    /// `(i / channel_inner) % channels`.
    BatchNormParams {
        /// Elements of the tensor.
        elements: u32,
        /// Workgroups along x of the element-wise launches (past 65535 they fold into y).
        groups_x: u32,
        /// Channels.
        channels: u32,
        /// Product of the extents inside the channel axis in memory order (1 for NHWC, h * w
        /// for NCHW).
        channel_inner: u32,
        /// Added to the variance before the square root.
        eps: f32,
        /// The output gradient relative to the input (backward only).
        dy: OperandLayout,
    }
}

kernel_params! {
    /// `scale_shift_activation.wgsl` and its backward: a per-channel affine map and an
    /// activation over a dense `[batch, channels, ...]` tensor in any memory order (channel of
    /// element `i`: `(i / channel_inner) % channels`).
    ScaleShiftParams {
        /// Elements of the tensor.
        elements: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
        /// Channels.
        channels: u32,
        /// Product of the extents inside the channel axis in memory order.
        channel_inner: u32,
        /// 1: SiLU, 0: ReLU.
        silu: u32,
        /// The output gradient relative to the input (backward only).
        dy: OperandLayout,
    }
}

kernel_params! {
    /// `batch_norm_running.wgsl`: how the running statistics follow the batch's.
    BatchNormRunningParams {
        /// Channels.
        channels: u32,
        /// 1: the plain average over the batches seen (PyTorch `momentum=None`); 0: momentum.
        cumulative: u32,
        /// Weight of the batch in the running averages (momentum mode).
        momentum: f32,
        /// `n / (n - 1)` for the `n` values per channel: biased to unbiased variance.
        unbiased_factor: f32,
    }
}

kernel_params! {
    /// `fold_conv_batch_norm.wgsl`: the convolution weight's shape `[outputs, inputs, kernel]`.
    FoldParams {
        /// Elements of the weight.
        elements: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
        /// Output channels.
        outputs: u32,
        /// Input channels (per group).
        inputs: u32,
        /// Kernel positions (`kh * kw`).
        kernel: u32,
        /// Added to the running variance before the square root.
        eps: f32,
    }
}

kernel_params! {
    /// `sgd_step.wgsl`: the parameter's size, the 2-D launch's row width and the step's
    /// hyper-parameters (see [`crate::train::sgd`]).
    SgdStepParams {
        /// Elements of the parameter.
        elements: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
        /// 1 when a velocity from an earlier step is bound, 0 on the first step.
        has_velocity: u32,
        /// Learning rate.
        lr: f32,
        /// Momentum factor.
        momentum: f32,
        /// `1 - dampening`.
        dampening_complement: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    }
}

kernel_params! {
    /// A 4-D tensor's strides in elements along its axes in their logical order (`[batch,
    /// channels, height, width]` for activations, `[out, in, kh, kw]` for weights), so that the
    /// convolution kernels read any memory order (burn's NHWC activations, channels-last
    /// folded weights, broadcast gradients) without a copy.
    Strides4 {
        /// Along axis 0.
        s0: u32,
        /// Along axis 1.
        s1: u32,
        /// Along axis 2.
        s2: u32,
        /// Along axis 3.
        s3: u32,
    }
}

kernel_params! {
    /// `conv_forward.wgsl`, `conv_backward_data.wgsl` and `conv_backward_weight.wgsl`: a
    /// convolution (groups 1, dilation 1, symmetric zero padding) as the tiled matrix product
    /// of `conv_tiles.wgsl`, `[gemm_m, gemm_k] x [gemm_k, gemm_n]`, its depth cut into slices of
    /// `k_per_split` (one per workgroup along z, each writing its own partial result).
    ConvParams {
        /// Images.
        batch: u32,
        /// Input channels.
        in_channels: u32,
        /// Input rows.
        in_h: u32,
        /// Input columns.
        in_w: u32,
        /// Output channels.
        out_channels: u32,
        /// Kernel rows.
        kernel_h: u32,
        /// Kernel columns.
        kernel_w: u32,
        /// Output rows.
        out_h: u32,
        /// Output columns.
        out_w: u32,
        /// Step between output rows on the input.
        stride_h: u32,
        /// Step between output columns.
        stride_w: u32,
        /// Zero rows added above and below.
        pad_h: u32,
        /// Zero columns added left and right.
        pad_w: u32,
        /// 1 when the forward pass adds a bias (bound), else 0.
        has_bias: u32,
        /// Rows of the product.
        gemm_m: u32,
        /// Columns of the product.
        gemm_n: u32,
        /// Depth of the product (the sum's length).
        gemm_k: u32,
        /// Depth per workgroup along z.
        k_per_split: u32,
        /// The input `[batch, in, h, w]` (weight gradient, forward).
        x: Strides4,
        /// The weight `[out, in, kh, kw]` (forward, data gradient); for the weight gradient, the
        /// layout it is written in.
        w: Strides4,
        /// The output gradient `[batch, out, out_h, out_w]` (both gradients).
        dy: Strides4,
    }
}

/// What every shader gets appended besides its parameter struct: [`wgsl_constants`], the
/// [`OperandLayout`] struct and its index function, the [`Strides4`] struct, and the channel arithmetic of the kernels
/// over `[batch, channels, ...]` tensors in any memory order (`channel_inner`: the product of
/// the extents inside the channel axis in memory order).
pub fn wgsl_shared() -> String {
    let mut out = wgsl_constants();
    out.push_str(OperandLayout::WGSL);
    out.push_str(Strides4::WGSL);
    out.push_str(
        "fn operand_index(i: u32, l: OperandLayout) -> u32 {
    if (l.same_layout != 0u) {
        return i;
    }
    let i3 = i % l.extent_3;
    let r3 = i / l.extent_3;
    let i2 = r3 % l.extent_2;
    let r2 = r3 / l.extent_2;
    let i1 = r2 % l.extent_1;
    let i0 = r2 / l.extent_1;
    return i0 * l.stride_0 + i1 * l.stride_1 + i2 * l.stride_2 + i3 * l.stride_3;
}
// The channel of element i of the memory.
fn channel_of(i: u32, channels: u32, channel_inner: u32) -> u32 {
    return (i / channel_inner) % channels;
}
// Index in memory of the k-th element of channel c.
fn channel_element(c: u32, k: u32, channels: u32, channel_inner: u32) -> u32 {
    return (k / channel_inner) * channels * channel_inner + c * channel_inner + k % channel_inner;
}
",
    );
    out
}

/// The WGSL constants every shader gets: the workgroup size, and the transfer-statistics layout
/// (`SUMS_<NAME>` for each offset of [`sums`], `WEIGHT_BINS`).
pub fn wgsl_constants() -> String {
    let mut out =
        format!("const WORKGROUP: u32 = {WORKGROUP}u;\nconst WEIGHT_BINS: u32 = {WEIGHT_BINS}u;\n");
    for (name, offset) in sums::NAMED {
        out.push_str(&format!("const SUMS_{name}: u32 = {offset}u;\n"));
    }
    out
}
