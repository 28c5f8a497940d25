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

// The output position that tap k reaches from input position i along one axis, or -1.
fn reached(i: u32, k: u32, pad: u32, stride: u32, extent: u32) -> i32 {
    let shifted = i32(i + pad) - i32(k);
    if (shifted < 0 || shifted % i32(stride) != 0) {
        return -1;
    }
    let o = shifted / i32(stride);
    return select(-1, o, o < i32(extent));
}

fn a_at(row: u32, depth: u32) -> f32 {
    let iw = row % params.in_w;
    let rest = row / params.in_w;
    let ih = rest % params.in_h;
    let n = rest / params.in_h;
    let o = depth % params.out_channels;
    let tap = depth / params.out_channels;
    let oh = reached(ih, tap / params.kernel_w, params.pad_h, params.stride_h, params.out_h);
    let ow = reached(iw, tap % params.kernel_w, params.pad_w, params.stride_w, params.out_w);
    if (oh < 0 || ow < 0) {
        return 0.0;
    }
    let s = params.dy;
    return dy[n * s.s0 + o * s.s1 + u32(oh) * s.s2 + u32(ow) * s.s3];
}

fn b_at(depth: u32, col: u32) -> f32 {
    let o = depth % params.out_channels;
    let tap = depth / params.out_channels;
    let w = params.w;
    return weight[o * w.s0 + col * w.s1 + (tap / params.kernel_w) * w.s2 + (tap % params.kernel_w) * w.s3];
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    dx[row * params.in_channels + col] = value;
}
