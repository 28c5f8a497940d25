//! Data-parallel training over several devices, here two `saad serve --device flex` servers on
//! localhost (burn's remote backend: the same path as GPUs on other machines): two devices train
//! the weights of one, a server killed mid-epoch stops the run with its name and `--resume`
//! loses nothing, and bad addresses, versions, tokens and device indices get clear errors.

use saad_core::burn::module::{Module, ModuleVisitor, Param};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::remote::{ConnectError, RemoteHost};
use saad_core::checkpoint::{Checkpoint, DatasetInfo, load_weights, model_bytes};
use saad_core::data::{DeviceSet, digits};
use saad_core::models::{ModelSpec, Net};
use saad_core::train::{EpochStats, LrSchedule, MethodKind, TrainConfig, Trainer};
use saad_native::remote;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{command, fails, s, tempdir};

/// A `saad serve --device flex` process on a port of its own; killed when dropped.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// A server on `port` (0: one the system picks), once it listens.
    fn start(port: u16, extra: &[&str]) -> Self {
        let port = port.to_string();
        let mut args = vec!["serve", "--device", "flex", "--port", &port];
        args.extend(extra);
        let mut child = command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("saad serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("saad serve prints where it listens").unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("ws://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .trim_end_matches(':')
            .to_string();
        // Drained, so that a full pipe never blocks the server.
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || lines.for_each(drop));
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, url, log }
    }

    /// The server's log once it holds every one of `needles`, or after 30 s as it stands: the
    /// server writes its line about a refused client after the client has seen the refusal.
    fn log_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let log = self.log.lock().unwrap().clone();
            if needles.iter().all(|n| log.contains(n)) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every float of a model (parameters and BatchNorm statistics), in visit order.
struct Values(Vec<f32>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.extend(param.val().to_data().try_to_vec::<f32>().unwrap());
    }
}

fn values(model: &Net) -> Vec<f32> {
    let mut v = Values(Vec::new());
    model.visit(&mut v);
    v.0
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(1.0)).fold(0.0, f32::max)
}

/// BatchNorm of `model` with its running statistics in training too: a model without batch
/// statistics, whose batch can be split without changing any result.
fn without_batch_statistics(model: Net) -> Net {
    let Net::SmallCnn(mut m) = model else { panic!("small-cnn expected") };
    for bn in [&mut m.bn1, &mut m.bn2, &mut m.bn3] {
        bn.training = Param::from_bool(false);
    }
    Net::SmallCnn(m)
}

const SPEC: &str = "small-cnn-4";

/// The flags every run of the command-line tests shares: the digits at 16x16, the student, a
/// 2-step attack, a 16-image evaluation.
const DIGITS: [&str; 11] = [
    "--quiet",
    "--data",
    "digits",
    "--image-size",
    "16",
    "--arch",
    SPEC,
    "--attack-steps",
    "2",
    "--eval-n",
    "16",
];

/// SAAD on 64 digits in batches of 32 with a deterministic attack start (sigma 0) and no
/// augmentation, from the same initial weights and teacher, on `devices` (the first is main).
fn saad_run(
    devices: &[Device],
    epochs: usize,
    batch_statistics: bool,
) -> (Trainer, Vec<EpochStats>) {
    let spec = ModelSpec::new(SPEC.parse().unwrap(), 10);
    let flex = Device::flex();
    flex.seed(5);
    let initial = model_bytes(&spec.init(&flex.clone().autodiff()));
    flex.seed(6);
    let teacher = model_bytes(&spec.init(&flex));
    let mut config = TrainConfig::reference(MethodKind::SAAD);
    config.epochs = epochs;
    config.batch_size = 32;
    config.augment = None;
    config.schedule = LrSchedule::Constant;
    config.lr = 0.05;
    config.attack.steps = 2;
    config.params.init_sigma = 0.0;
    config.swa_start = None;
    let info = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
    let main = &devices[0];
    let mut t = Trainer::new(spec.clone(), config, info, main);
    t.model = load_weights(&spec, &initial, &main.clone().autodiff(), "initial").unwrap();
    if !batch_statistics {
        t.model = without_batch_statistics(t.model);
    }
    let teacher = load_weights(&spec, &teacher, main, "teacher").unwrap();
    let mut t = t.with_teacher(&teacher).with_devices(&devices[1..]);
    let (train, _) = digits::load(16).unwrap();
    let data = DeviceSet::upload(&train.take(64), main);
    let stats = (0..epochs).map(|_| t.train_epoch(&data, &mut |_, _| {})).collect();
    (t, stats)
}

