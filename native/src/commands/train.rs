//! `saad train`: trains with a checkpoint and a JSONL log line per epoch; `--resume` continues.

use super::{parse_eps, read_checkpoint};
use crate::datasets::{self, DataArgs};
use crate::device::{DeviceChoice, select};
use crate::fsutil::{self, write_atomic};
use crate::progress::{Progress, note};
use anyhow::{Result, bail};
use saad_core::checkpoint::DatasetInfo;
use saad_core::data::DeviceSet;
use saad_core::eval::{EvalAttack, evaluate};
use saad_core::models::{Arch, ModelSpec};
use saad_core::train::methods::Preset;
use saad_core::train::trainer::stream;
use saad_core::train::{
    AttackSettings, Divergence, EpochLog, EpochStats, LrSchedule, MethodKind, MethodParams,
    TrainConfig, Trainer,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Model architecture: small-cnn[-W], resnet18[-wW], preact-resnet18[-wW], mobilenetv2, wrn-D-W, dm-wrn-D-W.
    #[arg(long, default_value = "small-cnn")]
    pub arch: Arch,
    /// Training method (the distillation methods learn from --teacher).
    #[arg(long, default_value = "pgd-at", value_parser = super::method_parser())]
    pub method: MethodKind,
    /// Total epochs [default: 200]. With --resume, raises the run's total.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.1, value_parser = parse_lr)]
    pub lr: f64,
    /// SGD momentum (PyTorch semantics: dampening 0).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 2e-4)]
    pub weight_decay: f64,
    /// constant, cosine, or multistep:E1,E2[:GAMMA] (lr x GAMMA after those epochs).
    #[arg(long, default_value = "multistep:100,150:0.1", value_parser = LrSchedule::parse)]
    pub schedule: LrSchedule,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// L-infinity radius of the training attack (and of the per-epoch PGD-20 evaluation).
    #[arg(long, default_value = "8/255", value_parser = parse_eps)]
    pub eps: f32,
    /// Step size of the training attack.
    #[arg(long, default_value = "2/255", value_parser = parse_eps)]
    pub alpha: f32,
    /// Iterations of the training attack.
    #[arg(long, default_value_t = 10)]
    pub attack_steps: usize,
    /// Disable random crop + horizontal flip.
    #[arg(long)]
    pub no_augment: bool,
    /// The frozen teacher of the distillation methods: a saad checkpoint, or a PyTorch state
    /// dict (.safetensors) with --teacher-arch.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Architecture of a .safetensors teacher.
    #[arg(long)]
    pub teacher_arch: Option<String>,
    /// Average the weights from this (1-based) epoch on; the average, with BatchNorm statistics
    /// recomputed, is the reported model (model.saad) and is evaluated in the per-epoch log
    /// beside the raw student. `auto`: for SAAD the reference's epoch 95 of 200 as the same
    /// fraction of --epochs (e.g. 5 of 10), off for the other methods; `none`: off.
    #[arg(long, default_value = "auto", value_parser = SwaStart::parse)]
    pub swa_start: SwaStart,
    /// Method constants as JSON overriding the reference values (or the preset's), e.g.
    /// '{"alpha_ig": 10, "saad_beta": 0.5}' (keys: init_sigma, trades_beta, ard_tau, ard_alpha,
    /// ard_reduction, iad_tau, iad_begin, iad_power, rslad_adv_weight, rslad_reduction,
    /// adaad_reduction, alpha_ig, saad_scale, saad_gamma, saad_beta, saad_lambda).
    #[arg(long, value_parser = parse_params)]
    pub params: Option<String>,
    /// An original paper's recipe instead of the SAAD comparison's constants (sets --method):
    /// ard-original, iad-original, rslad-original, adaad-original, trades-original.
    #[arg(long, value_parser = parse_preset)]
    pub preset: Option<Preset>,
    /// Output folder: checkpoint.saad (every epoch, atomic) and log.jsonl.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint, with its stored configuration
    /// (only --epochs may be raised; the other training flags are ignored).
    #[arg(long)]
    pub resume: bool,
    /// Evaluate clean and PGD-20 accuracy every K epochs (0: only after the last).
    #[arg(long, default_value_t = 1)]
    pub eval_every: usize,
    /// Evaluate on the first N test images (default: all).
    #[arg(long)]
    pub eval_n: Option<usize>,
    /// Stop after this many epochs in this invocation (the run can be resumed).
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Train data-parallel on these wgpu adapters (indices as `saad devices` lists them), e.g.
    /// 0,1: each batch is split across them; the first holds the data and the optimizer.
    #[arg(long, value_delimiter = ',', conflicts_with = "remote")]
    pub devices: Vec<usize>,
    /// Train data-parallel on the devices of `saad serve` servers: ws://HOST:PORT, comma-separated
    /// (every device each one hosts, in order; the first holds the data and the optimizer).
    #[arg(long, value_delimiter = ',', value_parser = crate::remote::parse_url)]
    pub remote: Vec<String>,
    /// The token the --remote servers were started with (`saad serve --token`); from the
    /// environment, it stays out of the process list.
    #[arg(long, env = "SAAD_REMOTE_TOKEN", hide_env_values = true)]
    pub remote_token: Option<String>,
    /// No progress bars or status lines.
    #[arg(long)]
    pub quiet: bool,
}

