// A convolution's forward pass (groups 1, dilation 1, symmetric zero padding) as an implicit
// matrix product in conv_tiles.wgsl, appended with `ConvParams` and the shared helpers from
// saad-core (`kernels::params`):
//   rows: output pixels (n, oh, ow);  depth: taps (kh, kw, c), c innermost;  columns: outputs o
//   y[n, o, oh, ow] = bias[o] + sum x[n, c, oh*stride_h + kh - pad_h, ow*stride_w + kw - pad_w]
//                                   * weight[o, c, kh, kw]   (x outside the image is 0)
// x and weight are read through their strides (any memory order); y is written NHWC. The twin
// is burn's conv2d (saad-core `kernels::tiled_conv`). Bindings are read_write as in
// pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;   // [out], read if has_bias
@group(0) @binding(3) var<storage, read_write> y: array<f32>;      // [batch, out_h, out_w, out]
@group(0) @binding(4) var<storage, read_write> params: ConvParams;

fn a_at(row: u32, depth: u32) -> f32 {
    let ow = row % params.out_w;
    let rest = row / params.out_w;
    let oh = rest % params.out_h;
    let n = rest / params.out_h;
    let c = depth % params.in_channels;
    let tap = depth / params.in_channels;
    let ih = i32(oh * params.stride_h + tap / params.kernel_w) - i32(params.pad_h);
    let iw = i32(ow * params.stride_w + tap % params.kernel_w) - i32(params.pad_w);
    if (ih < 0 || iw < 0 || ih >= i32(params.in_h) || iw >= i32(params.in_w)) {
        return 0.0;
    }
    return x[n * params.x.s0 + c * params.x.s1 + u32(ih) * params.x.s2 + u32(iw) * params.x.s3];
}

fn b_at(depth: u32, col: u32) -> f32 {
    let c = depth % params.in_channels;
    let tap = depth / params.in_channels;
    let w = params.w;
    return weight[col * w.s0 + c * w.s1 + (tap / params.kernel_w) * w.s2 + (tap % params.kernel_w) * w.s3];
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    var v = value;
    if (params.has_bias != 0u) {
        v = v + bias[col];
    }
    y[row * params.out_channels + col] = v;
}
