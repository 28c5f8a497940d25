// One SGD step of a parameter tensor with weight decay and heavy-ball momentum, one invocation
// per element, in the order of operations of burn's `Sgd` (burn-optim 0.22.1: `WeightDecay`,
// then `Momentum` without Nesterov, then the update):
//   g  = weight_decay != 0 ? p * weight_decay + grad : grad
//   v' = has_velocity ? g * dampening_complement + v * momentum : g
//   p' = p - v' * lr
// All tensors are contiguous. Without a velocity (the first step) `velocity` is a placeholder
// that is not read. The twin is `train::sgd` (saad-core). `SgdStepParams` and `WORKGROUP` are
// appended from saad-core (`kernels::params`); bindings are read_write as in pgd_step.wgsl.

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(3) var<storage, read_write> param_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> velocity_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> params: SgdStepParams;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * WORKGROUP;
    if (i >= params.elements) {
        return;
    }
    let p = param[i];
    var g = grad[i];
    if (params.weight_decay != 0.0) {
        g = p * params.weight_decay + g;
    }
    var v = g;
    if (params.has_velocity != 0u) {
        v = g * params.dampening_complement + velocity[i] * params.momentum;
    }
    velocity_out[i] = v;
    param_out[i] = p - v * params.lr;
}
