//! 2-D convolution on the flex CPU backend as a sum of shifted matrix products, without a
//! column matrix ("kn2row", Vasudevan, Anderson & Gregg, "Parallel Multi Channel Convolution
//! using General Matrix Multiplication", ASAP 2017), forward, input gradient and weight
//! gradient.
//!
//! Why: the columns convolution of [`super::flex_conv`] writes every input value `kh·kw` times
//! into its column matrix before multiplying. For layers with few output channels each written
//! value feeds only a few multiply-adds, and a flex AutoAttack run on the demo's small CNN spent
//! 30% of its CPU time in im2col and 7% in col2im (`bench/NOTES.md`, section 17).
//!
//! With the zero-padded input split into its `s x s` stride phases (`P_ab[c, y', x'] =
//! pad(x)[c, s·y' + a, s·x' + b]`), kernel tap `(i, j)` of a stride-`s` convolution reads phase
//! `(i mod s, j mod s)` at the shift `(i div s, j div s)`. Laid out so that one phase's channel is
//! one row over the images of a group (`q = image·plane + y'·Wq + x'`), every tap is one matrix
//! product over a shifted window of those rows:
//!
//! - forward: `Y'[O, q] = Σ_taps W_ij[O, C] · P_ab[C, q + shift_ij]`, then the valid `(y, x)`;
//! - input gradient: `dP_ab[C, q + shift_ij] += W_ijᵀ[C, O] · dY'[O, q]` (zero outside the valid
//!   positions), then each input pixel from its phase;
//! - weight gradient: `dW_ijᵀ[C, O] = P_ab[C, q + shift_ij] · dY'ᵀ[q, O]`, summed over groups.
//!
//! The price is the products' columns at positions that are not outputs (a phase plane is
//! `Hq·Wq` for `ho·wo` outputs): [`pays`] keeps the columns convolution where that waste costs
//! more multiply-adds than the column matrix saves. Every element is summed in a fixed order, so
//! results are identical from run to run. Checked against burn's convolution and its autodiff
//! gradients in `tests/tests/library/kernels.rs`.

use super::flex_conv::{Geometry, Operand, matmul_strided};
use super::flex_tap_sums::{self, TapSum};
use rayon::prelude::*;

/// A group of images is sized so that its phases and products stay under this many floats
/// (1 MiB, about half a core's L2 cache here), like the columns convolution's chunks.
const GROUP_FLOATS: usize = 1 << 18;

/// Groups of the tap sums in registers ([`flex_tap_sums`]): a quarter of that. Their layers have
/// few channels, so the larger groups were 2 or 3 per layer on 2 cores, one core idle for the
/// last (bench/NOTES.md section 18).
const TAP_SUM_GROUP_FLOATS: usize = 1 << 16;

/// The weight gradient sums products over `q`: larger groups, fewer partial sums.
const WEIGHT_GROUP_FLOATS: usize = 1 << 21;

/// Multiply-adds at non-output positions the shifted products may spend per value the column
/// matrix would have written: `(waste - 1) · rows ≤ WASTE_BUDGET`, with `rows` the products'
/// output rows (a written column value feeds that many multiply-adds).
const WASTE_BUDGET: f64 = 24.0;

/// The phase layout of one convolution.
#[derive(Clone, Copy, Debug)]
struct Phases {
    g: Geometry,
    /// Phases along rows and columns: `min(stride, kernel)` (a 1x1 stride-2 kernel reads one).
    count: [usize; 2],
    /// Rows and columns of a phase plane.
    hq: usize,
    wq: usize,
    /// Zeros after each phase row: the largest tap shift.
    margin: usize,
}

impl Phases {
    fn new(g: &Geometry) -> Self {
        let ([sh, sw], [kh, kw]) = (g.stride, g.kernel);
        let hq = (g.height + 2 * g.pad[0]).div_ceil(sh);
        let wq = (g.width + 2 * g.pad[1]).div_ceil(sw);
        Self {
            g: *g,
            count: [sh.min(kh), sw.min(kw)],
            hq,
            wq,
            margin: (kh - 1) / sh * wq + (kw - 1) / sw,
        }
    }

