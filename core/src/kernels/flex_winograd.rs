//! 3x3 stride-1 convolutions on the flex CPU backend by Winograd's minimal filtering F(4x4, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): each 4x4
//! block of outputs from a 6x6 block of inputs with 36 multiplications per input channel
//! instead of 144 (F(2x2, 3x3), this module's first form, needs 64 for the same outputs).
//! [`super::flex_conv`] runs its forward pass and its input gradient (a 3x3 stride-1
//! convolution of the output gradient with the weights flipped and in and out swapped) through
//! here when the layer has enough channels; the weight gradient stays columns times gradient.
//!
//! Per chunk of images, with `T` the chunk's 4x4 output tiles:
//! - weights: `U[ξ] = (G g Gᵀ)[ξ]`, 36 matrices `[O, C]`;
//! - inputs: `V[ξ] = (Bᵀ d B)[ξ]` of each tile's 6x6 input patch `d`, stored `[C][36][T]`;
//! - products: `M[ξ][O, T] = U[ξ] · V[ξ]`, 36 independent matrix products;
//! - outputs: `Y = Aᵀ m A` of each tile's 36 products `m`.
//!
//! The matrices are the Toom-Cook construction at the points 0, 1, -1, 1/2, -2 and infinity,
//! the set Barabasz et al. ("Error analysis and improving the accuracy of Winograd convolution
//! for deep neural networks", ACM TOMS 2020) found to round least for F(4, 3): their error in
//! f32 is about 1.5x below that of Lavin & Gray's 0, ±1, ±2 (a numpy model of a 256-channel
//! tile, bench/NOTES.md section 19). Every output element is computed in a fixed order (the
//! products run whole, one per thread), so results are the same from run to run (bit-for-bit
//! resume holds); they are checked against burn's convolution in
//! `tests/tests/library/kernels.rs`.

use super::flex_conv::{Operand, matmul_strided};
use rayon::prelude::*;

/// Floats of the transformed inputs of one chunk of images (36 per tile and channel): 4 MiB,
/// so that one product's operands stay in the cache levels of a CPU core.
const CHUNK_FLOATS: usize = 1 << 20;

/// Fewer input or output channels than this: the products are too thin for the transforms to
/// pay (a network's first layer has 3 input channels); the columns convolution runs instead.
pub const MIN_CHANNELS: usize = 16;

/// Outputs per tile side.
const M: usize = 4;
/// Inputs per tile side (`M + 2`), and transformed values per side.
const N: usize = 6;

/// Sizes of a 3x3 stride-1 convolution.
#[derive(Clone, Copy, Debug)]
pub struct Conv3x3 {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Zero rows above and below, zero columns left and right (at most 2).
    pub pad: [usize; 2],
}

impl Conv3x3 {
    /// Output rows and columns.
    pub fn out(&self) -> [usize; 2] {
        [self.height + 2 * self.pad[0] - 2, self.width + 2 * self.pad[1] - 2]
    }

    /// Tiles per image along rows and columns.
    fn tiles(&self) -> [usize; 2] {
        let [ho, wo] = self.out();
        [ho.div_ceil(M), wo.div_ceil(M)]
    }
}

