//! Sums of shifted rows weighted per kernel tap, `out[r, q] (+)= Σ_t Σ_k w[t, k, r] ·
//! src[k, q + offset_t]`, kept in vector registers (AVX2 and FMA, detected at run time).
//!
//! Why: the shifted convolution ([`super::flex_shifted`]) computes this sum as one gemm per tap,
//! each as deep as the layer has input channels. With the 3 to 32 channels of the small CNNs
//! those products are shallow: gemm packs its operands and reads and writes the whole output once
//! per tap for a handful of multiply-adds per value. Here a block of 4 output rows by 16
//! positions stays in 8 registers while every tap and input row is added into it, and the
//! output is written once (bench/NOTES.md, section 18). Each element is summed in one fixed
//! order, so results are identical from run to run. Where the CPU lacks AVX2 or FMA (and on
//! other architectures) the caller keeps the gemm products.

use rayon::prelude::*;

/// Per-tap depth (input rows of each product) up to which the sums replace gemm's products:
/// measured per layer in bench/NOTES.md section 18.
const MAX_DEPTH: usize = 32;

/// Output rows of one register block.
const BLOCK_ROWS: usize = 4;

/// Floats per AVX2 vector.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const LANES: usize = 8;

/// Whether the shifted convolution sums its taps here or by gemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapSums {
    /// Here where the CPU supports it and the products are shallow ([`MAX_DEPTH`]).
    WherePaying,
    /// Here for every depth where the CPU supports it (tests).
    Always,
    /// Never: one gemm per tap (tests and comparisons).
    Never,
}

thread_local! {
    static TAP_SUMS: std::cell::Cell<TapSums> = const { std::cell::Cell::new(TapSums::WherePaying) };
}

/// Runs `f` with this thread's shifted convolutions summing their taps as `choice` says,
/// restoring the previous setting afterwards (like [`super::flex_shifted::with_shifted`]).
pub fn with_tap_sums<R>(choice: TapSums, f: impl FnOnce() -> R) -> R {
    super::with_thread_setting(&TAP_SUMS, choice, f)
}

/// Whether this CPU runs the sums here (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether products of `depth` input rows per tap are summed here (read on the calling thread).
pub(super) fn chosen(depth: usize) -> bool {
    available()
        && match TAP_SUMS.with(|s| s.get()) {
            TapSums::WherePaying => depth <= MAX_DEPTH,
            TapSums::Always => true,
            TapSums::Never => false,
        }
}

/// One sum: `rows` output rows of `len` positions from `depth` input rows per tap.
pub(super) struct TapSum<'a> {
    /// Output rows.
    pub rows: usize,
    /// Positions per output row.
    pub len: usize,
    /// Input rows per tap.
    pub depth: usize,
    /// Per tap, where its window starts in `src` (input row `k` of it at `k·src_stride` further).
    pub offsets: &'a [usize],
    /// `[tap][depth][rows]`.
    pub weights: &'a [f32],
    /// The input rows.
    pub src: &'a [f32],
    /// Floats from one input row to the next.
    pub src_stride: usize,
}

