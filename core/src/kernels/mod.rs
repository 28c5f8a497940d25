//! The WGSL kernels (`shaders/*.wgsl`) as burn custom operations on the wgpu backend (Vulkan,
//! Metal, DX12 and the browser's WebGPU all run WGSL), each with a twin in plain tensor ops that
//! every other backend (flex) runs: same function, same results. The public functions here pick
//! the kernel on a cubecl (wgpu) device and the twin elsewhere; `Route` forces either, for tests
//! and benchmarks.

mod autodiff;
mod cube;
pub mod params;
pub mod twins;

pub use cube::wgsl_sources;
#[cfg(not(target_arch = "wasm32"))]
pub mod flex_conv;
pub mod gemm_conv;

use crate::losses::saad::{SaadLogits, SaadLossConfig, SaadWeighting, saad_outer_loss_and_weights};
use crate::losses::transfer_stats::TransferBatch;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::Tensor;
use params::{SaadLossParams, TransferStatsParams};

/// The custom operations. Only the cubecl backend (and autodiff over it) implements them; the
/// wrappers below never route another backend here.
#[backend_extension(Cube: cfg(all()), Autodiff)]
pub trait SaadKernels: Backend {
    /// `pgd_step.wgsl`: see [`pgd_update`].
    fn pgd_step(
        x_adv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        x: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
        active: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `saad_loss_terms.wgsl` + `saad_loss_reduce.wgsl`: the SAAD batch loss `[1]` and the
    /// weights `[w (batch), w^ (batch), loss]` from logits stacked `[3, batch, classes]`.
    fn saad_loss(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `saad_loss_backward.wgsl`: d loss / d student logits, `[3, batch, classes]`.
    fn saad_loss_backward(
        teacher: FloatTensor<Self>,
        student: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        upstream: FloatTensor<Self>,
        params: SaadLossParams,
    ) -> FloatTensor<Self>;

    /// `transfer_stats.wgsl`: the transfer sums of one batch (see [`transfer_sums`]).
    fn transfer_stats(
        teacher_adv: FloatTensor<Self>,
        student_adv: FloatTensor<Self>,
        labels: FloatTensor<Self>,
        params: TransferStatsParams,
    ) -> FloatTensor<Self>;
}

thread_local! {
    /// Whether this thread uses the project's kernels: on, except inside [`with_kernels`].
    static KERNELS_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with the project's own kernels on or off on this thread (off: the tensor-op twins
/// and burn's convolutions), restoring the previous setting afterwards, also when `f` panics.
/// For comparing results with and without them; scoped to the caller, so a test or a benchmark
/// that turns them off cannot leak the setting into another thread's work.
pub fn with_kernels<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            KERNELS_ON.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(KERNELS_ON.with(|k| k.replace(on)));
    f()
}

/// Which implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The WGSL kernel on a wgpu device, the tensor-op twin elsewhere.
    Auto,
    /// Always the tensor-op twin.
    TensorOps,
    /// Always the kernel (panics off wgpu).
    Kernel,
}

/// Whether a device runs our WGSL kernels (a cubecl device compiling WGSL: wgpu / WebGPU).
pub fn has_kernels(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Cube(_)
    )
}

/// Whether the project's own kernels (WGSL, the CPU convolution of [`flex_conv`] and the
/// wgpu convolution of [`gemm_conv`]) are on.
pub fn kernels_enabled() -> bool {
    KERNELS_ON.with(|k| k.get())
}

/// A layer's padding as the project's convolutions take it: symmetric `[rows, columns]`, or
/// `None` for anything else (`Same`, asymmetric), which is left to burn.
pub(crate) fn symmetric_padding(conv: &burn::nn::conv::Conv2d) -> Option<[usize; 2]> {
    match conv.padding {
        burn::nn::PaddingConfig2d::Valid => Some([0, 0]),
        burn::nn::PaddingConfig2d::Explicit(top, left, bottom, right)
            if top == bottom && left == right =>
        {
            Some([top, left])
        }
        _ => None,
    }
}

/// Adds a layer's bias, if it has one, to a convolution's output, as burn's convolution does.
pub(crate) fn add_conv_bias(y: Tensor<4>, conv: &burn::nn::conv::Conv2d) -> Tensor<4> {
    match &conv.bias {
        Some(bias) => {
            let o = bias.dims()[0];
            y + bias.val().reshape([1, o, 1, 1])
        }
        None => y,
    }
}

fn use_kernel(route: Route, device: &Device) -> bool {
    match route {
        Route::Auto => kernels_enabled() && has_kernels(device),
        Route::TensorOps => false,
        Route::Kernel => true,
    }
}

/// The projected signed-gradient step with per-sample `eps`, `alpha` and `active` (`[batch]`,
/// 1 = step, 0 = keep the sample as it is):
/// `x' = active ? clip_[0,1](clip_[x-eps, x+eps](x_adv + alpha * sign(grad))) : x_adv`.
pub fn pgd_update(
    route: Route,
    x_adv: Tensor<4>,
    grad: Tensor<4>,
    x: &Tensor<4>,
    eps: Tensor<1>,
    alpha: Tensor<1>,
    active: Tensor<1>,
) -> Tensor<4> {
    if use_kernel(route, &x_adv.device()) {
        return Tensor::from_dispatch(<burn::backend::Dispatch as SaadKernels>::pgd_step(
            x_adv.into_dispatch(),
            grad.into_dispatch(),
            x.clone().into_dispatch(),
            eps.into_dispatch(),
            alpha.into_dispatch(),
            active.into_dispatch(),
        ));
    }
    let [b, c, h, w] = x_adv.dims();
    let per = |t: Tensor<1>| t.reshape([b, 1, 1, 1]).expand([b, c, h, w]);
    let eps = per(eps);
    let stepped = (x_adv.clone() + grad.sign() * per(alpha))
        .max_pair(x.clone() - eps.clone())
        .min_pair(x.clone() + eps)
        .clamp(0.0, 1.0);
    x_adv.mask_where(per(active).equal_elem(0.0).bool_not(), stepped)
}

