//! `saad selftest`: what a user runs first on a new GPU (any vendor). Every WGSL kernel against
//! its tensor-op twin on the device, flex against the device on the logits and input gradients
//! of each architecture, and a few SAAD training steps with and without the kernels. One table of
//! measured differences and tolerances; exit status 1 if any check fails.
//!
//! Tolerances are those of the lavapipe tests (`tests/tests/library/kernels.rs`, `backends.rs`) where
//! the arithmetic is the same f32 in another order; the architecture checks compare against
//! flex relative to the largest logit / gradient entry, since a GPU may pick other convolution
//! algorithms (implicit GEMM) with other summation orders.

use crate::device::{DeviceChoice, select};
use anyhow::{Result, bail};
use saad_core::attacks::{ObjectiveKind, input_gradient};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::checkpoint::{DatasetInfo, load_weights, model_bytes};
use saad_core::data::{DeviceSet, digits};
use saad_core::kernels::twins::{self, max_abs, max_abs_diff};
use saad_core::kernels::{has_kernels, with_kernels};
use saad_core::models::ModelSpec;
use saad_core::train::{LrSchedule, MethodKind, MethodParams, TrainConfig, Trainer};
use serde_json::json;
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct SelftestArgs {
    /// The device to check (against flex). `auto` takes a real GPU; `wgpu` also takes lavapipe.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Architectures compared with flex (comma-separated ids).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "small-cnn-8,resnet18,preact-resnet18-w16,mobilenetv2,wrn-10-2,dm-wrn-10-2,dm-wrn-28-10"
    )]
    pub archs: Vec<String>,
    /// Images per architecture check (32x32).
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One line of the table.
struct Check {
    name: String,
    measured: f64,
    tolerance: f64,
    seconds: f64,
}

impl Check {
    fn passed(&self) -> bool {
        self.measured.is_finite() && self.measured <= self.tolerance
    }

