//! The training loop shared by every method: one epoch at a time, device-resident data, one
//! read of the statistics per epoch.

use super::config::TrainConfig;
use super::data_parallel::{self, ABORTED, Floats, Replica, ShardExchange, ShardGrads, panic_text};
use super::methods::{BatchContext, Method};
use super::weight_average::{WeightAverage, recompute_batch_norm};
use crate::checkpoint::{Checkpoint, DatasetInfo, Header, load_weights, model_bytes};
use crate::data::{DeviceSet, EpochOrder};
use crate::error::InputError;
use crate::kernels::{self, Route};
use crate::losses;
use crate::losses::transfer_stats::{TransferStats, sums};
use crate::models::{ModelSpec, Net};
use crate::rng::derive_seed;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;

/// Purposes of derived seeds (see [`derive_seed`]).
pub mod stream {
    /// The initial weights of a fresh run.
    pub const INIT: u64 = 1;
    /// Each epoch's data order.
    pub const ORDER: u64 = 2;
    /// Each batch's random draws (augmentation, attack start).
    pub const BATCH: u64 = 3;
    /// The evaluations run during and after training.
    pub const EVAL: u64 = 4;
    /// The pass that recomputes the weight average's BatchNorm statistics.
    pub const BN_RECOMPUTE: u64 = 5;
}

/// What one epoch measured on its training batches.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate of the epoch's last batch.
    pub lr: f64,
    /// Training loss averaged over the epoch's images.
    pub loss: f64,
    /// Accuracy on the inputs the method trains on (adversarial for PGD-AT).
    pub accuracy: f64,
    /// Images trained on.
    pub images: usize,
    /// Transfer statistics of the student-crafted adversarial examples (with a teacher).
    pub transfer: Option<TransferStats>,
    /// Set when the loss or the weights stopped being finite during the epoch.
    pub divergence: Option<Divergence>,
}

/// Where training stopped being finite (see [`EpochStats::divergence`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The first batch (1-based) whose loss was NaN or infinite, if any was.
    pub first_batch: Option<usize>,
    /// Batches of the epoch whose loss was NaN or infinite.
    pub bad_batches: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// NaN or infinite parameter values after the epoch.
    pub nonfinite_weights: usize,
}

/// Layout of the epoch's statistics vector ([`PendingEpoch::sums`]), read once per epoch:
/// `[loss sum, correct count, transfer sums (`sums::LEN`), health (HEALTH_LEN)]`.
pub mod epoch_sums {
    use super::sums;
    /// Offset of the transfer sums.
    pub const TRANSFER: usize = 2;
    /// Offset of the health values: batches with a non-finite loss, `batches - first such
    /// batch (0-based)` (0: none), non-finite weights after the epoch.
    pub const HEALTH: usize = TRANSFER + sums::LEN;
    /// Number of health values.
    pub const HEALTH_LEN: usize = 3;
    /// Length of the whole vector.
    pub const LEN: usize = HEALTH + HEALTH_LEN;
}

/// An epoch whose statistics are still on the device.
pub struct PendingEpoch {
    /// The statistics, laid out as [`epoch_sums`] says.
    pub sums: Tensor<1>,
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate of the epoch's last batch.
    pub lr: f64,
    /// Images trained on.
    pub images: usize,
    /// Batches in the epoch.
    pub batches: usize,
}

/// An epoch being trained batch by batch (see [`Trainer::start_epoch`]).
pub struct EpochRun {
    order: EpochOrder,
    batches: usize,
    next: usize,
    /// `[loss sum, correct count, transfer sums...]` over the batches trained so far.
    pub sums: Tensor<1>,
    /// Batches with a non-finite loss so far.
    bad_batches: Tensor<1>,
    /// `batches - b` for the first such batch `b` (0-based), or 0.
    first_bad_from_end: Tensor<1>,
    lr: f64,
    images: usize,
}

impl EpochRun {
    /// Batches trained so far.
    pub fn batches_done(&self) -> usize {
        self.next
    }
    /// Batches in the epoch.
    pub fn num_batches(&self) -> usize {
        self.batches
    }
    /// Images trained on so far in this epoch.
    pub fn images(&self) -> usize {
        self.images
    }
    /// Whether every batch of the epoch is trained.
    pub fn is_complete(&self) -> bool {
        self.next >= self.batches
    }
}

