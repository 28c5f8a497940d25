//! Launching the WGSL sources on the cubecl backend.

use super::SaadKernels;
use super::params::{
    BatchNormParams, BatchNormRunningParams, ConvParams, FoldParams, OperandLayout, PgdStepParams,
    ReluParams, SaadLossParams, ScaleShiftParams, SgdStepParams, Strides4, TransferStatsParams,
    WORKGROUP, WgslLayout, wgsl_shared,
};
use crate::losses::transfer_stats::sums;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::server::KernelArguments;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::template::{KernelSource, SourceKernel, SourceTemplate};
use burn_cubecl::tensor::CubeTensor;
use bytemuck::Zeroable;

/// A WGSL source with the parameter struct it reads and the shared constants and helpers
/// ([`wgsl_shared`]) appended (WGSL declarations may come after their use).
/// A second file (`$body`) is appended too where several kernels share one entry point.
macro_rules! wgsl_kernel {
    ($name:ident, $file:literal, $params:ty $(, $body:literal)?) => {
        struct $name;
        impl KernelSource for $name {
            fn source(&self) -> SourceTemplate {
                SourceTemplate::new(include_str!(concat!("../../../shaders/", $file)))
                    $(.add_template(include_str!(concat!("../../../shaders/", $body))))?
                    .add_template(wgsl_shared())
                    .add_template(<$params as WgslLayout>::WGSL)
            }
            fn id(&self) -> KernelId {
                KernelId::new::<Self>()
            }
            fn lang(&self) -> &'static str {
                "wgsl"
            }
        }
    };
}

wgsl_kernel!(PgdStep, "pgd_step.wgsl", PgdStepParams);
wgsl_kernel!(SaadLossTerms, "saad_loss_terms.wgsl", SaadLossParams);
wgsl_kernel!(SaadLossReduce, "saad_loss_reduce.wgsl", SaadLossParams);
wgsl_kernel!(SaadLossBackward, "saad_loss_backward.wgsl", SaadLossParams);
wgsl_kernel!(TransferStats, "transfer_stats.wgsl", TransferStatsParams);
wgsl_kernel!(ReluForward, "relu_forward.wgsl", ReluParams);
wgsl_kernel!(ReluBackward, "relu_backward.wgsl", ReluParams);
wgsl_kernel!(SgdStep, "sgd_step.wgsl", SgdStepParams);
wgsl_kernel!(ScaleShiftActivation, "scale_shift_activation.wgsl", ScaleShiftParams);
wgsl_kernel!(
    ScaleShiftActivationBackward,
    "scale_shift_activation_backward.wgsl",
    ScaleShiftParams
);
wgsl_kernel!(BatchNormRunning, "batch_norm_running.wgsl", BatchNormRunningParams);
wgsl_kernel!(FoldConvBatchNorm, "fold_conv_batch_norm.wgsl", FoldParams);
wgsl_kernel!(BatchNormStats, "batch_norm_stats.wgsl", BatchNormParams);
wgsl_kernel!(BatchNormForward, "batch_norm_forward.wgsl", BatchNormParams);
wgsl_kernel!(BatchNormBackwardReduce, "batch_norm_backward_reduce.wgsl", BatchNormParams);
wgsl_kernel!(BatchNormBackward, "batch_norm_backward.wgsl", BatchNormParams);
wgsl_kernel!(ConvForward, "conv_forward.wgsl", ConvParams, "conv_tiles.wgsl");
wgsl_kernel!(ConvBackwardData, "conv_backward_data.wgsl", ConvParams, "conv_tiles.wgsl");
wgsl_kernel!(ConvBackwardWeight, "conv_backward_weight.wgsl", ConvParams, "conv_tiles.wgsl");

/// A 1-D launch over `n` invocations, folded into 2-D past WebGPU's 65535 workgroups per axis;
/// returns the count and the workgroups along x.
fn grid(n: usize) -> (CubeCount, u32) {
    let groups = (n as u32).div_ceil(WORKGROUP).max(1);
    let x = groups.min(65535);
    (CubeCount::Static(x, groups.div_ceil(x), 1), x)
}

fn f32_contiguous(t: CubeTensor) -> CubeTensor {
    assert_eq!(t.dtype, DType::F32, "saad kernels take f32 tensors");
    into_contiguous(t)
}

/// The kernels' inputs, contiguous and in distinct memory. Every binding is read_write (see
/// the shaders), and WebGPU rejects a dispatch that binds one memory range writable twice
/// (Chromium: "writable storage buffer binding aliasing"; the dispatch is dropped and the
/// output is garbage), which is what a caller passing the same tensor twice would do: FGSM
/// steps from x itself, transfer statistics without a student pass the teacher twice. Native
/// Vulkan does not check, so such an input is copied on every backend.
fn kernel_inputs<const N: usize>(tensors: [CubeTensor; N]) -> [CubeTensor; N] {
    let mut out: Vec<CubeTensor> = Vec::with_capacity(N);
    for t in tensors.map(f32_contiguous) {
        let shared = out
            .iter()
            .any(|o| std::ptr::eq(o.handle.memory.descriptor(), t.handle.memory.descriptor()));
        out.push(if shared { t.copy() } else { t });
    }
    out.try_into().unwrap_or_else(|_| unreachable!("N tensors in, N out"))
}

