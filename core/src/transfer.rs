//! Transfer of student-crafted adversarial examples to the teacher, per sample: what
//! `saad transfer` writes and the browser page shows.

use crate::attacks::{ObjectiveKind, Pgd, Start, fgsm};
use crate::data::DeviceSet;
use crate::losses::cw_margin;
use crate::losses::transfer_stats::{TransferBatch, TransferStats};
use crate::models::Net;
use crate::train::methods::MethodParams;
use crate::train::methods::saad::SaadObjective;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How the student-crafted adversarial example is made.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TransferAttack {
    /// One signed step of eps on the student's CE.
    Fgsm,
    /// PGD on the student's CE (uniform start, step alpha).
    Pgd {
        /// Gradient steps.
        steps: usize,
    },
    /// SAAD's inner maximisation (teacher surrogate, Gaussian start).
    Saad {
        /// Gradient steps (10 for `saad`, as in SAAD's training).
        steps: usize,
    },
}

impl FromStr for TransferAttack {
    type Err = String;
    /// `fgsm`, `pgdK` (e.g. `pgd20`), `saad` (10 steps) or `saadK`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("unknown attack {s:?}; expected fgsm, pgdK (e.g. pgd20), saad or saadK");
        let steps = |t: &str| t.parse::<usize>().ok().filter(|&k| k > 0).ok_or_else(bad);
        match s {
            "fgsm" => Ok(TransferAttack::Fgsm),
            "saad" => Ok(TransferAttack::Saad { steps: 10 }),
            _ if s.starts_with("pgd") => Ok(TransferAttack::Pgd { steps: steps(&s[3..])? }),
            _ if s.starts_with("saad") => Ok(TransferAttack::Saad { steps: steps(&s[4..])? }),
            _ => Err(bad()),
        }
    }
}

/// One test sample's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Position of the sample in the evaluated set.
    pub index: usize,
    /// True label.
    pub label: u32,
    /// The teacher's predicted class on the clean image.
    pub teacher_clean: u32,
    /// The student's predicted class on the clean image.
    pub student_clean: u32,
    /// The teacher's predicted class on the adversarial example.
    pub teacher_adv: u32,
    /// The student's predicted class on the adversarial example.
    pub student_adv: u32,
    /// The adversarial example fools the teacher.
    pub transfers: bool,
    /// The adversarial example fools the student.
    pub student_fooled: bool,
    /// Teacher entropy on the adversarial example (Rényi order `saad_gamma`, Shannon at 1).
    pub teacher_entropy: f32,
    /// The SAAD weight `w` the sample gets within its batch.
    pub saad_weight: f32,
    /// The normalised weight `w^ = w / (max_j w_j + 1e-8)` within its batch, in [0,1].
    pub saad_weight_hat: f32,
    /// `|x' - x|_inf`.
    pub linf: f32,
    /// The teacher's margin on the adversarial example, `z_y - max_{j != y} z_j` (logits):
    /// negative when the example fools the teacher (transfers).
    pub teacher_margin: f32,
}

/// Crafts the adversarial batch against `student` (eval mode).
#[allow(clippy::too_many_arguments)]
pub fn craft(
    attack: TransferAttack,
    student: &Net,
    teacher: &Net,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    eps: f32,
    alpha: f32,
    params: &MethodParams,
) -> Tensor<4> {
    craft_traced(attack, student, teacher, x, y, eps, alpha, params, false).0
}

/// [`craft`], also returning the start point and every iterate when `keep` is set (the page's
/// step-through view; FGSM's are x and x'). Nothing is read back.
#[allow(clippy::too_many_arguments)]
pub fn craft_traced(
    attack: TransferAttack,
    student: &Net,
    teacher: &Net,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    eps: f32,
    alpha: f32,
    params: &MethodParams,
    keep: bool,
) -> (Tensor<4>, Vec<Tensor<4>>) {
    let forward = |x| student.forward(x);
    let ce = ObjectiveKind::CrossEntropy { labels: y.clone() };
    match attack {
        TransferAttack::Fgsm => {
            let x_adv = fgsm(&forward, &ce, x, eps);
            let iterates = if keep { vec![x.clone(), x_adv.clone()] } else { Vec::new() };
            (x_adv, iterates)
        }
        TransferAttack::Pgd { steps } => {
            Pgd { eps, alpha, steps, start: Start::Uniform, restarts: 1 }
                .run_traced(&forward, &ce, x, keep)
        }
        TransferAttack::Saad { steps } => {
            // saad_inner_max, with the iterates.
            let pgd =
                Pgd { eps, alpha, steps, start: Start::Gaussian(params.init_sigma), restarts: 1 };
            pgd.run_traced(
                &forward,
                &SaadObjective::new(teacher, x, y, params.saad_lambda),
                x,
                keep,
            )
        }
    }
}

fn argmax(logits: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    logits.argmax(1).reshape([b]).float()
}

