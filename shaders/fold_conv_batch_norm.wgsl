// An eval-mode BatchNorm merged into the convolution before it (models/fold.rs), one invocation
// per weight element: with s = gamma / sqrt(running_var + eps) and t = beta - running_mean * s,
//   w'[o, i, kh, kw] = w[o, i, kh, kw] * s[o]         written channels last: [o, kh, kw, i]
//   b'[o] = t[o]                                      written by the invocations of i = kh = kw = 0
// in the order of operations of the tensor-op twin (`models::fold::fold_conv_bn`), for a
// convolution without a bias (8 bindings are WebGPU's limit; one with a bias takes the twin).
// `w` is contiguous [out, in, kh, kw]. `FoldParams`, `WORKGROUP` and the shared helpers are appended
// from saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> w_out: array<f32>;    // [out, kh, kw, in]
@group(0) @binding(6) var<storage, read_write> b_out: array<f32>;    // [out]
@group(0) @binding(7) var<storage, read_write> params: FoldParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (j >= params.elements) {
        return;
    }
    // j indexes w (o, i, k) with k over kh * kw.
    let k = j % params.kernel;
    let oi = j / params.kernel;
    let i = oi % params.inputs;
    let o = oi / params.inputs;
    let s = gamma[o] / sqrt(running_var[o] + params.eps);
    w_out[(o * params.kernel + k) * params.inputs + i] = w[j] * s;
    if (i == 0u && k == 0u) {
        b_out[o] = beta[o] - running_mean[o] * s;
    }
}
