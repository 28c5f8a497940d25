//! `saad bench`: training steps of each `--method` (natural, PGD-AT, SAAD, ...) on synthetic
//! data, beside a natural training step measured in the same run as the baseline: seconds per
//! step, images/s, seconds per CIFAR-10 epoch, the first step's wait (kernel compilation and
//! autotuning), device memory, host reads per step. `bench/torch_reference.py` runs the same
//! workloads in PyTorch. `--kernels` benchmarks the WGSL kernels against their twins instead.

use crate::device::{DeviceChoice, select};
use crate::host_profile::{self, Attribution, Sampled};
use anyhow::{Result, bail};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::checkpoint::DatasetInfo;
use saad_core::data::DeviceSet;
use saad_core::host_copy::host_reads;
use saad_core::kernels::LaunchCounter;
use saad_core::kernels::gemm_conv::{WgpuConvolution, set_wgpu_convolution};
use saad_core::models::{Arch, ModelSpec};
use saad_core::train::{LrSchedule, MethodKind, TrainConfig, Trainer};
use serde_json::{Value, json};
use std::time::Instant;

/// CIFAR-10's training set, the unit of "seconds per epoch".
const CIFAR10_TRAIN: f64 = 50_000.0;

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Methods to time (comma-separated); a natural step is always timed first as the baseline.
    #[arg(
        long = "method",
        value_delimiter = ',',
        default_value = "pgd-at",
        value_parser = super::method_parser()
    )]
    pub methods: Vec<MethodKind>,
    /// The student (trained) architecture.
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    /// The teacher of the distillation methods (random weights: a speed benchmark).
    #[arg(long, default_value = "dm-wrn-28-10")]
    pub teacher_arch: Arch,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Attack iterations per training step (the inner maximisation).
    #[arg(long, default_value_t = 10)]
    pub attack_steps: usize,
    /// Timed steps per method: one epoch of this many batches (one read at its end), after a
    /// first, untimed epoch of as many batches.
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
    /// Benchmark the WGSL kernels against their tensor-op twins instead (use a wgpu device).
    #[arg(long)]
    pub kernels: bool,
    /// The convolutions of a wgpu device, each timed in this run (comma-separated): burn's own
    /// (`burn`), `columns` (columns-times-weights forward, `kernels::gemm_conv`) and/or `tiled`
    /// (tiled implicit-GEMM kernels forward and backward, `kernels::tiled_conv`).
    #[arg(long = "wgpu-conv", value_delimiter = ',', default_value = "burn")]
    pub wgpu_conv: Vec<WgpuConvolution>,
    /// Calls per timing of the kernel benchmark.
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// Also time data-parallel training over this many `saad serve` servers started on this
    /// machine, each hosting --device (burn's remote backend over localhost): each method on one
    /// server and on all of them, against the same method on the local device; bytes moved per
    /// step (tensors moved between devices; all loopback traffic) and scaling efficiency.
    #[arg(long, default_value_t = 0)]
    pub servers: usize,
    /// Also print, per method, the N kernels launched most per timed step (cubecl's kernel
    /// names): which operations the launches come from.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub launches_by_kernel: usize,
    /// Time the student's pass kinds one by one instead (fold, eval forward, attack iteration,
    /// training forward, forward + backward, with the SGD step), `--steps` calls each:
    /// `bench/torch_reference.py --workload passes` times the same in PyTorch.
    #[arg(long)]
    pub passes: bool,
    /// On flex, run every layer through the columns convolution, without the Winograd path of
    /// 3x3 stride-1 layers (`kernels::flex_winograd`): the before of its comparison.
    #[arg(long)]
    pub no_winograd: bool,
    /// Sample the process's CPU time (every thread, about 1 kHz; Linux with glibc) during each
    /// timed epoch, print where it went by layer (saad, burn, cubecl, wgpu, the driver) and by
    /// thread, per launch on wgpu, and write the stacks to FILE as folded stacks (flamegraph.pl,
    /// inferno, speedscope). For machines without perf; the sampling slows the timed steps by a
    /// few percent.
    #[arg(long, value_name = "FILE")]
    pub host_profile: Option<std::path::PathBuf>,
}

