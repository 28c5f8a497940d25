//! `saad eval`: robust accuracy of a checkpoint on its dataset's test set.

use super::{parse_eps, read_checkpoint};
use crate::datasets;
use crate::device::{DeviceChoice, select};
use crate::progress::{Progress, note};
use anyhow::{Result, bail};
use saad_core::attacks::autoattack::{
    AttackStepReport, AutoAttack, AutoAttackConfig, AutoAttackReport, Version,
};
use saad_core::data::DeviceSet;
use saad_core::eval::{
    CardAttack, EvalAttack, EvalReport, ResultCard, Software, TimedEvalResult, evaluate,
};
use saad_core::models::Net;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `saad train` (or `saad export --format saad`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with the official dataset files (the dataset itself is the checkpoint's).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Comma-separated attacks: clean, fgsm, pgd20 (pgdK[xR]), cw-inf (cwK[xR]), and
    /// autoattack (the standard ensemble), autoattack-fast (APGD-CE + APGD-T, not standard),
    /// autoattack-square-paper (Square with the paper's rescaled schedule, not standard) or
    /// autoattack:apgd-ce+square (a custom subset).
    #[arg(
        long,
        alias = "attack",
        default_value = "clean,fgsm,pgd20,cw-inf",
        value_delimiter = ','
    )]
    pub attacks: Vec<EvalItem>,
    /// L-infinity radius.
    #[arg(long, default_value = "8/255", value_parser = parse_eps)]
    pub eps: f32,
    /// Evaluate on the first N test images (default: all).
    #[arg(long)]
    pub n: Option<usize>,
    /// Images per batch (250: AutoAttack's `run_standard_evaluation` default; with Square's
    /// random draws per batch, the batch size is part of what makes a run repeatable).
    #[arg(long, default_value_t = 250)]
    pub batch_size: usize,
    /// Seed of the random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub quiet: bool,
    /// Also write the result card (RobustBench-style JSON: model, threat model, clean and
    /// AutoAttack accuracy, n, attack versions, seed, device, software, time) to this file.
    /// `--json` output always holds it under "card".
    #[arg(long)]
    pub card: Option<PathBuf>,
}

/// One requested evaluation: a white-box attack or an AutoAttack composition.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalItem {
    WhiteBox(EvalAttack),
    AutoAttack(Version),
}

impl FromStr for EvalItem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "autoattack" | "aa" => Ok(EvalItem::AutoAttack(Version::Standard)),
            "autoattack-fast" => Ok(EvalItem::AutoAttack(Version::Fast)),
            "autoattack-square-paper" => Ok(EvalItem::AutoAttack(Version::SquarePaper)),
            _ => match s.strip_prefix("autoattack:") {
                Some(list) => Ok(EvalItem::AutoAttack(Version::Custom(
                    list.split('+').map(str::parse).collect::<Result<_, _>>()?,
                ))),
                None => s.parse().map(EvalItem::WhiteBox),
            },
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let json = args.json;
    let report = report(args)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Evaluates and returns the report (printing the table unless `json`).
pub fn report(args: EvalArgs) -> Result<EvalReport> {
    let q = args.quiet || args.json;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let eval_start = Instant::now();
    let ckpt = read_checkpoint(&args.checkpoint)?;
    let info = &ckpt.header.dataset;
    // Files first: a missing dataset is reported before any GPU is probed.
    let test = datasets::load_split(
        &datasets::of_checkpoint(info, &args.data_dir, &args.checkpoint)?,
        datasets::Split::Test,
    )?;
    let (device, device_name) = select(args.device)?;
    let model = ckpt.load_model(&device, &args.checkpoint.display().to_string())?;
    let test = match args.n {
        Some(n) => test.take(n),
        None => test,
    };
    note(
        q,
        format!(
            "{} on {} test images of {}, eps {:.5}, device {device_name}",
            ckpt.header.model,
            test.len(),
            info.name,
            args.eps
        ),
    );
    let data = DeviceSet::upload(&test, &device);
    let nb = data.len.div_ceil(args.batch_size);
    let mut results = Vec::new();
    let mut autoattack = Vec::new();
    for item in &args.attacks {
        let attack = match item {
            EvalItem::WhiteBox(a) => a,
            EvalItem::AutoAttack(version) => {
                autoattack.push(run_autoattack(&model, &data, version.clone(), &args, q));
                continue;
            }
        };
        device.seed(args.seed);
        let bar = Progress::new(q, nb as u64, &attack.to_string(), "batches");
        let start = Instant::now();
        let mut r = evaluate(
            &model,
            &data,
            std::slice::from_ref(attack),
            args.eps,
            args.batch_size,
            &mut |_, b, _| bar.set(b as u64),
        );
        bar.finish();
        results
            .push(TimedEvalResult { result: r.remove(0), seconds: start.elapsed().as_secs_f64() });
    }
    let card = result_card(
        &results,
        autoattack.first(),
        &args,
        &ckpt,
        data.len,
        &device_name,
        eval_start.elapsed().as_secs_f64(),
    );
    let report = EvalReport {
        checkpoint: args.checkpoint.display().to_string(),
        model: ckpt.header.model.arch.to_string(),
        dataset: info.name.clone(),
        n: data.len,
        eps: f64::from(args.eps),
        seed: args.seed,
        device: device_name,
        results,
        autoattack,
        card,
    };
    if let Some(path) = &args.card {
        crate::fsutil::write_atomic(path, serde_json::to_string_pretty(&report.card)?.as_bytes())?;
    }
    if !args.json {
        if !report.results.is_empty() {
            println!("{:<10} {:>9} {:>13} {:>9}", "attack", "accuracy", "correct", "seconds");
            for TimedEvalResult { result: r, seconds } in &report.results {
                println!(
                    "{:<10} {:>8.2}% {:>6}/{:<6} {:>9.1}",
                    r.attack,
                    100.0 * r.accuracy,
                    r.correct,
                    r.total,
                    seconds
                );
            }
        }
        for aa in &report.autoattack {
            print_autoattack(aa);
        }
    }
    Ok(report)
}

