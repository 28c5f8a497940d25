// Training-mode BatchNorm, step 2 of 2 forward: normalise with the batch statistics and apply
// the affine map, one invocation per element, as burn's `batch_norm`:
//   y = ((x - mean[c]) / sqrt(variance[c] + eps)) * gamma[c] + beta[c]
// `y` is laid out as `x` (dense, any memory order; channel of element i: see
// `BatchNormParams`). `BatchNormParams`, `WORKGROUP` and the shared helpers are appended from
// saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> variance: array<f32>;
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> params: BatchNormParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let c = channel_of(i, params.channels, params.channel_inner);
    let std_dev = sqrt(variance[c] + params.eps);
    y[i] = ((x[i] - mean[c]) / std_dev) * gamma[c] + beta[c];
}