/// Bytes sent over the loopback interface so far, by every process of this machine (Linux
/// /proc/net/dev): the servers' traffic, burn's operation stream included.
fn loopback_bytes() -> u64 {
    std::fs::read_to_string("/proc/net/dev")
        .ok()
        .and_then(|dev| {
            let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
            // Interface: receive (8 fields), then transmit bytes.
            line.split_once(':')?.1.split_whitespace().nth(8)?.parse().ok()
        })
        .unwrap_or(0)
}

/// `saad serve` children on this machine, killed when dropped.
struct LocalServers {
    children: Vec<std::process::Child>,
    urls: Vec<String>,
}

impl LocalServers {
    fn start(count: usize, device: DeviceChoice) -> Result<Self> {
        use std::io::BufRead;
        let exe = std::env::current_exe()?;
        let device = format!("{device:?}").to_lowercase();
        let mut servers = Self { children: Vec::new(), urls: Vec::new() };
        for _ in 0..count {
            let mut child = std::process::Command::new(&exe)
                .args(["serve", "--port", "0", "--device", &device])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let first = lines.next().transpose()?.unwrap_or_default();
            servers.children.push(child);
            let Some(url) = first.split_whitespace().find(|w| w.starts_with("ws://")) else {
                bail!("`saad serve` did not start: {first:?}");
            };
            servers.urls.push(url.trim_end_matches(':').to_string());
            std::thread::spawn(move || lines.for_each(drop));
        }
        Ok(servers)
    }

    /// `[tensor bytes saad moved between devices, loopback bytes]` so far.
    fn written(&self) -> [u64; 2] {
        [saad_core::train::data_parallel::bytes_moved(), loopback_bytes()]
    }
}