fn remote_devices(servers: &[&Server]) -> Vec<Device> {
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    remote::all_devices(&remote::connect(&urls, None).unwrap()).unwrap()
}

#[test]
fn two_devices_train_the_weights_of_one_and_batchnorm_differs_as_documented() {
    let _serial = saad_tests::serial();
    let (a, b) = (Server::start(0, &[]), Server::start(0, &[]));
    let two = remote_devices(&[&a, &b]);

    // Without batch statistics: the same weights and epoch statistics as one device.
    let (one_t, one_stats) = saad_run(&[Device::flex()], 2, false);
    let (two_t, two_stats) = saad_run(&two, 2, false);
    let (w1, w2) = (values(&one_t.model), values(&two_t.model));
    assert_eq!(two_t.devices().len(), 2);
    let d = max_difference(&w1, &w2);
    eprintln!("without batch statistics: weights differ by {d:e} (relative, max)");
    assert!(d < 2e-5, "2 devices moved the weights by {d} (relative)");
    assert!(max_difference(&w1, &values(&saad_run(&[Device::flex()], 2, false).0.model)) == 0.0);
    for (s1, s2) in one_stats.iter().zip(&two_stats) {
        assert!((s1.loss - s2.loss).abs() < 1e-5 * s1.loss.abs().max(1.0), "{s1:?} vs {s2:?}");
        assert_eq!(s1.accuracy, s2.accuracy);
        let (t1, t2) = (s1.transfer.clone().unwrap(), s2.transfer.clone().unwrap());
        assert_eq!(t1.samples, t2.samples);
        assert!((t1.weight_mean - t2.weight_mean).abs() < 1e-4, "{t1:?} vs {t2:?}");
        assert_eq!(t1.weight_hist, t2.weight_hist);
        assert_eq!(t1.tas, t2.tas);
    }

    // With batch statistics, each device normalises its shard by the shard's statistics (the
    // weights differ), and the running statistics are averaged over the devices: the first
    // layer's running mean is the global batch's, as on one device.
    let (one_t, _) = saad_run(&[Device::flex()], 1, true);
    let (two_t, _) = saad_run(&two, 1, true);
    let d = max_difference(&values(&one_t.model), &values(&two_t.model));
    eprintln!("with batch statistics: weights differ by {d:e}");
    assert!(d > 1e-4, "per-shard batch statistics should move the weights; moved {d}");
    let bn1 = |t: &Trainer| match &t.model {
        Net::SmallCnn(m) => m.bn1.running_mean.value().to_data().try_to_vec::<f32>().unwrap(),
        _ => unreachable!(),
    };
    let d = max_difference(&bn1(&one_t), &bn1(&two_t));
    eprintln!("with batch statistics: first running mean differs by {d:e}");
    assert!(d < 1e-5, "first running mean differs by {d}");
}

/// Two local devices in one process, as `--devices` makes them: flex (main) and the wgpu
/// adapter (lavapipe here, with the project's WGSL kernels on its shard). The backends round
/// differently, so the weights agree to float tolerance, not to the last bit.
#[test]
fn flex_and_wgpu_in_one_process_train_like_one_device() {
    let Some(wgpu) = saad_tests::wgpu_device() else { return };
    let _serial = saad_tests::serial();
    let (one, one_stats) = saad_run(&[Device::flex()], 1, false);
    let (two, two_stats) = saad_run(&[Device::flex(), wgpu], 1, false);
    let d = max_difference(&values(&one.model), &values(&two.model));
    eprintln!("flex + wgpu: weights differ by {d:e} (relative, max)");
    assert!(d < 1e-5, "flex + wgpu moved the weights by {d} (relative)");
    assert!(
        (one_stats[0].loss - two_stats[0].loss).abs() < 1e-3 * one_stats[0].loss.abs().max(1.0)
    );
}

/// A short SAAD run on the digits across the servers at `urls`.
fn train_args(out: &Path, urls: &[&str], epochs: usize) -> Vec<String> {
    let teacher = out.parent().unwrap().join("teacher.saad");
    let run = ["--method", "saad", "--teacher", s(&teacher), "--batch-size", "64", "--seed", "3"];
    let run = run.into_iter().chain(["--eval-every", "0", "--out", s(out)]);
    std::iter::once("train")
        .chain(DIGITS)
        .chain(run)
        .map(|a| a.to_string())
        .chain(["--epochs".into(), epochs.to_string(), "--remote".into(), urls.join(",")])
        .collect()
}