    fn plane(&self) -> usize {
        self.hq * self.wq
    }

    /// Floats of one phase row (one channel of one phase) of a group of `nb` images.
    fn row(&self, nb: usize) -> usize {
        nb * self.plane() + self.margin
    }

    fn phase_rows(&self) -> usize {
        self.count[0] * self.count[1] * self.g.channels
    }

    /// Products' columns per output position.
    fn waste(&self) -> f64 {
        self.plane() as f64 / self.g.positions().max(1) as f64
    }

    /// Images per group so that `floats_per_image` times it stays under `budget`.
    fn group(&self, floats_per_image: usize, budget: usize) -> usize {
        (budget / floats_per_image.max(1)).clamp(1, self.g.batch.max(1))
    }

    /// Images per group of the forward pass and the input gradient, whose groups run in
    /// parallel, and whether gemm should split each product instead (too few groups to keep
    /// every core busy).
    fn parallel_groups(&self, tap_sums: bool) -> (usize, bool) {
        let per_image = (self.phase_rows() + self.g.out_channels) * self.plane();
        let nb = self.group(per_image, if tap_sums { TAP_SUM_GROUP_FLOATS } else { GROUP_FLOATS });
        (nb, self.g.batch.div_ceil(nb) < rayon::current_num_threads())
    }

    /// Each tap `(i, j)`: its index `i·kw + j`, its phase row block and its shift in `q`.
    fn taps(&self) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let ([sh, sw], [kh, kw], [_, pb], wq) = (self.g.stride, self.g.kernel, self.count, self.wq);
        (0..kh * kw).map(move |t| {
            let (i, j) = (t / kw, t % kw);
            (t, (i % sh) * pb + j % sw, (i / sh) * wq + j / sw)
        })
    }

    /// Writes phase row `r` (`phase·C + c`) of images `b0..b0+nb` of `x` into `dst`; with
    /// `zeroed` (a fresh buffer), only the values, leaving the zeros of the padding as they are.
    fn fill_row(&self, x: &[f32], b0: usize, nb: usize, r: usize, dst: &mut [f32], zeroed: bool) {
        let g = &self.g;
        let (phase, c) = (r / g.channels, r % g.channels);
        let (a, b) = (phase / self.count[1], phase % self.count[1]);
        let ([sh, sw], [ph, pw], plane, wq) = (g.stride, g.pad, self.plane(), self.wq);
        // Phase columns x' whose input column s·x' + b - pw lies inside [0, width).
        let lo = pw.saturating_sub(b).div_ceil(sw).min(wq);
        let hi = (g.width + pw).saturating_sub(b).div_ceil(sw).clamp(lo, wq);
        if !zeroed {
            dst.fill(0.0);
        }
        if lo == hi {
            return;
        }
        // Per phase line, the offset of its input values in an input plane, if any. The lines
        // are short (5 to 34 floats here), so what is per line is worked out once.
        let first = lo * sw + b - pw;
        let lines: Vec<Option<usize>> = (0..self.hq)
            .map(|yq| {
                let iy = (yq * sh + a).checked_sub(ph).filter(|&r| r < g.height)?;
                Some(iy * g.width + first)
            })
            .collect();
        let span = (hi - lo - 1) * sw + 1;
        for image in 0..nb {
            let src = &x[((b0 + image) * g.channels + c) * g.plane()..][..g.plane()];
            let out = &mut dst[image * plane..][..plane];
            for (line, &at) in out.chunks_exact_mut(wq).zip(&lines) {
                let Some(at) = at else { continue };
                let (line, src) = (&mut line[lo..hi], &src[at..at + span]);
                match sw {
                    1 => line.copy_from_slice(src),
                    // Pairs of a constant size, which the compiler turns into vector shuffles
                    // (`step_by` stayed one float at a time), then the last value.
                    2 => {
                        let (last, line) = line.split_last_mut().expect("a non-empty line");
                        for (v, pair) in line.iter_mut().zip(src.chunks_exact(2)) {
                            *v = pair[0];
                        }
                        *last = src[span - 1];
                    }
                    _ => {
                        for (v, s) in line.iter_mut().zip(src.iter().step_by(sw)) {
                            *v = *s;
                        }
                    }
                }
            }
        }
    }

    /// `dy` of images `b0..b0+nb` (`[N, O, ho, wo]`) laid out `[O, front + nb·plane]`: `front`
    /// zeros, then each image's phase plane, zero at the positions that are not outputs.
    fn spread_output(&self, dy: &[f32], b0: usize, nb: usize, front: usize, dst: &mut [f32]) {
        let (o, [ho, wo], plane) = (self.g.out_channels, self.g.out, self.plane());
        let stride = front + nb * plane;
        dst[..o * stride].par_chunks_mut(stride).enumerate().for_each(|(oc, row)| {
            row.fill(0.0);
            for image in 0..nb {
                let src = &dy[((b0 + image) * o + oc) * ho * wo..][..ho * wo];
                for (y, line) in src.chunks_exact(wo).enumerate() {
                    row[front + image * plane + y * self.wq..][..wo].copy_from_slice(line);
                }
            }
        });
    }
}