impl TapSum<'_> {
    /// Writes (or adds, with `accumulate`) the sum into `out`, row `r` at `r·out_stride`; groups
    /// of rows in parallel with `parallel`. Only where [`available`] says so.
    pub(super) fn run(&self, out: &mut [f32], out_stride: usize, accumulate: bool, parallel: bool) {
        if self.rows == 0 || self.len == 0 {
            return;
        }
        assert!(available(), "flex_tap_sums: needs AVX2 and FMA");
        assert!(self.weights.len() >= self.offsets.len() * self.depth * self.rows);
        let last = self.offsets.iter().max().copied().unwrap_or(0);
        if self.depth > 0 {
            assert!(last + (self.depth - 1) * self.src_stride + self.len <= self.src.len());
        }
        assert!((self.rows - 1) * out_stride + self.len <= out.len() && self.len <= out_stride);
        let out = &mut out[..(self.rows - 1) * out_stride + self.len];
        // Rows per parallel task: whole register blocks, one task per thread.
        let per_task = if parallel {
            self.rows.div_ceil(rayon::current_num_threads()).next_multiple_of(BLOCK_ROWS)
        } else {
            self.rows
        };
        let task = |(t, out): (usize, &mut [f32])| {
            // Safety: AVX2 and FMA are present (asserted above); every read of `src` and
            // `weights` and every write of `out` is within the bounds asserted above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                let r0 = t * per_task;
                avx2::rows(self, r0, per_task.min(self.rows - r0), out, out_stride, accumulate)
            };
            // Unreachable elsewhere: `available` is false.
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (t, out, out_stride, accumulate);
        };
        if parallel {
            out.par_chunks_mut(per_task * out_stride).enumerate().for_each(task);
        } else {
            task((0, out));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK_ROWS, LANES, TapSum};
    use std::arch::x86_64::*;

    /// Rows `r0..r0+nr` of the sum into `out` (whose row 0 is row `r0`): for each block of
    /// positions, every block of rows, so that the input rows' windows stay in the L1 cache.
    ///
    /// Safety: AVX2 and FMA present, and the bounds asserted by [`TapSum::run`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(
        s: &TapSum,
        r0: usize,
        nr: usize,
        out: &mut [f32],
        out_stride: usize,
        accumulate: bool,
    ) {
        let out = out.as_mut_ptr();
        let blocks = |q: usize, width: usize| {
            for r in (0..nr).step_by(BLOCK_ROWS) {
                let o = out.wrapping_add(r * out_stride);
                // Safety: as the function's.
                unsafe {
                    match (BLOCK_ROWS.min(nr - r), width) {
                        (4, 2) => block::<4, 2>(s, r0 + r, q, o, out_stride, accumulate),
                        (3, 2) => block::<3, 2>(s, r0 + r, q, o, out_stride, accumulate),
                        (2, 2) => block::<2, 2>(s, r0 + r, q, o, out_stride, accumulate),
                        (1, 2) => block::<1, 2>(s, r0 + r, q, o, out_stride, accumulate),
                        (4, _) => block::<4, 1>(s, r0 + r, q, o, out_stride, accumulate),
                        (3, _) => block::<3, 1>(s, r0 + r, q, o, out_stride, accumulate),
                        (2, _) => block::<2, 1>(s, r0 + r, q, o, out_stride, accumulate),
                        _ => block::<1, 1>(s, r0 + r, q, o, out_stride, accumulate),
                    }
                }
            }
        };
        // 4 rows by 2 vectors: 8 accumulators, 2 inputs and a weight in 16 registers.
        let mut q = 0;
        while q + 2 * LANES <= s.len {
            blocks(q, 2);
            q += 2 * LANES;
        }
        while q + LANES <= s.len {
            blocks(q, 1);
            q += LANES;
        }
        for r in 0..nr {
            for q in q..s.len {
                let mut sum = 0.0f32;
                for (t, &off) in s.offsets.iter().enumerate() {
                    for k in 0..s.depth {
                        let w = s.weights[(t * s.depth + k) * s.rows + r0 + r];
                        sum = w.mul_add(s.src[off + k * s.src_stride + q], sum);
                    }
                }
                // Safety: within the output bounds asserted by the caller.
                let o = unsafe { &mut *out.add(r * out_stride + q) };
                *o = if accumulate { *o + sum } else { sum };
            }
        }
    }

    /// `R` rows from `r0` by `V` vectors of positions from `q0`, into `out` (row `r0`'s start).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize, const V: usize>(
        s: &TapSum,
        r0: usize,
        q0: usize,
        out: *mut f32,
        out_stride: usize,
        accumulate: bool,
    ) {
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            let (depth, rows, src_stride) = (s.depth, s.rows, s.src_stride);
            let mut w = s.weights.as_ptr().add(r0);
            for &off in s.offsets {
                let mut x = s.src.as_ptr().add(off + q0);
                for _ in 0..depth {
                    let mut xs = [_mm256_setzero_ps(); V];
                    for (v, xv) in xs.iter_mut().enumerate() {
                        *xv = _mm256_loadu_ps(x.add(v * LANES));
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let weight = _mm256_broadcast_ss(&*w.add(r));
                        for (a, &xv) in acc.iter_mut().zip(&xs) {
                            *a = _mm256_fmadd_ps(weight, xv, *a);
                        }
                    }
                    x = x.add(src_stride);
                    w = w.add(rows);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, &a) in acc.iter().enumerate() {
                    let o = out.add(r * out_stride + q0 + v * LANES);
                    let a = if accumulate { _mm256_add_ps(_mm256_loadu_ps(o), a) } else { a };
                    _mm256_storeu_ps(o, a);
                }
            }
        }
    }
}
