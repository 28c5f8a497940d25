//! `saad eval`: robust accuracy of a checkpoint on its dataset's test set.

use super::{parse_eps, read_checkpoint};
use crate::datasets::{self, DataArgs, DatasetName};
use crate::device::{DeviceChoice, select};
use crate::progress::{Progress, note};
use anyhow::{Context, Result, bail};
use saad_core::data::DeviceSet;
use saad_core::eval::{EvalAttack, evaluate};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `saad train` (or `saad export --format saad`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder with the official dataset files (the dataset itself is the checkpoint's).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Comma-separated attacks: clean, fgsm, pgd20 (pgdK[xR]), cw-inf (cwK[xR]).
    #[arg(long, default_value = "clean,fgsm,pgd20,cw-inf", value_delimiter = ',')]
    pub attacks: Vec<EvalAttack>,
    /// L-infinity radius.
    #[arg(long, default_value = "8/255", value_parser = parse_eps)]
    pub eps: f32,
    /// Evaluate on the first N test images (default: all).
    #[arg(long)]
    pub n: Option<usize>,
    #[arg(long, default_value_t = 256)]
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
}

pub fn run(args: EvalArgs) -> Result<()> {
    let json = args.json;
    let report = run_json(args)?;
    if json {
        println!("{report}");
    }
    Ok(())
}

/// Evaluates and returns the report as JSON (printing the table unless `json`).
pub fn run_json(args: EvalArgs) -> Result<serde_json::Value> {
    let q = args.quiet || args.json;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let ckpt = read_checkpoint(&args.checkpoint)?;
    let (device, device_name) = select(args.device)?;
    let model = ckpt.load_model(&device, &args.checkpoint.display().to_string())?;
    let info = &ckpt.header.dataset;
    let data = DatasetName::parse(&info.name).with_context(|| format!("unknown dataset {:?} in {}", info.name, args.checkpoint.display()))?;
    let (_, test) = datasets::load(&DataArgs { data, data_dir: args.data_dir.clone(), image_size: info.image_size })?;
    let test = match args.n {
        Some(n) => test.take(n),
        None => test,
    };
    note(q, format!("{} on {} test images of {}, eps {:.5}, device {device_name}", ckpt.header.model, test.len(), info.name, args.eps));
    let data = DeviceSet::upload(&test, &device);
    let nb = data.len.div_ceil(args.batch_size);
    let mut results = Vec::new();
    for attack in &args.attacks {
        device.seed(args.seed);
        let bar = Progress::new(q, nb as u64, &attack.to_string(), "batches");
        let start = Instant::now();
        let mut r = evaluate(&model, &data, std::slice::from_ref(attack), args.eps, args.batch_size, &mut |_, b, _| bar.set(b as u64));
        bar.finish();
        results.push((r.remove(0), start.elapsed().as_secs_f64()));
    }
    let obj = json!({
            "checkpoint": args.checkpoint.display().to_string(),
            "model": ckpt.header.model.arch.to_string(),
            "dataset": info.name,
            "n": data.len,
            "eps": args.eps,
            "seed": args.seed,
            "device": device_name,
            "results": results.iter().map(|(r, t)| json!({"attack": r.attack, "accuracy": r.accuracy, "correct": r.correct, "total": r.total, "seconds": t})).collect::<Vec<_>>(),
    });
    if !args.json {
        println!("{:<10} {:>9} {:>13} {:>9}", "attack", "accuracy", "correct", "seconds");
        for (r, t) in &results {
            println!("{:<10} {:>8.2}% {:>6}/{:<6} {:>9.1}", r.attack, 100.0 * r.accuracy, r.correct, r.total, t);
        }
    }
    Ok(obj)
}