impl PendingEpoch {
    /// The statistics from the values of [`sums`](Self::sums).
    pub fn finish(&self, v: &[f32]) -> EpochStats {
        let h = &v[epoch_sums::HEALTH..epoch_sums::LEN];
        let (bad_batches, first_from_end, nonfinite_weights) =
            (h[0] as usize, h[1] as usize, h[2] as usize);
        let diverged = bad_batches > 0 || nonfinite_weights > 0 || !v[0].is_finite();
        EpochStats {
            epoch: self.epoch,
            lr: self.lr,
            loss: v[0] as f64 / self.images as f64,
            accuracy: v[1] as f64 / self.images as f64,
            images: self.images,
            transfer: TransferStats::from_sums(&v[epoch_sums::TRANSFER..epoch_sums::HEALTH]),
            divergence: diverged.then(|| Divergence {
                first_batch: (first_from_end > 0).then(|| self.batches - first_from_end + 1),
                bad_batches,
                batches: self.batches,
                nonfinite_weights,
            }),
        }
    }
}

/// A model being trained, its optimizer and where it stands.
pub struct Trainer {
    /// Architecture of the student.
    pub spec: ModelSpec,
    /// The run's settings.
    pub config: TrainConfig,
    /// The training data set's name, image size and class count.
    pub dataset: DatasetInfo,
    /// The student, on the autodiff device, in training mode.
    pub model: Net,
    optim: ModuleOptimizer,
    method: &'static dyn Method,
    /// The frozen teacher, in eval mode on the plain device, its BatchNorm folded
    /// ([`crate::models::fold`]: compute with it, never save it).
    pub teacher: Option<Net>,
    /// The running weight average (from `config.swa_start` on).
    pub average: Option<WeightAverage>,
    /// The plain (non-autodiff) device the data lives on: the main device of a data-parallel run.
    pub device: Device,
    /// The other devices of a data-parallel run ([`with_devices`](Self::with_devices)); empty
    /// on one device.
    pub replicas: Vec<Replica>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// One JSON object per completed epoch (filled by the caller, which also measures time).
    pub history: Vec<serde_json::Value>,
    /// Carried into the checkpoint header (e.g. the teacher's path).
    pub notes: serde_json::Map<String, serde_json::Value>,
}

/// What one batch hands to the optimizer step and the epoch's statistics.
struct BatchStep {
    /// The global batch's mean loss `[1]`, detached, on the main device.
    loss: Tensor<1>,
    /// Correctly classified training inputs `[1]`.
    correct: Tensor<1>,
    /// The batch's transfer sums (zeros without a teacher).
    transfer: Tensor<1>,
    /// The gradients of the main model's parameters.
    grads: GradientsParams,
    /// Data-parallel only: per float of the model in visit order, whether it is trained
    /// (otherwise a running statistic).
    trainable: Vec<bool>,
}

/// The teacher's copy for `device`, in eval mode.
fn replica_teacher(teacher: &Net, device: &Device) -> Net {
    data_parallel::eval_copy_on(teacher, device).folded()
}

/// The shapes of a model's float parameters by parameter id.
struct ParamShapes(std::collections::BTreeMap<u64, Vec<usize>>);

impl ModuleVisitor for ParamShapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.insert(param.id.val(), param.lazy_shape().to_vec());
    }
}

/// Checks optimizer state (burnpack bytes) against `model` before burn reads it: burn's loader
/// assumes a well-formed record (it panics on a tensor without a parameter id, and silently
/// drops state it cannot place), so a damaged or foreign record is refused here with a message.
fn check_optimizer_state(bytes: &[u8], model: &Net, source: &str) -> Result<(), InputError> {
    let bad = |m: String| InputError::new(source, format!("unreadable optimizer state: {m}"));
    let mut params = ParamShapes(Default::default());
    model.visit(&mut params);
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| bad(e.to_string()))?;
    // burn takes a parameter's rank from its `{id}.__rank` scalar over the tensors' shapes (a
    // rank of 0 by one flipped bit made it build a rank-0 tensor and panic; found by the fuzzer),
    // so each rank burn would read must be its parameter's.
    for (key, value) in reader.scalars() {
        if let Some(id) = key.strip_suffix(".__rank").and_then(|id| id.parse::<u64>().ok())
            && let Ok(rank) = usize::try_from(*value)
        {
            let want = params.0.get(&id).ok_or_else(|| {
                bad(format!("{key} belongs to a parameter this model does not have"))
            })?;
            if rank != want.len() {
                return Err(bad(format!("{key} is {rank}, its parameter has shape {want:?}")));
            }
        }
    }
    let tensors = reader.into_tensors().map_err(|e| bad(e.to_string()))?;
    for t in tensors {
        let (name, dtype, shape, param_id, data) =
            t.into_parts().map_err(|e| bad(e.to_string()))?;
        let id = param_id.ok_or_else(|| bad(format!("tensor {name} belongs to no parameter")))?;
        let want = params.0.get(&id).ok_or_else(|| {
            bad(format!("tensor {name} belongs to a parameter this model does not have"))
        })?;
        // SGD keeps one momentum tensor of the parameter's shape.
        let elements: usize = want.iter().product();
        if shape[..] != want[..] || data.len() != elements * dtype.size() {
            return Err(bad(format!(
                "tensor {name} has shape {:?} ({} bytes), its parameter {want:?}",
                &shape[..],
                data.len()
            )));
        }
    }
    Ok(())
}