/// `--swa-start`: where weight averaging starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwaStart {
    /// SAAD: the reference's epoch 95 of 200 as the same fraction of the run; others: off.
    Auto,
    Off,
    /// From this 1-based epoch on.
    Epoch(usize),
}

impl SwaStart {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" | "off" => Ok(Self::Off),
            _ => match s.parse::<usize>() {
                Ok(e) if e >= 1 => Ok(Self::Epoch(e)),
                _ => Err(format!(
                    "bad --swa-start {s:?}: expected auto, none, or an epoch number (1-based)"
                )),
            },
        }
    }

    /// The first averaged epoch of a run of `epochs` epochs of `method`, if any.
    pub fn resolve(self, method: MethodKind, epochs: usize) -> Option<usize> {
        match self {
            // The reference's epoch, scaled from its 200 epochs to this run's.
            Self::Auto => method
                .info()
                .reference_swa_start
                .map(|e| ((epochs as f64 * e as f64 / 200.0).round() as usize).max(1)),
            Self::Off => None,
            Self::Epoch(e) => Some(e),
        }
    }
}

fn parse_lr(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("bad learning rate {s:?}: expected a positive number such as 0.1"))
}

/// Checked here, applied in [`method_params`] on top of the preset.
fn parse_params(s: &str) -> Result<String, String> {
    MethodParams::default().with_overrides(s).map(|_| s.to_string())
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::find(s)
}

/// The constants of a fresh run: the preset's (which also sets the method) or the defaults,
/// with --params on top.
fn method_params(args: &mut TrainArgs) -> Result<MethodParams> {
    let base = match &args.preset {
        Some(p) => {
            // pgd-at is --method's default, so it does not conflict with a preset.
            if args.method != p.method && args.method != MethodKind::PGD_AT {
                bail!(
                    "--preset {} is a recipe for --method {}, not {}",
                    p.name,
                    p.method,
                    args.method
                );
            }
            args.method = p.method;
            p.params.clone()
        }
        None => MethodParams::default(),
    };
    match &args.params {
        Some(json) => base.with_overrides(json).map_err(anyhow::Error::msg),
        None => Ok(base),
    }
}

/// A training run as this command executes it: the core's [`TrainConfig`] of a fresh run, the
/// model, and where the data, the teacher and the outputs are. `saad train` parses its flags
/// into one once ([`TrainArgs::job`]); the demo builds its own.
#[derive(Clone, Debug)]
pub struct TrainJob {
    /// A fresh run's configuration (a resumed run keeps its checkpoint's).
    pub config: TrainConfig,
    /// A fresh run's architecture.
    pub arch: Arch,
    /// The dataset (a resumed run reads the checkpoint's, from `data.data_dir`).
    pub data: DataArgs,
    /// Output folder: checkpoint.saad, log.jsonl, model.saad.
    pub out: PathBuf,
    /// Continue the run in `out`.
    pub resume: bool,
    /// On resume, the new total of epochs (only raising is allowed).
    pub extend_epochs: Option<usize>,
    /// The teacher's file (a resumed run falls back to the one it was started with).
    pub teacher: Option<PathBuf>,
    /// Architecture of a `.safetensors` teacher.
    pub teacher_arch: Option<String>,
    /// Evaluate every K epochs (0: only after the last).
    pub eval_every: usize,
    /// Evaluate on the first N test images (default: all).
    pub eval_n: Option<usize>,
    /// Stop after this many epochs in this invocation.
    pub stop_after_epochs: Option<usize>,
    /// The device.
    pub device: DeviceChoice,
    /// Where a data-parallel run trains (empty: on `device` alone).
    pub devices: Devices,
    /// No progress bars or status lines.
    pub quiet: bool,
}