fn read_ckpt(path: &Path) -> Checkpoint {
    Checkpoint::decode(&std::fs::read(path).unwrap(), "checkpoint").unwrap()
}

#[test]
fn a_server_killed_mid_epoch_stops_the_run_by_name_and_resume_loses_nothing() {
    let dir = tempdir("remote-kill");
    // The teacher: one epoch of PGD-AT on flex.
    let teacher_run = dir.join("teacher");
    let out = command()
        .arg("train")
        .args(DIGITS)
        .args(["--method", "pgd-at", "--epochs", "1", "--device", "flex", "--out", s(&teacher_run)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(teacher_run.join("model.saad"), dir.join("teacher.saad")).unwrap();

    let a = Server::start(0, &[]);
    let mut b = Server::start(0, &[]);
    let urls = [a.url.as_str(), b.url.as_str()];

    // Uninterrupted: three epochs.
    let straight = dir.join("straight");
    let out = command().args(train_args(&straight, &urls, 3)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Interrupted: server b is killed once epoch 1's checkpoint is written.
    let run = dir.join("run");
    let mut child =
        command().args(train_args(&run, &urls, 3)).stderr(Stdio::piped()).spawn().unwrap();
    let ckpt = run.join("checkpoint.saad");
    let start = Instant::now();
    while !ckpt.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    let epochs_done = read_ckpt(&ckpt).header.epochs_done;
    assert!(!status.success(), "the run went on without server {}:\n{err}", b.url);
    assert!(!err.contains("panicked at"), "{err}");
    for needle in [b.url.as_str(), "--resume", "stopped answering"] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(epochs_done < 3, "the run finished before the kill ({epochs_done} epochs)");

    // The server comes back on its port; the run resumes and ends where the straight one did.
    let b = Server::start(b.port(), &[]);
    let mut resume = train_args(&run, &[a.url.as_str(), b.url.as_str()], 3);
    resume.push("--resume".into());
    let out = command().args(&resume).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (x, y) = (read_ckpt(&straight.join("checkpoint.saad")), read_ckpt(&ckpt));
    assert_eq!(x.header.epochs_done, 3);
    // Bit for bit (the files differ only in parameter ids and timings); equal weights two
    // epochs after the resume also mean equal optimizer state at the resume.
    let weights = |c: &Checkpoint, bytes: &[u8]| {
        values(&load_weights(&c.header.model, bytes, &Device::flex(), "checkpoint").unwrap())
    };
    assert!(
        weights(&x, &x.model) == weights(&y, &y.model),
        "the resumed run's weights differ from the straight run's"
    );
    assert!(weights(&x, &x.averaged) == weights(&y, &y.averaged), "the weight averages differ");
}

#[test]
fn bad_addresses_versions_tokens_and_device_indices_are_clear_errors() {
    let dir = tempdir("remote-bad");
    let out = dir.join("run");
    let base = |extra: &[&str]| -> Vec<String> {
        ["train", "--data", "digits", "--image-size", "16", "--epochs", "1", "--out", s(&out)]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let run = |extra: &[&str], needles: &[&str]| {
        let args = base(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, needles);
        let _ = std::fs::remove_dir_all(&out);
    };
    run(&["--remote", "localhost:4000"], &["localhost:4000", "ws://HOST:PORT"]);
    run(&["--devices", "7"], &["--devices 7", "saad devices"]);

    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}");
    run(&["--remote", &url], &[&format!("nothing answers at {url}"), "saad serve"]);

    // A token server: the wrong token, and a client of another version, are refused.
    let server = Server::start(0, &["--token", "sesame"]);
    run(&["--remote", &server.url, "--remote-token", "open"], &[&server.url, "refused"]);
    let other = RemoteHost::websocket(&server.url).with_credential("saad 0.0.0-other sesame");
    let refused = Device::remote_options(&other).init();
    assert!(matches!(refused, Err(ConnectError::Unauthorized)), "{refused:?}");
    let log = server.log_with(&["saad 0.0.0-other", "same version"]);
    assert!(log.contains("saad 0.0.0-other") && log.contains("same version"), "{log}");
    let right =
        RemoteHost::websocket(&server.url).with_credential(remote::credential(Some("sesame")));
    assert!(Device::remote_options(&right).init().is_ok());
}
