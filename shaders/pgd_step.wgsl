// Fused projected signed-gradient step of every L-infinity attack, one invocation per element:
//   out = active ? clip_[0,1](clip_[x - eps, x + eps](x_adv + alpha * sign(grad))) : x_adv
// with per-sample eps, alpha and active mask (samples already broken can be frozen on the
// device). The twin in plain tensor ops is `attacks::step::pgd_update` (saad-core).
// Bindings: 7 storage buffers + 1 for the parameters (WebGPU allows 8 per stage). All are declared
// read_write: cubecl sub-allocates tensors from shared buffers, and wgpu refuses one buffer bound
// both read-only and read-write in a dispatch. `PgdStepParams` and `WORKGROUP` are appended from
// saad-core (`kernels::params`).

@group(0) @binding(0) var<storage, read_write> x_adv: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> eps: array<f32>;     // [batch]
@group(0) @binding(4) var<storage, read_write> alpha: array<f32>;   // [batch]
@group(0) @binding(5) var<storage, read_write> live: array<f32>;    // [batch], 1 = step, 0 = keep
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> params: PgdStepParams;

// sign() of WGSL is 0 at 0, as torch.sign.
@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let s = i / params.per_sample;
    let v = x_adv[i];
    if (live[s] == 0.0) {
        out[i] = v;
        return;
    }
    let e = eps[s];
    let stepped = v + alpha[s] * sign(grad[i]);
    out[i] = clamp(clamp(stepped, x[i] - e, x[i] + e), 0.0, 1.0);
}
