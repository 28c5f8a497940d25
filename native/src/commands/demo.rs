//! `saad demo`: the whole story on the built-in digits, offline, on the CPU in minutes. A robust
//! teacher (PGD-AT, the larger model) is trained; a smaller student is distilled from it with
//! SAAD and with baselines (RSLAD, AdaAD by default), all from the same seed; the teacher and
//! each student are evaluated (clean and PGD-20 on the test set, standard AutoAttack on its
//! first `--aa-n` images, eps 8/255; CW-inf is left to `saad eval` to fit the time budget), their transfer statistics
//! measured on the test set; a table with TAS per method is printed; everything (checkpoints,
//! logs, per-sample transfer records, summary.json, SVG plots) goes to one folder.

use super::eval::{EvalArgs, EvalItem, report as eval_report};
use super::train::{SwaStart, TrainJob, run as train_run};
use super::transfer::{TransferArgs, run as transfer_run};
use crate::datasets::{DataArgs, DatasetName};
use crate::device::DeviceChoice;
use crate::fsutil::write_atomic;
use crate::plot::{Series, line_chart};
use anyhow::{Context, Result, bail};
use saad_core::attacks::autoattack::Version;
use saad_core::attacks::{STANDARD_EPS, STANDARD_STEP};
use saad_core::eval::{EvalAttack, EvalReport};
use saad_core::models::Arch;
use saad_core::train::{EpochLog, LrSchedule, MethodKind, TrainConfig};
use saad_core::transfer::TransferReport;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Distillation methods of the students.
    #[arg(
        long,
        default_value = "saad,rslad,adaad",
        value_delimiter = ',',
        value_parser = super::method_parser()
    )]
    pub methods: Vec<MethodKind>,
    /// The teacher. `small-cnn-8` is the page's strong teacher: the scans are 8x8, and a wider
    /// network learns no more of them in the same epochs while every step costs more.
    #[arg(long, default_value = "small-cnn-8")]
    pub teacher_arch: Arch,
    /// The students: half the teacher's width, so that there is a gap for distillation to close.
    #[arg(long, default_value = "small-cnn-4")]
    pub student_arch: Arch,
    /// Rendering size of the digits. 16x16 holds all of an 8x8 scan's detail; 32x32 makes every
    /// step four times as costly for no more information.
    #[arg(long, default_value_t = 16)]
    pub image_size: usize,
    /// The teacher's epochs: its clean accuracy on the first 100 test digits levels off at
    /// 93-94% from the 9th (seed 0), 95.5% on the whole test set at the 12th.
    #[arg(long, default_value_t = 12)]
    pub teacher_epochs: usize,
    /// The students' epochs: at 8 they were still learning (SAAD 86% clean, AdaAD 93%); at 16
    /// each is within a few points of the teacher, and training is still under half the demo's
    /// time (evaluation, AutoAttack above all, is the rest).
    #[arg(long, default_value_t = 16)]
    pub student_epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Standard AutoAttack on the first N test images of each model (0: skip).
    #[arg(long, default_value_t = 100)]
    pub aa_n: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub quiet: bool,
    /// Continue an interrupted demo in --out from its checkpoints (without it the demo always
    /// trains from scratch, and refuses a folder that already holds a run).
    #[arg(long)]
    pub resume: bool,
}

fn train_job(
    a: &DemoArgs,
    method: MethodKind,
    arch: &Arch,
    epochs: usize,
    out: PathBuf,
    teacher: Option<PathBuf>,
) -> TrainJob {
    let config = TrainConfig {
        epochs,
        batch_size: 64,
        // The reference lr 0.1 for the students (at 0.05 each lost 7-21 points of clean accuracy
        // in 8 epochs); the teacher (PGD-AT from scratch) is steadier at 0.05.
        lr: if teacher.is_some() { 0.1 } else { 0.05 },
        schedule: LrSchedule::Cosine,
        seed: a.seed,
        // Digits at this budget learn best unaugmented (and are not mirror-symmetric).
        augment: None,
        // SAAD's reference averages weights from epoch 95 of 200: the same fraction here.
        swa_start: SwaStart::Auto.resolve(method, epochs),
        // The rest as the reference recipe: momentum 0.9, weight decay 2e-4, PGD-10 of 2/255
        // within 8/255, the reference method constants.
        ..TrainConfig::reference(method)
    };
    TrainJob {
        config,
        arch: arch.clone(),
        data: DataArgs {
            data: DatasetName::Digits,
            data_dir: "data".into(),
            image_size: a.image_size,
        },
        resume: a.resume && out.join("checkpoint.saad").exists(),
        out,
        extend_epochs: None,
        teacher,
        teacher_arch: None,
        eval_every: 1,
        // Per-epoch curves on the first 100 test images; the final evaluation uses all.
        eval_n: Some(100),
        stop_after_epochs: None,
        device: a.device,
        devices: Default::default(),
        quiet: a.quiet,
    }
}