fn sgd(config: &TrainConfig) -> ModuleOptimizer {
    super::sgd::Sgd {
        momentum: config.momentum,
        dampening: 0.0,
        weight_decay: config.weight_decay.max(0.0),
    }
    .init()
}

impl Trainer {
    /// A fresh run; the initial weights are drawn from the run seed.
    pub fn new(
        spec: ModelSpec,
        config: TrainConfig,
        dataset: DatasetInfo,
        device: &Device,
    ) -> Self {
        let device = device.clone().without_autodiff();
        device.seed(derive_seed(config.seed, &[stream::INIT]));
        let model = spec.init(&device.clone().autodiff());
        Self {
            optim: sgd(&config),
            method: config.method.method(),
            spec,
            config,
            dataset,
            model,
            teacher: None,
            average: None,
            device,
            replicas: Vec::new(),
            epochs_done: 0,
            history: Vec::new(),
            notes: Default::default(),
        }
    }

    /// Continues a run from a checkpoint written by [`Trainer::checkpoint`].
    pub fn resume(ckpt: &Checkpoint, device: &Device, source: &str) -> Result<Self, InputError> {
        let device = device.clone().without_autodiff();
        let config: TrainConfig = serde_json::from_value(ckpt.header.train_config.clone())
            .map_err(|e| {
                InputError::new(
                    source,
                    format!("the training configuration in this checkpoint is unreadable: {e}"),
                )
            })?;
        let model =
            load_weights(&ckpt.header.model, &ckpt.model, &device.clone().autodiff(), source)?;
        if ckpt.optimizer.is_empty() {
            return Err(InputError::new(
                source,
                "this checkpoint holds no optimizer state (it is an exported or averaged model), so it cannot be resumed",
            ));
        }
        check_optimizer_state(&ckpt.optimizer, &model, source)?;
        let optim = sgd(&config)
            .from_bytes(Bytes::from_bytes_vec(ckpt.optimizer.clone()))
            .map_err(|e| InputError::new(source, format!("unreadable optimizer state: {e}")))?;
        let average = if ckpt.header.averaged_count > 0 {
            let avg = load_weights(&ckpt.header.model, &ckpt.averaged, &device, source)?;
            Some(WeightAverage::resume(avg, ckpt.header.averaged_count))
        } else {
            None
        };
        Ok(Self {
            spec: ckpt.header.model.clone(),
            method: config.method.method(),
            config,
            dataset: ckpt.header.dataset.clone(),
            model,
            optim,
            teacher: None,
            average,
            device,
            replicas: Vec::new(),
            epochs_done: ckpt.header.epochs_done,
            history: ckpt.header.history.clone(),
            notes: ckpt.header.notes.clone(),
        })
    }

    /// Sets the frozen teacher (put in eval mode, without parameter gradients).
    pub fn with_teacher(mut self, teacher: &Net) -> Self {
        self.teacher = Some(teacher.valid().folded());
        for r in &mut self.replicas {
            r.teacher = Some(replica_teacher(teacher, &r.device));
        }
        self
    }

