//! `saad bench`: images/s of one PGD-10 adversarial training step (10 attack forward+backward
//! passes in eval mode, one training forward+backward, one SGD step), beside a natural training
//! step measured in the same run as the baseline, and the peak memory.

use crate::device::{DeviceChoice, select};
use anyhow::{Result, bail};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::checkpoint::DatasetInfo;
use saad_core::data::DeviceSet;
use saad_core::models::{Arch, ModelSpec};
use saad_core::train::{LrSchedule, MethodKind, TrainConfig, Trainer};
use serde_json::json;
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Attack iterations per training step.
    #[arg(long, default_value_t = 10)]
    pub attack_steps: usize,
    /// Timed steps per method (after one untimed warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds per training step of `method` (median over `steps`), and the device memory reserved.
fn time_steps(method: MethodKind, args: &BenchArgs, data: &DeviceSet, device: &Device) -> (f64, Option<u64>) {
    let mut config = TrainConfig::reference(method);
    config.batch_size = args.batch_size;
    config.attack.steps = args.attack_steps;
    config.schedule = LrSchedule::Constant;
    config.epochs = args.steps + 1;
    let info = DatasetInfo { name: "synthetic".into(), image_size: args.image_size, num_classes: args.classes };
    let mut trainer = Trainer::new(ModelSpec::new(args.arch.clone(), args.classes), config, info, device);
    // One batch per epoch; each epoch ends with one read, which synchronises the device.
    trainer.train_epoch(data, &mut |_, _| {});
    let mut times = Vec::new();
    for _ in 0..args.steps {
        let start = Instant::now();
        trainer.train_epoch(data, &mut |_, _| {});
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], device.memory_pool_usage().map(|u| u.bytes_reserved))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let (device, device_name) = select(args.device)?;
    let (b, s) = (args.batch_size, args.image_size);
    let images = Tensor::<4>::random([b, 3, s, s], Distribution::Uniform(0.0, 1.0), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new((0..b as i64).map(|i| i % args.classes as i64).collect::<Vec<_>>(), [b]), &device);
    let data = DeviceSet { images, labels, len: b, num_classes: args.classes };

    let (natural, _) = time_steps(MethodKind::Natural, &args, &data, &device);
    let (pgd, device_mem) = time_steps(MethodKind::PgdAt, &args, &data, &device);
    let rss = peak_rss();
    if args.json {
        println!(
            "{}",
            json!({
                "device": device_name, "arch": args.arch.to_string(), "batch_size": b, "image_size": s,
                "attack_steps": args.attack_steps, "timed_steps": args.steps,
                "pgd_step_seconds": pgd, "pgd_images_per_sec": b as f64 / pgd,
                "natural_step_seconds": natural, "natural_images_per_sec": b as f64 / natural,
                "pgd_over_natural": pgd / natural,
                "peak_rss_bytes": rss, "device_reserved_bytes": device_mem,
            })
        );
    } else {
        println!("device          {device_name}");
        println!("model           {} ({} classes), batch {b}, {s}x{s}", args.arch, args.classes);
        println!("PGD-{} step     {:.3} s  {:.1} images/s", args.attack_steps, pgd, b as f64 / pgd);
        println!("natural step    {:.3} s  {:.1} images/s (baseline, same run)", natural, b as f64 / natural);
        println!("ratio           PGD step = {:.2} x natural step", pgd / natural);
        if let Some(r) = rss {
            println!("peak RSS        {:.0} MiB (whole process)", r as f64 / 1048576.0);
        }
        if let Some(m) = device_mem {
            println!("device memory   {:.0} MiB reserved by the allocator", m as f64 / 1048576.0);
        }
    }
    Ok(())
}
