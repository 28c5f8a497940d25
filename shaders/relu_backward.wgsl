// ReLU's gradient from its output, one invocation per element:
//   dx = y <= 0 ? 0 : dy    (burn's relu_backward: mask_fill(dy, y <= 0, 0))
// `y` is dense in some memory order and `dx` is laid out as `y`. `dy` may be laid out
// differently (a convolution's data gradient often comes back NCHW while the activations are
// NHWC): `operand_index` finds it. `ReluParams`, `OperandLayout`, `operand_index` and
// `WORKGROUP` are appended from saad-core (`kernels::params`); bindings are read_write as in
// pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: ReluParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    dx[i] = select(dy[operand_index(i, params.dy)], 0.0, y[i] <= 0.0);
}