/// One model's row of the demo: what it is and what was measured (`summary.json`).
#[derive(Serialize)]
struct DemoRow {
    name: String,
    arch: String,
    model: String,
    log: String,
    /// Clean and PGD-20 on the whole test set.
    eval: EvalReport,
    /// Clean and standard AutoAttack on the first `--aa-n` test images, with the result card.
    autoattack: Option<EvalReport>,
    /// The students' transfer statistics on the test set (PGD-20 against the student).
    transfer_test: Option<TransferReport>,
    /// TAS of the method's own training examples in the last epoch.
    train_tas_last_epoch: Option<f64>,
    /// The students' per-sample transfer records.
    records: Option<String>,
}

impl DemoRow {
    fn autoattack_acc(&self) -> Option<f64> {
        self.autoattack.as_ref()?.autoattack.first().map(|a| a.robust_acc)
    }
}

/// The white-box report on all test images, and the AutoAttack report (with the model's result
/// card, `card.json` beside it) on the first `--aa-n`.
fn eval(a: &DemoArgs, model: &Path) -> Result<(EvalReport, Option<EvalReport>)> {
    let args = |attacks: Vec<EvalItem>, n: Option<usize>, card: Option<PathBuf>| EvalArgs {
        checkpoint: model.to_path_buf(),
        data_dir: "data".into(),
        attacks,
        eps: STANDARD_EPS,
        n,
        batch_size: 256,
        seed: a.seed,
        json: true,
        device: a.device,
        quiet: true,
        card,
    };
    let white_box = eval_report(args(
        [EvalAttack::Clean, EvalAttack::Pgd { steps: 20, restarts: 1 }]
            .into_iter()
            .map(EvalItem::WhiteBox)
            .collect(),
        None,
        None,
    ))?;
    let autoattack = (a.aa_n > 0)
        .then(|| {
            eval_report(args(
                vec![
                    EvalItem::WhiteBox(EvalAttack::Clean),
                    EvalItem::AutoAttack(Version::Standard),
                ],
                Some(a.aa_n),
                Some(model.with_file_name("card.json")),
            ))
        })
        .transpose()?;
    Ok((white_box, autoattack))
}

/// One value per epoch of a run's `log.jsonl` (epochs without it are left out).
fn log_series(log: &Path, value: fn(&EpochLog) -> Option<f64>) -> Vec<(f64, f64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<EpochLog>(l).ok())
        .filter_map(|l| Some((l.epoch as f64, value(&l)?)))
        .collect()
}

