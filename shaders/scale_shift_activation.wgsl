// An eval-mode BatchNorm in its folded scale-shift form followed by its activation, one
// invocation per element (the pre-activation blocks of WRN, DM-WRN and PreAct-ResNet, folded by
// models/fold.rs):  z = x * scale[c] + shift[c],  y = relu(z) or silu(z) = z * (1 / (1 + e^-z)).
// `y` is laid out as `x` (dense, any memory order; channel of element i: (i / channel_inner) %
// channels). The twin is the tensor ops (saad-core `kernels::scale_shift_activation`).
// `ScaleShiftParams`, `WORKGROUP` and the shared helpers are appended from saad-core
// (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> params: ScaleShiftParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let c = channel_of(i, params.channels, params.channel_inner);
    let z = x[i] * scale[c] + shift[c];
    if (params.silu != 0u) {
        y[i] = z * (1.0 / (1.0 + exp(-z)));
    } else {
        y[i] = select(z, 0.0, z <= 0.0);
    }
}
