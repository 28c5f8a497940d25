//! The training loop shared by every method: one epoch at a time, device-resident data, one
//! read of the statistics per epoch.

use super::config::TrainConfig;
use super::methods::{BatchContext, Method};
use crate::checkpoint::{Checkpoint, DatasetInfo, Header, model_bytes};
use crate::data::{DeviceSet, EpochOrder};
use crate::error::DataError;
use crate::losses;
use crate::models::{ModelSpec, Net};
use crate::rng::derive_seed;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::Bytes;

/// Purposes of derived seeds (see [`derive_seed`]).
pub mod stream {
    pub const INIT: u64 = 1;
    pub const ORDER: u64 = 2;
    pub const BATCH: u64 = 3;
    pub const EVAL: u64 = 4;
}

/// What one epoch measured on its training batches.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    /// Accuracy on the inputs the method trains on (adversarial for PGD-AT).
    pub accuracy: f64,
    pub images: usize,
}

/// A model being trained, its optimizer and where it stands.
pub struct Trainer {
    pub spec: ModelSpec,
    pub config: TrainConfig,
    pub dataset: DatasetInfo,
    /// The student, on the autodiff device, in training mode.
    pub model: Net,
    optim: ModuleOptimizer,
    method: Box<dyn Method>,
    /// The plain (non-autodiff) device the data lives on.
    pub device: Device,
    pub epochs_done: usize,
    /// One JSON object per completed epoch (filled by the caller, which also measures time).
    pub history: Vec<serde_json::Value>,
}

fn sgd(config: &TrainConfig) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig { momentum: config.momentum, dampening: 0.0, nesterov: false }))
        .with_weight_decay((config.weight_decay > 0.0).then(|| WeightDecayConfig { penalty: config.weight_decay as f32 }))
        .init()
}

impl Trainer {
    /// A fresh run; the initial weights are drawn from the run seed.
    pub fn new(spec: ModelSpec, config: TrainConfig, dataset: DatasetInfo, device: &Device) -> Self {
        let device = device.clone().without_autodiff();
        device.seed(derive_seed(config.seed, &[stream::INIT]));
        let model = spec.init(&device.clone().autodiff());
        Self {
            optim: sgd(&config),
            method: config.method.build(),
            spec,
            config,
            dataset,
            model,
            device,
            epochs_done: 0,
            history: Vec::new(),
        }
    }

    /// Continues a run from a checkpoint written by [`Trainer::checkpoint`].
    pub fn resume(ckpt: &Checkpoint, device: &Device, source: &str) -> Result<Self, DataError> {
        let device = device.clone().without_autodiff();
        let config: TrainConfig = serde_json::from_value(ckpt.header.train_config.clone())
            .map_err(|e| DataError::new(source, format!("the training configuration in this checkpoint is unreadable: {e}")))?;
        let model = ckpt.load_model(&device.clone().autodiff(), source)?;
        let optim = if ckpt.optimizer.is_empty() {
            return Err(DataError::new(source, "this checkpoint holds no optimizer state (it is an exported or averaged model), so it cannot be resumed"));
        } else {
            sgd(&config)
                .from_bytes(Bytes::from_bytes_vec(ckpt.optimizer.clone()))
                .map_err(|e| DataError::new(source, format!("unreadable optimizer state: {e}")))?
        };
        Ok(Self {
            spec: ckpt.header.model.clone(),
            method: config.method.build(),
            config,
            dataset: ckpt.header.dataset.clone(),
            model,
            optim,
            device,
            epochs_done: ckpt.header.epochs_done,
            history: ckpt.header.history.clone(),
        })
    }

    pub fn is_done(&self) -> bool {
        self.epochs_done >= self.config.epochs
    }

    /// Trains one epoch. `on_batch(done, total)` is called after each batch (host only).
    pub fn train_epoch(&mut self, data: &DeviceSet, on_batch: &mut dyn FnMut(usize, usize)) -> EpochStats {
        let cfg = &self.config;
        let epoch = self.epochs_done; // 0-based
        let order = EpochOrder::new(data.len, cfg.batch_size, derive_seed(cfg.seed, &[stream::ORDER, epoch as u64]), &self.device);
        let nb = order.num_batches();
        let mut loss_sum = Tensor::<1>::zeros([1], &self.device);
        let mut correct_sum = Tensor::<1>::zeros([1], &self.device);
        let mut lr = cfg.lr;
        for b in 0..nb {
            // Every random draw of this batch (augmentation, attack start) follows from here.
            self.device.seed(derive_seed(cfg.seed, &[stream::BATCH, epoch as u64, b as u64]));
            let (x, y) = data.gather(order.batch_indices(b));
            let x = match &cfg.augment {
                Some(aug) => aug.apply(x),
                None => x,
            };
            let n = y.dims()[0];
            lr = cfg.schedule.lr(cfg.lr, epoch, b, nb, cfg.epochs);
            let ctx = BatchContext { student: &self.model, x, y: y.clone(), epoch: epoch + 1, epochs: cfg.epochs, attack: &cfg.attack };
            let out = self.method.batch_loss(&ctx);
            loss_sum = loss_sum + out.loss.clone().detach().without_autodiff().mul_scalar(n as f64);
            correct_sum = correct_sum + losses::correct(out.logits.detach().without_autodiff(), y).sum();
            let grads = GradientsParams::from_grads(out.loss.backward(), &self.model);
            self.model = self.optim.step(lr, self.model.clone(), grads);
            on_batch(b + 1, nb);
        }
        self.epochs_done += 1;
        // The one read of the epoch.
        let sums = Tensor::cat(vec![loss_sum, correct_sum], 0).into_data().try_to_vec::<f32>().expect("f32 stats");
        EpochStats {
            epoch: self.epochs_done,
            lr,
            loss: sums[0] as f64 / data.len as f64,
            accuracy: sums[1] as f64 / data.len as f64,
            images: data.len,
        }
    }

    /// The student in eval mode (BatchNorm running statistics, no parameter gradients).
    pub fn eval_model(&self) -> Net {
        self.model.valid()
    }

    /// Everything needed to resume this run.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            header: Header {
                model: self.spec.clone(),
                dataset: self.dataset.clone(),
                epochs_done: self.epochs_done,
                train_config: serde_json::to_value(&self.config).expect("config serialises"),
                history: self.history.clone(),
                notes: Default::default(),
            },
            model: model_bytes(&self.model),
            optimizer: self.optim.into_bytes().expect("optimizer state encodes").to_vec(),
        }
    }
}
