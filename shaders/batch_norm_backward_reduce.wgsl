// Training-mode BatchNorm backward, step 1 of 2: per channel, one workgroup each, the sums of
// the output gradient and of the output gradient times the normalised input (the gradients of
// beta and gamma, as burn's `batch_norm_train_backward`), and the per-channel coefficients of
// the input gradient for step 2: coef[4c..4c+4] = (mean, 1 / sqrt(variance + eps),
// mean of dy, mean of dy * x_hat). `dy` may be laid out differently from `x`
// (`operand_index`). `BatchNormParams`, `WORKGROUP` and the shared helpers are appended from
// saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> variance: array<f32>;
@group(0) @binding(4) var<storage, read_write> gamma_grad: array<f32>;  // [channels]
@group(0) @binding(5) var<storage, read_write> beta_grad: array<f32>;   // [channels]
@group(0) @binding(6) var<storage, read_write> coef: array<f32>;        // [4 * channels]
@group(0) @binding(7) var<storage, read_write> params: BatchNormParams;

var<workgroup> partial_dy: array<f32, WORKGROUP>;
var<workgroup> partial_dy_xhat: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let t = lid.x;
    let m = params.elements / params.channels;
    let mu = mean[c];
    let inv_std = 1.0 / sqrt(variance[c] + params.eps);
    var s_dy = 0.0;
    var s_dy_xhat = 0.0;
    for (var k = t; k < m; k = k + WORKGROUP) {
        let i = channel_element(c, k, params.channels, params.channel_inner);
        let g = dy[operand_index(i, params.dy)];
        s_dy = s_dy + g;
        s_dy_xhat = s_dy_xhat + g * ((x[i] - mu) * inv_std);
    }
    partial_dy[t] = s_dy;
    partial_dy_xhat[t] = s_dy_xhat;
    workgroupBarrier();
    for (var half = WORKGROUP / 2u; half > 0u; half = half / 2u) {
        if (t < half) {
            partial_dy[t] = partial_dy[t] + partial_dy[t + half];
            partial_dy_xhat[t] = partial_dy_xhat[t] + partial_dy_xhat[t + half];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        beta_grad[c] = partial_dy[0];
        gamma_grad[c] = partial_dy_xhat[0];
        coef[4u * c] = mu;
        coef[4u * c + 1u] = inv_std;
        coef[4u * c + 2u] = partial_dy[0] / f32(m);
        coef[4u * c + 3u] = partial_dy_xhat[0] / f32(m);
    }
}