/// G: the kernel transform's rows, `(p⁰, p¹, p²) / Π(p - p')` at the points 0, 1, -1, 1/2, -2,
/// then (0, 0, 1) for infinity. Multiplied, not divided, by 3 and 15: a division took 4-5 times
/// a multiplication's time and the weight transform was mostly divisions (bench/NOTES.md
/// section 20).
const G: [[f32; 3]; N] = [
    [1.0, 0.0, 0.0],
    [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
    [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
    [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0],
    [0.0, 0.0, 1.0],
];

/// `G g`: the 6 transformed values of 3 kernel taps.
#[cfg(test)]
fn kernel_transform(g: [f32; 3]) -> [f32; N] {
    G.map(|row| row[0] * g[0] + row[1] * g[1] + row[2] * g[2])
}

/// `Bᵀ d`: the 6 transformed values of 6 inputs. Bᵀ's rows are the coefficients of the
/// products of `(x - p')` over the other points (the last over all five).
#[inline(always)]
fn input_transform([d0, d1, d2, d3, d4, d5]: [f32; N]) -> [f32; N] {
    [
        d0 - 1.5 * d1 - 2.0 * d2 + 1.5 * d3 + d4,
        -d1 + 0.5 * d2 + 2.5 * d3 + d4,
        d1 - 2.5 * d2 + 0.5 * d3 + d4,
        -2.0 * d1 - d2 + 2.0 * d3 + d4,
        0.5 * d1 - d2 - 0.5 * d3 + d4,
        d1 - 1.5 * d2 - 2.0 * d3 + 1.5 * d4 + d5,
    ]
}

/// `Aᵀ m`: 4 outputs from 6 products. Aᵀ's rows are the points' powers 0 to 3 (1 at infinity
/// for the last).
#[inline(always)]
fn output_transform([m0, m1, m2, m3, m4, m5]: [f32; N]) -> [f32; M] {
    [
        m0 + m1 + m2 + m3 + m4,
        m1 - m2 + 0.5 * m3 - 2.0 * m4,
        m1 + m2 + 0.25 * m3 + 4.0 * m4,
        m1 - m2 + 0.125 * m3 - 8.0 * m4 + m5,
    ]
}

/// Tiles whose output transforms run side by side, in vector lanes: each product's values for one
/// output channel lie contiguous in `M`, a tile after the other. (One tile at a time, reading
/// 36 values `O * T` floats apart per tile, the output transform took 13.7% of a PGD-AT step;
/// bench/NOTES.md section 20.)
const TILE_LANES: usize = 16;

/// `Aᵀ m A` of tiles `t0..t0 + TILE_LANES` of one output channel (`products[ξ]` that channel's
/// 36 products, one value per tile): `[row][column][lane]`. Lanes past the last tile are zero.
fn output_blocks(products: &[&[f32]; N * N], t0: usize) -> [[[f32; TILE_LANES]; M]; M] {
    let lanes = TILE_LANES.min(products[0].len() - t0);
    let mut m = [[0.0f32; TILE_LANES]; N * N];
    for (values, product) in m.iter_mut().zip(products) {
        values[..lanes].copy_from_slice(&product[t0..][..lanes]);
    }
    // Aᵀ down each of the six columns of the 6x6 products.
    let mut partial = [[[0.0f32; TILE_LANES]; N]; M];
    for j in 0..N {
        for lane in 0..TILE_LANES {
            let y = output_transform(std::array::from_fn(|i| m[i * N + j][lane]));
            for r in 0..M {
                partial[r][j][lane] = y[r];
            }
        }
    }
    // A along each of the four rows.
    let mut blocks = [[[0.0f32; TILE_LANES]; M]; M];
    for (row, partial) in blocks.iter_mut().zip(&partial) {
        for lane in 0..TILE_LANES {
            let y = output_transform(std::array::from_fn(|j| partial[j][lane]));
            for q in 0..M {
                row[q][lane] = y[q];
            }
        }
    }
    blocks
}

/// Kernels transformed at a time into a local block before their 36 values are written out:
/// `U`'s 36 matrices lie `O * C` floats apart, a power of two in most networks, and 36
/// single-float writes that far apart per kernel conflicted in the cache (a 512x512 layer's call
/// at batch 1: 72.8 ms written per kernel, 27.9 ms in blocks; bench/NOTES.md section 19).
const KERNEL_BLOCK: usize = 64;

/// `U = G g Gᵀ` of every 3x3 kernel, stored `[36][O'][C']`: with `flipped` false the kernels of
/// `w` (`[O, C, 3, 3]`, `O' = O`, `C' = C`); with it true those of the input gradient, `w`
/// flipped in both axes with in and out swapped (`O' = C`, `C' = O`). One thread per row `i`
/// of the 6x6 transforms, a block of kernels at a time.
fn transform_weights(w: &[f32], o: usize, c: usize, flipped: bool, u: &mut Vec<f32>) {
    let (rows, cols) = if flipped { (c, o) } else { (o, c) };
    let kernels = rows * cols;
    // Every value is written below, so what the buffer held before is not cleared (`resize`
    // zeroes only what it adds).
    u.resize(N * N * kernels, 0.0);
    let kernel = |k: usize| -> [f32; 9] {
        let (r, q) = (k / cols, k % cols);
        if flipped {
            let g = &w[(q * c + r) * 9..][..9];
            std::array::from_fn(|t| g[8 - t])
        } else {
            w[k * 9..][..9].try_into().expect("9 taps")
        }
    };
    u.par_chunks_mut(N * kernels).enumerate().for_each(|(i, out)| {
        // Lanes over the block's kernels, so that the arithmetic runs in vector registers.
        let mut taps = [[0.0f32; KERNEL_BLOCK]; 9];
        let mut columns = [[0.0f32; KERNEL_BLOCK]; 3];
        let mut block = [[0.0f32; KERNEL_BLOCK]; N];
        for k0 in (0..kernels).step_by(KERNEL_BLOCK) {
            let len = KERNEL_BLOCK.min(kernels - k0);
            for (b, g) in (k0..k0 + len).map(kernel).enumerate() {
                for (t, tap) in g.into_iter().enumerate() {
                    taps[t][b] = tap;
                }
            }
            // Row i of G g for each of the three kernel columns, then G on that row: row i of
            // (G g) Gᵀ.
            let [a0, a1, a2] = G[i];
            for (j, column) in columns.iter_mut().enumerate() {
                let (t0, t1, t2) = (&taps[j], &taps[3 + j], &taps[6 + j]);
                for b in 0..KERNEL_BLOCK {
                    column[b] = a0 * t0[b] + a1 * t1[b] + a2 * t2[b];
                }
            }
            for ([a0, a1, a2], values) in G.iter().zip(&mut block) {
                for b in 0..KERNEL_BLOCK {
                    values[b] = a0 * columns[0][b] + a1 * columns[1][b] + a2 * columns[2][b];
                }
            }
            for (j, values) in block.iter().enumerate() {
                out[j * kernels + k0..][..len].copy_from_slice(&values[..len]);
            }
        }
    });
}

thread_local! {
    /// The transformed weights' buffer, kept from call to call on the thread that runs the
    /// layers: a 512x512 layer's is 37.7 MB, above glibc's largest threshold for reusing freed
    /// memory (32 MiB), so a fresh one was mapped and faulted in page by page at every call
    /// (bench/NOTES.md section 20). It keeps the largest layer's size (59 MB for WRN-28-10).
    static WEIGHT_BUFFER: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on the transformed weights ([`transform_weights`]) in this thread's buffer. The
/// buffer is taken out while `f` runs, so that a call nested in `f` (a thread that waits in
/// rayon and runs another job meanwhile) makes its own instead of sharing it.
fn with_transformed_weights<R>(
    w: &[f32],
    o: usize,
    c: usize,
    flipped: bool,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let mut u = WEIGHT_BUFFER.take();
    transform_weights(w, o, c, flipped, &mut u);
    let result = f(&u);
    WEIGHT_BUFFER.set(u);
    result
}

/// `K` consecutive rows of `len` values `stride` apart, starting at `start`, as separate
/// slices (disjoint because `len <= stride`).
fn rows_of<const K: usize>(
    data: &mut [f32],
    start: usize,
    stride: usize,
    len: usize,
) -> [&mut [f32]; K] {
    let mut rows = data[start..].chunks_mut(stride);
    std::array::from_fn(|_| &mut rows.next().expect("K rows")[..len])
}

/// The input transform of one row of tiles of one channel plane: the six input rows the row of
/// tiles reads, zero-padded left and right ([`TileRows::rows`]), Bᵀ applied down the rows for
/// every column at once, then B along each tile's six columns. No bounds checks in the inner
/// loops, which run over whole rows.
struct TileRows {
    tiles: usize,
    /// The six input rows, padded: `4 * tiles + 2` values each.
    rows: [Vec<f32>; N],
    /// Bᵀ down the rows.
    combined: [Vec<f32>; N],
}

impl TileRows {
    fn new(tiles: usize) -> Self {
        let row = || vec![0.0f32; M * tiles + 2];
        Self {
            tiles,
            rows: std::array::from_fn(|_| row()),
            combined: std::array::from_fn(|_| row()),
        }
    }

    /// Writes the 36 transformed values of tiles `first..first + tiles` (tile row `ty` of the
    /// plane `src`) to `out[ξ * stride + t]`.
    fn transform(
        &mut self,
        s: &Conv3x3,
        src: &[f32],
        ty: usize,
        out: &mut [f32],
        stride: usize,
        first: usize,
    ) {
        let width = self.rows[0].len();
        for (i, row) in self.rows.iter_mut().enumerate() {
            row.fill(0.0);
            let Some(r) = (M * ty + i).checked_sub(s.pad[0]).filter(|&r| r < s.height) else {
                continue;
            };
            // Padded column q holds input column q - pad.
            let lo = s.pad[1];
            let hi = (lo + s.width).min(width);
            row[lo..hi].copy_from_slice(&src[r * s.width..][..hi - lo]);
        }
        let d: [&[f32]; N] = std::array::from_fn(|k| &self.rows[k][..width]);
        let [c0, c1, c2, c3, c4, c5] = &mut self.combined;
        let c = [
            &mut c0[..width],
            &mut c1[..width],
            &mut c2[..width],
            &mut c3[..width],
            &mut c4[..width],
            &mut c5[..width],
        ];
        for q in 0..width {
            let v = input_transform(std::array::from_fn(|k| d[k][q]));
            for i in 0..N {
                c[i][q] = v[i];
            }
        }
        for (i, c) in self.combined.iter().enumerate() {
            // B along the tiles' columns: each tile's six columns start 4 apart.
            let dst: [&mut [f32]; N] = rows_of(out, i * N * stride + first, stride, self.tiles);
            for (tx, window) in c.windows(N).step_by(M).take(self.tiles).enumerate() {
                let v = input_transform(std::array::from_fn(|k| window[k]));
                for j in 0..N {
                    dst[j][tx] = v[j];
                }
            }
        }
    }
}

/// The convolution of `x` (`[N, C, H, W]`) by `w` (`[O, C, 3, 3]`), stride 1: `[N, O, Ho, Wo]`.
pub fn forward(s: &Conv3x3, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.out_channels);
    with_transformed_weights(w, o, c, false, |u| convolve(s, x, u))
}

/// [`forward`] with the weights already transformed (`u`, `[36][O][C]`).
fn convolve(s: &Conv3x3, x: &[f32], u: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.out_channels);
    let [ho, wo] = s.out();
    let [th, tw] = s.tiles();
    let per_image = th * tw;
    let mut y = vec![0.0; s.batch * o * ho * wo];
    if y.is_empty() || c == 0 {
        return y;
    }
    let chunk = (CHUNK_FLOATS / (N * N * c * per_image)).clamp(1, s.batch);
    let mut v = vec![0.0; c * N * N * chunk * per_image];
    let mut m = vec![0.0; N * N * o * chunk * per_image];
    let mut z = vec![0.0; o * chunk * ho * wo];
    let plane = s.height * s.width;
    for b0 in (0..s.batch).step_by(chunk) {
        let nb = chunk.min(s.batch - b0);
        let t_count = nb * per_image;
        // Inputs: one thread per channel, its 36 rows of T transformed patches, a row of tiles
        // at a time (see `TileRows::transform`).
        v[..c * N * N * t_count].par_chunks_mut(N * N * t_count).enumerate().for_each(
            |(ch, out)| {
                let mut rows = TileRows::new(tw);
                for image in 0..nb {
                    let src = &x[((b0 + image) * c + ch) * plane..][..plane];
                    for ty in 0..th {
                        let first = image * per_image + ty * tw;
                        rows.transform(s, src, ty, out, t_count, first);
                    }
                }
            },
        );
        // The 36 products, one per thread at a time.
        m[..N * N * o * t_count].par_chunks_mut(o * t_count).enumerate().for_each(|(xi, dst)| {
            let lhs = &u[xi * o * c..][..o * c];
            let rhs = &v[xi * t_count..];
            // On this thread: the 36 products run in parallel instead.
            matmul_strided(
                o,
                t_count,
                c,
                dst,
                t_count,
                false,
                Operand { data: lhs, row_stride: c, col_stride: 1 },
                Operand { data: rhs, row_stride: N * N * t_count, col_stride: 1 },
                false,
            );
        });
        // Outputs: one thread per output channel, its 4x4 blocks written channel-major into `z`
        // (`[O][nb][Ho][Wo]`), then copied plane by plane into `y`'s image-major layout.
        let z = &mut z[..o * nb * ho * wo];
        z.par_chunks_mut(nb * ho * wo).enumerate().for_each(|(oc, dst)| {
            let products: [&[f32]; N * N] =
                std::array::from_fn(|xi| &m[(xi * o + oc) * t_count..][..t_count]);
            for t0 in (0..t_count).step_by(TILE_LANES) {
                let blocks = output_blocks(&products, t0);
                for (lane, t) in (t0..t_count.min(t0 + TILE_LANES)).enumerate() {
                    let (image, tile) = (t / per_image, t % per_image);
                    let (ty, tx) = (tile / tw, tile % tw);
                    let plane = &mut dst[image * ho * wo..][..ho * wo];
                    for (r, row) in blocks.iter().enumerate().take(ho - M * ty) {
                        let at = (M * ty + r) * wo + M * tx;
                        for (q, out) in plane[at..][..M.min(wo - M * tx)].iter_mut().enumerate() {
                            *out = row[q][lane];
                        }
                    }
                }
            }
        });
        y[b0 * o * ho * wo..(b0 + nb) * o * ho * wo].par_chunks_mut(ho * wo).enumerate().for_each(
            |(p, plane)| {
                let (image, oc) = (p / o, p % o);
                plane.copy_from_slice(&z[(oc * nb + image) * ho * wo..][..ho * wo]);
            },
        );
    }
    y
}

/// The input gradient `[N, C, H, W]` of [`forward`] from the output gradient `dy`
/// (`[N, O, Ho, Wo]`): the convolution of `dy` by the weights flipped in both axes with in and
/// out swapped (`w'[c, o, i, j] = w[o, c, 2 - i, 2 - j]`), padded by `2 - pad`.
pub fn input_gradient(s: &Conv3x3, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.out_channels);
    let [ho, wo] = s.out();
    let transposed = Conv3x3 {
        batch: s.batch,
        channels: o,
        height: ho,
        width: wo,
        out_channels: c,
        pad: [2 - s.pad[0], 2 - s.pad[1]],
    };
    with_transformed_weights(w, o, c, true, |u| convolve(&transposed, dy, u))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three transforms compute a 1-D correlation: `Aᵀ ((G g) ⊙ (Bᵀ d))[i] = Σ_k g[k] d[i + k]`
    /// for 3 taps and 6 inputs (exact in f64 arithmetic; here within f32 rounding).
    #[test]
    fn the_transforms_compute_four_outputs_of_a_three_tap_correlation() {
        let mut state = 0x2545_f491u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for _ in 0..100 {
            let g: [f32; 3] = std::array::from_fn(|_| next());
            let d: [f32; N] = std::array::from_fn(|_| next());
            let (u, v) = (kernel_transform(g), input_transform(d));
            let y = output_transform(std::array::from_fn(|i| u[i] * v[i]));
            for (i, y) in y.into_iter().enumerate() {
                let direct = g[0] * d[i] + g[1] * d[i + 1] + g[2] * d[i + 2];
                assert!((y - direct).abs() < 1e-5, "output {i}: {y} vs {direct}");
            }
        }
    }
}
