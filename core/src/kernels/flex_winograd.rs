//! 3x3 stride-1 convolutions on the flex CPU backend by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016; the
//! transform matrices are theirs): each 2x2 block of outputs from a 4x4 block of inputs with 16
//! multiplications per input channel instead of 36. [`super::flex_conv`] runs its forward pass
//! and its input gradient (a 3x3 stride-1 convolution of the output gradient with the weights
//! flipped and in and out swapped) through here when the layer has enough channels; the weight
//! gradient stays columns times gradient.
//!
//! Per chunk of images, with `T` the chunk's 2x2 output tiles:
//! - weights: `U[ξ] = (G g Gᵀ)[ξ]`, 16 matrices `[O, C]`;
//! - inputs: `V[ξ] = (Bᵀ d B)[ξ]` of each tile's 4x4 input patch `d`, stored `[C][16][T]`;
//! - products: `M[ξ][O, T] = U[ξ] · V[ξ]`, 16 independent matrix products;
//! - outputs: `Y = Aᵀ m A` of each tile's 16 products `m`.
//!
//! Every output element is computed in a fixed order (the products run whole, one per thread),
//! so results are the same from run to run (bit-for-bit resume holds). The transforms' constants
//! are 0, ±1 and ±1/2, so the rounding stays near the direct sum's (checked against burn's
//! convolution in `tests/tests/library/kernels.rs`).

use super::flex_conv::{Operand, matmul_strided};
use rayon::prelude::*;

/// Floats of the transformed inputs of one chunk of images (16 per tile and channel): 4 MiB,
/// so that one product's operands stay in the cache levels of a CPU core.
const CHUNK_FLOATS: usize = 1 << 20;

/// Fewer input or output channels than this: the products are too thin for the transforms to
/// pay (a network's first layer has 3 input channels); the columns convolution runs instead.
pub const MIN_CHANNELS: usize = 16;

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
        [ho.div_ceil(2), wo.div_ceil(2)]
    }
}

/// `U = G g Gᵀ` of every `[O, C]` 3x3 kernel of `w` (`[O, C, 3, 3]`), stored `[16][O][C]`.
fn transform_weights(w: &[f32], o: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0.0; 16 * o * c];
    for (oc, g) in w.chunks_exact(9).enumerate() {
        // G g: 4x3, rows of G = (1,0,0), (½,½,½), (½,-½,½), (0,0,1).
        let mut t = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = g0;
            t[1][j] = 0.5 * (g0 + g1 + g2);
            t[2][j] = 0.5 * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        // (G g) Gᵀ: 4x4.
        for (i, row) in t.iter().enumerate() {
            let v = [
                row[0],
                0.5 * (row[0] + row[1] + row[2]),
                0.5 * (row[0] - row[1] + row[2]),
                row[2],
            ];
            for (j, value) in v.into_iter().enumerate() {
                u[(i * 4 + j) * o * c + oc] = value;
            }
        }
    }
    u
}

/// The input transform of one row of tiles of one channel plane: the four input rows the row
/// of tiles reads, zero-padded left and right ([`TileRows::rows`]), Bᵀ applied down the rows for
/// every column at once, then B along each tile's four columns. No bounds checks in the inner
/// loops, which run over whole rows.
struct TileRows {
    tiles: usize,
    /// The four input rows, padded: `2 * tiles + 2` values each.
    rows: [Vec<f32>; 4],
    /// Bᵀ down the rows: (1,0,-1,0), (0,1,1,0), (0,-1,1,0), (0,1,0,-1).
    combined: [Vec<f32>; 4],
}

impl TileRows {
    fn new(tiles: usize) -> Self {
        let row = || vec![0.0f32; 2 * tiles + 2];
        Self { tiles, rows: [row(), row(), row(), row()], combined: [row(), row(), row(), row()] }
    }

    /// Writes the 16 transformed values of tiles `first..first + tiles` (tile row `ty` of the
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
            let Some(r) = (2 * ty + i).checked_sub(s.pad[0]).filter(|&r| r < s.height) else {
                continue;
            };
            // Padded column q holds input column q - pad.
            let lo = s.pad[1];
            let hi = (lo + s.width).min(width);
            row[lo..hi].copy_from_slice(&src[r * s.width..][..hi - lo]);
        }
        let [d0, d1, d2, d3] = &self.rows;
        let [c0, c1, c2, c3] = &mut self.combined;
        for q in 0..width {
            c0[q] = d0[q] - d2[q];
            c1[q] = d1[q] + d2[q];
            c2[q] = d2[q] - d1[q];
            c3[q] = d1[q] - d3[q];
        }
        for (i, c) in self.combined.iter().enumerate() {
            for j in 0..4 {
                let dst = &mut out[(i * 4 + j) * stride + first..][..self.tiles];
                // B along the tile's columns, j-th column of (1,0,-1,0), (0,1,1,0),
                // (0,-1,1,0), (0,1,0,-1) as rows of Bᵀ.
                match j {
                    0 => dst
                        .iter_mut()
                        .enumerate()
                        .for_each(|(tx, v)| *v = c[2 * tx] - c[2 * tx + 2]),
                    1 => dst
                        .iter_mut()
                        .enumerate()
                        .for_each(|(tx, v)| *v = c[2 * tx + 1] + c[2 * tx + 2]),
                    2 => dst
                        .iter_mut()
                        .enumerate()
                        .for_each(|(tx, v)| *v = c[2 * tx + 2] - c[2 * tx + 1]),
                    _ => dst
                        .iter_mut()
                        .enumerate()
                        .for_each(|(tx, v)| *v = c[2 * tx + 1] - c[2 * tx + 3]),
                }
            }
        }
    }
}