    /// Trains data-parallel on the main device and `others` (see [`data_parallel`]): each
    /// global batch is split across them, their gradients are added on the main device in a
    /// fixed order and one optimizer step runs there. Replaces any devices set before.
    ///
    /// # Panics
    /// If `others` repeats a device or holds the main one (callers check first).
    pub fn with_devices(mut self, others: &[Device]) -> Self {
        let mut seen = vec![self.device.clone()];
        for d in others {
            let d = d.clone().without_autodiff();
            assert!(!seen.contains(&d), "device {d:?} is given twice");
            seen.push(d);
        }
        let floats: Vec<Option<Tensor<1>>> =
            Floats::of(&self.model).values.into_iter().map(Some).collect();
        self.replicas = seen[1..]
            .iter()
            .map(|device| Replica {
                device: device.clone(),
                model: data_parallel::copy_flags(
                    data_parallel::load_floats(
                        self.spec.init(&device.clone().autodiff()),
                        floats.clone(),
                    ),
                    &self.model,
                ),
                teacher: self.teacher.as_ref().map(|t| replica_teacher(t, device)),
            })
            .collect();
        self
    }

    /// Every device this run trains on, the main one first.
    pub fn devices(&self) -> Vec<Device> {
        std::iter::once(self.device.clone())
            .chain(self.replicas.iter().map(|r| r.device.clone()))
            .collect()
    }

    /// Whether all `config.epochs` epochs are trained.
    pub fn is_done(&self) -> bool {
        self.epochs_done >= self.config.epochs
    }

