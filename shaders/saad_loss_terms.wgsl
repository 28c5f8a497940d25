// SAAD loss, pass 1 of 2: per-sample terms, one invocation per sample (METHOD.md section 2).
//   H_i     = entropy of softmax(z_T+) (Renyi order gamma; Shannon -sum p log(p + 1e-12) at 1)
//   L_adv,i = KL(softmax(z_T+) || softmax(z_S+))
//   L_IG,i  = KL(softmax(z_T+ - z_T-) || softmax(z_S+ - z_S-))
//   L_nat,i = KL(softmax(z_T0) || softmax(z_S0))
// Logits are stacked [3, batch, classes] in the order (0, +, -). All bindings read_write (see
// pgd_step.wgsl). Twin: `train::methods::saad::saad_outer_loss` (saad-core).

@group(0) @binding(0) var<storage, read_write> teacher: array<f32>;
@group(0) @binding(1) var<storage, read_write> student: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>; // [batch, classes, gamma]
@group(0) @binding(3) var<storage, read_write> terms: array<f32>;  // [batch, 4]: H, L_adv, L_IG, L_nat

// z = a[i] - b[j] (b unused when diff is false), row of the teacher (t) or student buffer.
fn tz(k: u32, i: u32, c: u32, n: u32, b: u32) -> f32 {
    return teacher[(k * b + i) * n + c];
}

fn sz(k: u32, i: u32, c: u32, n: u32, b: u32) -> f32 {
    return student[(k * b + i) * n + c];
}

// Log-sum-exp of teacher row k (or of rows 1 - 2 when k == 3).
fn t_lse(k: u32, i: u32, n: u32, b: u32) -> f32 {
    var m = -3.4e38;
    for (var c = 0u; c < n; c++) {
        var v = 0.0;
        if (k == 3u) { v = tz(1u, i, c, n, b) - tz(2u, i, c, n, b); } else { v = tz(k, i, c, n, b); }
        m = max(m, v);
    }
    var s = 0.0;
    for (var c = 0u; c < n; c++) {
        var v = 0.0;
        if (k == 3u) { v = tz(1u, i, c, n, b) - tz(2u, i, c, n, b); } else { v = tz(k, i, c, n, b); }
        s += exp(v - m);
    }
    return m + log(s);
}

fn s_lse(k: u32, i: u32, n: u32, b: u32) -> f32 {
    var m = -3.4e38;
    for (var c = 0u; c < n; c++) {
        var v = 0.0;
        if (k == 3u) { v = sz(1u, i, c, n, b) - sz(2u, i, c, n, b); } else { v = sz(k, i, c, n, b); }
        m = max(m, v);
    }
    var s = 0.0;
    for (var c = 0u; c < n; c++) {
        var v = 0.0;
        if (k == 3u) { v = sz(1u, i, c, n, b) - sz(2u, i, c, n, b); } else { v = sz(k, i, c, n, b); }
        s += exp(v - m);
    }
    return m + log(s);
}

// KL(softmax(teacher row k) || softmax(student row k)), k = 3 meaning (+) - (-).
fn kl(k: u32, i: u32, n: u32, b: u32) -> f32 {
    let lt = t_lse(k, i, n, b);
    let ls = s_lse(k, i, n, b);
    var acc = 0.0;
    for (var c = 0u; c < n; c++) {
        var t = 0.0;
        var s = 0.0;
        if (k == 3u) {
            t = tz(1u, i, c, n, b) - tz(2u, i, c, n, b);
            s = sz(1u, i, c, n, b) - sz(2u, i, c, n, b);
        } else {
            t = tz(k, i, c, n, b);
            s = sz(k, i, c, n, b);
        }
        let log_p = t - lt;
        acc += exp(log_p) * (log_p - (s - ls));
    }
    return acc;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = u32(params[0]);
    let n = u32(params[1]);
    let gamma = params[2];
    let i = gid.x;
    if (i >= b) {
        return;
    }
    let lt = t_lse(1u, i, n, b);
    var h = 0.0;
    if (abs(gamma - 1.0) < 1e-12) {
        for (var c = 0u; c < n; c++) {
            let p = exp(tz(1u, i, c, n, b) - lt);
            h -= p * log(p + 1e-12);
        }
    } else {
        var s = 0.0;
        for (var c = 0u; c < n; c++) {
            s += pow(exp(tz(1u, i, c, n, b) - lt), gamma);
        }
        h = log(s) / (1.0 - gamma);
    }
    terms[i * 4u] = h;
    terms[i * 4u + 1u] = kl(1u, i, n, b);
    terms[i * 4u + 2u] = kl(3u, i, n, b);
    terms[i * 4u + 3u] = kl(0u, i, n, b);
}