/// Which layers take the shifted products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftedLayers {
    /// Those where they cost fewer multiply-adds than the column matrix saves ([`WASTE_BUDGET`]).
    WherePaying,
    /// Every layer the Winograd path does not take (tests).
    All,
    /// None: the columns convolution (benchmarks and tests that compare the two).
    None,
}

thread_local! {
    static SHIFTED: std::cell::Cell<ShiftedLayers> =
        const { std::cell::Cell::new(ShiftedLayers::WherePaying) };
}

/// Runs `f` with this thread's layers taking the shifted products as `layers` says, restoring
/// the previous setting afterwards, also when `f` panics (like [`super::flex_conv::with_winograd`]).
pub fn with_shifted<R>(layers: ShiftedLayers, f: impl FnOnce() -> R) -> R {
    super::with_thread_setting(&SHIFTED, layers, f)
}

/// Whether this layer takes the shifted products: `out_rows` is the products' output rows (out
/// channels forward and for the weight gradient, in channels for the input gradient).
pub(super) fn pays(g: &Geometry, out_rows: usize) -> bool {
    match SHIFTED.with(|s| s.get()) {
        ShiftedLayers::All => true,
        ShiftedLayers::None => false,
        ShiftedLayers::WherePaying => {
            (Phases::new(g).waste() - 1.0) * out_rows as f64 <= WASTE_BUDGET
        }
    }
}

/// The weights `[O, C, kh, kw]` rearranged `[tap][O][C]`.
fn weights_by_tap(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (o, c, taps) = (g.out_channels, g.channels, g.kernel[0] * g.kernel[1]);
    let mut out = vec![0.0; taps * o * c];
    for (oc_c, kernel) in w.chunks_exact(taps).enumerate() {
        for (t, &v) in kernel.iter().enumerate() {
            out[t * o * c + oc_c] = v;
        }
    }
    out
}

/// The weights `[O, C, kh, kw]` rearranged `[tap][C][O]`: the forward pass's tap sums read the
/// weights of one input row for consecutive output rows.
fn weights_by_tap_and_channel(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (o, c, taps) = (g.out_channels, g.channels, g.kernel[0] * g.kernel[1]);
    let mut out = vec![0.0; taps * c * o];
    for (oc_c, kernel) in w.chunks_exact(taps).enumerate() {
        let (oc, ch) = (oc_c / c, oc_c % c);
        for (t, &v) in kernel.iter().enumerate() {
            out[(t * c + ch) * o + oc] = v;
        }
    }
    out
}