    /// Trains one epoch and reads its statistics (one read). `on_batch(done, total)` is called
    /// after each batch (host only).
    ///
    /// # Panics
    /// If the method distils from a teacher and none was set (callers check first).
    pub fn train_epoch(
        &mut self,
        data: &DeviceSet,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> EpochStats {
        let pending = self.train_epoch_pending(data, on_batch);
        let v: Vec<f32> = crate::host_copy::read_f32(pending.sums.clone());
        pending.finish(&v)
    }

    /// Trains one epoch without reading anything back: the statistics stay on the device in
    /// [`PendingEpoch::sums`] for the caller to read (asynchronously in the browser).
    pub fn train_epoch_pending(
        &mut self,
        data: &DeviceSet,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> PendingEpoch {
        let mut run = self.start_epoch(data);
        while !run.is_complete() {
            self.train_next_batch(&mut run, data);
            on_batch(run.next, run.batches);
        }
        self.end_epoch(run, data)
    }

    /// The next epoch, to be trained one batch at a time with [`train_next_batch`](Self::train_next_batch)
    /// (the browser yields between batches so that a Stop gets in) and closed by
    /// [`end_epoch`](Self::end_epoch).
    ///
    /// # Panics
    /// If the method distils from a teacher and none was set (callers check first).
    pub fn start_epoch(&self, data: &DeviceSet) -> EpochRun {
        assert!(
            self.teacher.is_some() || !self.config.method.needs_teacher(),
            "{} needs a teacher",
            self.config.method
        );
        let cfg = &self.config;
        let epoch = self.epochs_done; // 0-based
        let order = EpochOrder::new(
            data.len,
            cfg.batch_size,
            derive_seed(cfg.seed, &[stream::ORDER, epoch as u64]),
            &self.device,
        );
        let batches = order.num_batches();
        // [loss sum, correct count, transfer sums...]
        let sums = Tensor::<1>::zeros([2 + sums::LEN], &self.device);
        let zero = Tensor::<1>::zeros([1], &self.device);
        EpochRun {
            order,
            batches,
            next: 0,
            sums,
            bad_batches: zero.clone(),
            first_bad_from_end: zero,
            lr: cfg.lr,
            images: 0,
        }
    }

    /// Trains batch `run.next` of the epoch `run` belongs to.
    pub fn train_next_batch(&mut self, run: &mut EpochRun, data: &DeviceSet) {
        let cfg = &self.config;
        let (epoch, b, nb) = (self.epochs_done, run.next, run.batches);
        // Every random draw of this batch (augmentation, attack start) follows from here.
        self.device.seed(derive_seed(cfg.seed, &[stream::BATCH, epoch as u64, b as u64]));
        let (x, y) = data.gather(run.order.batch_indices(b));
        let x = match &cfg.augment {
            Some(aug) => aug.apply(x),
            None => x,
        };
        let n = y.dims()[0];
        run.lr = cfg.schedule.lr(cfg.lr, epoch, b, nb, cfg.epochs);
        let step = if self.replicas.is_empty() {
            self.batch_on_one_device(x, y, epoch)
        } else {
            self.batch_on_shards(x, y, epoch, b)
        };
        // Divergence watch, on the device: count non-finite losses and remember the first
        // (as `batches - b`, so that a max keeps the earliest; exact in f32).
        let bad = step.loss.clone().is_finite().bool_not().float();
        run.first_bad_from_end =
            run.first_bad_from_end.clone().max_pair(bad.clone().mul_scalar((nb - b) as f64));
        run.bad_batches = run.bad_batches.clone() + bad;
        let parts = vec![step.loss.mul_scalar(n as f64), step.correct, step.transfer];
        run.sums = run.sums.clone() + Tensor::cat(parts, 0);
        run.images += n;
        self.model = self.optim.step(run.lr, self.model.clone(), step.grads);
        if !self.replicas.is_empty() {
            self.model = data_parallel::sync_replicas(
                self.model.clone(),
                &mut self.replicas,
                &step.trainable,
                &self.device,
            );
        }
        run.next += 1;
    }

    /// One batch's loss, statistics and gradients on the main device alone.
    fn batch_on_one_device(&self, x: Tensor<4>, y: Tensor<1, Int>, epoch: usize) -> BatchStep {
        let cfg = &self.config;
        let ctx = BatchContext {
            student: &self.model,
            teacher: self.teacher.as_ref(),
            x,
            y: y.clone(),
            epoch: epoch + 1,
            epochs: cfg.epochs,
            attack: &cfg.attack,
            params: &cfg.params,
            shards: None,
        };
        let out = self.method.batch_loss(&ctx);
        let loss = out.loss.clone().detach().without_autodiff();
        let correct = losses::correct(out.logits.clone().detach().without_autodiff(), y.clone());
        let transfer = match (&self.teacher, &out.x_adv) {
            (Some(teacher), Some(x_adv)) => {
                // Methods that did not evaluate the teacher on x' pay one teacher forward here.
                let t_adv =
                    out.teacher_adv.clone().unwrap_or_else(|| teacher.forward(x_adv.clone()));
                self.transfer_sums(t_adv, out.student_adv.clone(), y)
            }
            _ => Tensor::zeros([sums::LEN], &self.device),
        };
        let grads = GradientsParams::from_grads(out.loss.backward(), &self.model);
        BatchStep { loss, correct: correct.sum(), transfer, grads, trainable: Vec::new() }
    }

    fn transfer_sums(
        &self,
        teacher_adv: Tensor<2>,
        student_adv: Option<Tensor<2>>,
        y: Tensor<1, Int>,
    ) -> Tensor<1> {
        kernels::transfer_sums(
            Route::Auto,
            teacher_adv,
            student_adv,
            y,
            self.config.params.saad_weighting(),
        )
    }

    /// One batch split across the devices (see [`data_parallel`]): each shard on its own
    /// thread, its gradients and statistics gathered on the main device in shard order.
    fn batch_on_shards(
        &self,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        epoch: usize,
        batch: usize,
    ) -> BatchStep {
        let cfg = &self.config;
        let n = y.dims()[0];
        let devices = self.devices();
        let sizes = data_parallel::shard_sizes(n, devices.len());
        let exchange = ShardExchange::new(devices.len());
        let kernels_on = kernels::kernels_enabled();
        let method = self.method;
        let classes = self.dataset.num_classes;
        let mut from = 0;
        let mut jobs = Vec::new();
        for (k, (device, &size)) in devices.iter().zip(&sizes).enumerate() {
            let (student, teacher) = match k {
                0 => (&self.model, self.teacher.as_ref()),
                _ => (&self.replicas[k - 1].model, self.replicas[k - 1].teacher.as_ref()),
            };
            let x = data_parallel::move_to(x.clone().slice(from..from + size), device);
            let y = data_parallel::move_to(y.clone().slice(from..from + size), device);
            from += size;
            jobs.push((k, device.clone(), student, teacher, x, y));
        }
        let exchange = &exchange;
        // Runs on the shard's own thread and leaves its results on its device: `[loss sum,
        // correct, teacher logits on x', student logits on x']` (the logits when there is a
        // teacher) and the gradients.
        let shard = |(k, device, student, teacher, x, y): (
            usize,
            Device,
            &Net,
            Option<&Net>,
            Tensor<4>,
            Tensor<1, Int>,
        )| {
            let body = || {
                kernels::with_kernels(kernels_on, || {
                    device.seed(derive_seed(
                        cfg.seed,
                        &[stream::BATCH, epoch as u64, batch as u64, k as u64],
                    ));
                    let size = y.dims()[0];
                    let ctx = BatchContext {
                        student,
                        teacher,
                        x,
                        y: y.clone(),
                        epoch: epoch + 1,
                        epochs: cfg.epochs,
                        attack: &cfg.attack,
                        params: &cfg.params,
                        shards: Some((exchange, k)),
                    };
                    let out = method.batch_loss(&ctx);
                    let flat = |t: Tensor<2>| t.detach().without_autodiff().reshape([-1]);
                    let mut stats = vec![
                        out.loss.clone().detach().without_autodiff().mul_scalar(size as f64),
                        losses::correct(out.logits.clone().detach().without_autodiff(), y).sum(),
                    ];
                    if let (Some(t), Some(x_adv), Some(s_adv)) =
                        (teacher, &out.x_adv, &out.student_adv)
                    {
                        let t_adv =
                            out.teacher_adv.clone().unwrap_or_else(|| t.forward(x_adv.clone()));
                        stats.push(flat(t_adv));
                        stats.push(flat(s_adv.clone()));
                    }
                    // The shard's share of the global batch mean.
                    let scaled = out.loss.mul_scalar(size as f64 / n as f64);
                    let grads = GradientsParams::from_grads(scaled.backward(), student);
                    (Tensor::cat(stats, 0), ShardGrads::collect(student, grads))
                })
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(out) => out,
                Err(payload) => {
                    exchange.fail();
                    std::panic::panic_any(format!(
                        "device {k} failed in batch {} of epoch {}: {}",
                        batch + 1,
                        epoch + 1,
                        panic_text(payload.as_ref())
                    ))
                }
            }
        };
        let shard = &shard;
        let outs: Vec<_> = std::thread::scope(|scope| {
            let mut jobs = jobs.into_iter();
            let first = jobs.next().expect("the main device takes the first shard");
            let handles: Vec<_> = jobs.map(|job| scope.spawn(move || shard(job))).collect();
            let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard(first)));
            let mut outs = Vec::new();
            let mut failure = None;
            match first {
                Ok(o) => outs.push(o),
                Err(p) => failure = Some(panic_text(p.as_ref())),
            }
            for h in handles {
                match h.join() {
                    Ok(o) => outs.push(o),
                    Err(p) => {
                        // The first failure in shard order is the cause; the shards after it
                        // only saw the exchange close.
                        if failure.as_deref().is_none_or(|f| f.contains(ABORTED)) {
                            failure = Some(panic_text(p.as_ref()));
                        }
                    }
                }
            }
            if let Some(f) = failure {
                std::panic::panic_any(f);
            }
            outs
        });
        // On the main device, in shard order: one transfer of statistics and one of gradients
        // per shard.
        let main = &self.device;
        let (mut loss, mut correct) = (Vec::new(), Vec::new());
        let (mut t_adv, mut s_adv) = (Vec::new(), Vec::new());
        let mut grads = Vec::new();
        for ((stats, g), &size) in outs.into_iter().zip(&sizes) {
            let stats = data_parallel::move_to(stats, main);
            loss.push(stats.clone().slice(0..1));
            correct.push(stats.clone().slice(1..2));
            if self.teacher.is_some() && stats.dims()[0] > 2 {
                let m = size * classes;
                t_adv.push(stats.clone().slice(2..2 + m).reshape([size, classes]));
                s_adv.push(stats.slice(2 + m..2 + 2 * m).reshape([size, classes]));
            }
            grads.push(g);
        }
        let loss = Tensor::cat(loss, 0).sum().div_scalar(n as f64);
        let correct = Tensor::cat(correct, 0).sum();
        let transfer = if t_adv.len() == sizes.len() {
            self.transfer_sums(Tensor::cat(t_adv, 0), Some(Tensor::cat(s_adv, 0)), y)
        } else {
            Tensor::zeros([sums::LEN], main)
        };
        let trainable = grads[0].trained.clone();
        let grads = data_parallel::combine_grads(&Floats::of(&self.model), grads, main);
        BatchStep { loss, correct, transfer, grads, trainable }
    }