/// The axes of `t` from the outermost in memory to the innermost when `t` is dense (its
/// elements fill its memory once, in some axis order: contiguous, or a permutation of a
/// contiguous tensor such as burn's NHWC convolution outputs viewed as NCHW); `None` for a
/// view with gaps, overlaps or broadcast axes. Axes of extent 1 may sit anywhere.
fn dense_order(t: &CubeTensor) -> Option<Vec<usize>> {
    let (shape, strides) = (t.meta.shape(), t.meta.strides());
    let mut order: Vec<usize> = (0..shape.num_dims()).collect();
    order.sort_by(|&a, &b| strides[b].cmp(&strides[a]).then(a.cmp(&b)));
    let mut expected = 1;
    for &axis in order.iter().rev() {
        if shape[axis] != 1 && strides[axis] != expected {
            return None;
        }
        expected *= shape[axis];
    }
    Some(order)
}

/// `t` dense, with its memory order: as it is when it already is, else a contiguous copy.
fn dense(t: CubeTensor) -> (CubeTensor, Vec<usize>) {
    assert_eq!(t.dtype, DType::F32, "saad kernels take f32 tensors");
    match dense_order(&t) {
        Some(order) => (t, order),
        None => {
            let t = into_contiguous(t);
            let order = (0..t.meta.num_dims()).collect();
            (t, order)
        }
    }
}

/// An uninitialised f32 tensor shaped like `like` and laid out in memory in `order` (outermost
/// axis first), so that element i of its buffer is element i of a dense tensor with that order.
fn empty_in_order(like: &CubeTensor, order: &[usize]) -> CubeTensor {
    let shape = like.meta.shape();
    let physical: Vec<usize> = order.iter().map(|&a| shape[a]).collect();
    let out =
        empty_device_dtype(like.client.clone(), like.device.clone(), physical.into(), DType::F32);
    let mut axes = vec![0; order.len()];
    for (position, &axis) in order.iter().enumerate() {
        axes[axis] = position;
    }
    burn_cubecl::ops::permute(out, &axes)
}

/// Where `other` (same shape as `dense`, any strides) holds each element of `dense`, whose
/// memory order is `order` (see [`OperandLayout`]).
fn operand_layout(dense: &CubeTensor, order: &[usize], other: &CubeTensor) -> OperandLayout {
    let (shape, rank) = (dense.meta.shape(), order.len());
    assert_eq!(shape, other.meta.shape(), "two operands of one shape");
    assert!(rank <= 4, "the kernels take tensors of rank 4 or less");
    let pad = 4 - rank;
    let extent = |p: usize| if p < pad { 1 } else { shape[order[p - pad]] as u32 };
    let stride = |p: usize| if p < pad { 0 } else { other.meta.strides()[order[p - pad]] as u32 };
    let same_layout =
        (0..rank).all(|a| shape[a] == 1 || dense.meta.strides()[a] == other.meta.strides()[a]);
    OperandLayout {
        same_layout: same_layout as u32,
        extent_1: extent(1),
        extent_2: extent(2),
        extent_3: extent(3),
        stride_0: stride(0),
        stride_1: stride(1),
        stride_2: stride(2),
        stride_3: stride(3),
    }
}

/// `other`, unless it shares memory with `with`: then a copy (one buffer bound writable twice
/// is refused by WebGPU; see [`kernel_inputs`]).
fn unaliased(other: CubeTensor, with: &CubeTensor) -> CubeTensor {
    if std::ptr::eq(with.handle.memory.descriptor(), other.handle.memory.descriptor()) {
        other.copy()
    } else {
        other
    }
}

/// The product of the extents of the dense `x` (memory order `order`) inside its channel axis
/// (axis 1): element `i` of its memory belongs to channel `(i / channel_inner) % channels`.
fn channel_inner(x: &CubeTensor, order: &[usize]) -> u32 {
    let shape = x.meta.shape();
    let position = order.iter().position(|&a| a == 1).expect("a channel axis");
    order[position + 1..].iter().map(|&a| shape[a]).product::<usize>() as u32
}

/// [`BatchNormParams`] for the dense `x` with memory order `order` (channels on axis 1).
fn batch_norm_params(x: &CubeTensor, order: &[usize], eps: f32) -> BatchNormParams {
    let shape = x.meta.shape();
    let n = shape.num_elements();
    BatchNormParams {
        elements: n as u32,
        groups_x: grid(n).1,
        channels: shape[1] as u32,
        channel_inner: channel_inner(x, order),
        eps,
        dy: OperandLayout::zeroed(),
    }
}

