//! 2-D convolution on the flex CPU backend as batched im2col + one large matrix product, forward
//! and backward (native targets).
//!
//! Why: flex's own convolution (burn-flex 0.22.1) multiplies one image at a time, so the deep
//! layers of a CIFAR network (8x8 and 4x4 maps) run matrix products with 64 or 16 columns, and
//! its weight gradient is a convolution of the batch-swapped input by the output gradient whose
//! products have 9 columns: `perf` put most of a ResNet-18 step in gemm's edge microkernels
//! (`bench/NOTES.md`, section 4). Here the columns of a whole chunk of images go into one product:
//!
//! - forward: `Y[O, N] = W[O, K] · cols[K, N]`
//! - input gradient: `dcols[K, N] = Wᵀ[K, O] · dY[O, N]`, then col2im (a scatter-add per plane)
//! - weight gradient: `dWᵀ[K, O] += cols[K, N] · dYᵀ[N, O]`, summed over the chunks
//!
//! with `K = C·kh·kw` in the weight's own order (`[O, C, kh, kw]` is `W[O, K]` as stored) and
//! `N` = images of the chunk x output positions. Every element is computed by one thread in a fixed
//! order, so results are identical from run to run (bit-for-bit resume holds). Checked against
//! burn's convolution and its autodiff gradients in `tests/tests/library/kernels.rs`.

use super::{flex_shifted, flex_winograd};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// The convolution as a custom operation of flex (and of autodiff over flex).
#[backend_extension(Flex: cfg(all()), Autodiff)]
pub trait FlexConv: Backend {
    /// `conv2d(x, weight)` without bias, groups 1, dilation 1, symmetric zero padding.
    fn flex_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self>;
}

/// Images are added to a chunk while its column matrix stays under this many floats (1 MiB, about
/// half a core's L2 cache here): the columns are written and multiplied while still in cache.
/// Measured per ResNet-18 layer against 64 MiB and 4 MiB chunks (bench/NOTES.md, section 4).
const CHUNK_FLOATS: usize = 1 << 18;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) out: [usize; 2],
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: [usize; 2], pad: [usize; 2]) -> Self {
        assert_eq!(x[1], w[1], "flex_conv2d: input has {} channels, weight expects {}", x[1], w[1]);
        let out = |i: usize, k: usize, s: usize, p: usize| {
            (i + 2 * p)
                .checked_sub(k)
                .map(|d| d / s + 1)
                .expect("flex_conv2d: kernel larger than the padded input")
        };
        Self {
            batch: x[0],
            channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: w[0],
            kernel: [w[2], w[3]],
            stride,
            pad,
            out: [out(x[2], w[2], stride[0], pad[0]), out(x[3], w[3], stride[1], pad[1])],
        }
    }

    /// Rows of the column matrix: `C·kh·kw`.
    fn k(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image.
    pub(super) fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }

    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Images per chunk.
    fn chunk(&self) -> usize {
        (CHUNK_FLOATS / (self.k() * self.positions()).max(1)).clamp(1, self.batch.max(1))
    }

    /// The chunks of the batch: first image and number of images (the last may be short).
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (chunk, batch) = (self.chunk(), self.batch);
        (0..batch).step_by(chunk).map(move |b0| (b0, chunk.min(batch - b0)))
    }

    /// Output positions `ox` whose input column `ox·s + j - p` lies inside `[0, width)`.
    fn valid_columns(&self, j: usize) -> std::ops::Range<usize> {
        let (s, p, w, ow) = (self.stride[1], self.pad[1], self.width, self.out[1]);
        let lo = p.saturating_sub(j).div_ceil(s).min(ow);
        let hi = (w + p).saturating_sub(j).div_ceil(s).min(ow);
        lo..hi.max(lo)
    }

    /// The input row of output row `oy` and kernel row `i`, if inside the image.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride[0] + i).checked_sub(self.pad[0]).filter(|&r| r < self.height)
    }
}