impl Drop for LocalServers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What one method's timing measured.
struct StepTiming {
    method: MethodKind,
    /// The wgpu convolution it ran with.
    conv: WgpuConvolution,
    /// The first epoch (`steps` batches): kernel compilation, autotuning, allocation.
    first_epoch_seconds: f64,
    seconds_per_step: f64,
    reads_per_step: f64,
    /// Kernel launches per step on a cubecl (wgpu) device; 0 on flex.
    launches_per_step: f64,
    /// Launches per step of each kernel name, most launched first.
    launches_by_kernel: Vec<(&'static str, f64)>,
    device_reserved_bytes: Option<u64>,
    /// Where it ran: `local` (the device itself) or `N remote`.
    placement: String,
    /// Over servers, per timed step: tensor bytes moved between devices, and bytes sent over
    /// the loopback interface (burn's operation stream and the moves).
    bytes_per_step: Option<[f64; 2]>,
    /// The timed epoch's CPU samples (`--host-profile`).
    host_profile: Option<Sampled>,
}

/// Times `args.steps` training steps of `method`: one epoch of `steps` batches after a first
/// epoch of as many (each epoch ends with the trainer's one read, which drains the device).
fn time_steps(
    method: MethodKind,
    args: &BenchArgs,
    data: &DeviceSet,
    teacher: Option<&saad_core::models::Net>,
    devices: &[Device],
    servers: Option<&LocalServers>,
) -> Result<StepTiming> {
    let device = &devices[0];
    let mut config = TrainConfig::reference(method);
    config.batch_size = args.batch_size;
    config.attack.steps = args.attack_steps;
    config.schedule = LrSchedule::Constant;
    config.augment = None;
    config.swa_start = None;
    config.epochs = 2;
    let info = DatasetInfo {
        name: "synthetic".into(),
        image_size: args.image_size,
        num_classes: args.classes,
    };
    let mut trainer =
        Trainer::new(ModelSpec::new(args.arch.clone(), args.classes), config, info, device);
    if let Some(t) = teacher {
        trainer = trainer.with_teacher(t);
    }
    trainer = trainer.with_devices(&devices[1..]);
    let start = Instant::now();
    trainer.train_epoch(data, &mut |_, _| {});
    let first_epoch_seconds = start.elapsed().as_secs_f64();
    let written = servers.map(LocalServers::written);
    let reads = host_reads();
    let launches = LaunchCounter::start();
    let start = Instant::now();
    let host_profile = match args.host_profile {
        Some(_) => Some(host_profile::sample(|| trainer.train_epoch(data, &mut |_, _| {}))?.1),
        None => {
            trainer.train_epoch(data, &mut |_, _| {});
            None
        }
    };
    let seconds_per_step = start.elapsed().as_secs_f64() / args.steps as f64;
    let launches_per_step = launches.launches() as f64 / args.steps as f64;
    let launches_by_kernel =
        launches.by_kernel().into_iter().map(|(k, n)| (k, n as f64 / args.steps as f64)).collect();
    drop(launches);
    let reads_per_step = (host_reads() - reads) as f64 / args.steps as f64;
    let bytes_per_step = servers.zip(written).map(|(s, before)| {
        let after = s.written();
        [0, 1].map(|i| (after[i] - before[i]) as f64 / args.steps as f64)
    });
    Ok(StepTiming {
        placement: match servers {
            Some(_) => format!("{} remote", devices.len()),
            None => "local".into(),
        },
        bytes_per_step,
        method,
        conv: saad_core::kernels::gemm_conv::wgpu_convolution(),
        first_epoch_seconds,
        seconds_per_step,
        reads_per_step,
        launches_per_step,
        launches_by_kernel,
        device_reserved_bytes: device.memory_pool_usage().map(|u| u.bytes_reserved),
        host_profile,
    })
}

pub fn run(args: BenchArgs) -> Result<()> {
    let winograd = !args.no_winograd;
    saad_core::kernels::flex_conv::with_winograd(winograd, || run_benchmarks(args))
}

fn run_benchmarks(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.batch_size == 0 || args.calls == 0 {
        bail!("--steps, --calls and --batch-size must be at least 1");
    }
    let (device, device_name) = select(args.device)?;
    if args.kernels {
        return bench_kernels(&args, &device, &device_name);
    }
    if args.passes {
        return super::bench_passes::run(&args, &device, &device_name);
    }
    if args.host_profile.is_some() {
        host_profile::supported()?;
    }
    let (b, s) = (args.batch_size, args.image_size);
    let n = b * args.steps;
    let images = Tensor::<4>::random([n, 3, s, s], Distribution::Uniform(0.0, 1.0), &device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..n as i64).map(|i| i % args.classes as i64).collect::<Vec<_>>(), [n]),
        &device,
    );
    let data = DeviceSet { images, labels, len: n, num_classes: args.classes };
    let teacher = args
        .methods
        .iter()
        .any(|m| m.needs_teacher())
        .then(|| ModelSpec::new(args.teacher_arch.clone(), args.classes).init(&device));

    let mut timings = Vec::new();
    let local = std::slice::from_ref(&device);
    for &conv in &args.wgpu_conv {
        set_wgpu_convolution(conv);
        timings.push(time_steps(MethodKind::NATURAL, &args, &data, None, local, None)?);
        for &m in args.methods.iter().filter(|&&m| m != MethodKind::NATURAL) {
            timings.push(time_steps(m, &args, &data, teacher.as_ref(), local, None)?);
        }
    }
    set_wgpu_convolution(WgpuConvolution::default());
    if args.servers > 0 {
        let servers = LocalServers::start(args.servers, args.device)?;
        let remote = crate::remote::all_devices(&crate::remote::connect(&servers.urls, None)?)?;
        let main = &remote[0];
        let data = DeviceSet {
            images: data.images.clone().to_device(main),
            labels: data.labels.clone().to_device(main),
            ..data
        };
        let teacher = teacher.as_ref().map(|t| t.valid().fork(main));
        let counts = if remote.len() > 1 { vec![1, remote.len()] } else { vec![1] };
        for k in counts {
            for &m in &args.methods {
                timings.push(time_steps(
                    m,
                    &args,
                    &data,
                    teacher.as_ref(),
                    &remote[..k],
                    Some(&servers),
                )?);
            }
        }
    }
    // Each row's baseline: the natural step timed with the same convolution.
    let over_natural = |t: &StepTiming| {
        let natural = timings
            .iter()
            .find(|n| n.method == MethodKind::NATURAL && n.conv == t.conv)
            .map_or(t.seconds_per_step, |n| n.seconds_per_step);
        t.seconds_per_step / natural
    };
    // Data-parallel rows: speed-up over the same method on the local device, divided by the
    // number of devices.
    let efficiency = |t: &StepTiming| {
        let k: f64 = t.placement.split(' ').next()?.parse().ok()?;
        let local = timings.iter().find(|l| l.method == t.method && l.placement == "local")?;
        Some(local.seconds_per_step / t.seconds_per_step / k)
    };
    let rows: Vec<Value> = timings
        .iter()
        .map(|t| {
            json!({
                "method": t.method.name(),
                "placement": t.placement,
                "tensor_bytes_moved_per_step": t.bytes_per_step.map(|b| b[0]),
                "loopback_bytes_per_step": t.bytes_per_step.map(|b| b[1]),
                "scaling_efficiency": efficiency(t),
                "wgpu_conv": t.conv.name(),
                "seconds_per_step": t.seconds_per_step,
                "images_per_sec": b as f64 / t.seconds_per_step,
                "seconds_per_cifar10_epoch": CIFAR10_TRAIN / b as f64 * t.seconds_per_step,
                "over_natural": over_natural(t),
                "first_epoch_seconds": t.first_epoch_seconds,
                "reads_per_step": t.reads_per_step,
                "launches_per_step": t.launches_per_step,
                "launches_by_kernel": t.launches_by_kernel.iter().take(args.launches_by_kernel)
                    .map(|(k, n)| json!({"kernel": k, "per_step": n})).collect::<Vec<_>>(),
                "device_reserved_bytes": t.device_reserved_bytes,
                "host_profile": t.host_profile.as_ref()
                    .map(|p| Attribution::of(p).to_json(launches_in_epoch(t, &args))),
            })
        })
        .collect();
    if let Some(path) = &args.host_profile {
        let mut folded = String::new();
        for t in &timings {
            if let Some(p) = &t.host_profile {
                host_profile::fold(&timing_label(t, &args), &p.stacks, &mut folded);
            }
        }
        host_profile::write_folded(path, &folded)?;
    }
    let rss = peak_rss();
    if args.json {
        println!(
            "{}",
            json!({
                "device": device_name, "arch": args.arch.to_string(), "teacher_arch": args.teacher_arch.to_string(),
                "batch_size": b, "image_size": s, "classes": args.classes, "attack_steps": args.attack_steps,
                "timed_steps": args.steps, "peak_rss_bytes": rss, "flex_winograd": !args.no_winograd,
                "workloads": rows,
            })
        );
        return Ok(());
    }
    println!("device   {device_name}");
    println!(
        "student  {} ({} classes), batch {b}, {s}x{s}, {} attack steps; teacher {} (random weights)",
        args.arch, args.classes, args.attack_steps, args.teacher_arch
    );
    if args.no_winograd {
        println!("flex     every layer through the columns convolution (--no-winograd)");
    }
    let label = |t: &StepTiming| timing_label(t, &args);
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>9} {:>12} {:>7} {:>9} {:>12}",
        "method",
        "s/step",
        "images/s",
        "s/CIFAR ep.",
        "x natural",
        "first ep. s",
        "reads",
        "launches",
        "device MiB"
    );
    for (t, r) in timings.iter().zip(&rows) {
        let mem = t
            .device_reserved_bytes
            .map(|m| format!("{:.0}", m as f64 / 1048576.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<22} {:>10.3} {:>10.1} {:>12.0} {:>9.2} {:>12.2} {:>7.2} {:>9.0} {:>12}",
            label(t),
            t.seconds_per_step,
            r["images_per_sec"].as_f64().unwrap_or(0.0),
            r["seconds_per_cifar10_epoch"].as_f64().unwrap_or(0.0),
            over_natural(t),
            t.first_epoch_seconds,
            t.reads_per_step,
            t.launches_per_step,
            mem
        );
    }
    for t in timings.iter().filter(|_| args.launches_by_kernel > 0) {
        println!("{}: launches per step by kernel", label(t));
        for (kernel, n) in t.launches_by_kernel.iter().take(args.launches_by_kernel) {
            println!("  {n:>8.1}  {kernel}");
        }
    }
    for t in timings.iter() {
        let Some([moved, wire]) = t.bytes_per_step else { continue };
        println!(
            "{:<22} per step: {:.2} MB of tensors moved between devices, {:.2} MB over loopback; scaling efficiency {:.2} (speed-up over the local device / devices)",
            label(t),
            moved / 1e6,
            wire / 1e6,
            efficiency(t).unwrap_or(0.0)
        );
    }
    for t in &timings {
        let Some(p) = &t.host_profile else { continue };
        println!("{}: host CPU time of the timed epoch, by layer and thread", label(t));
        print!("{}", Attribution::of(p).table(launches_in_epoch(t, &args)));
        if p.dropped > 0 {
            println!("  ({} samples did not fit the sampler's buffer)", p.dropped);
        }
    }
    if let Some(path) = &args.host_profile {
        println!(
            "host profile: folded stacks in {} (flamegraph.pl, inferno-flamegraph)",
            path.display()
        );
    }
    if let Some(r) = rss {
        println!(
            "peak RSS {:.0} MiB (whole process); reads = host reads per step (the trainer reads once per epoch); launches = GPU kernel launches per step (0 on flex)",
            r as f64 / 1048576.0
        );
    }
    Ok(())
}