/// The devices of a data-parallel run.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// wgpu adapters by index (`--devices`).
    pub adapters: Vec<usize>,
    /// `saad serve` servers (`--remote`).
    pub remote: Vec<String>,
    /// Their token.
    pub remote_token: Option<String>,
}

impl TrainArgs {
    /// The job these flags describe: the preset and `--params` resolved into the method
    /// constants, the flags into a [`TrainConfig`]; the preset's note printed unless resuming.
    pub fn job(mut self) -> Result<TrainJob> {
        let params = method_params(&mut self)?;
        if let (Some(p), false) = (&self.preset, self.resume) {
            note(self.quiet, format!("preset {} ({}): {}", p.name, p.source, p.note));
        }
        let epochs = self.epochs.unwrap_or(200);
        let image_size = datasets::image_size(&self.data);
        let config = TrainConfig {
            method: self.method,
            epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule.clone(),
            seed: self.seed,
            attack: AttackSettings { eps: self.eps, alpha: self.alpha, steps: self.attack_steps },
            augment: (!self.no_augment).then(|| self.data.data.augment(image_size)),
            params,
            swa_start: self.swa_start.resolve(self.method, epochs),
        };
        Ok(TrainJob {
            config,
            arch: self.arch,
            data: self.data,
            out: self.out,
            resume: self.resume,
            extend_epochs: self.epochs,
            teacher: self.teacher,
            teacher_arch: self.teacher_arch,
            eval_every: self.eval_every,
            eval_n: self.eval_n,
            stop_after_epochs: self.stop_after_epochs,
            device: self.device,
            devices: Devices {
                adapters: self.devices,
                remote: self.remote,
                remote_token: self.remote_token.filter(|t| !t.is_empty()),
            },
            quiet: self.quiet,
        })
    }
}