    /// Closes a complete epoch: counts it, updates the weight average.
    ///
    /// # Panics
    /// If batches of `run` are left.
    pub fn end_epoch(&mut self, run: EpochRun, data: &DeviceSet) -> PendingEpoch {
        assert!(
            run.is_complete(),
            "end_epoch with {} of {} batches trained",
            run.next,
            run.batches
        );
        self.epochs_done += 1;
        if self.config.swa_start.is_some_and(|s| self.epochs_done >= s) {
            match &mut self.average {
                Some(avg) => avg.update(&self.model),
                None => self.average = Some(WeightAverage::new(&self.model)),
            }
        }
        let weights = crate::health::nonfinite_weights(&self.model, &self.device);
        let sums = Tensor::cat(vec![run.sums, run.bad_batches, run.first_bad_from_end, weights], 0);
        PendingEpoch {
            sums,
            epoch: self.epochs_done,
            lr: run.lr,
            images: data.len,
            batches: run.batches,
        }
    }

    /// The student in eval mode (BatchNorm running statistics, no parameter gradients).
    pub fn eval_model(&self) -> Net {
        self.model.valid()
    }

    /// The model a finished run reports: the weight average with BatchNorm statistics
    /// recomputed on `train` when averaging is on, else the student itself. Eval mode.
    pub fn reported_model(&self, train: &DeviceSet) -> Net {
        match &self.average {
            Some(avg) => recompute_batch_norm(
                &avg.model,
                train,
                self.config.batch_size,
                self.config.augment,
                derive_seed(self.config.seed, &[stream::BN_RECOMPUTE]),
            ),
            None => self.eval_model(),
        }
    }

