//! Launching the WGSL sources on the cubecl backend.

use super::SaadKernels;
use super::params::{
    PgdStepParams, SaadLossParams, TransferStatsParams, WORKGROUP, WgslLayout, wgsl_constants,
};
use crate::losses::transfer_stats::sums;
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

/// A WGSL source with the parameter struct it reads and the shared constants
/// ([`wgsl_constants`]) appended (WGSL declarations may come after their use).
macro_rules! wgsl_kernel {
    ($name:ident, $file:literal, $params:ty) => {
        struct $name;
        impl KernelSource for $name {
            fn source(&self) -> SourceTemplate {
                SourceTemplate::new(include_str!(concat!("../../../shaders/", $file)))
                    .add_template(wgsl_constants())
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

impl SaadKernels for CubeBackend {
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

/// Every kernel's complete WGSL (the file with its parameter struct and the shared constants
/// appended), by file name: what wgpu compiles, for validation.
pub fn wgsl_sources() -> Vec<(&'static str, String)> {
    vec![
        ("pgd_step.wgsl", PgdStep.source().complete()),
        ("saad_loss_terms.wgsl", SaadLossTerms.source().complete()),
        ("saad_loss_reduce.wgsl", SaadLossReduce.source().complete()),
        ("saad_loss_backward.wgsl", SaadLossBackward.source().complete()),
        ("transfer_stats.wgsl", TransferStats.source().complete()),
    ]
}
