//! `saad transfer`: per-sample transfer records of student-crafted adversarial examples to the
//! teacher on a test set (CSV or JSON), and a summary (TAS, entropy, SAAD weights).

use super::{parse_eps, read_checkpoint, teacher};
use crate::datasets;
use crate::device::{DeviceChoice, select};
use crate::fsutil::write_atomic;
use crate::progress::{Progress, note};
use anyhow::{Result, bail};
use saad_core::data::DeviceSet;
use saad_core::train::MethodParams;
use saad_core::transfer::{SampleRecord, TransferAttack, TransferReport, transfer_records};
use serde_json::json;
use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct TransferArgs {
    /// The teacher: a saad checkpoint, or a .safetensors PyTorch state dict with --teacher-arch.
    #[arg(long)]
    pub teacher: PathBuf,
    #[arg(long)]
    pub teacher_arch: Option<String>,
    /// The student (a saad checkpoint); its dataset is the one evaluated.
    #[arg(long)]
    pub student: PathBuf,
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// How the student-crafted example is made: fgsm, pgdK (e.g. pgd20), saad (SAAD's inner
    /// maximisation, 10 steps) or saadK.
    #[arg(long, default_value = "pgd20")]
    pub attack: TransferAttack,
    #[arg(long, default_value = "8/255", value_parser = parse_eps)]
    pub eps: f32,
    #[arg(long, default_value = "2/255", value_parser = parse_eps)]
    pub alpha: f32,
    /// Batch size; the SAAD weights are relative to the batch, as in training.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// The first N test images (default: all).
    #[arg(long)]
    pub n: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Per-sample records: .csv or .json.
    #[arg(long, default_value = "transfer.csv")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub quiet: bool,
}

pub fn csv(records: &[SampleRecord]) -> String {
    let mut s = String::from(
        "index,label,teacher_clean,student_clean,teacher_adv,student_adv,transfers,student_fooled,teacher_entropy,saad_weight,saad_weight_hat,linf,teacher_margin\n",
    );
    for r in records {
        s += &format!(
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6}\n",
            r.index,
            r.label,
            r.teacher_clean,
            r.student_clean,
            r.teacher_adv,
            r.student_adv,
            r.transfers as u8,
            r.student_fooled as u8,
            r.teacher_entropy,
            r.saad_weight,
            r.saad_weight_hat,
            r.linf,
            r.teacher_margin
        );
    }
    s
}

/// Runs the measurement and writes the records; returns the summary as JSON.
pub fn run(args: TransferArgs) -> Result<TransferReport> {
    let q = args.quiet;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let ckpt = read_checkpoint(&args.student)?;
    let info = &ckpt.header.dataset;
    // Files first: a missing dataset is reported before any GPU is probed.
    let test = datasets::load_split(
        &datasets::of_checkpoint(info, &args.data_dir, &args.student)?,
        datasets::Split::Test,
    )?;
    let (device, device_name) = select(args.device)?;
    let student = ckpt.load_model(&device, &args.student.display().to_string())?;
    let test = match args.n {
        Some(n) => test.take(n),
        None => test,
    };
    let (teacher, tspec) = teacher::load(
        &args.teacher,
        args.teacher_arch.as_deref(),
        &info.name,
        test.num_classes,
        &device,
    )?;
    note(
        q,
        format!(
            "teacher {tspec}, student {}, {} test images of {}, attack {:?}, device {device_name}",
            ckpt.header.model,
            test.len(),
            info.name,
            args.attack
        ),
    );
    let set = DeviceSet::upload(&test, &device);
    let params: MethodParams = serde_json::from_value(
        ckpt.header.train_config.get("params").cloned().unwrap_or(json!({})),
    )
    .unwrap_or_default();
    device.seed(args.seed);
    let bar = Progress::new(q, set.len.div_ceil(args.batch_size) as u64, "transfer", "batches");
    let (records, stats) = transfer_records(
        &teacher,
        &student,
        &set,
        args.attack,
        args.eps,
        args.alpha,
        args.batch_size,
        &params,
        &mut |b, _| bar.set(b as u64),
    );
    bar.finish();
    let fraction = |n: usize| n as f64 / records.len() as f64;
    let summary = TransferReport {
        teacher: args.teacher.display().to_string(),
        student: args.student.display().to_string(),
        dataset: info.name.clone(),
        attack: format!("{:?}", args.attack),
        eps: f64::from(args.eps),
        n: set.len,
        tas: stats.tas,
        student_asr: stats.student_asr,
        teacher_entropy_mean: stats.teacher_entropy_mean,
        teacher_entropy_std: stats.teacher_entropy_std,
        saad_weight_mean: stats.weight_mean,
        saad_weight_hist: stats.weight_hist.clone(),
        teacher_clean_acc: fraction(records.iter().filter(|r| r.teacher_clean == r.label).count()),
        student_clean_acc: fraction(records.iter().filter(|r| r.student_clean == r.label).count()),
    };
    let body = if args.out.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(&json!({"summary": summary, "records": records}))?
    } else {
        csv(&records)
    };
    write_atomic(&args.out, body.as_bytes())?;
    Ok(summary)
}
