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

/// `Bᵀ d B` of a 4x4 patch, rows of Bᵀ = (1,0,-1,0), (0,1,1,0), (0,-1,1,0), (0,1,0,-1).
fn transform_patch(d: &[[f32; 4]; 4]) -> [f32; 16] {
    let mut t = [[0.0f32; 4]; 4];
    for j in 0..4 {
        t[0][j] = d[0][j] - d[2][j];
        t[1][j] = d[1][j] + d[2][j];
        t[2][j] = d[2][j] - d[1][j];
        t[3][j] = d[1][j] - d[3][j];
    }
    let mut v = [0.0f32; 16];
    for (i, row) in t.iter().enumerate() {
        v[i * 4] = row[0] - row[2];
        v[i * 4 + 1] = row[1] + row[2];
        v[i * 4 + 2] = row[2] - row[1];
        v[i * 4 + 3] = row[1] - row[3];
    }
    v
}

/// `Aᵀ m A` of a tile's 16 products, rows of Aᵀ = (1,1,1,0), (0,1,-1,-1): the 2x2 outputs.
fn transform_products(m: &[f32; 16]) -> [[f32; 2]; 2] {
    let mut t = [[0.0f32; 4]; 2];
    for j in 0..4 {
        t[0][j] = m[j] + m[4 + j] + m[8 + j];
        t[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
    }
    [
        [t[0][0] + t[0][1] + t[0][2], t[0][1] - t[0][2] - t[0][3]],
        [t[1][0] + t[1][1] + t[1][2], t[1][1] - t[1][2] - t[1][3]],
    ]
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, all row-major with the given row strides, on the
/// calling thread (the 16 products of a chunk run in parallel instead).
#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_row: usize,
    rhs: &[f32],
    rhs_row: usize,
) {
    assert!(
        dst.len() >= m * n
            && lhs.len() >= (m - 1) * lhs_row + k
            && rhs.len() >= (k - 1) * rhs_row + n
    );
    // SAFETY: the assertion keeps every element gemm reads or writes inside the slices; `dst`
    // is borrowed mutably, so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            lhs_row as isize,
            rhs.as_ptr(),
            1,
            rhs_row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
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
        // Inputs: one thread per channel, its 16 rows of T transformed patches.
        v[..c * 16 * t_count].par_chunks_mut(16 * t_count).enumerate().for_each(|(ch, out)| {
            for image in 0..nb {
                let src = &x[((b0 + image) * c + ch) * plane..][..plane];
                for ty in 0..th {
                    for tx in 0..tw {
                        let mut d = [[0.0f32; 4]; 4];
                        for (i, row) in d.iter_mut().enumerate() {
                            let Some(r) = (2 * ty + i).checked_sub(s.pad[0]) else { continue };
                            if r >= s.height {
                                continue;
                            }
                            for (j, value) in row.iter_mut().enumerate() {
                                if let Some(col) = (2 * tx + j).checked_sub(s.pad[1])
                                    && col < s.width
                                {
                                    *value = src[r * s.width + col];
                                }
                            }
                        }
                        let t = image * per_image + ty * tw + tx;
                        for (xi, value) in transform_patch(&d).into_iter().enumerate() {
                            out[xi * t_count + t] = value;
                        }
                    }
                }
            }
        });
        // The 16 products, one per thread at a time.
        m[..16 * o * t_count].par_chunks_mut(o * t_count).enumerate().for_each(|(xi, dst)| {
            let lhs = &u[xi * o * c..][..o * c];
            let rhs = &v[xi * t_count..];
            product(o, t_count, c, dst, lhs, c, rhs, 16 * t_count);
        });
        // Outputs: one thread per output plane.
        let out_planes = &mut y[b0 * o * ho * wo..(b0 + nb) * o * ho * wo];
        out_planes.par_chunks_mut(ho * wo).enumerate().for_each(|(p, dst)| {
            let (image, oc) = (p / o, p % o);
            for ty in 0..th {
                for tx in 0..tw {
                    let t = image * per_image + ty * tw + tx;
                    let mut products = [0.0f32; 16];
                    for (xi, value) in products.iter_mut().enumerate() {
                        *value = m[(xi * o + oc) * t_count + t];
                    }
                    let block = transform_products(&products);
                    for (i, row) in block.iter().enumerate() {
                        let r = 2 * ty + i;
                        if r >= ho {
                            continue;
                        }
                        for (j, &value) in row.iter().enumerate() {
                            let col = 2 * tx + j;
                            if col < wo {
                                dst[r * wo + col] = value;
                            }
                        }
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