pub fn run(a: DemoArgs) -> Result<()> {
    // A finished (or half-finished) run is never silently reused: its numbers would not be
    // what this command measures.
    // Held to the end: a second demo (or a train run) in this folder is refused, not interleaved.
    let _lock = crate::fsutil::lock_folder(&a.out)?;
    let used = std::fs::read_dir(&a.out)
        .map(|d| d.flatten().any(|e| e.file_name() != crate::fsutil::LOCK_FILE))
        .unwrap_or(false);
    if used && !a.resume {
        bail!(
            "{} already holds a demo run; pass --resume to continue it, or --out NEW_FOLDER (or delete {}) to train from scratch",
            a.out.display(),
            a.out.display()
        );
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let start = Instant::now();
    eprintln!(
        "== teacher: PGD-AT {} on the built-in digits ({}x{})",
        a.teacher_arch, a.image_size, a.image_size
    );
    let teacher_dir = a.out.join("teacher");
    let teacher = train_run(train_job(
        &a,
        MethodKind::PGD_AT,
        &a.teacher_arch,
        a.teacher_epochs,
        teacher_dir.clone(),
        None,
    ))?;
    let (teacher_eval, teacher_aa) = eval(&a, &teacher)?;
    let mut rows = vec![DemoRow {
        name: "teacher (pgd-at)".into(),
        arch: a.teacher_arch.to_string(),
        model: teacher.display().to_string(),
        log: teacher_dir.join("log.jsonl").display().to_string(),
        eval: teacher_eval,
        autoattack: teacher_aa,
        transfer_test: None,
        train_tas_last_epoch: None,
        records: None,
    }];
    for &method in &a.methods {
        eprintln!("== student: {method} distillation of {} from the teacher", a.student_arch);
        let dir = a.out.join(method.name());
        let model = train_run(train_job(
            &a,
            method,
            &a.student_arch,
            a.student_epochs,
            dir.clone(),
            Some(teacher.clone()),
        ))?;
        eprintln!(
            "== {method}: evaluating (clean, PGD-20, AutoAttack) and measuring transfer on the test set"
        );
        let (report, autoattack) = eval(&a, &model)?;
        let records = dir.join("transfer.csv");
        let transfer = transfer_run(TransferArgs {
            teacher: teacher.clone(),
            teacher_arch: None,
            student: model.clone(),
            data_dir: "data".into(),
            attack: "pgd20".parse().expect("attack id"),
            eps: STANDARD_EPS,
            alpha: STANDARD_STEP,
            batch_size: 128,
            n: None,
            seed: a.seed,
            out: records.clone(),
            device: a.device,
            quiet: true,
        })?;
        let log = dir.join("log.jsonl");
        let train_tas = log_series(&log, |l| l.tas).last().map(|p| p.1);
        rows.push(DemoRow {
            name: method.name().into(),
            arch: a.student_arch.to_string(),
            model: model.display().to_string(),
            log: log.display().to_string(),
            eval: report,
            autoattack,
            transfer_test: Some(transfer),
            train_tas_last_epoch: train_tas,
            records: Some(records.display().to_string()),
        });
    }

    let pct =
        |v: Option<f64>| v.map(|v| format!("{:.2}%", 100.0 * v)).unwrap_or_else(|| "-".into());
    let aa_col = format!("AA({})", a.aa_n);
    println!(
        "\n{:<18} {:>8} {:>8} {:>8} {:>11} {:>10}",
        "model", "clean", "PGD-20", aa_col, "TAS(train)", "TAS(test)"
    );
    for r in &rows {
        println!(
            "{:<18} {:>8} {:>8} {:>8} {:>11} {:>10}",
            r.name,
            pct(r.eval.accuracy("clean")),
            pct(r.eval.accuracy("pgd20")),
            pct(r.autoattack_acc()),
            pct(r.train_tas_last_epoch),
            pct(r.transfer_test.as_ref().map(|t| t.tas)),
        );
    }
    println!(
        "clean, PGD-20: all {} test images; {aa_col}: standard AutoAttack on the first {} (robust accuracy).",
        rows[0].eval.n, a.aa_n
    );
    println!(
        "TAS: fraction of student-crafted adversarial examples (train: the method's own; test: PGD-20 on the student) that fool the teacher."
    );

    // Plots over epochs.
    let series = |value: fn(&EpochLog) -> Option<f64>, skip_teacher: bool| -> Vec<Series> {
        rows.iter()
            .skip(skip_teacher as usize)
            .map(|r| Series { name: r.name.clone(), points: log_series(Path::new(&r.log), value) })
            .collect()
    };
    write_atomic(
        &a.out.join("clean_accuracy.svg"),
        line_chart(
            "Clean accuracy (first 100 test images)",
            "epoch",
            &series(|l| l.test_clean_acc, false),
        )
        .as_bytes(),
    )?;
    write_atomic(
        &a.out.join("pgd20_accuracy.svg"),
        line_chart(
            "PGD-20 accuracy, eps 8/255 (first 100 test images)",
            "epoch",
            &series(|l| l.test_pgd20_acc, false),
        )
        .as_bytes(),
    )?;
    write_atomic(
        &a.out.join("tas.svg"),
        line_chart("TAS of the training batches", "epoch", &series(|l| l.tas, true)).as_bytes(),
    )?;
    let summary = json!({
        "dataset": "digits", "image_size": a.image_size, "eps": STANDARD_EPS, "seed": a.seed,
        "teacher_arch": a.teacher_arch.to_string(), "student_arch": a.student_arch.to_string(),
        "seconds": start.elapsed().as_secs_f64(), "models": rows,
        "plots": ["clean_accuracy.svg", "pgd20_accuracy.svg", "tas.svg"],
    });
    write_atomic(&a.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("\nall outputs in {} ({:.0} s)", a.out.display(), start.elapsed().as_secs_f64());
    Ok(())
}
