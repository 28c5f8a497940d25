//! `saad bench --passes`: the student's pass kinds timed one at a time, the rows that a training
//! step is made of (bench/NOTES.md section 13): the BatchNorm fold of the attack's eval copy
//! (once per step), its eval forward, one attack iteration (eval forward + input gradient), a
//! training forward + backward (train-mode BatchNorm, weight gradients), and the SGD step. A
//! PGD-10 step is about fold + 10 attack iterations + forward-backward + SGD;
//! `bench/torch_reference.py --workload passes` times the same passes in PyTorch, so each
//! row's ratio says where the gap is.

use super::bench::{BenchArgs, per_call};
use anyhow::Result;
use saad_core::attacks::{ObjectiveKind, input_gradient};
use saad_core::burn::optim::GradientsParams;
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::losses::cross_entropy;
use saad_core::models::ModelSpec;
use saad_core::train::TrainConfig;
use serde_json::json;
use std::time::Instant;

/// One timed pass kind.
struct PassTiming {
    name: &'static str,
    seconds: f64,
}

pub fn run(args: &BenchArgs, device: &Device, device_name: &str) -> Result<()> {
    let (b, s, calls) = (args.batch_size, args.image_size, args.steps);
    let spec = ModelSpec::new(args.arch.clone(), args.classes);
    let train_device = device.clone().autodiff();
    let mut net = spec.init(&train_device);
    let x = Tensor::<4>::random([b, 3, s, s], Distribution::Uniform(0.0, 1.0), device);
    let labels: Vec<i64> = (0..b as i64).map(|i| i % args.classes as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device);
    let objective = ObjectiveKind::CrossEntropy { labels: y.clone() };
    // Train-mode statistics that are not the initial ones, as in a run.
    let _ = net.forward(x.clone().autodiff());
    let eval = net.valid().folded();

    let mut rows = Vec::new();
    let mut time = |name, seconds| rows.push(PassTiming { name, seconds });
    time(
        "fold (BatchNorm into the eval copy)",
        per_call(device, calls, || drop(net.valid().folded())),
    );
    time("eval forward", per_call(device, calls, || drop(eval.forward(x.clone()))));
    time(
        "attack iteration (eval forward + input gradient)",
        per_call(device, calls, || drop(input_gradient(&|x| eval.forward(x), &objective, &x))),
    );
    // The training forward is timed inside forward + backward calls, as a step runs it: burn's
    // autodiff keeps what a forward pass saved for its backward until a backward runs, so
    // forward-only calls kept allocating fresh memory and took 2.3-2.4 s each here, against
    // 0.84 s for the same forward after a backward (bench/NOTES.md section 14).
    let forward_seconds = {
        let run = || {
            let start = Instant::now();
            let logits = net.forward(x.clone().autodiff());
            device.sync().ok();
            let seconds = start.elapsed().as_secs_f64();
            drop(cross_entropy(logits, y.clone()).mean().backward());
            seconds
        };
        run();
        (0..calls).map(|_| run()).sum::<f64>() / calls as f64
    };
    time("training forward (within forward + backward)", forward_seconds);
    time(
        "training forward + backward",
        per_call(device, calls, || {
            let loss = cross_entropy(net.forward(x.clone().autodiff()), y.clone()).mean();
            drop(loss.backward())
        }),
    );
    let config = TrainConfig::reference(saad_core::train::MethodKind::NATURAL);
    let mut optim = saad_core::train::sgd::Sgd {
        momentum: config.momentum,
        dampening: 0.0,
        weight_decay: config.weight_decay,
    }
    .init();
    let step = per_call(device, calls, || {
        let loss = cross_entropy(net.forward(x.clone().autodiff()), y.clone()).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(config.lr, net.clone(), grads);
    });
    time("training forward + backward + SGD step", step);

    if args.json {
        let passes: Vec<_> =
            rows.iter().map(|r| json!({"pass": r.name, "seconds": r.seconds})).collect();
        println!(
            "{}",
            json!({
                "device": device_name, "arch": args.arch.to_string(), "batch_size": b,
                "image_size": s, "calls": calls, "flex_winograd": !args.no_winograd,
                "passes": passes,
            })
        );
        return Ok(());
    }
    println!("device   {device_name}");
    println!(
        "student  {} ({} classes), batch {b}, {s}x{s}, {calls} timed calls each",
        args.arch, args.classes
    );
    if args.no_winograd {
        println!("flex     every layer through the columns convolution (--no-winograd)");
    }
    println!("{:<52} {:>10}", "pass", "s/call");
    for r in &rows {
        println!("{:<52} {:>10.4}", r.name, r.seconds);
    }
    Ok(())
}
