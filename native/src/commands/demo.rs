//! `saad demo`: the whole story on the built-in digits, offline, on the CPU in minutes. A robust
//! teacher (PGD-AT, the larger model) is trained; a smaller student is distilled from it with
//! SAAD and with baselines (RSLAD, AdaAD by default), all from the same seed; the teacher and
//! each student are evaluated (clean and PGD-20 on the test set, standard AutoAttack on its
//! first `--aa-n` images, eps 8/255; CW-inf is left to `saad eval` to fit the time budget), their transfer statistics
//! measured on the test set; a table with TAS per method is printed; everything (checkpoints,
//! logs, per-sample transfer records, summary.json, SVG plots) goes to one folder.

use super::eval::{EvalArgs, EvalItem, run_json as eval_json};
use super::train::{SwaStart, TrainArgs, run as train_run};
use super::transfer::{TransferArgs, run as transfer_run};
use crate::datasets::{DataArgs, DatasetName};
use crate::device::DeviceChoice;
use crate::fsutil::write_atomic;
use crate::plot::{Series, line_chart};
use anyhow::{Context, Result, bail};
use saad_core::attacks::autoattack::Version;
use saad_core::attacks::{STANDARD_EPS, STANDARD_STEP};
use saad_core::eval::EvalAttack;
use saad_core::models::Arch;
use saad_core::train::{LrSchedule, MethodKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Distillation methods of the students.
    #[arg(long, default_value = "saad,rslad,adaad", value_delimiter = ',')]
    pub methods: Vec<MethodKind>,
    #[arg(long, default_value = "small-cnn-16")]
    pub teacher_arch: Arch,
    #[arg(long, default_value = "small-cnn-8")]
    pub student_arch: Arch,
    /// Rendering size of the digits.
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    #[arg(long, default_value_t = 10)]
    pub teacher_epochs: usize,
    #[arg(long, default_value_t = 10)]
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

fn train_args(
    a: &DemoArgs,
    method: MethodKind,
    arch: &Arch,
    epochs: usize,
    out: PathBuf,
    teacher: Option<PathBuf>,
) -> TrainArgs {
    TrainArgs {
        data: DataArgs {
            data: DatasetName::Digits,
            data_dir: "data".into(),
            image_size: a.image_size,
        },
        arch: arch.clone(),
        method,
        epochs: Some(epochs),
        batch_size: 64,
        // The reference lr 0.1 for the students; the teacher (PGD-AT from scratch) is steadier at 0.05.
        lr: if teacher.is_some() { 0.1 } else { 0.05 },
        momentum: 0.9,
        weight_decay: 2e-4,
        schedule: LrSchedule::Cosine,
        seed: a.seed,
        eps: STANDARD_EPS,
        alpha: STANDARD_STEP,
        attack_steps: 10,
        // Digits at this budget learn best unaugmented (and are not mirror-symmetric).
        no_augment: true,
        resume: a.resume && out.join("checkpoint.saad").exists(),
        out,
        teacher,
        teacher_arch: None,
        // SAAD's reference averages weights from epoch 95 of 200: the same fraction here.
        swa_start: SwaStart::Auto,
        params: None,
        preset: None,
        eval_every: 1,
        // Per-epoch curves on the first 100 test images; the final evaluation uses all.
        eval_n: Some(100),
        stop_after_epochs: None,
        device: a.device,
        quiet: a.quiet,
    }
}

fn eval(a: &DemoArgs, model: &Path) -> Result<Value> {
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
    let mut report = eval_json(args(
        [EvalAttack::Clean, EvalAttack::Pgd { steps: 20, restarts: 1 }]
            .into_iter()
            .map(EvalItem::WhiteBox)
            .collect(),
        None,
        None,
    ))?;
    if a.aa_n > 0 {
        // The result card of each model (card.json beside it): clean and AutoAttack on the same points.
        let aa = eval_json(args(
            vec![EvalItem::WhiteBox(EvalAttack::Clean), EvalItem::AutoAttack(Version::Standard)],
            Some(a.aa_n),
            Some(model.with_file_name("card.json")),
        ))?;
        report["autoattack"] = aa["autoattack"][0].clone();
        report["card"] = aa["card"].clone();
    }
    Ok(report)
}

fn acc(report: &Value, attack: &str) -> Option<f64> {
    if attack == "autoattack" {
        return report["autoattack"]["robust_acc"].as_f64();
    }
    report["results"].as_array()?.iter().find(|r| r["attack"] == attack)?["accuracy"].as_f64()
}

fn log_series(log: &Path, key: &str) -> Vec<(f64, f64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["epoch"].as_f64()?, v[key].as_f64()?)))
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
    let teacher = train_run(train_args(
        &a,
        MethodKind::PGD_AT,
        &a.teacher_arch,
        a.teacher_epochs,
        teacher_dir.clone(),
        None,
    ))?;
    let mut rows = vec![
        json!({"name": "teacher (pgd-at)", "arch": a.teacher_arch.to_string(), "model": teacher.display().to_string(), "eval": eval(&a, &teacher)?, "log": teacher_dir.join("log.jsonl").display().to_string()}),
    ];
    for &method in &a.methods {
        eprintln!("== student: {method} distillation of {} from the teacher", a.student_arch);
        let dir = a.out.join(method.name());
        let model = train_run(train_args(
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
        let report = eval(&a, &model)?;
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
        let train_tas = log_series(&log, "tas").last().map(|p| p.1);
        rows.push(json!({
            "name": method.name(), "arch": a.student_arch.to_string(), "model": model.display().to_string(),
            "eval": report, "transfer_test": transfer, "train_tas_last_epoch": train_tas,
            "records": records.display().to_string(), "log": log.display().to_string(),
        }));
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
            r["name"].as_str().unwrap_or(""),
            pct(acc(&r["eval"], "clean")),
            pct(acc(&r["eval"], "pgd20")),
            pct(acc(&r["eval"], "autoattack")),
            pct(r["train_tas_last_epoch"].as_f64()),
            pct(r["transfer_test"]["tas"].as_f64()),
        );
    }
    println!(
        "clean, PGD-20: all {} test images; {aa_col}: standard AutoAttack on the first {} (robust accuracy).",
        rows[0]["eval"]["n"], a.aa_n
    );
    println!(
        "TAS: fraction of student-crafted adversarial examples (train: the method's own; test: PGD-20 on the student) that fool the teacher."
    );

    // Plots over epochs.
    let logs: Vec<(String, PathBuf)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                PathBuf::from(r["log"].as_str().unwrap_or("")),
            )
        })
        .collect();
    let series = |key: &str, skip_teacher: bool| -> Vec<Series> {
        logs.iter()
            .skip(skip_teacher as usize)
            .map(|(n, l)| Series { name: n.clone(), points: log_series(l, key) })
            .collect()
    };
    write_atomic(
        &a.out.join("clean_accuracy.svg"),
        line_chart(
            "Clean accuracy (first 100 test images)",
            "epoch",
            &series("test_clean_acc", false),
        )
        .as_bytes(),
    )?;
    write_atomic(
        &a.out.join("pgd20_accuracy.svg"),
        line_chart(
            "PGD-20 accuracy, eps 8/255 (first 100 test images)",
            "epoch",
            &series("test_pgd20_acc", false),
        )
        .as_bytes(),
    )?;
    write_atomic(
        &a.out.join("tas.svg"),
        line_chart("TAS of the training batches", "epoch", &series("tas", true)).as_bytes(),
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
