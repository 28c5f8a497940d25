// SAAD loss backward: the gradient of the batch loss with respect to the student logits, one
// invocation per sample, with g = dLoss (upstream) / B and the weights of the forward pass:
//   d/dz_S+ = g [ w_i (q+ - p+) + w_i ig (qd - pd) ]
//   d/dz_S- = -g w_i ig (qd - pd)
//   d/dz_S0 = g beta (1 - w^_i) (q0 - p0)
// where p = softmax(teacher), q = softmax(student), d = (+) - (-). Teacher logits and weights
// are constants. Output stacked [3, batch, classes] in the order (0, +, -). All bindings
// read_write (see pgd_step.wgsl).
// `SaadLossParams`, `WORKGROUP` are appended from saad-core (`kernels::params`).

@group(0) @binding(0) var<storage, read_write> teacher: array<f32>;  // [3, batch, classes]
@group(0) @binding(1) var<storage, read_write> student: array<f32>;  // [3, batch, classes]
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;  // [w (batch), w^ (batch), loss]
@group(0) @binding(3) var<storage, read_write> params: SaadLossParams;
@group(0) @binding(4) var<storage, read_write> upstream: array<f32>; // [1]
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;     // [3, batch, classes]

fn row(k: u32, i: u32, c: u32, n: u32, b: u32, is_teacher: bool) -> f32 {
    let at = (k * b + i) * n + c;
    if (is_teacher) { return teacher[at]; }
    return student[at];
}

// Logit c of row k, k = 3 meaning (+) - (-).
fn z(k: u32, i: u32, c: u32, n: u32, b: u32, is_teacher: bool) -> f32 {
    if (k == 3u) { return row(1u, i, c, n, b, is_teacher) - row(2u, i, c, n, b, is_teacher); }
    return row(k, i, c, n, b, is_teacher);
}

fn lse(k: u32, i: u32, n: u32, b: u32, is_teacher: bool) -> f32 {
    var m = -3.4e38;
    for (var c = 0u; c < n; c++) { m = max(m, z(k, i, c, n, b, is_teacher)); }
    var s = 0.0;
    for (var c = 0u; c < n; c++) { s += exp(z(k, i, c, n, b, is_teacher) - m); }
    return m + log(s);
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = params.batch;
    let n = params.classes;
    let ig = params.ig;
    let beta = params.beta;
    let i = gid.x;
    if (i >= b) {
        return;
    }
    let g = upstream[0] / f32(b);
    let w = weights[i];
    let w_hat = weights[b + i];
    let l_tp = lse(1u, i, n, b, true);
    let l_sp = lse(1u, i, n, b, false);
    let l_td = lse(3u, i, n, b, true);
    let l_sd = lse(3u, i, n, b, false);
    let l_t0 = lse(0u, i, n, b, true);
    let l_s0 = lse(0u, i, n, b, false);
    for (var c = 0u; c < n; c++) {
        let adv = exp(z(1u, i, c, n, b, false) - l_sp) - exp(z(1u, i, c, n, b, true) - l_tp);
        let d = exp(z(3u, i, c, n, b, false) - l_sd) - exp(z(3u, i, c, n, b, true) - l_td);
        let nat = exp(z(0u, i, c, n, b, false) - l_s0) - exp(z(0u, i, c, n, b, true) - l_t0);
        grad[(0u * b + i) * n + c] = g * beta * (1.0 - w_hat) * nat;
        grad[(1u * b + i) * n + c] = g * w * (adv + ig * d);
        grad[(2u * b + i) * n + c] = -g * w * ig * d;
    }
}