/// The column matrix `[K, nb·positions]` of images `b0..b0+nb` (row `(c, i, j)`, column
/// `(image, oy, ox)`), zero where the kernel reads padding.
fn im2col(g: &Geometry, x: &[f32], b0: usize, nb: usize, cols: &mut [f32]) {
    let (n, l, [kh, kw], ow) = (nb * g.positions(), g.positions(), g.kernel, g.out[1]);
    cols[..g.k() * n].par_chunks_mut(n).enumerate().for_each(|(k, row)| {
        let (c, i, j) = (k / (kh * kw), (k / kw) % kh, k % kw);
        let valid = g.valid_columns(j);
        for image in 0..nb {
            let plane = &x[((b0 + image) * g.channels + c) * g.plane()..][..g.plane()];
            for oy in 0..g.out[0] {
                let dst = &mut row[image * l + oy * ow..][..ow];
                let Some(iy) = g.input_row(oy, i) else {
                    dst.fill(0.0);
                    continue;
                };
                let src = &plane[iy * g.width..][..g.width];
                dst[..valid.start].fill(0.0);
                dst[valid.end..].fill(0.0);
                if valid.is_empty() {
                    continue;
                }
                let first = valid.start * g.stride[1] + j - g.pad[1];
                if g.stride[1] == 1 {
                    dst[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
                } else {
                    for (t, ox) in valid.clone().enumerate() {
                        dst[ox] = src[first + t * g.stride[1]];
                    }
                }
            }
        }
    });
}

/// Adds the column gradients `[K, nb·positions]` back into the input gradient of images
/// `b0..b0+nb` (`grad` holds the whole batch). Planes are independent: one thread per plane.
fn col2im(g: &Geometry, dcols: &[f32], b0: usize, nb: usize, grad: &mut [f32]) {
    let (n, l, [kh, kw], ow) = (nb * g.positions(), g.positions(), g.kernel, g.out[1]);
    let planes = &mut grad[b0 * g.channels * g.plane()..(b0 + nb) * g.channels * g.plane()];
    planes.par_chunks_mut(g.plane()).enumerate().for_each(|(p, plane)| {
        let (image, c) = (p / g.channels, p % g.channels);
        for i in 0..kh {
            for j in 0..kw {
                let row = &dcols[((c * kh + i) * kw + j) * n + image * l..][..l];
                let valid = g.valid_columns(j);
                for oy in 0..g.out[0] {
                    let Some(iy) = g.input_row(oy, i) else { continue };
                    let dst = &mut plane[iy * g.width..][..g.width];
                    let src = &row[oy * ow..][..ow];
                    if valid.is_empty() {
                        continue;
                    }
                    let first = valid.start * g.stride[1] + j - g.pad[1];
                    if g.stride[1] == 1 {
                        // Contiguous on both sides: a vectorised add.
                        for (d, v) in
                            dst[first..first + valid.len()].iter_mut().zip(&src[valid.clone()])
                        {
                            *d += *v;
                        }
                    } else {
                        for (t, ox) in valid.clone().enumerate() {
                            dst[first + t * g.stride[1]] += src[ox];
                        }
                    }
                }
            }
        }
    });
}

/// `[batch, rows, positions]` (images `b0..b0+nb`) -> `[rows, nb·positions]`.
fn gather_rows(src: &[f32], rows: usize, l: usize, b0: usize, nb: usize, dst: &mut [f32]) {
    dst[..rows * nb * l].par_chunks_mut(nb * l).enumerate().for_each(|(r, out)| {
        for image in 0..nb {
            out[image * l..][..l].copy_from_slice(&src[((b0 + image) * rows + r) * l..][..l]);
        }
    });
}

/// `[rows, nb·positions]` -> images `b0..b0+nb` of `[batch, rows, positions]`.
fn scatter_rows(src: &[f32], rows: usize, l: usize, b0: usize, nb: usize, dst: &mut [f32]) {
    let n = nb * l;
    dst[b0 * rows * l..(b0 + nb) * rows * l].par_chunks_mut(l).enumerate().for_each(|(p, out)| {
        let (image, r) = (p / rows, p % rows);
        out.copy_from_slice(&src[r * n + image * l..][..l]);
    });
}

/// A matrix operand: its elements and strides (in elements) between rows and between columns.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    pub(super) data: &'a [f32],
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl Operand<'_> {
    fn last_index(&self, rows: usize, cols: usize) -> usize {
        (rows.max(1) - 1) * self.row_stride + (cols.max(1) - 1) * self.col_stride
    }
}

