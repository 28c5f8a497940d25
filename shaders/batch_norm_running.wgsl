// Training-mode BatchNorm's running statistics after a batch, one invocation per channel, in
// the order of operations of the tensor-op twin (saad-core `kernels::batch_norm_running`, as
// PyTorch updates them): with the batch's unbiased variance v = variance * unbiased_factor,
//   momentum:   mean' = mean * (1 - momentum) + batch_mean * momentum     (var' likewise with v)
//   cumulative: mean' = mean + (batch_mean - mean) / count                 (var' likewise with v)
// where count = batches seen including this one. `BatchNormRunningParams`, `WORKGROUP` and the
// shared helpers are appended from saad-core (`kernels::params`); bindings are read_write as in
// pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> batch_mean: array<f32>;
@group(0) @binding(1) var<storage, read_write> batch_var: array<f32>;     // biased
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> count: array<f32>;         // [1]
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> var_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> params: BatchNormRunningParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= params.channels) {
        return;
    }
    let v = batch_var[c] * params.unbiased_factor;
    if (params.cumulative != 0u) {
        mean_out[c] = running_mean[c] + (batch_mean[c] - running_mean[c]) / count[0];
        var_out[c] = running_var[c] + (v - running_var[c]) / count[0];
    } else {
        mean_out[c] = running_mean[c] * (1.0 - params.momentum) + batch_mean[c] * params.momentum;
        var_out[c] = running_var[c] * (1.0 - params.momentum) + v * params.momentum;
    }
}