/// Trains and returns the path of the reported model (`model.saad`).
pub fn run(args: TrainJob) -> Result<PathBuf> {
    let q = args.quiet;
    let ckpt_path = args.out.join("checkpoint.saad");
    let log_path = args.out.join("log.jsonl");

    // On resume the checkpoint names the data; a fresh run reads what the flags name.
    if args.resume && !ckpt_path.exists() {
        bail!(
            "--resume: {} does not exist (nothing to resume; drop --resume to start a new run)",
            ckpt_path.display()
        );
    }
    // Held until this run ends (released by the system however it ends): a second run pointed
    // at the same folder is refused instead of interleaving its checkpoints with this one's.
    let _lock = fsutil::lock_folder(&args.out)?;
    let resumed = if args.resume {
        Some(read_checkpoint(&ckpt_path)?)
    } else {
        if ckpt_path.exists() {
            bail!(
                "{} already exists: pass --resume to continue that run, or choose another --out",
                ckpt_path.display()
            );
        }
        None
    };
    let data_args = match &resumed {
        Some(c) => datasets::of_checkpoint(&c.header.dataset, &args.data.data_dir, &ckpt_path)?,
        None => args.data.clone(),
    };
    // Files first: a missing dataset is reported before any GPU is probed.
    let (train_set, test_set) = datasets::load(&data_args)?;
    // The main device, then the others of a data-parallel run.
    let (devices, device_name, servers) = if !args.devices.remote.is_empty() {
        let servers =
            crate::remote::connect(&args.devices.remote, args.devices.remote_token.as_deref())?;
        let devices = crate::remote::all_devices(&servers)?;
        let name =
            format!("{} remote device(s) on {}", devices.len(), args.devices.remote.join(", "));
        (devices, name, servers)
    } else if !args.devices.adapters.is_empty() {
        let adapters = super::serve::adapters_at(&args.devices.adapters, "--devices")?;
        let names: Vec<String> = adapters.iter().map(|(_, n)| n.clone()).collect();
        (adapters.into_iter().map(|(d, _)| d).collect(), names.join(" + "), Vec::new())
    } else {
        let (device, name) = select(args.device)?;
        (vec![device], name, Vec::new())
    };
    let device = devices[0].clone();
    let resumed = match resumed {
        Some(ckpt) => {
            let mut t = Trainer::resume(&ckpt, &device, &ckpt_path.display().to_string())?;
            if let Some(e) = args.extend_epochs {
                if e < t.config.epochs {
                    bail!(
                        "--resume: --epochs {e} is below the run's {} epochs; a run can only be extended",
                        t.config.epochs
                    );
                }
                t.config.epochs = e;
            }
            note(
                q,
                format!(
                    "resuming {} after epoch {} of {}",
                    ckpt_path.display(),
                    t.epochs_done,
                    t.config.epochs
                ),
            );
            Some(t)
        }
        None => None,
    };
    let mut trainer = match resumed {
        Some(t) => t,
        None => {
            let info = DatasetInfo {
                name: data_args.data.as_str().into(),
                image_size: datasets::image_size(&data_args),
                num_classes: train_set.num_classes,
            };
            Trainer::new(
                ModelSpec::new(args.arch.clone(), train_set.num_classes),
                args.config.clone(),
                info,
                &device,
            )
        }
    };
    // The teacher: from --teacher, or on resume the one the run was started with.
    let teacher_path = args
        .teacher
        .clone()
        .or_else(|| trainer.notes.get("teacher").and_then(|v| v.as_str()).map(PathBuf::from));
    if let Some(path) = teacher_path {
        let arch = args.teacher_arch.clone().or_else(|| {
            trainer.notes.get("teacher_arch").and_then(|v| v.as_str()).map(String::from)
        });
        let (teacher, tspec) = super::teacher::load(
            &path,
            arch.as_deref(),
            &trainer.dataset.name,
            train_set.num_classes,
            &device,
        )?;
        note(q, format!("teacher {} from {}", tspec, path.display()));
        super::teacher::check(&teacher, &path, &train_set, &device)?;
        trainer.notes.insert("teacher".into(), json!(path.display().to_string()));
        trainer.notes.insert("teacher_arch".into(), json!(tspec.arch.to_string()));
        trainer = trainer.with_teacher(&teacher);
    } else if trainer.config.method.needs_teacher() {
        bail!(
            "--method {} distils from a teacher: give --teacher PATH (e.g. a `saad train --method pgd-at` checkpoint)",
            trainer.config.method
        );
    }
    if devices.len() > 1 {
        if trainer.config.batch_size < devices.len() {
            bail!(
                "--batch-size {} is smaller than the {} devices it is split across",
                trainer.config.batch_size,
                devices.len()
            );
        }
        trainer = trainer.with_devices(&devices[1..]);
    }
    let test_set = match args.eval_n {
        Some(n) => test_set.take(n),
        None => test_set,
    };
    note(
        q,
        format!(
            "{} on {} ({} train / {} test images, {}x{}), {} with {} params, device {}",
            trainer.config.method,
            trainer.dataset.name,
            train_set.len(),
            test_set.len(),
            train_set.height,
            train_set.width,
            trainer.spec.arch,
            trainer.model.num_trainable_params(),
            device_name
        ),
    );
    let train_data = DeviceSet::upload(&train_set, &device);
    let test_data = DeviceSet::upload(&test_set, &device);

    let mut ran = 0;
    while !trainer.is_done() {
        if args.stop_after_epochs.is_some_and(|n| ran >= n) {
            note(q, format!("stopping after {ran} epochs as asked; continue with --resume"));
            return Ok(ckpt_path);
        }
        let epoch = trainer.epochs_done + 1;
        let bar = Progress::new(
            q,
            train_data.len as u64,
            &format!("epoch {epoch}/{}", trainer.config.epochs),
            "img",
        );
        let start = Instant::now();
        let bs = trainer.config.batch_size;
        let n = train_data.len;
        let stats = if devices.len() > 1 {
            // A device that fails mid-step (a server gone) panics inside burn, on the shard's
            // thread; the failure is reported below, once, with what to do.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let stats = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                trainer.train_epoch(&train_data, &mut |b, _| bar.set((b * bs).min(n) as u64))
            }));
            std::panic::set_hook(hook);
            match stats {
                Ok(stats) => stats,
                Err(payload) => {
                    bar.finish();
                    bail!(
                        "{}",
                        device_failure(&servers, &device_name, payload.as_ref(), epoch, &ckpt_path)
                    );
                }
            }
        } else {
            trainer.train_epoch(&train_data, &mut |b, _| bar.set((b * bs).min(n) as u64))
        };
        let train_secs = start.elapsed().as_secs_f64();
        bar.finish();
        if let Some(d) = &stats.divergence {
            // Nothing of this epoch is written: the checkpoint keeps the last good epoch.
            bail!("{}", divergence_message(d, &stats, &trainer.config, &ckpt_path));
        }
        let mut line = EpochLog {
            epoch: stats.epoch,
            method: trainer.config.method,
            lr: stats.lr,
            train_loss: stats.loss,
            train_acc: stats.accuracy,
            train_seconds: train_secs,
            images_per_sec: stats.images as f64 / train_secs,
            tas: None,
            student_asr: None,
            teacher_entropy_mean: None,
            teacher_entropy_std: None,
            saad_weight_mean: None,
            saad_weight_hist: None,
            evaluated: None,
            test_clean_acc: None,
            test_pgd20_acc: None,
            avg_test_clean_acc: None,
            avg_test_pgd20_acc: None,
            eval_seconds: None,
        };
        if let Some(t) = &stats.transfer {
            line = line.with_transfer(t);
        }
        let eval_now = trainer.is_done() || (args.eval_every > 0 && epoch % args.eval_every == 0);
        if eval_now {
            let start = Instant::now();
            let attacks = [EvalAttack::Clean, EvalAttack::Pgd { steps: 20, restarts: 1 }];
            device.seed(saad_core::rng::derive_seed(
                trainer.config.seed,
                &[stream::EVAL, epoch as u64],
            ));
            let ebar =
                Progress::new(q, 2 * test_data.len.div_ceil(256) as u64, "evaluating", "batches");
            let nb = test_data.len.div_ceil(256);
            let res = evaluate(
                &trainer.eval_model(),
                &test_data,
                &attacks,
                trainer.config.attack.eps,
                256,
                &mut |a, b, _| ebar.set((a * nb + b) as u64),
            );
            ebar.finish();
            // test_* are the raw student's; once averaging has begun, avg_test_* are the
            // weight average's (the model a finished run reports), BatchNorm recomputed.
            line.evaluated = Some("student".into());
            line.test_clean_acc = Some(res[0].accuracy);
            line.test_pgd20_acc = Some(res[1].accuracy);
            if trainer.average.is_some() {
                device.seed(saad_core::rng::derive_seed(
                    trainer.config.seed,
                    &[stream::EVAL, epoch as u64],
                ));
                let averaged = trainer.reported_model(&train_data);
                let res = evaluate(
                    &averaged,
                    &test_data,
                    &attacks,
                    trainer.config.attack.eps,
                    256,
                    &mut |_, _, _| {},
                );
                line.evaluated = Some("student and weight average".into());
                line.avg_test_clean_acc = Some(res[0].accuracy);
                line.avg_test_pgd20_acc = Some(res[1].accuracy);
            }
            line.eval_seconds = Some(start.elapsed().as_secs_f64());
        }
        note(q, format_epoch(&line));
        trainer.history.push(serde_json::to_value(&line)?);
        write_atomic(&ckpt_path, &trainer.checkpoint().encode())?;
        let log: String = trainer.history.iter().map(|l| format!("{l}\n")).collect();
        write_atomic(&log_path, log.as_bytes())?;
        ran += 1;
    }
    // The reported model: the weight average (BatchNorm recomputed) when averaging is on.
    let model_path = args.out.join("model.saad");
    let averaged = trainer.average.is_some();
    let reported = trainer.reported_model(&train_data);
    let mut file = trainer.model_file(&reported, averaged);
    if averaged {
        device.seed(saad_core::rng::derive_seed(trainer.config.seed, &[stream::EVAL, 0]));
        let attacks = [EvalAttack::Clean, EvalAttack::Pgd { steps: 20, restarts: 1 }];
        let res = evaluate(
            &reported,
            &test_data,
            &attacks,
            trainer.config.attack.eps,
            256,
            &mut |_, _, _| {},
        );
        note(
            q,
            format!(
                "weight average of {} epochs: test clean {:.2}%, PGD-20 {:.2}%",
                trainer.average.as_ref().map_or(0, |a| a.count),
                100.0 * res[0].accuracy,
                100.0 * res[1].accuracy
            ),
        );
        file.header.notes.insert("test_clean_acc".into(), json!(res[0].accuracy));
        file.header.notes.insert("test_pgd20_acc".into(), json!(res[1].accuracy));
    }
    write_atomic(&model_path, &file.encode())?;
    note(q, format!("done: {} (resume state in {})", model_path.display(), ckpt_path.display()));
    Ok(model_path)
}

