// A convolution's weight gradient as an implicit matrix product in conv_tiles.wgsl, appended
// with `ConvParams` and the shared helpers from saad-core (`kernels::params`):
//   rows: outputs o;  depth: output pixels (n, oh, ow), ow innermost;
//   columns: taps (kh, kw, c), c innermost
//   dw[o, c, kh, kw] = sum dy[n, o, oh, ow] * x[n, c, oh*stride_h + kh - pad_h, ow*stride_w + kw - pad_w]
// The depth (batch x output pixels) is long and the product small, so workgroups along z each
// sum a slice of it into their own partial result, partial[split][...]; the host sums the
// slices. Each partial is written in the layout of `params.w` (the weight's own memory
// order). dy and x are read through their strides. The twin is burn's conv2d_weight_backward
// (saad-core `kernels::tiled_conv`). Bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;  // [splits][weight]
@group(0) @binding(3) var<storage, read_write> params: ConvParams;

// An output channel: its offset in dy.
struct RowAt {
    offset: u32,
}

fn row_at(row: u32) -> RowAt {
    return RowAt(row * params.dy.s1);
}

// An output pixel of dy: its offset.
struct DepthA {
    offset: u32,
}

fn depth_a(depth: u32) -> DepthA {
    let p = split_pixel(depth, params.out_h, params.out_w);
    let s = params.dy;
    return DepthA(p.n * s.s0 + p.h * s.s2 + p.w * s.s3);
}

fn a_at(r: RowAt, d: DepthA) -> f32 {
    return dy[r.offset + d.offset];
}

// An output pixel's window on x (conv_tiles.wgsl).
alias DepthB = Window;

fn depth_b(depth: u32) -> DepthB {
    return output_window(depth);
}

// A tap (kh, kw, c) of the weight: the channel's offset in x and the kernel position.
struct ColAt {
    channel: u32,
    kh: i32,
    kw: i32,
}

fn col_at(col: u32) -> ColAt {
    let t = split_tap(col, params.in_channels);
    return ColAt(t.channel * params.x.s1, i32(t.kh), i32(t.kw));
}

fn b_at(d: DepthB, c: ColAt) -> f32 {
    let ih = d.top + c.kh;
    let iw = d.left + c.kw;
    if (ih < 0 || iw < 0 || ih >= i32(params.in_h) || iw >= i32(params.in_w)) {
        return 0.0;
    }
    return x[d.image + c.channel + u32(ih) * params.x.s2 + u32(iw) * params.x.s3];
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    let t = split_tap(col, params.in_channels);
    let w = params.w;
    let elements = params.out_channels * params.in_channels * params.kernel_h * params.kernel_w;
    partial[split * elements + row * w.s0 + t.channel * w.s1 + t.kh * w.s2 + t.kw * w.s3] = value;
}
