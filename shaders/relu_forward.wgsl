// ReLU over a dense tensor in any memory order, one invocation per element:
//   out = x <= 0 ? 0 : x    (NaN stays NaN, as burn's relu: mask_fill(x <= 0, 0))
// `out` is laid out as `x` (the caller allocates it with x's strides), so element i of one
// buffer is element i of the other and no index arithmetic is needed. The twin is burn's
// `activation::relu` (saad-core `kernels::relu`). `ReluParams` and `WORKGROUP` are appended
// from saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: ReluParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let v = x[i];
    out[i] = select(v, 0.0, v <= 0.0);
}