/// [`ScaleShiftParams`] for the dense `x` with memory order `order` (channels on axis 1).
fn scale_shift_params(x: &CubeTensor, order: &[usize], silu: u32) -> ScaleShiftParams {
    let shape = x.meta.shape();
    let n = shape.num_elements();
    ScaleShiftParams {
        elements: n as u32,
        groups_x: grid(n).1,
        channels: shape[1] as u32,
        channel_inner: channel_inner(x, order),
        silu,
        dy: OperandLayout::zeroed(),
    }
}

impl SaadKernels for CubeBackend {
    fn scale_shift_activation(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self> {
        let (x, order) = dense(x);
        let [scale, shift] = kernel_inputs([scale, shift]);
        let (scale, shift) = (unaliased(scale, &x), unaliased(shift, &x));
        assert!(x.meta.num_dims() >= 2, "scale_shift_activation: [batch, channels, ...]");
        let y = empty_in_order(&x, &order);
        let n = x.meta.num_elements();
        if n == 0 {
            return y;
        }
        let client = x.client.clone();
        let params = scale_shift_params(&x, &order, params.silu);
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(ScaleShiftActivation, CubeDim::new_1d(WORKGROUP))),
            grid(n).0,
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                scale.handle.binding(),
                shift.handle.binding(),
                y.handle.clone().binding(),
                params.binding(),
            ]),
        );
        y
    }

    fn scale_shift_activation_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ScaleShiftParams,
    ) -> FloatTensor<Self> {
        let (x, order) = dense(x);
        assert_eq!(grad.dtype, DType::F32, "saad kernels take f32 tensors");
        let [scale, shift] = kernel_inputs([scale, shift]);
        let (scale, shift) = (unaliased(scale, &x), unaliased(shift, &x));
        let grad = unaliased(grad, &x);
        let dx = empty_in_order(&x, &order);
        let n = x.meta.num_elements();
        if n == 0 {
            return dx;
        }
        let client = x.client.clone();
        let params = ScaleShiftParams {
            dy: operand_layout(&x, &order, &grad),
            ..scale_shift_params(&x, &order, params.silu)
        };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(ScaleShiftActivationBackward, CubeDim::new_1d(WORKGROUP))),
            grid(n).0,
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                scale.handle.binding(),
                shift.handle.binding(),
                grad.handle.binding(),
                dx.handle.clone().binding(),
                params.binding(),
            ]),
        );
        dx
    }

    fn batch_norm_running(
        batch_mean: FloatTensor<Self>,
        batch_var: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        count: FloatTensor<Self>,
        params: BatchNormRunningParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [batch_mean, batch_var, running_mean, running_var, count] =
            kernel_inputs([batch_mean, batch_var, running_mean, running_var, count]);
        let channels = batch_mean.meta.num_elements();
        for t in [&batch_var, &running_mean, &running_var] {
            assert_eq!(t.meta.num_elements(), channels, "batch_norm_running: [channels] each");
        }
        assert_eq!(count.meta.num_elements(), 1, "batch_norm_running: one batch count");
        let client = batch_mean.client.clone();
        let device = batch_mean.device.clone();
        let mean_out =
            empty_device_dtype(client.clone(), device.clone(), [channels].into(), DType::F32);
        let var_out = empty_device_dtype(client.clone(), device, [channels].into(), DType::F32);
        if channels == 0 {
            return (mean_out, var_out);
        }
        let params = BatchNormRunningParams { channels: channels as u32, ..params };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(BatchNormRunning, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static((channels as u32).div_ceil(WORKGROUP), 1, 1),
            KernelArguments::new().with_buffers(vec![
                batch_mean.handle.binding(),
                batch_var.handle.binding(),
                running_mean.handle.binding(),
                running_var.handle.binding(),
                count.handle.binding(),
                mean_out.handle.clone().binding(),
                var_out.handle.clone().binding(),
                params.binding(),
            ]),
        );
        (mean_out, var_out)
    }

    fn fold_conv_batch_norm(
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running_mean: FloatTensor<Self>,
        running_var: FloatTensor<Self>,
        params: FoldParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [weight, gamma, beta, running_mean, running_var] =
            kernel_inputs([weight, gamma, beta, running_mean, running_var]);
        let shape = weight.meta.shape().clone();
        assert_eq!(shape.num_dims(), 4, "fold_conv_batch_norm: a [out, in, kh, kw] weight");
        let (outputs, inputs, kernel) = (shape[0], shape[1], shape[2] * shape[3]);
        let n = shape.num_elements();
        let client = weight.client.clone();
        let device = weight.device.clone();
        let folded = empty_in_order(&weight, &[0, 2, 3, 1]);
        let bias = empty_device_dtype(client.clone(), device, [outputs].into(), DType::F32);
        if n == 0 {
            return (folded, bias);
        }
        let (count, gx) = grid(n);
        let params = FoldParams {
            elements: n as u32,
            groups_x: gx,
            outputs: outputs as u32,
            inputs: inputs as u32,
            kernel: kernel as u32,
            ..params
        };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(FoldConvBatchNorm, CubeDim::new_1d(WORKGROUP))),
            count,
            KernelArguments::new().with_buffers(vec![
                weight.handle.binding(),
                gamma.handle.binding(),
                beta.handle.binding(),
                running_mean.handle.binding(),
                running_var.handle.binding(),
                folded.handle.clone().binding(),
                bias.handle.clone().binding(),
                params.binding(),
            ]),
        );
        (folded, bias)
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, order) = dense(x);
        let [gamma, beta] = kernel_inputs([gamma, beta]);
        let (gamma, beta) = (unaliased(gamma, &x), unaliased(beta, &x));
        let shape = x.meta.shape().clone();
        assert!(shape.num_dims() >= 2, "batch_norm_train: [batch, channels, ...]");
        let channels = shape[1];
        assert!(channels <= 65535, "batch_norm_train: one workgroup per channel, at most 65535");
        let n = shape.num_elements();
        let client = x.client.clone();
        let device = x.device.clone();
        let mean =
            empty_device_dtype(client.clone(), device.clone(), [channels].into(), DType::F32);
        let variance = empty_device_dtype(client.clone(), device, [channels].into(), DType::F32);
        let y = empty_in_order(&x, &order);
        if n == 0 {
            return (y, mean, variance);
        }
        let params = batch_norm_params(&x, &order, params.eps);
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(BatchNormStats, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static(channels as u32, 1, 1),
            KernelArguments::new().with_buffers(vec![
                x.handle.clone().binding(),
                mean.handle.clone().binding(),
                variance.handle.clone().binding(),
                params.clone().binding(),
            ]),
        );
        client.launch(
            Box::new(SourceKernel::new(BatchNormForward, CubeDim::new_1d(WORKGROUP))),
            grid(n).0,
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                mean.handle.clone().binding(),
                variance.handle.clone().binding(),
                gamma.handle.binding(),
                beta.handle.binding(),
                y.handle.clone().binding(),
                params.binding(),
            ]),
        );
        (y, mean, variance)
    }

    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: BatchNormParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, order) = dense(x);
        assert_eq!(grad.dtype, DType::F32, "saad kernels take f32 tensors");
        let [gamma, mean, variance] = kernel_inputs([gamma, mean, variance]);
        let grad = unaliased(grad, &x);
        let shape = x.meta.shape().clone();
        let channels = shape[1];
        let n = shape.num_elements();
        let client = x.client.clone();
        let device = x.device.clone();
        let empty = |len: usize| {
            empty_device_dtype(client.clone(), device.clone(), [len].into(), DType::F32)
        };
        let (gamma_grad, beta_grad, coef) = (empty(channels), empty(channels), empty(4 * channels));
        let dx = empty_in_order(&x, &order);
        if n == 0 {
            return (dx, gamma_grad, beta_grad);
        }
        let params = BatchNormParams {
            dy: operand_layout(&x, &order, &grad),
            ..batch_norm_params(&x, &order, params.eps)
        };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(BatchNormBackwardReduce, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static(channels as u32, 1, 1),
            KernelArguments::new().with_buffers(vec![
                x.handle.clone().binding(),
                grad.handle.clone().binding(),
                mean.handle.binding(),
                variance.handle.binding(),
                gamma_grad.handle.clone().binding(),
                beta_grad.handle.clone().binding(),
                coef.handle.clone().binding(),
                params.clone().binding(),
            ]),
        );
        client.launch(
            Box::new(SourceKernel::new(BatchNormBackward, CubeDim::new_1d(WORKGROUP))),
            grid(n).0,
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                grad.handle.binding(),
                coef.handle.binding(),
                gamma.handle.binding(),
                dx.handle.clone().binding(),
                params.binding(),
            ]),
        );
        (dx, gamma_grad, beta_grad)
    }

    fn sgd_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        params: SgdStepParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [param, grad] = kernel_inputs([param, grad]);
        let shape = param.meta.shape().clone();
        let n = shape.num_elements();
        assert_eq!(grad.meta.shape(), &shape, "sgd_step: parameter and gradient shapes");
        let client = param.client.clone();
        let device = param.device.clone();
        // The first step has no velocity: bind a one-element placeholder the kernel skips.
        let velocity = if params.has_velocity != 0 {
            assert_eq!(velocity.meta.shape(), &shape, "sgd_step: parameter and velocity shapes");
            let [velocity] = kernel_inputs([velocity]);
            velocity
        } else {
            empty_device_dtype(client.clone(), device.clone(), [1].into(), DType::F32)
        };
        let param_out =
            empty_device_dtype(client.clone(), device.clone(), shape.clone(), DType::F32);
        let velocity_out = empty_device_dtype(client.clone(), device, shape, DType::F32);
        if n == 0 {
            return (param_out, velocity_out);
        }
        let (count, gx) = grid(n);
        let params = SgdStepParams { elements: n as u32, groups_x: gx, ..params };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(SgdStep, CubeDim::new_1d(WORKGROUP))),
            count,
            KernelArguments::new().with_buffers(vec![
                param.handle.binding(),
                grad.handle.binding(),
                velocity.handle.binding(),
                param_out.handle.clone().binding(),
                velocity_out.handle.clone().binding(),
                params.binding(),
            ]),
        );
        (param_out, velocity_out)
    }

    fn relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, order) = dense(x);
        let n = x.meta.num_elements();
        let out = empty_in_order(&x, &order);
        if n == 0 {
            return out;
        }
        let client = x.client.clone();
        let (count, gx) = grid(n);
        let params = ReluParams { elements: n as u32, groups_x: gx, ..ReluParams::zeroed() };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(ReluForward, CubeDim::new_1d(WORKGROUP))),
            count,
            KernelArguments::new().with_buffers(vec![
                x.handle.binding(),
                out.handle.clone().binding(),
                params.binding(),
            ]),
        );
        out
    }

    fn relu_backward(output: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let (y, order) = dense(output);
        assert_eq!(grad.dtype, DType::F32, "saad kernels take f32 tensors");
        let grad = unaliased(grad, &y);
        let n = y.meta.num_elements();
        let dx = empty_in_order(&y, &order);
        if n == 0 {
            return dx;
        }
        let client = y.client.clone();
        let (count, gx) = grid(n);
        let params =
            ReluParams { elements: n as u32, groups_x: gx, dy: operand_layout(&y, &order, &grad) };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        client.launch(
            Box::new(SourceKernel::new(ReluBackward, CubeDim::new_1d(WORKGROUP))),
            count,
            KernelArguments::new().with_buffers(vec![
                y.handle.binding(),
                grad.handle.binding(),
                dx.handle.clone().binding(),
                params.binding(),
            ]),
        );
        dx
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
            kernel_inputs([x_adv, grad, x, eps, alpha, active]);
        let shape = x_adv.meta.shape().clone();
        let n = shape.num_elements();
        let per_sample = n / shape[0].max(1);
        let client = x_adv.client.clone();
        let out = empty_device_dtype(client.clone(), x_adv.device.clone(), shape, DType::F32);
        let (count, gx) = grid(n);
        let params =
            PgdStepParams { elements: n as u32, per_sample: per_sample as u32, groups_x: gx };
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        let args = KernelArguments::new().with_buffers(vec![
            x_adv.handle.binding(),
            grad.handle.binding(),
            x.handle.binding(),
            eps.handle.binding(),
            alpha.handle.binding(),
            active.handle.binding(),
            out.handle.clone().binding(),
            params.binding(),
        ]);
        client.launch(
            Box::new(SourceKernel::new(PgdStep, CubeDim::new_1d(WORKGROUP))),
            count,
            args,
        );
        out
    }

    fn saad_loss(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [teacher, student] = kernel_inputs([teacher, student]);
        let shape = student.meta.shape().clone();
        let (b, c) = (shape[1], shape[2]);
        assert_eq!([params.batch, params.classes], [b as u32, c as u32], "SaadLossParams' shape");
        let client = student.client.clone();
        let device = student.device.clone();
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        let terms = empty_device_dtype(client.clone(), device.clone(), [b, 4].into(), DType::F32);
        let out =
            empty_device_dtype(client.clone(), device.clone(), [2 * b + 1].into(), DType::F32);
        client.launch(
            Box::new(SourceKernel::new(SaadLossTerms, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static((b as u32).div_ceil(WORKGROUP), 1, 1),
            KernelArguments::new().with_buffers(vec![
                teacher.handle.binding(),
                student.handle.binding(),
                params.clone().binding(),
                terms.handle.clone().binding(),
            ]),
        );
        client.launch(
            Box::new(SourceKernel::new(SaadLossReduce, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static(1, 1, 1),
            KernelArguments::new().with_buffers(vec![
                terms.handle.binding(),
                params.binding(),
                out.handle.clone().binding(),
            ]),
        );
        #[allow(clippy::single_range_in_vec_init)] // one range per dimension
        let loss = burn_cubecl::kernel::slice(out.clone(), &[2 * b..2 * b + 1]);
        (loss, out)
    }

    fn saad_loss_backward(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        upstream: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> FloatTensor<Self> {
        let [teacher, student, weights, upstream] =
            kernel_inputs([teacher, student, weights, upstream]);
        let shape = student.meta.shape().clone();
        let (b, c) = (shape[1], shape[2]);
        assert_eq!([params.batch, params.classes], [b as u32, c as u32], "SaadLossParams' shape");
        let client = student.client.clone();
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        let grad = empty_device_dtype(client.clone(), student.device.clone(), shape, DType::F32);
        client.launch(
            Box::new(SourceKernel::new(SaadLossBackward, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static((b as u32).div_ceil(WORKGROUP), 1, 1),
            KernelArguments::new().with_buffers(vec![
                teacher.handle.binding(),
                student.handle.binding(),
                weights.handle.binding(),
                params.binding(),
                upstream.handle.binding(),
                grad.handle.clone().binding(),
            ]),
        );
        grad
    }

    fn transfer_stats(
        teacher_adv: FloatTensor<Self>,
        student_adv: FloatTensor<Self>,
        labels: FloatTensor<Self>,
        params: TransferStatsParams,
    ) -> FloatTensor<Self> {
        let [teacher, student, labels] = kernel_inputs([teacher_adv, student_adv, labels]);
        let shape = teacher.meta.shape().clone();
        let (b, c) = (shape[0], shape[1]);
        assert_eq!(
            [params.batch, params.classes],
            [b as u32, c as u32],
            "TransferStatsParams' shape"
        );
        let client = teacher.client.clone();
        let device = teacher.device.clone();
        let params = client.create_from_slice(bytemuck::bytes_of(&params));
        let scratch = empty_device_dtype(client.clone(), device.clone(), [b].into(), DType::F32);
        let sums = empty_device_dtype(client.clone(), device, [sums::LEN].into(), DType::F32);
        client.launch(
            Box::new(SourceKernel::new(TransferStats, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static(1, 1, 1),
            KernelArguments::new().with_buffers(vec![
                teacher.handle.binding(),
                student.handle.binding(),
                labels.handle.binding(),
                params.binding(),
                scratch.handle.binding(),
                sums.handle.clone().binding(),
            ]),
        );
        sums
    }
}

/// The WGSL files that are not kernels themselves but appended to several (a shared entry
/// point).
pub const SHARED_WGSL_FILES: [&str; 1] = ["conv_tiles.wgsl"];

/// Every kernel's complete WGSL (the file with its parameter struct and the shared constants
/// appended), by file name: what wgpu compiles, for validation.
pub fn wgsl_sources() -> Vec<(&'static str, String)> {
    vec![
        ("pgd_step.wgsl", PgdStep.source().complete()),
        ("saad_loss_terms.wgsl", SaadLossTerms.source().complete()),
        ("saad_loss_reduce.wgsl", SaadLossReduce.source().complete()),
        ("saad_loss_backward.wgsl", SaadLossBackward.source().complete()),
        ("transfer_stats.wgsl", TransferStats.source().complete()),
        ("relu_forward.wgsl", ReluForward.source().complete()),
        ("relu_backward.wgsl", ReluBackward.source().complete()),
        ("sgd_step.wgsl", SgdStep.source().complete()),
        ("fold_conv_batch_norm.wgsl", FoldConvBatchNorm.source().complete()),
        ("batch_norm_running.wgsl", BatchNormRunning.source().complete()),
        ("scale_shift_activation.wgsl", ScaleShiftActivation.source().complete()),
        ("scale_shift_activation_backward.wgsl", ScaleShiftActivationBackward.source().complete()),
        ("batch_norm_stats.wgsl", BatchNormStats.source().complete()),
        ("batch_norm_forward.wgsl", BatchNormForward.source().complete()),
        ("batch_norm_backward_reduce.wgsl", BatchNormBackwardReduce.source().complete()),
        ("batch_norm_backward.wgsl", BatchNormBackward.source().complete()),
        ("conv_forward.wgsl", ConvForward.source().complete()),
        ("conv_backward_data.wgsl", ConvBackwardData.source().complete()),
        ("conv_backward_weight.wgsl", ConvBackwardWeight.source().complete()),
    ]
}

/// The tiled convolution kernels (`conv_*.wgsl` over `conv_tiles.wgsl`): the output tile of one
/// workgroup, and the smallest depth a split-K slice gets.
mod conv_tiles {
    /// Rows and columns of a workgroup's output tile.
    pub const TILE: usize = 64;
    /// Depth added per workgroup step.
    pub const TILE_K: usize = 16;
    /// Below this depth per slice, more slices cost more in partial results than they gain.
    pub const MIN_SPLIT_DEPTH: usize = 256;
    /// Workgroups a weight gradient is cut into slices to reach (a few per compute unit of a
    /// large GPU), at most [`MAX_SPLITS`] slices.
    pub const TARGET_WORKGROUPS: usize = 512;
    /// Most slices of one weight gradient.
    pub const MAX_SPLITS: usize = 64;
}

fn strides4(t: &CubeTensor) -> Strides4 {
    let s = t.meta.strides();
    assert_eq!(s.len(), 4, "the convolution kernels take 4-D tensors");
    let u = |i: usize| u32::try_from(s[i]).expect("a stride that fits in 32 bits");
    Strides4 { s0: u(0), s1: u(1), s2: u(2), s3: u(3) }
}

/// [`ConvParams`] of a convolution of `x` `[n, c, h, w]` by a `[o, c, kh, kw]` weight (the sizes
/// only; the strides and the product's shape are the caller's).
fn conv_params(
    x: [usize; 4],
    weight: [usize; 4],
    stride: [usize; 2],
    pad: [usize; 2],
) -> ConvParams {
    let [n, c, h, w] = x;
    let [o, ci, kh, kw] = weight;
    assert_eq!(c, ci, "tiled convolution: the input has {c} channels, the weight {ci}");
    assert!(stride[0] > 0 && stride[1] > 0, "tiled convolution: a zero stride");
    let (hp, wp) = (h + 2 * pad[0], w + 2 * pad[1]);
    assert!(
        hp >= kh && wp >= kw,
        "tiled convolution: a {kh}x{kw} kernel on a padded {hp}x{wp} input"
    );
    let u = |v: usize| u32::try_from(v).expect("a convolution size that fits in 32 bits");
    ConvParams {
        batch: u(n),
        in_channels: u(c),
        in_h: u(h),
        in_w: u(w),
        out_channels: u(o),
        kernel_h: u(kh),
        kernel_w: u(kw),
        out_h: u((hp - kh) / stride[0] + 1),
        out_w: u((wp - kw) / stride[1] + 1),
        stride_h: u(stride[0]),
        stride_w: u(stride[1]),
        pad_h: u(pad[0]),
        pad_w: u(pad[1]),
        ..ConvParams::zeroed()
    }
}

/// The launch of a `[m, n]` product in tiles, `splits` slices of the depth along z.
fn conv_grid(params: &ConvParams, splits: usize) -> CubeCount {
    let rows = (params.gemm_m as usize).div_ceil(conv_tiles::TILE);
    let cols = (params.gemm_n as usize).div_ceil(conv_tiles::TILE);
    assert!(
        rows <= 65535 && cols <= 65535,
        "tiled convolution: a {}x{} product has more tiles than one launch takes",
        params.gemm_m,
        params.gemm_n
    );
    CubeCount::Static(cols as u32, rows as u32, splits as u32)
}

impl super::tiled_conv::TiledConv for CubeBackend {
    fn tiled_conv2d(
        x: CubeTensor,
        weight: CubeTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> CubeTensor {
        tiled_conv2d(x, weight, None, [stride_h, stride_w], [pad_h, pad_w])
    }

    fn tiled_conv2d_bias(
        x: CubeTensor,
        weight: CubeTensor,
        bias: CubeTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> CubeTensor {
        tiled_conv2d(x, weight, Some(bias), [stride_h, stride_w], [pad_h, pad_w])
    }
}

/// `conv_forward.wgsl`: `conv2d(x, weight) + bias`, the output NHWC in memory.
pub(super) fn tiled_conv2d(
    x: CubeTensor,
    weight: CubeTensor,
    bias: Option<CubeTensor>,
    stride: [usize; 2],
    pad: [usize; 2],
) -> CubeTensor {
    assert!(x.dtype == DType::F32 && weight.dtype == DType::F32, "saad kernels take f32 tensors");
    let mut params =
        conv_params(x.meta.shape().dims::<4>(), weight.meta.shape().dims::<4>(), stride, pad);
    let (n, o) = (params.batch as usize, params.out_channels as usize);
    let (ho, wo) = (params.out_h as usize, params.out_w as usize);
    let client = x.client.clone();
    let y = empty_device_dtype(client.clone(), x.device.clone(), [n, ho, wo, o].into(), DType::F32);
    let m = n * ho * wo;
    if m * o == 0 {
        return burn_cubecl::ops::permute_nhwc_to_nchw(y);
    }
    let weight = unaliased(weight, &x);
    let bias = bias.map(|b| unaliased(f32_contiguous(b), &x));
    let k = params.in_channels * params.kernel_h * params.kernel_w;
    params.has_bias = bias.is_some() as u32;
    params.gemm_m = m as u32;
    params.gemm_n = o as u32;
    params.gemm_k = k;
    params.k_per_split = k;
    params.x = strides4(&x);
    params.w = strides4(&weight);
    // No bias: a 4-byte stand-in for the binding, never read.
    let bias = match bias {
        Some(b) => b.handle.binding(),
        None => client.create_from_slice(&[0u8; 4]).binding(),
    };
    let count = conv_grid(&params, 1);
    let params = client.create_from_slice(bytemuck::bytes_of(&params));
    client.launch(
        Box::new(SourceKernel::new(ConvForward, CubeDim::new_2d(16, 16))),
        count,
        KernelArguments::new().with_buffers(vec![
            x.handle.binding(),
            weight.handle.binding(),
            bias,
            y.handle.clone().binding(),
            params.binding(),
        ]),
    );
    burn_cubecl::ops::permute_nhwc_to_nchw(y)
}

/// `conv_backward_data.wgsl`: the input gradient `[n, c, h, w]` (NHWC in memory) of a
/// convolution of an `x_shape` input by `weight`, from the output gradient `dy`.
pub(super) fn tiled_conv2d_backward_data(
    x_shape: [usize; 4],
    weight: CubeTensor,
    dy: CubeTensor,
    stride: [usize; 2],
    pad: [usize; 2],
) -> CubeTensor {
    assert!(weight.dtype == DType::F32 && dy.dtype == DType::F32, "saad kernels take f32 tensors");
    let mut params = conv_params(x_shape, weight.meta.shape().dims::<4>(), stride, pad);
    let [n, c, h, w] = x_shape;
    let client = dy.client.clone();
    let dx = empty_device_dtype(client.clone(), dy.device.clone(), [n, h, w, c].into(), DType::F32);
    let (m, k) = (n * h * w, (params.kernel_h * params.kernel_w * params.out_channels) as usize);
    if m * c == 0 {
        return burn_cubecl::ops::permute_nhwc_to_nchw(dx);
    }
    let weight = unaliased(weight, &dy);
    params.gemm_m = m as u32;
    params.gemm_n = c as u32;
    params.gemm_k = k as u32;
    params.k_per_split = k as u32;
    params.w = strides4(&weight);
    params.dy = strides4(&dy);
    let count = conv_grid(&params, 1);
    let params = client.create_from_slice(bytemuck::bytes_of(&params));
    client.launch(
        Box::new(SourceKernel::new(ConvBackwardData, CubeDim::new_2d(16, 16))),
        count,
        KernelArguments::new().with_buffers(vec![
            dy.handle.binding(),
            weight.handle.binding(),
            dx.handle.clone().binding(),
            params.binding(),
        ]),
    );
    burn_cubecl::ops::permute_nhwc_to_nchw(dx)
}

/// `conv_backward_weight.wgsl`: the weight gradient of a convolution of `x` by a weight shaped
/// and laid out in memory like `weight`, from the output gradient `dy`; laid out as the weight.
/// The depth (batch x output pixels) is cut into slices summed after the kernel when the
/// product alone has too few tiles to fill a GPU.
pub(super) fn tiled_conv2d_backward_weight(
    x: CubeTensor,
    weight: &CubeTensor,
    dy: CubeTensor,
    stride: [usize; 2],
    pad: [usize; 2],
) -> CubeTensor {
    use conv_tiles::*;
    assert!(x.dtype == DType::F32 && dy.dtype == DType::F32, "saad kernels take f32 tensors");
    let shape = weight.meta.shape().dims::<4>();
    let mut params = conv_params(x.meta.shape().dims::<4>(), shape, stride, pad);
    // The gradient in the weight's memory order, or contiguous for a weight that is not dense.
    let order = dense_order(weight).unwrap_or_else(|| (0..4).collect());
    let client = x.client.clone();
    let [o, c, kh, kw] = shape;
    let elements = o * c * kh * kw;
    let k = (params.batch * params.out_h * params.out_w) as usize;
    let physical: Vec<usize> = order.iter().map(|&a| shape[a]).collect();
    let mut axes = [0; 4];
    for (position, &axis) in order.iter().enumerate() {
        axes[axis] = position;
    }
    if elements == 0 || k == 0 {
        let zeros = burn_cubecl::ops::numeric::zeros_client(
            client,
            x.device.clone(),
            physical.into(),
            DType::F32,
        );
        return burn_cubecl::ops::permute(zeros, &axes);
    }
    let dy = unaliased(dy, &x);
    let (m, n) = (o, c * kh * kw);
    let tiles = m.div_ceil(TILE) * n.div_ceil(TILE);
    let most = k.div_ceil(MIN_SPLIT_DEPTH).clamp(1, MAX_SPLITS);
    let wanted = TARGET_WORKGROUPS.div_ceil(tiles).clamp(1, most);
    let per_split = k.div_ceil(wanted).div_ceil(TILE_K) * TILE_K;
    let splits = k.div_ceil(per_split);
    params.gemm_m = m as u32;
    params.gemm_n = n as u32;
    params.gemm_k = k as u32;
    params.k_per_split = per_split as u32;
    params.x = strides4(&x);
    // The strides of a dense tensor in `order`: each axis steps over the extents inside it.
    let inner = |a: usize| axes[a] + 1..4;
    let stride = |a: usize| inner(a).map(|p| physical[p]).product::<usize>() as u32;
    params.w = Strides4 { s0: stride(0), s1: stride(1), s2: stride(2), s3: stride(3) };
    params.dy = strides4(&dy);
    let partial =
        empty_device_dtype(client.clone(), x.device.clone(), [splits, elements].into(), DType::F32);
    let count = conv_grid(&params, splits);
    let params = client.create_from_slice(bytemuck::bytes_of(&params));
    client.launch(
        Box::new(SourceKernel::new(ConvBackwardWeight, CubeDim::new_2d(16, 16))),
        count,
        KernelArguments::new().with_buffers(vec![
            x.handle.binding(),
            dy.handle.binding(),
            partial.handle.clone().binding(),
            params.binding(),
        ]),
    );
    let summed = if splits > 1 { CubeBackend::float_sum_dim(partial, 0) } else { partial };
    let physical = CubeBackend::float_reshape(summed, physical.into());
    burn_cubecl::ops::permute(physical, &axes)
}