    fn row(&self) -> String {
        let mark = if self.passed() { "ok" } else { "FAIL" };
        format!(
            "{mark:<4} {:<70} {:>11.3e} {:>9.0e} {:>7.2}",
            self.name, self.measured, self.tolerance, self.seconds
        )
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Runs `f` and records its measured difference, its tolerance and how long it took; the line
/// goes to stderr at once (a slow device shows where it is).
fn check(out: &mut Vec<Check>, name: String, tolerance: f64, f: impl FnOnce() -> f64) {
    let start = Instant::now();
    let measured = f();
    let c = Check { name, measured, tolerance, seconds: start.elapsed().as_secs_f64() };
    eprintln!("{}", c.row());
    out.push(c);
}

fn kernel_checks(d: &Device, out: &mut Vec<Check>) {
    d.seed(4);
    for shape in [[17usize, 3, 8, 8], [128, 3, 32, 32]] {
        check(out, format!("kernel pgd_step {shape:?} vs twin (max abs)"), 1e-7, || {
            twins::pgd_step_difference(d, shape)
        });
    }
    for shape in [[3usize, 5, 7, 9], [128, 64, 16, 16]] {
        check(
            out,
            format!("kernel relu {shape:?} and its gradient vs burn's (max abs)"),
            0.0,
            || twins::relu_difference(d, shape),
        );
    }
    for shape in [[3usize, 5, 7, 9], [128, 64, 16, 16]] {
        check(
            out,
            format!("kernel batch_norm_train {shape:?} and its gradients vs burn's (relative)"),
            1e-4,
            || twins::batch_norm_difference(d, shape),
        );
    }
    check(
        out,
        "kernel scale_shift_activation [16, 64, 8, 8] and its gradient vs tensor ops (relative)"
            .into(),
        1e-5,
        || twins::scale_shift_activation_difference(d, [16, 64, 8, 8]),
    );
    check(out, "kernel batch_norm_running [300] vs twin (relative)".into(), 1e-6, || {
        twins::batch_norm_running_difference(d, 300)
    });
    for shape in [[3usize, 5, 7, 9], [512, 512, 3, 3]] {
        check(out, format!("kernel sgd_step {shape:?} vs twin (max abs)"), 1e-6, || {
            twins::sgd_step_difference(d, shape)
        });
    }
    // [batch, in, out, h, w, kernel, stride, padding]: a weight gradient in 8 split-K slices,
    // and a strided odd shape.
    for case in [[8usize, 64, 64, 16, 16, 3, 1, 1], [3, 5, 7, 9, 8, 3, 2, 1]] {
        check(
            out,
            format!("kernel tiled conv {case:?} and its gradients vs burn's (relative)"),
            1e-4,
            || twins::tiled_conv_difference(d, case),
        );
    }
    for (b, c, gamma, beta) in [(300usize, 10usize, 1.0, 0.0), (33, 100, 2.0, 0.5)] {
        check(
            out,
            format!("kernel saad_loss [{b},{c}] gamma {gamma} vs twin (relative)"),
            1e-4,
            || {
                let p =
                    MethodParams { saad_gamma: gamma, saad_beta: beta, ..MethodParams::default() };
                let diff = twins::saad_loss_difference(
                    &twins::random_saad_logits(d, b, c),
                    &p.saad_loss_config(0.3),
                );
                twins::worst(twins::worst(diff.loss, diff.w / p.saad_scale), diff.w_hat)
            },
        );
    }
    check(
        out,
        "kernel saad_loss backward [9,10] vs autodiff of twin (relative)".into(),
        1e-4,
        || {
            let p = MethodParams { saad_beta: 0.5, ..MethodParams::default() };
            let diff = twins::saad_loss_backward_difference(
                &twins::random_saad_logits(d, 9, 10),
                &p.saad_loss_config(0.4),
            );
            diff.into_iter().fold(0.0, twins::worst)
        },
    );
    for (b, c) in [(257usize, 10usize), (64, 200)] {
        check(out, format!("kernel transfer_stats [{b},{c}] vs twin (relative)"), 1e-3, || {
            let t = twins::random_logits(d, b, c, 2.0);
            let s = twins::random_logits(d, b, c, 1.0);
            let y = twins::cyclic_labels(d, b, c);
            let weighting = MethodParams::default().saad_weighting();
            [Some(&s), None]
                .into_iter()
                .map(|student| twins::transfer_stats_difference(&t, student, &y, weighting))
                .fold(0.0, twins::worst)
        });
    }
}

/// Logits and input gradients of `arch` with the same weights (BatchNorm statistics made
/// non-trivial by two training-mode forwards) on flex and on `d`.
fn arch_checks(arch: &str, batch: usize, d: &Device, out: &mut Vec<Check>) -> Result<()> {
    let spec =
        ModelSpec::new(arch.parse().map_err(|e: String| anyhow::anyhow!("--archs: {e}"))?, 10);
    let flex = Device::flex();
    flex.seed(3);
    let model = spec.init(&flex);
    let train = load_weights(&spec, &model_bytes(&model), &flex.clone().autodiff(), "selftest")?;
    for _ in 0..2 {
        let _ = train.forward(Tensor::<4>::random(
            [batch, 3, 32, 32],
            Distribution::Uniform(0.0, 1.0),
            &flex,
        ));
    }
    let weights = model_bytes(&train);
    let on_flex = load_weights(&spec, &weights, &flex, "flex")?.valid();
    let on_dev = load_weights(&spec, &weights, d, "device")?.valid();
    let x = Tensor::<4>::random([batch, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &flex);
    let xd = Tensor::<4>::from_data(x.to_data(), d);
    let (lf, ld) = (to_vec(on_flex.forward(x.clone())), to_vec(on_dev.forward(xd.clone())));
    check(out, format!("{arch}: logits vs flex (max abs / max |logit|)"), 1e-4, || {
        max_abs_diff(&lf, &ld) / max_abs(&lf).max(1.0)
    });
    let y: Vec<i64> = (0..batch as i64).map(|i| (3 * i + 1) % 10).collect();
    let ce = |dev: &Device| ObjectiveKind::CrossEntropy {
        labels: Tensor::from_data(TensorData::new(y.clone(), [batch]), dev),
    };
    let (ce_f, ce_d) = (ce(&flex), ce(d));
    check(out, format!("{arch}: input gradient vs flex (max abs / max |g|)"), 1e-3, || {
        let gf = to_vec(input_gradient(&|x| on_flex.forward(x), &ce_f, &x));
        let gd = to_vec(input_gradient(&|x| on_dev.forward(x), &ce_d, &xd));
        max_abs_diff(&gf, &gd) / max_abs(&gf).max(1e-6)
    });
    Ok(())
}

/// Three SAAD epochs of one batch each on the built-in digits, with and without the kernels.
fn training_check(d: &Device, out: &mut Vec<Check>) -> Result<()> {
    let (train, _) = digits::load(16)?;
    let data = DeviceSet::upload(&train.take(64), d);
    let run = |kernels: bool| {
        with_kernels(kernels, || {
            d.seed(1);
            let teacher = ModelSpec::new("small-cnn-8".parse().expect("known arch"), 10).init(d);
            let mut config = TrainConfig::reference(MethodKind::SAAD);
            config.epochs = 3;
            config.batch_size = 64;
            config.attack.steps = 3;
            config.schedule = LrSchedule::Constant;
            config.augment = None;
            config.swa_start = None;
            let info = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
            let mut t = Trainer::new(
                ModelSpec::new("small-cnn-8".parse().expect("known arch"), 10),
                config,
                info,
                d,
            )
            .with_teacher(&teacher);
            (0..3).map(|_| t.train_epoch(&data, &mut |_, _| {}).loss).collect::<Vec<f64>>()
        })
    };
    check(
        out,
        "SAAD training, 3 steps: loss with vs without kernels (relative)".into(),
        1e-4,
        || {
            let (with, without) = (run(true), run(false));
            with.iter()
                .zip(&without)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
                .fold(0.0, twins::worst)
        },
    );
    Ok(())
}

pub fn run(args: SelftestArgs) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let (device, name) = select(args.device)?;
    let mut checks = Vec::new();
    if has_kernels(&device) {
        kernel_checks(&device, &mut checks);
    } else if !args.json {
        println!(
            "note: {name} runs the tensor-op twins, not the WGSL kernels: kernel checks skipped"
        );
    }
    for arch in &args.archs {
        arch_checks(arch, args.batch_size, &device, &mut checks)?;
    }
    training_check(&device, &mut checks)?;
    let failed = checks.iter().filter(|c| !c.passed()).count();
    if args.json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.name, "measured": c.measured, "tolerance": c.tolerance, "pass": c.passed(), "seconds": c.seconds}))
            .collect();
        println!("{}", json!({"device": name, "checks": rows, "failed": failed}));
    } else {
        println!(
            "selftest on {name} (reference: the tensor-op twins on the same device, and flex)"
        );
        println!("{:<4} {:<70} {:>11} {:>9} {:>7}", "", "check", "measured", "tolerance", "s");
        for c in &checks {
            println!("{}", c.row());
        }
        println!("{} checks, {} passed, {failed} failed", checks.len(), checks.len() - failed);
    }
    if failed > 0 {
        bail!("{failed} selftest check(s) failed on {name}");
    }
    Ok(())
}