/// A device of a data-parallel run failed during an epoch: which one (a server that no longer
/// answers is named), what was kept, and how to go on.
fn device_failure(
    servers: &[crate::remote::RemoteServer],
    devices: &str,
    payload: &(dyn std::any::Any + Send),
    epoch: usize,
    ckpt: &Path,
) -> String {
    let text = saad_core::train::data_parallel::panic_text(payload);
    // burn's messages run over several lines; the first says what failed.
    let text = text.lines().next().unwrap_or_default();
    let down = crate::remote::unreachable(servers, std::time::Duration::from_secs(10));
    let who = match down.as_slice() {
        [] => format!("a device of {devices} failed"),
        [one] => format!("the server {one} stopped answering"),
        many => format!("the servers {} stopped answering", many.join(", ")),
    };
    let kept = if ckpt.exists() {
        format!("{} holds epoch {} and is untouched", ckpt.display(), epoch - 1)
    } else {
        "no checkpoint had been written yet".to_string()
    };
    let next = if servers.is_empty() {
        "Check the devices (`saad devices`, `saad selftest`) and run the same command with --resume to continue from there"
    } else {
        "Restart the server (`saad serve`) and run the same command with --resume to continue from there"
    };
    format!(
        "training stopped in epoch {epoch}: {who} ({text}). Nothing of this epoch was saved; {kept}. {next}"
    )
}

