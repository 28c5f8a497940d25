// Transfer statistics of one batch, one workgroup: how often the student-crafted adversarial
// examples fool the teacher and the student, the teacher's entropy on them (sum and sum of
// squares), their SAAD weights (sum, and a 10-bin histogram of w^). Writes the sum vector
// [samples, teacher fooled, student fooled, student seen, sum H, sum H^2, sum w, hist(10)];
// the caller adds it to the epoch's sums on the device. All bindings read_write (see
// pgd_step.wgsl). Twin: `losses::transfer_stats::TransferBatch::sums` (saad-core).
// `TransferStatsParams`, `WORKGROUP` and the `SUMS_*` offsets, `WEIGHT_BINS` are appended from saad-core (`kernels::params`).

@group(0) @binding(0) var<storage, read_write> teacher: array<f32>; // [batch, classes]
@group(0) @binding(1) var<storage, read_write> student: array<f32>; // [batch, classes] (unused without a student)
@group(0) @binding(2) var<storage, read_write> labels: array<f32>;  // [batch]
@group(0) @binding(3) var<storage, read_write> params: TransferStatsParams;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>; // [batch]: entropies
@group(0) @binding(5) var<storage, read_write> sums: array<f32>;    // [SUMS_LEN]

var<workgroup> red: array<f32, WORKGROUP>;
var<workgroup> hist: array<atomic<u32>, WEIGHT_BINS>;

fn reduce_sum(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = red[t] + red[t + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_min(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = min(red[t], red[t + s]); }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_max(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = max(red[t], red[t + s]); }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// First index of the largest logit of row i.
fn argmax_teacher(i: u32, n: u32) -> u32 {
    var best = 0u;
    for (var c = 1u; c < n; c++) { if (teacher[i * n + c] > teacher[i * n + best]) { best = c; } }
    return best;
}

fn argmax_student(i: u32, n: u32) -> u32 {
    var best = 0u;
    for (var c = 1u; c < n; c++) { if (student[i * n + c] > student[i * n + best]) { best = c; } }
    return best;
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn main(@builtin(local_invocation_index) t: u32) {
    let b = params.batch;
    let n = params.classes;
    let gamma = params.gamma;
    let scale = params.scale;
    let has_student = params.has_student != 0u;
    if (t < WEIGHT_BINS) { atomicStore(&hist[t], 0u); }

    var teacher_fooled = 0.0;
    var student_fooled = 0.0;
    var h_sum = 0.0;
    var h_sq = 0.0;
    var h_min = 3.4e38;
    for (var i = t; i < b; i += WORKGROUP) {
        let y = u32(labels[i]);
        if (argmax_teacher(i, n) != y) { teacher_fooled += 1.0; }
        if (has_student && argmax_student(i, n) != y) { student_fooled += 1.0; }
        var m = -3.4e38;
        for (var c = 0u; c < n; c++) { m = max(m, teacher[i * n + c]); }
        var s = 0.0;
        for (var c = 0u; c < n; c++) { s += exp(teacher[i * n + c] - m); }
        let l = m + log(s);
        var h = 0.0;
        if (abs(gamma - 1.0) < 1e-6) {
            for (var c = 0u; c < n; c++) {
                let p = exp(teacher[i * n + c] - l);
                h -= p * log(p + 1e-12);
            }
        } else {
            var q = 0.0;
            for (var c = 0u; c < n; c++) { q += pow(exp(teacher[i * n + c] - l), gamma); }
            h = log(q + 1e-12) / (1.0 - gamma);
        }
        scratch[i] = h;
        h_sum += h;
        h_sq += h * h;
        h_min = min(h_min, h);
    }
    let tf = reduce_sum(t, teacher_fooled);
    let sf = reduce_sum(t, student_fooled);
    let hs = reduce_sum(t, h_sum);
    let hq = reduce_sum(t, h_sq);
    let hm = reduce_min(t, h_min);

    var w_max = 0.0;
    var w_sum = 0.0;
    for (var i = t; i < b; i += WORKGROUP) {
        let w = scale * (scratch[i] - hm);
        w_max = max(w_max, w);
        w_sum += w;
    }
    let wm = reduce_max(t, w_max);
    let ws = reduce_sum(t, w_sum);
    for (var i = t; i < b; i += WORKGROUP) {
        let w_hat = scale * (scratch[i] - hm) / (wm + 1e-8);
        let bin = u32(clamp(floor(w_hat * f32(WEIGHT_BINS)), 0.0, f32(WEIGHT_BINS - 1u)));
        atomicAdd(&hist[bin], 1u);
    }
    workgroupBarrier();
    if (t == 0u) {
        sums[SUMS_SAMPLES] = f32(b);
        sums[SUMS_TEACHER_FOOLED] = tf;
        sums[SUMS_STUDENT_FOOLED] = sf;
        sums[SUMS_STUDENT_SEEN] = select(0.0, f32(b), has_student);
        sums[SUMS_ENTROPY_SUM] = hs;
        sums[SUMS_ENTROPY_SQUARE_SUM] = hq;
        sums[SUMS_WEIGHT_SUM] = ws;
        for (var k = 0u; k < WEIGHT_BINS; k++) { sums[SUMS_HISTOGRAM + k] = f32(atomicLoad(&hist[k])); }
    }
}
