// Training-mode BatchNorm backward, step 2 of 2: the input gradient, one invocation per
// element, as burn's `batch_norm_train_backward`:
//   x_hat = (x - mean[c]) * inv_std[c]
//   dx = gamma[c] * inv_std[c] * ((dy - mean(dy)[c]) - x_hat * mean(dy * x_hat)[c])
// with the per-channel coefficients from batch_norm_backward_reduce.wgsl. `dx` is laid out as
// `x`; `dy` may differ (`operand_index`). `BatchNormParams`, `WORKGROUP` and the shared helpers
// are appended from saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;   // [4 * channels]
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> params: BatchNormParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let c = channel_of(i, params.channels, params.channel_inner);
    let inv_std = coef[4u * c + 1u];
    let x_hat = (x[i] - coef[4u * c]) * inv_std;
    let g = dy[operand_index(i, params.dy)];
    dx[i] = (gamma[c] * inv_std) * ((g - coef[4u * c + 2u]) - x_hat * coef[4u * c + 3u]);
}