/// The result card of one evaluation: RobustBench's model-info fields where they apply
/// (`clean_acc`, `autoattack_acc`, `eps`, `dataset`, `architecture`, threat model), plus what
/// makes the numbers reproducible here (n, attack versions, seed, device, software, time).
fn result_card(
    results: &[TimedEvalResult],
    autoattack: Option<&AutoAttackReport>,
    args: &EvalArgs,
    ckpt: &saad_core::checkpoint::Checkpoint,
    n: usize,
    device: &str,
    seconds: f64,
) -> ResultCard {
    let white_box =
        |name: &str| results.iter().find(|r| r.result.attack == name).map(|r| r.result.accuracy);
    // `runs/x/model.saad` is known by its run folder, `teacher.saad` by its own name.
    let stem =
        args.checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let folder = args
        .checkpoint
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    let model_id = match (stem.as_str(), folder) {
        ("model" | "checkpoint", Some(f)) => f,
        _ => stem,
    };
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    ResultCard {
        model_id,
        checkpoint: args.checkpoint.display().to_string(),
        architecture: ckpt.header.model.arch.to_string(),
        method: text(ckpt.header.train_config.get("method")),
        weights: text(ckpt.header.notes.get("weights")),
        dataset: ckpt.header.dataset.name.clone(),
        threat_model: "Linf".into(),
        eps: f64::from(args.eps),
        eps_fraction: format!("{:.0}/255", args.eps * 255.0),
        n,
        clean_acc: white_box("clean").or(autoattack.map(|a| a.clean_acc)),
        autoattack_acc: autoattack.map(|a| a.robust_acc),
        autoattack_version: autoattack.map(|a| a.version.clone()),
        autoattack_standard: autoattack.map(|a| a.standard),
        autoattack_attacks: autoattack.map(|a| a.steps.iter().map(|s| s.attack.clone()).collect()),
        other_attacks: results
            .iter()
            .filter(|r| r.result.attack != "clean")
            .map(|r| CardAttack { attack: r.result.attack.clone(), accuracy: r.result.accuracy })
            .collect(),
        seed: args.seed,
        device: device.to_string(),
        software: Software { saad: env!("CARGO_PKG_VERSION").into(), burn: "0.22.1".into() },
        seconds,
    }
}

/// Runs an AutoAttack composition with a progress bar per attack; the report as JSON.
fn run_autoattack(
    model: &Net,
    data: &DeviceSet,
    version: Version,
    args: &EvalArgs,
    q: bool,
) -> AutoAttackReport {
    let model = model.folded();
    let forward = |x| model.forward(x);
    let config = AutoAttackConfig {
        seed: args.seed,
        batch: args.batch_size,
        version: version.clone(),
        ..AutoAttackConfig::standard(args.eps)
    };
    let n = data.len;
    let start = Instant::now();
    let mut aa = AutoAttack::new(&forward, data.images.clone(), data.labels.clone(), config);
    let clean_seconds = start.elapsed().as_secs_f64();
    let mut steps = Vec::new();
    for attack in version.attacks() {
        let robust_before = aa.robust_count();
        if robust_before == 0 {
            break;
        }
        let bar = Progress::new(
            q,
            robust_before.div_ceil(args.batch_size) as u64,
            attack.name(),
            "batches",
        );
        let t0 = Instant::now();
        let step = aa.run_attack(attack, &mut |b, _| bar.set(b as u64));
        bar.finish();
        steps.push(AttackStepReport {
            attack: attack.name().into(),
            broken: step.broken,
            robust: step.robust,
            robust_acc: step.robust as f64 / n as f64,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let (recheck_correct, max_linf) = aa.recheck();
    let robust = aa.robust_count();
    AutoAttackReport {
        version: version.to_string(),
        standard: version.is_standard(),
        eps: f64::from(args.eps),
        n,
        seed: args.seed,
        clean_acc: aa.clean_correct as f64 / n as f64,
        clean_seconds,
        steps,
        robust_acc: robust as f64 / n as f64,
        robust,
        recheck_acc: recheck_correct as f64 / n as f64,
        recheck_agrees: recheck_correct == robust,
        max_linf: f64::from(max_linf),
        flags: aa.flags,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn print_autoattack(r: &AutoAttackReport) {
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    println!("AutoAttack {} (eps {:.5}, {} points, seed {})", r.version, r.eps, r.n, r.seed);
    println!("  {:<10} {:>9}", "clean", pct(r.clean_acc));
    for s in &r.steps {
        println!(
            "  {:<10} {:>9}  (broke {:>4}, {:>7.1} s)",
            s.attack,
            pct(s.robust_acc),
            s.broken,
            s.seconds
        );
    }
    println!(
        "  {:<10} {:>9}  (re-checked on the returned examples: {}; max Linf {:.5})",
        "robust",
        pct(r.robust_acc),
        pct(r.recheck_acc),
        r.max_linf
    );
    for f in &r.flags {
        println!("  WARNING: {f}");
    }
}
