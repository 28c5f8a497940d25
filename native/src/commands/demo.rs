//! `saad demo`: the main job on the built-in digits, offline, on CPU in minutes: a naturally
//! trained and a PGD-AT small CNN from the same seed, each evaluated under the protocol's
//! white-box attacks, with a summary table and `summary.json` in one output folder.

use super::train::{TrainArgs, run as train_run};
use crate::datasets::{DataArgs, DatasetName};
use crate::device::DeviceChoice;
use crate::fsutil::write_atomic;
use anyhow::{Context, Result};
use saad_core::models::Arch;
use saad_core::train::{LrSchedule, MethodKind};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder (checkpoints, logs, summary.json).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Scale the epochs of every run (0.2 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub epoch_scale: f64,
    #[arg(long, default_value = "small-cnn-16")]
    pub arch: Arch,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub quiet: bool,
}

fn train_args(a: &DemoArgs, method: MethodKind) -> TrainArgs {
    // Recipes that fit minutes of CPU: digits need no augmentation at this budget (and are not
    // mirror-symmetric); the attacker trains with the protocol's 10 steps of 2/255.
    let (epochs, batch_size) = match method {
        MethodKind::Natural => (20, 32),
        MethodKind::PgdAt => (15, 64),
    };
    TrainArgs {
        data: DataArgs { data: DatasetName::Digits, data_dir: "data".into(), image_size: 32 },
        arch: a.arch.clone(),
        method,
        epochs: Some(((epochs as f64 * a.epoch_scale).round() as usize).max(1)),
        batch_size,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 2e-4,
        schedule: LrSchedule::Cosine,
        seed: a.seed,
        eps: 8.0 / 255.0,
        alpha: 2.0 / 255.0,
        attack_steps: 10,
        no_augment: true,
        out: a.out.join(method.to_string()),
        resume: a.out.join(method.to_string()).join("checkpoint.saad").exists(),
        eval_every: 0,
        eval_n: None,
        stop_after_epochs: None,
        device: a.device,
        quiet: a.quiet,
    }
}

pub fn run(a: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let exe = std::env::current_exe().context("cannot find the saad executable")?;
    let mut rows = Vec::new();
    for method in [MethodKind::Natural, MethodKind::PgdAt] {
        eprintln!("== {method}: training {} on the built-in digits", a.arch);
        let ckpt = train_run(train_args(&a, method))?;
        eprintln!("== {method}: evaluating (clean, FGSM, PGD-20, CW-inf; eps 8/255)");
        // Evaluation runs as `saad eval --json`, exactly what a user would type.
        let out = Command::new(&exe)
            .args(["eval", "--json", "--checkpoint"])
            .arg(&ckpt)
            .args(["--device", &format!("{:?}", a.device).to_lowercase(), "--seed", &a.seed.to_string()])
            .output()
            .context("cannot run saad eval")?;
        if !out.status.success() {
            anyhow::bail!("saad eval failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let report: Value = serde_json::from_slice(&out.stdout).context("saad eval printed no JSON")?;
        rows.push(json!({"method": method.to_string(), "checkpoint": ckpt.display().to_string(), "eval": report}));
    }
    println!("\n{:<10} {:>8} {:>8} {:>8} {:>8}", "method", "clean", "FGSM", "PGD-20", "CW-inf");
    for r in &rows {
        let acc = |name: &str| {
            r["eval"]["results"].as_array().and_then(|v| v.iter().find(|x| x["attack"] == name)).and_then(|x| x["accuracy"].as_f64()).map(|v| format!("{:.2}%", 100.0 * v)).unwrap_or_else(|| "-".into())
        };
        println!("{:<10} {:>8} {:>8} {:>8} {:>8}", r["method"].as_str().unwrap_or(""), acc("clean"), acc("fgsm"), acc("pgd20"), acc("cw-inf"));
    }
    let summary = a.out.join("summary.json");
    write_atomic(&summary, serde_json::to_string_pretty(&json!({"dataset": "digits", "image_size": 32, "eps": 8.0 / 255.0, "runs": rows}))?.as_bytes())?;
    println!("\nall outputs in {}", a.out.display());
    Ok(())
}
