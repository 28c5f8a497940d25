// SAAD loss, pass 1 of 2: per-sample terms, one invocation per sample (METHOD.md section 2).
//   H_i     = entropy of softmax(z_T+): Renyi log(sum p^gamma + 1e-12) / (1 - gamma), Shannon
//             -sum p log(p + 1e-12) when |gamma - 1| < 1e-6 (the SAAD authors' utils.py)
//   L_adv,i = KL(softmax(z_T+) || softmax(z_S+))
//   L_IG,i  = KL(softmax(z_T+ - z_T-) || softmax(z_S+ - z_S-))
//   L_nat,i = KL(softmax(z_T0) || softmax(z_S0))
// Logits are stacked [3, batch, classes] in the order (0, +, -). All bindings read_write (see
// pgd_step.wgsl). Twin: `losses::saad::saad_outer_loss` (saad-core).
// `SaadLossParams`, `WORKGROUP` are appended from saad-core (`kernels::params`).

@group(0) @binding(0) var<storage, read_write> teacher: array<f32>;
@group(0) @binding(1) var<storage, read_write> student: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: SaadLossParams;
@group(0) @binding(3) var<storage, read_write> terms: array<f32>;  // [batch, 4]: H, L_adv, L_IG, L_nat

fn row(k: u32, i: u32, c: u32, n: u32, b: u32, is_teacher: bool) -> f32 {
    let at = (k * b + i) * n + c;
    if (is_teacher) { return teacher[at]; }
    return student[at];
}

// Logit c of row k, k = 3 meaning (+) - (-). (saad_loss_backward.wgsl has the same helpers:
// WGSL has no includes.)
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

// KL(softmax(teacher row k) || softmax(student row k)).
fn kl(k: u32, i: u32, n: u32, b: u32) -> f32 {
    let lt = lse(k, i, n, b, true);
    let ls = lse(k, i, n, b, false);
    var acc = 0.0;
    for (var c = 0u; c < n; c++) {
        let log_p = z(k, i, c, n, b, true) - lt;
        acc += exp(log_p) * (log_p - (z(k, i, c, n, b, false) - ls));
    }
    return acc;
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = params.batch;
    let n = params.classes;
    let gamma = params.gamma;
    let i = gid.x;
    if (i >= b) {
        return;
    }
    let lt = lse(1u, i, n, b, true);
    var h = 0.0;
    if (abs(gamma - 1.0) < 1e-6) {
        for (var c = 0u; c < n; c++) {
            let p = exp(row(1u, i, c, n, b, true) - lt);
            h -= p * log(p + 1e-12);
        }
    } else {
        var s = 0.0;
        for (var c = 0u; c < n; c++) {
            s += pow(exp(row(1u, i, c, n, b, true) - lt), gamma);
        }
        h = log(s + 1e-12) / (1.0 - gamma);
    }
    terms[i * 4u] = h;
    terms[i * 4u + 1u] = kl(1u, i, n, b);
    terms[i * 4u + 2u] = kl(3u, i, n, b);
    terms[i * 4u + 3u] = kl(0u, i, n, b);
}
