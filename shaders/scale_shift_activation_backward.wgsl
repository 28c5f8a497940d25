// The input gradient of scale_shift_activation.wgsl, one invocation per element: with
// z = x * scale[c] + shift[c],
//   relu: dx = z <= 0 ? 0 : dy * scale[c]
//   silu: dx = dy * (s + z * s * (1 - s)) * scale[c],  s = 1 / (1 + e^-z)
// `dx` is laid out as `x`; `dy` may differ (`operand_index`). `ScaleShiftParams`, `WORKGROUP` and
// the shared helpers are appended from saad-core (`kernels::params`); bindings are read_write as
// in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> params: ScaleShiftParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let c = channel_of(i, params.channels, params.channel_inner);
    let z = x[i] * scale[c] + shift[c];
    let g = dy[operand_index(i, params.dy)];
    if (params.silu != 0u) {
        let s = 1.0 / (1.0 + exp(-z));
        dx[i] = g * (s + z * s * (1.0 - s)) * scale[c];
    } else {
        dx[i] = select(g * scale[c], 0.0, z <= 0.0);
    }
}