/// SAAD's outer loss over a batch and its weights: `loss` `[1]` (the batch mean of
/// [`saad_outer_loss`](crate::losses::saad::saad_outer_loss)), `w` and `w^` `[batch]`. The
/// kernel route computes it in two dispatches and its gradient with respect to the student
/// logits in one.
pub struct SaadLoss {
    /// Batch mean of the outer loss, `[1]`.
    pub loss: Tensor<1>,
    /// SAAD sample weights `w`, `[batch]`, constants (no gradient).
    pub w: Tensor<1>,
    /// The weights normalised by their maximum, `w^`, `[batch]` in [0,1], constants.
    pub w_hat: Tensor<1>,
}

/// [`SaadLoss`] from the six logit tensors `l` (each `[batch, classes]`), computed by the kernel
/// or by the tensor-op twin as `route` picks.
pub fn saad_loss(route: Route, l: &SaadLogits, config: &SaadLossConfig) -> SaadLoss {
    let [b, c] = l.t_plus.dims();
    if use_kernel(route, &l.s_plus.device()) {
        let teacher =
            Tensor::stack::<3>(vec![l.t0.clone(), l.t_plus.clone(), l.t_minus.clone()], 0).detach();
        let student =
            Tensor::stack::<3>(vec![l.s0.clone(), l.s_plus.clone(), l.s_minus.clone()], 0);
        let (loss, weights) = <Dispatch as SaadKernels>::saad_loss(
            teacher.into_dispatch(),
            student.into_dispatch(),
            SaadLossParams {
                batch: b as u32,
                classes: c as u32,
                gamma: config.weighting.gamma as f32,
                scale: config.weighting.scale as f32,
                ig: config.ig as f32,
                beta: config.beta as f32,
            },
        );
        let weights = Tensor::<1>::from_dispatch(weights).detach();
        return SaadLoss {
            loss: Tensor::from_dispatch(loss),
            w: weights.clone().slice(0..b),
            w_hat: weights.slice(b..2 * b),
        };
    }
    let (loss, w, w_hat) = saad_outer_loss_and_weights(l, config);
    SaadLoss { loss: loss.mean(), w, w_hat }
}

/// The transfer sums of one batch ([`TransferBatch::sums`]): samples, teacher fooled, student
/// fooled, student seen, entropy sum and square sum, SAAD weight sum, 10-bin histogram of w^.
pub fn transfer_sums(
    route: Route,
    teacher_adv: Tensor<2>,
    student_adv: Option<Tensor<2>>,
    labels: Tensor<1, Int>,
    weighting: SaadWeighting,
) -> Tensor<1> {
    let teacher_adv = teacher_adv.detach().without_autodiff();
    if use_kernel(route, &teacher_adv.device()) {
        let [batch, classes] = teacher_adv.dims();
        let params = TransferStatsParams {
            batch: batch as u32,
            classes: classes as u32,
            gamma: weighting.gamma as f32,
            scale: weighting.scale as f32,
            has_student: student_adv.is_some() as u32,
        };
        let student = student_adv
            .map(|s| s.detach().without_autodiff())
            .unwrap_or_else(|| teacher_adv.clone());
        return Tensor::from_dispatch(<Dispatch as SaadKernels>::transfer_stats(
            teacher_adv.into_dispatch(),
            student.into_dispatch(),
            labels.float().into_dispatch(),
            params,
        ));
    }
    TransferBatch::new(teacher_adv, labels.clone(), weighting)
        .sums(student_adv.map(|s| (s, labels)))
}

/// How many distinct kernels `f` launches on cubecl devices (cubecl's launch collector): a lower
/// bound on its dispatches, equal to them when no kernel is launched twice.
pub fn distinct_kernels_launched(f: impl FnOnce()) -> usize {
    let collect = burn_cubecl::cubecl::launched::LaunchedKernels::new();
    f();
    collect.finish().len()
}

/// Counts every kernel launch on cubecl devices while installed (cubecl's launch observer, one
/// per process: a second replaces the first while it lives). On wgpu each launch costs the host
/// its share of burn's and wgpu's work, so launches per training step is what a step's time
/// follows once the kernels themselves are fast (`bench/NOTES.md`, section 5).
pub struct LaunchCounter {
    count: std::sync::Arc<CountLaunches>,
    _observation: burn_cubecl::cubecl::logging::LaunchObservation,
}

/// Launches per kernel name: which operations a step's launches come from.
#[derive(Default)]
struct CountLaunches(std::sync::Mutex<std::collections::HashMap<&'static str, u64>>);

impl burn_cubecl::cubecl::logging::LaunchObserver for CountLaunches {
    fn launched(&self, kernel: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(kernel).or_default() += 1;
    }
}

impl LaunchCounter {
    /// Starts counting.
    pub fn start() -> Self {
        let count = std::sync::Arc::new(CountLaunches::default());
        let _observation = burn_cubecl::cubecl::logging::LaunchObservation::new(count.clone());
        LaunchCounter { count, _observation }
    }

    /// Launches issued since [`LaunchCounter::start`].
    pub fn launches(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Launches since [`LaunchCounter::start`] per kernel name, most launched first (ties by
    /// name); the counts add up to [`LaunchCounter::launches`].
    pub fn by_kernel(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<_> = self.counts().into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }

    fn counts(&self) -> std::collections::HashMap<&'static str, u64> {
        self.count.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