/// The convolution `[N, O, ho, wo]` of `x` (`[N, C, H, W]`) by `w` (`[O, C, kh, kw]`).
pub(super) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let p = Phases::new(g);
    let (c, o, [ho, wo]) = (g.channels, g.out_channels, g.out);
    let mut y = vec![0.0; g.batch * o * ho * wo];
    if y.is_empty() {
        return y;
    }
    let direct = flex_tap_sums::chosen(c);
    let wt = if direct { weights_by_tap_and_channel(g, w) } else { weights_by_tap(g, w) };
    let (nb, inner_parallel) = p.parallel_groups(direct);
    y.par_chunks_mut(nb * o * ho * wo).enumerate().for_each(|(group, y)| {
        let (b0, nb) = (group * nb, y.len() / (o * ho * wo));
        let (row, l) = (p.row(nb), nb * p.plane());
        let mut phases = vec![0.0; p.phase_rows() * row];
        for (r, dst) in phases.chunks_exact_mut(row).enumerate() {
            p.fill_row(x, b0, nb, r, dst, true);
        }
        let mut out = vec![0.0; o * l];
        if direct {
            let offsets: Vec<usize> =
                p.taps().map(|(_, phase, shift)| phase * c * row + shift).collect();
            let sum = TapSum {
                rows: o,
                len: l,
                depth: c,
                offsets: &offsets,
                weights: &wt,
                src: &phases,
                src_stride: row,
            };
            sum.run(&mut out, l, false, inner_parallel);
        } else {
            for (t, phase, shift) in p.taps() {
                matmul_strided(
                    o,
                    l,
                    c,
                    &mut out,
                    l,
                    t > 0,
                    Operand { data: &wt[t * o * c..][..o * c], row_stride: c, col_stride: 1 },
                    Operand {
                        data: &phases[phase * c * row + shift..],
                        row_stride: row,
                        col_stride: 1,
                    },
                    inner_parallel,
                );
            }
        }
        for (plane_index, dst) in y.chunks_exact_mut(ho * wo).enumerate() {
            let (image, oc) = (plane_index / o, plane_index % o);
            let src = &out[oc * l + image * p.plane()..];
            for (yy, line) in dst.chunks_exact_mut(wo).enumerate() {
                line.copy_from_slice(&src[yy * p.wq..][..wo]);
            }
        }
    });
    y
}

/// The input gradient `[N, C, H, W]` of [`forward`] from the output gradient `dy`.
pub(super) fn input_gradient(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let p = Phases::new(g);
    let (c, o) = (g.channels, g.out_channels);
    let ([sh, sw], [ph, pw], [pa, pb]) = (g.stride, g.pad, p.count);
    let mut dx = vec![0.0; g.batch * c * g.plane()];
    if dx.is_empty() {
        return dx;
    }
    let direct = flex_tap_sums::chosen(o);
    let wt = weights_by_tap(g, w);
    // Direct: each phase row gathers `dP[c, q] = Σ_taps W_ijᵀ[c, ·] · dY'[·, q - shift]`, from
    // output rows with `margin` zeros in front (the largest shift). Per phase, its taps' offsets
    // in such a row and their weights `[tap][O][C]`, the same for every group.
    let front = if direct { p.margin } else { 0 };
    let phase_taps: Vec<(Vec<usize>, Vec<f32>)> = if direct {
        let mut per_phase = vec![(Vec::new(), Vec::new()); p.count[0] * p.count[1]];
        for (t, phase, shift) in p.taps() {
            let (offsets, weights): &mut (Vec<usize>, Vec<f32>) = &mut per_phase[phase];
            offsets.push(front - shift);
            weights.extend_from_slice(&wt[t * o * c..][..o * c]);
        }
        per_phase
    } else {
        Vec::new()
    };
    let (nb, inner_parallel) = p.parallel_groups(direct);
    dx.par_chunks_mut(nb * c * g.plane()).enumerate().for_each(|(group, dx)| {
        let (b0, nb) = (group * nb, dx.len() / (c * g.plane()));
        let (row, l) = (p.row(nb), nb * p.plane());
        let mut dphases = vec![0.0; p.phase_rows() * row];
        let mut spread = vec![0.0; o * (front + l)];
        p.spread_output(dy, b0, nb, front, &mut spread);
        if direct {
            let phase_sums = |((offsets, weights), out): (&(Vec<usize>, Vec<f32>), &mut [f32])| {
                let sum = TapSum {
                    rows: c,
                    len: l,
                    depth: o,
                    offsets,
                    weights,
                    src: &spread,
                    src_stride: front + l,
                };
                sum.run(out, row, false, inner_parallel);
            };
            if inner_parallel {
                phase_taps.par_iter().zip(dphases.par_chunks_mut(c * row)).for_each(phase_sums);
            } else {
                phase_taps.iter().zip(dphases.chunks_mut(c * row)).for_each(phase_sums);
            }
        } else {
            for (t, phase, shift) in p.taps() {
                // Rows `row >= l + shift` apart: the shifted windows of two rows never overlap.
                matmul_strided(
                    c,
                    l,
                    o,
                    &mut dphases[phase * c * row + shift..],
                    row,
                    true,
                    Operand { data: &wt[t * o * c..][..o * c], row_stride: 1, col_stride: c },
                    Operand { data: &spread, row_stride: l, col_stride: 1 },
                    inner_parallel,
                );
            }
        }
        for (plane_index, dst) in dx.chunks_exact_mut(g.plane()).enumerate() {
            let (image, ch) = (plane_index / c, plane_index % c);
            for (iy, line) in dst.chunks_exact_mut(g.width).enumerate() {
                let (a, yq) = ((iy + ph) % sh, (iy + ph) / sh);
                if a >= pa {
                    line.fill(0.0);
                    continue;
                }
                if sw == 1 {
                    let src = (a * c + ch) * row + image * p.plane() + yq * p.wq + pw;
                    line.copy_from_slice(&dphases[src..][..g.width]);
                    continue;
                }
                // Input column ix + pw = s·xq + b, stepped without divisions.
                let at = |b: usize| ((a * pb + b) * c + ch) * row + image * p.plane() + yq * p.wq;
                let (mut b, mut xq) = (pw % sw, pw / sw);
                for v in line.iter_mut() {
                    *v = if b < pb { dphases[at(b) + xq] } else { 0.0 };
                    b += 1;
                    if b == sw {
                        (b, xq) = (0, xq + 1);
                    }
                }
            }
        }
    });
    dx
}