/// What went wrong, what was kept, and what to try.
fn divergence_message(
    d: &Divergence,
    stats: &EpochStats,
    config: &TrainConfig,
    ckpt: &Path,
) -> String {
    let mut what = match d.first_batch {
        Some(b) => format!(
            "the training loss became NaN or infinite at batch {b} of {} ({} of the epoch's batches had a non-finite loss)",
            d.batches, d.bad_batches
        ),
        None => "the training loss stayed finite".to_string(),
    };
    if d.nonfinite_weights > 0 {
        what.push_str(&format!(
            ", and {} of the model's weights are NaN or infinite after it",
            d.nonfinite_weights
        ));
    }
    let kept = if ckpt.exists() {
        format!(
            "{} is untouched and holds epoch {} (the last good one)",
            ckpt.display(),
            stats.epoch - 1
        )
    } else {
        "no checkpoint had been written yet".to_string()
    };
    format!(
        "training diverged in epoch {} of {}: {what}. Nothing of this epoch was saved; {kept}. Try a lower learning rate (this run: --lr {} with --schedule {}, {:.3e} at the end of the epoch) or a gentler schedule; for distillation, check the teacher (`saad eval --checkpoint TEACHER`). Resuming with the same settings would repeat the same steps, so start a new run (another --out) with the changed settings",
        stats.epoch, config.epochs, config.lr, config.schedule, stats.lr
    )
}

fn format_epoch(l: &EpochLog) -> String {
    let pct =
        |v: Option<f64>| v.map(|v| format!("{:.2}%", 100.0 * v)).unwrap_or_else(|| "-".into());
    format!(
        "epoch {:>3}  loss {:.4}  train acc {}  test clean {}  test PGD-20 {}{}{}  {:.0} img/s",
        l.epoch,
        l.train_loss,
        pct(Some(l.train_acc)),
        pct(l.test_clean_acc),
        pct(l.test_pgd20_acc),
        l.avg_test_clean_acc
            .map(|_| format!(
                "  (average: {} / {})",
                pct(l.avg_test_clean_acc),
                pct(l.avg_test_pgd20_acc)
            ))
            .unwrap_or_default(),
        l.tas.map(|t| format!("  TAS {}", pct(Some(t)))).unwrap_or_default(),
        l.images_per_sec
    )
}

#[cfg(test)]
mod tests {
    use super::SwaStart;
    use saad_core::train::MethodKind;

    #[test]
    fn saad_averages_from_the_references_fraction_by_default() {
        let auto = SwaStart::parse("auto").unwrap();
        assert_eq!(auto.resolve(MethodKind::SAAD, 200), Some(95));
        assert_eq!(auto.resolve(MethodKind::SAAD, 10), Some(5));
        assert_eq!(auto.resolve(MethodKind::SAAD, 1), Some(1));
        assert_eq!(auto.resolve(MethodKind::PGD_AT, 200), None);
        assert_eq!(auto.resolve(MethodKind::RSLAD, 200), None);
        assert_eq!(SwaStart::parse("none").unwrap().resolve(MethodKind::SAAD, 200), None);
        assert_eq!(SwaStart::parse("7").unwrap().resolve(MethodKind::PGD_AT, 10), Some(7));
        assert!(SwaStart::parse("0").is_err() && SwaStart::parse("x").is_err());
    }
}
