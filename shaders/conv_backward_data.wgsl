// A convolution's input gradient as an implicit matrix product in conv_tiles.wgsl, appended
// with `ConvParams` and the shared helpers from saad-core (`kernels::params`):
//   rows: input pixels (n, ih, iw);  depth: taps and outputs (kh, kw, o), o innermost;
//   columns: input channels c
//   dx[n, c, ih, iw] = sum dy[n, o, oh, ow] * weight[o, c, kh, kw]
//     over the (kh, kw, o) with ih + pad_h - kh = oh * stride_h, iw + pad_w - kw = ow * stride_w
//     for an output pixel (oh, ow) inside the output (the other terms are 0)
// dy and weight are read through their strides; dx is written NHWC. The twin is burn's
// conv2d_x_backward (saad-core `kernels::tiled_conv`). Bindings are read_write as in
// pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;   // [batch, in_h, in_w, in]
@group(0) @binding(3) var<storage, read_write> params: ConvParams;

// The output position that tap k reaches from padded input position `shifted` (input position
// plus padding) along one axis, or -1.
fn reached(shifted: i32, k: i32, stride: u32, extent: u32) -> i32 {
    let d = shifted - k;
    if (d < 0 || d % i32(stride) != 0) {
        return -1;
    }
    let o = d / i32(stride);
    return select(-1, o, o < i32(extent));
}

// An input pixel: its image's offset in dy and its padded position.
struct RowAt {
    image: u32,
    h: i32,
    w: i32,
}

fn row_at(row: u32) -> RowAt {
    let p = split_pixel(row, params.in_h, params.in_w);
    return RowAt(p.n * params.dy.s0, i32(p.h + params.pad_h), i32(p.w + params.pad_w));
}

// A tap and output channel of dy: the channel's offset and the kernel position.
struct DepthA {
    channel: u32,
    kh: i32,
    kw: i32,
}

fn depth_a(depth: u32) -> DepthA {
    let t = split_tap(depth, params.out_channels);
    return DepthA(t.channel * params.dy.s1, i32(t.kh), i32(t.kw));
}

fn a_at(r: RowAt, d: DepthA) -> f32 {
    let oh = reached(r.h, d.kh, params.stride_h, params.out_h);
    let ow = reached(r.w, d.kw, params.stride_w, params.out_w);
    if (oh < 0 || ow < 0) {
        return 0.0;
    }
    return dy[r.image + d.channel + u32(oh) * params.dy.s2 + u32(ow) * params.dy.s3];
}

// A tap and output channel (kh, kw, o) of the weight: its offset.
struct DepthB {
    offset: u32,
}

fn depth_b(depth: u32) -> DepthB {
    let t = split_tap(depth, params.out_channels);
    let w = params.w;
    return DepthB(t.channel * w.s0 + t.kh * w.s2 + t.kw * w.s3);
}

// An input channel: its offset in the weight.
struct ColAt {
    offset: u32,
}

fn col_at(col: u32) -> ColAt {
    return ColAt(col * params.w.s1);
}

fn b_at(d: DepthB, c: ColAt) -> f32 {
    return weight[d.offset + c.offset];
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    dx[row * params.in_channels + col] = value;
}