/// The weight gradient `[O, C, kh, kw]` of [`forward`] at input `x` from the output gradient `dy`.
pub(super) fn weight_gradient(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let p = Phases::new(g);
    let (c, o, taps) = (g.channels, g.out_channels, g.kernel[0] * g.kernel[1]);
    // dWᵀ per tap, `[tap][C][O]`: the phase rows are the left operand, read along their rows
    // (the operand order of bench/NOTES.md section 14).
    let mut dw_t = vec![0.0; taps * c * o];
    let nb = p.group(p.phase_rows() * p.plane() + o * p.plane(), WEIGHT_GROUP_FLOATS);
    let inner_parallel = taps < rayon::current_num_threads();
    let all_taps: Vec<_> = p.taps().collect();
    let mut phases = Vec::new();
    let mut spread = Vec::new();
    for b0 in (0..g.batch).step_by(nb) {
        let nb = nb.min(g.batch - b0);
        let (row, l) = (p.row(nb), nb * p.plane());
        phases.resize(p.phase_rows() * row, 0.0);
        phases
            .par_chunks_mut(row)
            .enumerate()
            .for_each(|(r, dst)| p.fill_row(x, b0, nb, r, dst, false));
        spread.resize(o * l, 0.0);
        p.spread_output(dy, b0, nb, 0, &mut spread);
        dw_t.par_chunks_mut(c * o).zip(&all_taps).for_each(|(dst, &(_, phase, shift))| {
            matmul_strided(
                c,
                o,
                l,
                dst,
                o,
                b0 > 0,
                Operand {
                    data: &phases[phase * c * row + shift..],
                    row_stride: row,
                    col_stride: 1,
                },
                Operand { data: &spread, row_stride: 1, col_stride: l },
                inner_parallel,
            );
        });
    }
    let mut dw = vec![0.0; o * c * taps];
    for (t, block) in dw_t.chunks_exact(c * o).enumerate() {
        for (ch, row) in block.chunks_exact(o).enumerate() {
            for (oc, &v) in row.iter().enumerate() {
                dw[(oc * c + ch) * taps + t] = v;
            }
        }
    }
    dw
}