/// Number of per-sample columns of [`batch_columns`].
pub const COLUMNS: usize = 10;

/// One batch, nothing read back: the per-sample columns `[batch, COLUMNS]` (label, teacher
/// clean, student clean, teacher adv, student adv predictions, teacher entropy, w, w^, Linf,
/// teacher margin on x') and the transfer sums of the batch. Both models in eval mode.
#[allow(clippy::too_many_arguments)]
pub fn batch_columns(
    teacher: &Net,
    student: &Net,
    x: &Tensor<4>,
    y: &Tensor<1, Int>,
    attack: TransferAttack,
    eps: f32,
    alpha: f32,
    params: &MethodParams,
) -> (Tensor<2>, Tensor<1>, Tensor<4>) {
    let b = y.dims()[0];
    let x_adv = craft(attack, student, teacher, x, y, eps, alpha, params);
    let t_adv = teacher.forward(x_adv.clone());
    let s_adv = student.forward(x_adv.clone());
    let tb = TransferBatch::new(t_adv.clone(), y.clone(), params.saad_weighting());
    let sums = tb.sums(Some((s_adv.clone(), y.clone())));
    let linf = (x_adv.clone() - x.clone()).abs().max_dims(&[1, 2, 3]).reshape([b]);
    let cols = Tensor::stack::<2>(
        vec![
            y.clone().float(),
            argmax(teacher.forward(x.clone())),
            argmax(student.forward(x.clone())),
            argmax(t_adv.clone()),
            argmax(s_adv),
            tb.entropy,
            tb.weight,
            tb.weight_hat,
            linf,
            cw_margin(t_adv, y.clone()).neg(),
        ],
        1,
    );
    (cols, sums, x_adv)
}

/// Records from the values of [`batch_columns`], numbered from `first`.
pub fn records_from_columns(v: &[f32], first: usize) -> Vec<SampleRecord> {
    v.chunks_exact(COLUMNS)
        .enumerate()
        .map(|(i, r)| SampleRecord {
            index: first + i,
            label: r[0] as u32,
            teacher_clean: r[1] as u32,
            student_clean: r[2] as u32,
            teacher_adv: r[3] as u32,
            student_adv: r[4] as u32,
            transfers: r[3] != r[0],
            student_fooled: r[4] != r[0],
            teacher_entropy: r[5],
            saad_weight: r[6],
            saad_weight_hat: r[7],
            linf: r[8],
            teacher_margin: r[9],
        })
        .collect()
}

/// Per-sample records over `data` in batches of `batch` (one read per batch) and the summary.
/// Both models in eval mode.
#[allow(clippy::too_many_arguments)]
pub fn transfer_records(
    teacher: &Net,
    student: &Net,
    data: &DeviceSet,
    attack: TransferAttack,
    eps: f32,
    alpha: f32,
    batch: usize,
    params: &MethodParams,
    on_batch: &mut dyn FnMut(usize, usize),
) -> (Vec<SampleRecord>, TransferStats) {
    let mut records = Vec::with_capacity(data.len);
    let mut sums: Option<Tensor<1>> = None;
    let nb = data.len.div_ceil(batch);
    for (bi, (x, y)) in data.batches_in_order(batch).enumerate() {
        let (cols, batch_sums, _) =
            batch_columns(teacher, student, &x, &y, attack, eps, alpha, params);
        sums = Some(match sums {
            Some(s) => s + batch_sums,
            None => batch_sums,
        });
        // The one read of the batch.
        let v: Vec<f32> = crate::host_copy::read_f32(cols);
        records.extend(records_from_columns(&v, bi * batch));
        on_batch(bi + 1, nb);
    }
    let v: Vec<f32> = crate::host_copy::read_f32(sums.expect("a non-empty data set"));
    (records, TransferStats::from_sums(&v).expect("samples"))
}

/// The summary of one `saad transfer` run over a test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// The teacher's file.
    pub teacher: String,
    /// The student's file.
    pub student: String,
    /// The dataset (its test split).
    pub dataset: String,
    /// The attack that crafted the examples against the student.
    pub attack: String,
    /// L-infinity radius.
    pub eps: f64,
    /// Images.
    pub n: usize,
    /// Transfer attack success: fraction of the student-crafted examples that fool the teacher.
    pub tas: f64,
    /// Fraction that fool the student.
    pub student_asr: Option<f64>,
    /// Mean teacher entropy on them.
    pub teacher_entropy_mean: f64,
    /// Its standard deviation.
    pub teacher_entropy_std: f64,
    /// Mean SAAD weight `w`.
    pub saad_weight_mean: f64,
    /// Histogram of `w^` over [0,1].
    pub saad_weight_hist: Vec<usize>,
    /// The teacher's clean accuracy on these images.
    pub teacher_clean_acc: f64,
    /// The student's clean accuracy on them.
    pub student_clean_acc: f64,
}