/// `dst[m, n] (row-major) = lhs[m, k] · rhs[k, n]`, or `+=` with `accumulate`; gemm on every
/// core (gemm picks its AVX-512, AVX2 or portable kernels at run time).
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
) {
    matmul_strided(m, n, k, dst, n, accumulate, lhs, rhs, true);
}

/// [`matmul`] with `dst`'s rows `dst_row` floats apart, on every core (`parallel`) or on the
/// calling thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_row: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_row >= n
            && dst.len() >= (m - 1) * dst_row + n
            && lhs.data.len() > lhs.last_index(m, k)
            && rhs.data.len() > rhs.last_index(k, n)
    );
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the assertion above keeps every element gemm reads or writes inside the slices,
    // and rows `dst_row >= n` apart do not overlap; `dst` is borrowed mutably, so it does not
    // alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A flex tensor's shape and f32 values in row-major order (borrowed when it is contiguous).
pub(super) fn values(t: &FlexTensor) -> (Vec<usize>, std::borrow::Cow<'_, [f32]>) {
    let shape = t.layout().shape().to_vec();
    match t.as_slice::<f32>() {
        Some(s) => (shape, std::borrow::Cow::Borrowed(s)),
        None => (
            shape,
            std::borrow::Cow::Owned(
                t.to_contiguous().as_slice::<f32>().expect("contiguous").to_vec(),
            ),
        ),
    }
}

/// A contiguous flex tensor of `shape` holding `data`.
pub(super) fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// The layer as a Winograd F(4x4, 3x3) convolution ([`super::flex_winograd`]) when it is one:
/// 3x3, stride 1, padding at most 2, enough channels both ways.
fn winograd(g: &Geometry) -> Option<flex_winograd::Conv3x3> {
    let fits = g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.pad[0] <= 2
        && g.pad[1] <= 2
        && g.channels.min(g.out_channels) >= flex_winograd::MIN_CHANNELS
        && WINOGRAD_ON.with(|w| w.get());
    fits.then_some(flex_winograd::Conv3x3 {
        batch: g.batch,
        channels: g.channels,
        height: g.height,
        width: g.width,
        out_channels: g.out_channels,
        pad: g.pad,
    })
}