/// A timing's row name: the method, its wgpu convolution when several were timed, and where it
/// ran when not on the local device.
fn timing_label(t: &StepTiming, args: &BenchArgs) -> String {
    let mut l = t.method.name().to_string();
    if args.wgpu_conv.len() > 1 {
        l = format!("{l}/{}", t.conv.name());
    }
    if t.placement != "local" {
        l = format!("{l} @{}", t.placement);
    }
    l
}

/// Kernel launches of a timing's whole timed epoch (0 on flex).
fn launches_in_epoch(t: &StepTiming, args: &BenchArgs) -> u64 {
    (t.launches_per_step * args.steps as f64).round() as u64
}

/// Seconds per call of `f` (after one warm-up call), the device drained before and after.
pub(super) fn per_call(device: &Device, calls: usize, mut f: impl FnMut()) -> f64 {
    f();
    device.sync().ok();
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    device.sync().ok();
    start.elapsed().as_secs_f64() / calls as f64
}

/// The fused kernels against the tensor-op twins at training shapes, same device, same run.
fn bench_kernels(args: &BenchArgs, device: &Device, device_name: &str) -> Result<()> {
    use saad_core::kernels::{
        Route, distinct_kernels_launched, has_kernels, pgd_update, saad_loss,
    };
    use saad_core::train::MethodParams;
    use saad_core::train::methods::saad::SaadLogits;
    if !has_kernels(device) {
        bail!("the WGSL kernels run on wgpu: pass --device wgpu");
    }
    let b = args.batch_size;
    let s = args.image_size;
    let mut rows = Vec::new();
    let x = Tensor::<4>::random([b, 3, s, s], Distribution::Uniform(0.0, 1.0), device);
    let x_adv = (x.clone() + x.random_like(Distribution::Uniform(-0.03, 0.03))).clamp(0.0, 1.0);
    let g = x.random_like(Distribution::Normal(0.0, 1.0));
    let ones = |v: f32| Tensor::<1>::full([b], v, device);
    for route in [Route::TensorOps, Route::Kernel] {
        let call = || {
            let _ = pgd_update(
                route,
                x_adv.clone(),
                g.clone(),
                &x,
                ones(saad_core::attacks::STANDARD_EPS),
                ones(saad_core::attacks::STANDARD_STEP),
                ones(1.0),
            );
        };
        let kernels = distinct_kernels_launched(call);
        let t = per_call(device, args.calls, call);
        rows.push(json!({"op": "pgd_update", "shape": [b, 3, s, s], "route": format!("{route:?}"), "seconds_per_call": t, "kernels_per_call": kernels}));
    }
    for classes in [10usize, 100] {
        let logits = saad_core::kernels::twins::random_saad_logits(device, b, classes);
        let p = MethodParams::default();
        for route in [Route::TensorOps, Route::Kernel] {
            let fwd = || {
                let _ = saad_loss(route, &logits, &p.saad_loss_config(0.5)).loss;
            };
            let fwd_bwd = || {
                let s: Vec<Tensor<2>> = [&logits.s0, &logits.s_plus, &logits.s_minus]
                    .iter()
                    .map(|t| (*t).clone().autodiff().require_grad())
                    .collect();
                let ad = SaadLogits {
                    t0: logits.t0.clone(),
                    t_plus: logits.t_plus.clone(),
                    t_minus: logits.t_minus.clone(),
                    s0: s[0].clone(),
                    s_plus: s[1].clone(),
                    s_minus: s[2].clone(),
                };
                let grads = saad_loss(route, &ad, &p.saad_loss_config(0.5)).loss.backward();
                let _ = s[1].grad(&grads);
            };
            let (k_fwd, k_all) =
                (distinct_kernels_launched(fwd), distinct_kernels_launched(fwd_bwd));
            let (t_fwd, t_all) =
                (per_call(device, args.calls, fwd), per_call(device, args.calls, fwd_bwd));
            rows.push(json!({"op": "saad_loss forward", "shape": [b, classes], "route": format!("{route:?}"), "seconds_per_call": t_fwd, "kernels_per_call": k_fwd}));
            rows.push(json!({"op": "saad_loss forward+backward", "shape": [b, classes], "route": format!("{route:?}"), "seconds_per_call": t_all, "kernels_per_call": k_all}));
        }
    }
    if args.json {
        println!("{}", json!({"device": device_name, "calls": args.calls, "rows": rows}));
        return Ok(());
    }
    println!(
        "device {device_name}, {} calls per timing; kernels = distinct kernels launched per call",
        args.calls
    );
    println!(
        "{:<28} {:<16} {:<10} {:>12} {:>8} {:>10}",
        "op", "shape", "route", "ms/call", "kernels", "speed-up"
    );
    for pair in rows.chunks(1) {
        let r = &pair[0];
        let twin = rows
            .iter()
            .find(|o| o["op"] == r["op"] && o["shape"] == r["shape"] && o["route"] == "TensorOps")
            .unwrap();
        let speedup =
            twin["seconds_per_call"].as_f64().unwrap() / r["seconds_per_call"].as_f64().unwrap();
        println!(
            "{:<28} {:<16} {:<10} {:>12.3} {:>8} {:>9.2}x",
            r["op"].as_str().unwrap(),
            r["shape"].to_string(),
            r["route"].as_str().unwrap(),
            1e3 * r["seconds_per_call"].as_f64().unwrap(),
            r["kernels_per_call"],
            speedup
        );
    }
    Ok(())
}