    fn header(&self) -> Header {
        Header {
            model: self.spec.clone(),
            dataset: self.dataset.clone(),
            epochs_done: self.epochs_done,
            train_config: serde_json::to_value(&self.config).expect("config serialises"),
            history: self.history.clone(),
            notes: self.notes.clone(),
            averaged_count: self.average.as_ref().map_or(0, |a| a.count),
        }
    }

    /// Everything needed to resume this run.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            header: self.header(),
            model: model_bytes(&self.model),
            optimizer: self.optim.into_bytes().expect("optimizer state encodes").to_vec(),
            averaged: self.average.as_ref().map(|a| model_bytes(&a.model)).unwrap_or_default(),
        }
    }

    /// A model-only file (no optimizer state) holding `model`, e.g. [`reported_model`](Self::reported_model).
    pub fn model_file(&self, model: &Net, averaged: bool) -> Checkpoint {
        let mut header = self.header();
        header.averaged_count = 0;
        header.notes.insert(
            "weights".into(),
            (if averaged { "weight average, BatchNorm recomputed" } else { "final student" })
                .into(),
        );
        Checkpoint {
            header,
            model: model_bytes(model),
            optimizer: Vec::new(),
            averaged: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;
    use crate::train::MethodKind;

    /// A `__rank` scalar that disagrees with its parameter is refused with a message (burn
    /// would build a tensor of that rank from the momentum's data and panic).
    #[test]
    fn optimizer_rank_that_disagrees_with_its_parameter_is_refused() {
        let device = Device::flex();
        let (train, _) = digits::load(16).unwrap();
        let mut config = TrainConfig::reference(MethodKind::NATURAL);
        config.epochs = 1;
        config.batch_size = 32;
        config.augment = None;
        let info = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
        let mut t = Trainer::new(
            "small-cnn-2".parse().map(|a| ModelSpec::new(a, 10)).unwrap(),
            config,
            info,
            &device,
        );
        t.train_epoch(&DeviceSet::upload(&train.take(32), &device), &mut |_, _| {});
        let mut ckpt = t.checkpoint();
        assert!(Trainer::resume(&ckpt, &device, "run.saad").is_ok());

        let reader =
            burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(ckpt.optimizer.clone())).unwrap();
        let (scalars, paths) = (reader.scalars().clone(), reader.metadata().clone());
        let rank_key = scalars.keys().find(|k| k.ends_with(".__rank")).unwrap().clone();
        let mut writer = burn_pack::Writer::new(reader.into_tensors().unwrap());
        for (key, value) in &scalars {
            let value = if *key == rank_key { burn_pack::Scalar::from(0usize) } else { *value };
            writer = writer.with_scalar(key, value);
        }
        for (key, value) in &paths {
            writer = writer.with_metadata(key, value);
        }
        ckpt.optimizer = writer.into_bytes().unwrap().to_vec();
        let e = Trainer::resume(&ckpt, &device, "run.saad").err().expect("refused").to_string();
        assert!(e.contains("run.saad") && e.contains(&format!("{rank_key} is 0")), "{e}");
    }
}
