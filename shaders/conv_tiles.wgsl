// The tiled matrix product shared by the three convolution kernels (conv_forward.wgsl,
// conv_backward_data.wgsl, conv_backward_weight.wgsl): out[row, col] = sum over depth of
// A[row, depth] * B[depth, col], where each kernel file maps rows, columns and depths onto its
// tensors (an implicit GEMM: the matrices are never written out) and stores the result:
//   row_at(row) -> RowAt, col_at(col) -> ColAt, depth_a(depth) -> DepthA, depth_b(depth) -> DepthB,
//   a_at(RowAt, DepthA) -> f32, b_at(DepthB, ColAt) -> f32, store(row, col, split, value).
// The split of an index into tensor coordinates (divisions) is done once per row and column an
// invocation loads, and once per depth step for its one depth of A and one of B. Sizes and
// slicing come from `ConvParams` (gemm_m, gemm_n, gemm_k, k_per_split), appended from
// saad-core (`kernels::params`).
//
// One workgroup of 16x16 invocations computes a 64x64 tile of the output, each invocation a
// 4x4 block of it (rows lid.y + 16i, columns lid.x + 16j). The depth advances 16 at a time
// through two workgroup tiles, A[64 rows][16 depth] and B[16 depth][64 columns]: invocation t
// loads depth t % 16 of A's rows t / 16 + 16r, and depth t / 16 of B's columns 4 (t % 16) + r,
// r = 0..3. Workgroups along z each sum one slice of the depth (split-K) and store a partial
// result that the host sums.

// The index splits the three kernels share (they read only `params`).

// A pixel (n, h, w) of an image `height` x `width`, w innermost.
struct Pixel {
    n: u32,
    h: u32,
    w: u32,
}

fn split_pixel(pixel: u32, height: u32, width: u32) -> Pixel {
    let rest = pixel / width;
    return Pixel(rest / height, rest % height, pixel % width);
}

// An output pixel's window on x: its image's offset in x and its top-left corner on the input.
struct Window {
    image: u32,
    top: i32,
    left: i32,
}

fn output_window(pixel: u32) -> Window {
    let p = split_pixel(pixel, params.out_h, params.out_w);
    return Window(
        p.n * params.x.s0,
        i32(p.h * params.stride_h) - i32(params.pad_h),
        i32(p.w * params.stride_w) - i32(params.pad_w),
    );
}

// A tap (kh, kw, channel) of `(kh * kernel_w + kw) * channels + channel`, the channel innermost.
struct Tap {
    channel: u32,
    kh: u32,
    kw: u32,
}

fn split_tap(index: u32, channels: u32) -> Tap {
    let tap = index / channels;
    let kh = tap / params.kernel_w;
    return Tap(index - tap * channels, kh, tap - kh * params.kernel_w);
}

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const SIDE: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>;  // [TILE][TILE_K]
var<workgroup> tile_b: array<f32, 1024>;  // [TILE_K][TILE]
var<workgroup> depth_range: vec2<u32>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * SIDE + lid.x;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    if (t == 0u) {
        let begin = wid.z * params.k_per_split;
        depth_range = vec2<u32>(begin, min(params.gemm_k, begin + params.k_per_split));
    }
    // Read through workgroupUniformLoad: a bound read from a storage buffer is not uniform to
    // the compiler, and the loop below holds barriers.
    let range = workgroupUniformLoad(&depth_range);
    // The rows and columns this invocation loads, split once (clamped in range; masked below).
    var rows: array<RowAt, 4>;
    var cols: array<ColAt, 4>;
    var row_in: array<bool, 4>;
    var col_in: array<bool, 4>;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let row = row0 + t / TILE_K + r * SIDE;
        row_in[r] = row < params.gemm_m;
        rows[r] = row_at(min(row, params.gemm_m - 1u));
        let col = col0 + (t % TILE_K) * 4u + r;
        col_in[r] = col < params.gemm_n;
        cols[r] = col_at(min(col, params.gemm_n - 1u));
    }
    var acc: array<f32, 16>;
    for (var k0 = range.x; k0 < range.y; k0 = k0 + TILE_K) {
        let depth_of_a = k0 + t % TILE_K;
        let depth_of_b = k0 + t / TILE_K;
        let in_a = depth_of_a < range.y;
        let in_b = depth_of_b < range.y;
        let da = depth_a(min(depth_of_a, range.y - 1u));
        let db = depth_b(min(depth_of_b, range.y - 1u));
        for (var r = 0u; r < 4u; r = r + 1u) {
            var a = 0.0;
            if (in_a && row_in[r]) {
                a = a_at(rows[r], da);
            }
            tile_a[t + r * SIDE * SIDE] = a;
            var b = 0.0;
            if (in_b && col_in[r]) {
                b = b_at(db, cols[r]);
            }
            tile_b[t * 4u + r] = b;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            var a_reg: array<f32, 4>;
            var b_reg: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                a_reg[i] = tile_a[(lid.y + i * SIDE) * TILE_K + kk];
                b_reg[i] = tile_b[kk * TILE + lid.x + i * SIDE];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = acc[i * 4u + j] + a_reg[i] * b_reg[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + lid.y + i * SIDE;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + lid.x + j * SIDE;
            if (row < params.gemm_m && col < params.gemm_n) {
                store(row, col, wid.z, acc[i * 4u + j]);
            }
        }
    }
}