thread_local! {
    /// Whether this thread's 3x3 stride-1 layers take the Winograd path: on, except inside
    /// [`with_winograd`].
    static WINOGRAD_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with the Winograd path on or off on this thread (off: every layer takes the columns
/// convolution), restoring the previous setting afterwards, also when `f` panics. For
/// benchmarks and tests that compare the two; scoped like [`super::with_kernels`].
pub fn with_winograd<R>(on: bool, f: impl FnOnce() -> R) -> R {
    super::with_thread_setting(&WINOGRAD_ON, on, f)
}

fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if let Some(s) = winograd(g) {
        return flex_winograd::forward(&s, x, w);
    }
    if flex_shifted::pays(g, g.out_channels) {
        return flex_shifted::forward(g, x, w);
    }
    let (k, l, o) = (g.k(), g.positions(), g.out_channels);
    let mut y = vec![0.0; g.batch * o * l];
    let mut cols = vec![0.0; k * g.chunk() * l];
    let mut out = vec![0.0; o * g.chunk() * l];
    for (b0, nb) in g.chunks() {
        let n = nb * l;
        im2col(g, x, b0, nb, &mut cols);
        let weights = Operand { data: w, row_stride: k, col_stride: 1 };
        matmul(
            o,
            n,
            k,
            &mut out,
            false,
            weights,
            Operand { data: &cols, row_stride: n, col_stride: 1 },
        );
        scatter_rows(&out, o, l, b0, nb, &mut y);
    }
    y
}

fn input_gradient(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if let Some(s) = winograd(g) {
        return flex_winograd::input_gradient(&s, w, dy);
    }
    if flex_shifted::pays(g, g.channels) {
        return flex_shifted::input_gradient(g, w, dy);
    }
    let (k, l, o) = (g.k(), g.positions(), g.out_channels);
    let mut dx = vec![0.0; g.batch * g.channels * g.plane()];
    let mut dcols = vec![0.0; k * g.chunk() * l];
    let mut dout = vec![0.0; o * g.chunk() * l];
    for (b0, nb) in g.chunks() {
        let n = nb * l;
        gather_rows(dy, o, l, b0, nb, &mut dout);
        let weights_t = Operand { data: w, row_stride: 1, col_stride: k };
        matmul(
            k,
            n,
            o,
            &mut dcols,
            false,
            weights_t,
            Operand { data: &dout, row_stride: n, col_stride: 1 },
        );
        col2im(g, &dcols, b0, nb, &mut dx);
    }
    dx
}

fn weight_gradient(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if flex_shifted::pays(g, g.out_channels) {
        return flex_shifted::weight_gradient(g, x, dy);
    }
    let (k, l, o) = (g.k(), g.positions(), g.out_channels);
    // The transposed gradient `dWᵀ[K, O] = cols[K, N] · dYᵀ[N, O]`, summed over the chunks: gemm
    // then reads the column matrix along its rows. Asked for `dW = dY · colsᵀ` instead, it
    // packs the columns across their rows, `N` floats apart (4 KiB for a 32x32 image), and
    // ResNet-18's first-stage weight gradients took 2.2x as long (bench/NOTES.md section 14).
    let mut dw_t = vec![0.0; k * o];
    let mut cols = vec![0.0; k * g.chunk() * l];
    let mut dout = vec![0.0; o * g.chunk() * l];
    for (b0, nb) in g.chunks() {
        let n = nb * l;
        im2col(g, x, b0, nb, &mut cols);
        gather_rows(dy, o, l, b0, nb, &mut dout);
        matmul(
            k,
            o,
            n,
            &mut dw_t,
            b0 > 0,
            Operand { data: &cols, row_stride: n, col_stride: 1 },
            Operand { data: &dout, row_stride: 1, col_stride: n },
        );
    }
    let mut dw = vec![0.0; o * k];
    for (kk, row) in dw_t.chunks_exact(o).enumerate() {
        for (oc, &value) in row.iter().enumerate() {
            dw[oc * k + kk] = value;
        }
    }
    dw
}

impl FlexConv for Flex {
    fn flex_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FlexTensor {
        let (xs, xv) = values(&x);
        let (ws, wv) = values(&weight);
        let g = Geometry::new(&xs, &ws, [stride_h, stride_w], [pad_h, pad_w]);
        tensor(forward(&g, &xv, &wv), [g.batch, g.out_channels, g.out[0], g.out[1]])
    }
}

/// The convolution's graph node: parents input and weight.
#[derive(Debug)]
struct ConvNode;

impl Backward<Flex, 2> for ConvNode {
    /// Input, weight and the sizes of the forward pass.
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, w, g) = ops.state;
        let (xs, ws) = (
            [g.batch, g.channels, g.height, g.width],
            [g.out_channels, g.channels, g.kernel[0], g.kernel[1]],
        );
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            |dy| tensor(input_gradient(&g, &values(&w).1, &values(&dy).1), xs),
            |dy| tensor(weight_gradient(&g, &values(&x).1, &values(&dy).1), ws),
        );
    }
}

impl<C: CheckpointStrategy> FlexConv for Autodiff<Flex, C> {
    fn flex_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride_h: usize,
        stride_w: usize,
        pad_h: usize,
        pad_w: usize,
    ) -> FloatTensor<Self> {
        let (x_p, w_p) = (x.primitive().clone(), weight.primitive().clone());
        let g = Geometry::new(
            x_p.layout().shape(),
            w_p.layout().shape(),
            [stride_h, stride_w],
            [pad_h, pad_w],
        );
        let y = Flex::flex_conv2d(x_p.clone(), w_p.clone(), stride_h, stride_w, pad_h, pad_w);
        match ConvNode.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x_p, w_p, g), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `conv.forward(x)` through [`FlexConv`] when it applies (a flex device, f32, groups 1,
/// dilation 1, symmetric padding); `None` otherwise, and when the project's kernels are turned
/// off ([`super::with_kernels`]).
pub fn try_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    if !super::on_flex(&x.device()) {
        return None;
    }
    let pad = super::project_conv_padding(conv, x)?;
    Some(super::add_conv_bias(conv2d(x.clone(), conv.weight.val(), conv.stride, pad), conv))
}

/// The convolution of [`FlexConv`] on flex tensors (no bias).
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: [usize; 2], pad: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FlexConv>::flex_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride[0],
        stride[1],
        pad[0],
        pad[1],
    ))
}
