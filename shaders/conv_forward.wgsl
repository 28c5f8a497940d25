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

// An output pixel: its window on x (conv_tiles.wgsl).
alias RowAt = Window;

fn row_at(row: u32) -> RowAt {
    return output_window(row);
}

// A tap of the input: the channel's offset in x and the kernel position.
struct DepthA {
    channel: u32,
    kh: i32,
    kw: i32,
}

fn depth_a(depth: u32) -> DepthA {
    let t = split_tap(depth, params.in_channels);
    return DepthA(t.channel * params.x.s1, i32(t.kh), i32(t.kw));
}

fn a_at(r: RowAt, d: DepthA) -> f32 {
    let ih = r.top + d.kh;
    let iw = r.left + d.kw;
    if (ih < 0 || iw < 0 || ih >= i32(params.in_h) || iw >= i32(params.in_w)) {
        return 0.0;
    }
    return x[r.image + d.channel + u32(ih) * params.x.s2 + u32(iw) * params.x.s3];
}

// A tap of the weight (c, kh, kw): its offset in the weight.
struct DepthB {
    offset: u32,
}

fn depth_b(depth: u32) -> DepthB {
    let t = split_tap(depth, params.in_channels);
    let w = params.w;
    return DepthB(t.channel * w.s1 + t.kh * w.s2 + t.kw * w.s3);
}

// An output channel: its offset in the weight.
struct ColAt {
    offset: u32,
}

fn col_at(col: u32) -> ColAt {
    return ColAt(col * params.w.s0);
}

fn b_at(d: DepthB, c: ColAt) -> f32 {
    return weight[d.offset + c.offset];
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    var v = value;
    if (params.has_bias != 0u) {
        v = v + bias[col];
    }
    y[row * params.out_channels + col] = v;
}
