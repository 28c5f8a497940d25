// Training-mode BatchNorm, step 1 of 2 forward: each channel's batch mean and biased variance,
// one workgroup per channel, two passes over the channel's elements as burn's
// `batch_norm_train` computes them (the mean, then the mean of the squared deviations). The
// input is dense in any memory order (see `BatchNormParams`). The twin is burn's
// `batch_norm_train` (saad-core `kernels::batch_norm_train`). `BatchNormParams`, `WORKGROUP` and
// the shared helpers are appended from saad-core (`kernels::params`); bindings are read_write
// as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;      // [channels]
@group(0) @binding(2) var<storage, read_write> variance: array<f32>;  // [channels], biased
@group(0) @binding(3) var<storage, read_write> params: BatchNormParams;

var<workgroup> partial: array<f32, WORKGROUP>;

// The workgroup's sum of `partial`, in partial[0] (every invocation calls it).
fn reduce_partial(t: u32) {
    workgroupBarrier();
    for (var half = WORKGROUP / 2u; half > 0u; half = half / 2u) {
        if (t < half) {
            partial[t] = partial[t] + partial[t + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let t = lid.x;
    let m = params.elements / params.channels;
    var s = 0.0;
    for (var k = t; k < m; k = k + WORKGROUP) {
        s = s + x[channel_element(c, k, params.channels, params.channel_inner)];
    }
    partial[t] = s;
    reduce_partial(t);
    let mu = partial[0] / f32(m);
    workgroupBarrier();
    var q = 0.0;
    for (var k = t; k < m; k = k + WORKGROUP) {
        let d = x[channel_element(c, k, params.channels, params.channel_inner)] - mu;
        q = q + d * d;
    }
    partial[t] = q;
    reduce_partial(t);
    if (t == 0u) {
        mean[c] = mu;
        variance[c] = partial[0] / f32(m);
    }
}