/// The convolution of `x` (`[N, C, H, W]`) by `w` (`[O, C, 3, 3]`), stride 1: `[N, O, Ho, Wo]`.
pub fn forward(s: &Conv3x3, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.out_channels);
    let [ho, wo] = s.out();
    let [th, tw] = s.tiles();
    let per_image = th * tw;
    let mut y = vec![0.0; s.batch * o * ho * wo];
    if y.is_empty() || c == 0 {
        return y;
    }
    let u = transform_weights(w, o, c);
    let chunk = (CHUNK_FLOATS / (16 * c * per_image)).clamp(1, s.batch);
    let mut v = vec![0.0; c * 16 * chunk * per_image];
    let mut m = vec![0.0; 16 * o * chunk * per_image];
    let plane = s.height * s.width;
    for b0 in (0..s.batch).step_by(chunk) {
        let nb = chunk.min(s.batch - b0);
        let t_count = nb * per_image;
        // Inputs: one thread per channel, its 16 rows of T transformed patches, a row of tiles
        // at a time (see `TileRows::transform`).
        v[..c * 16 * t_count].par_chunks_mut(16 * t_count).enumerate().for_each(|(ch, out)| {
            let mut rows = TileRows::new(tw);
            for image in 0..nb {
                let src = &x[((b0 + image) * c + ch) * plane..][..plane];
                for ty in 0..th {
                    let first = image * per_image + ty * tw;
                    rows.transform(s, src, ty, out, t_count, first);
                }
            }
        });
        // The 16 products, one per thread at a time.
        m[..16 * o * t_count].par_chunks_mut(o * t_count).enumerate().for_each(|(xi, dst)| {
            let lhs = &u[xi * o * c..][..o * c];
            let rhs = &v[xi * t_count..];
            // On this thread: the 16 products run in parallel instead.
            matmul_strided(
                o,
                t_count,
                c,
                dst,
                t_count,
                false,
                Operand { data: lhs, row_stride: c, col_stride: 1 },
                Operand { data: rhs, row_stride: 16 * t_count, col_stride: 1 },
                false,
            );
        });
        // Outputs: one thread per output plane, a row of tiles at a time: each product's values
        // for the row are contiguous in `m`.
        let out_planes = &mut y[b0 * o * ho * wo..(b0 + nb) * o * ho * wo];
        out_planes.par_chunks_mut(ho * wo).enumerate().for_each(|(p, dst)| {
            let (image, oc) = (p / o, p % o);
            // partial[i][j][tx]: row i of Aᵀ m for column j of the 4x4 products, per tile.
            let mut partial: [[Vec<f32>; 4]; 2] = Default::default();
            partial.iter_mut().flatten().for_each(|v| v.resize(tw, 0.0));
            for ty in 0..th {
                let first = image * per_image + ty * tw;
                let at = |xi: usize| &m[(xi * o + oc) * t_count + first..][..tw];
                for j in 0..4 {
                    // Aᵀ = (1,1,1,0), (0,1,-1,-1) on the rows of the products.
                    let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                    let [p0, p1] = &mut partial;
                    for tx in 0..tw {
                        p0[j][tx] = m0[tx] + m1[tx] + m2[tx];
                        p1[j][tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                for (i, q) in partial.iter().enumerate() {
                    let r = 2 * ty + i;
                    if r >= ho {
                        continue;
                    }
                    let row = &mut dst[r * wo..][..wo];
                    // A on the columns.
                    for tx in 0..wo / 2 {
                        row[2 * tx] = q[0][tx] + q[1][tx] + q[2][tx];
                        row[2 * tx + 1] = q[1][tx] - q[2][tx] - q[3][tx];
                    }
                    if wo % 2 == 1 {
                        let tx = tw - 1;
                        row[2 * tx] = q[0][tx] + q[1][tx] + q[2][tx];
                    }
                }
            }
        });
    }
    y
}

/// The input gradient `[N, C, H, W]` of [`forward`] from the output gradient `dy`
/// (`[N, O, Ho, Wo]`): the convolution of `dy` by the weights flipped in both axes with in and
/// out swapped (`w'[c, o, i, j] = w[o, c, 2 - i, 2 - j]`), padded by `2 - pad`.
pub fn input_gradient(s: &Conv3x3, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.out_channels);
    let mut flipped = vec![0.0; o * c * 9];
    for oc in 0..o {
        for ch in 0..c {
            for tap in 0..9 {
                flipped[(ch * o + oc) * 9 + 8 - tap] = w[(oc * c + ch) * 9 + tap];
            }
        }
    }
    let [ho, wo] = s.out();
    let transposed = Conv3x3 {
        batch: s.batch,
        channels: o,
        height: ho,
        width: wo,
        out_channels: c,
        pad: [2 - s.pad[0], 2 - s.pad[1]],
    };
    forward(&transposed, dy, &flipped)
}
