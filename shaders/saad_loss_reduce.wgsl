// SAAD loss, pass 2 of 2, one workgroup: the weights w_i = scale (H_i - min_j H_j) (not
// renormalised), w^_i = w_i / (max_j w_j + 1e-8), and the batch loss
//   (1/B) sum_i [ w_i (L_adv,i + ig L_IG,i) + beta (1 - w^_i) L_nat,i ],  ig = alpha_IG e / E.
// All bindings read_write (see pgd_step.wgsl).
// `SaadLossParams`, `WORKGROUP` are appended from saad-core (`kernels::params`).

@group(0) @binding(0) var<storage, read_write> terms: array<f32>;  // [batch, 4] from saad_loss_terms
@group(0) @binding(1) var<storage, read_write> params: SaadLossParams;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;    // [w (batch), w^ (batch), loss]

var<workgroup> red: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(local_invocation_index) t: u32) {
    let b = params.batch;
    let scale = params.scale;
    let ig = params.ig;
    let beta = params.beta;

    // min_j H_j
    var m = 3.4e38;
    for (var i = t; i < b; i += WORKGROUP) { m = min(m, terms[i * 4u]); }
    red[t] = m;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = min(red[t], red[t + s]); }
        workgroupBarrier();
    }
    let h_min = red[0];
    workgroupBarrier();

    // max_j w_j
    m = 0.0;
    for (var i = t; i < b; i += WORKGROUP) {
        let w = scale * (terms[i * 4u] - h_min);
        out[i] = w;
        m = max(m, w);
    }
    red[t] = m;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = max(red[t], red[t + s]); }
        workgroupBarrier();
    }
    let w_max = red[0];
    workgroupBarrier();

    // The weighted per-sample losses and their mean.
    var acc = 0.0;
    for (var i = t; i < b; i += WORKGROUP) {
        let w = out[i];
        let w_hat = w / (w_max + 1e-8);
        out[b + i] = w_hat;
        acc += w * (terms[i * 4u + 1u] + ig * terms[i * 4u + 2u]) + beta * (1.0 - w_hat) * terms[i * 4u + 3u];
    }
    red[t] = acc;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = red[t] + red[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        out[2u * b] = red[0] / f32(b);
    }
}
