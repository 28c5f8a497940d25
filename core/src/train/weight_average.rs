//! Weight averaging (SWA with equal weights, METHOD.md section 3): the student's weights are
//! averaged at the end of each epoch from a chosen epoch on, and the BatchNorm statistics of the
//! average are recomputed on the training set (PyTorch `update_bn`: cumulative average over
//! all batches, `momentum=None`). The averaged model is the reported one.

use crate::data::{Augment, DeviceSet, EpochOrder};
use crate::models::{Net, is_buffer_key};
use burn::module::{Flag, Module, ModuleMapper, Param};
use burn::prelude::*;
use std::collections::HashMap;

/// The running equal-weight average of the snapshots given to [`update`](Self::update).
#[derive(Clone, Debug)]
pub struct WeightAverage {
    /// The average, on the plain device, in eval mode.
    pub model: Net,
    /// How many snapshots it averages.
    pub count: usize,
}

/// `avg + (new - avg) / (count + 1)` on every trainable tensor.
struct Blend {
    path: Vec<String>,
    new: HashMap<String, Tensor<1>>,
    count: usize,
}

impl ModuleMapper for Blend {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // The key without the `Net` variant, as `Net::named_tensors` names it.
        let key = self.path[1..].join(".");
        if is_buffer_key(&key) {
            return param;
        }
        let new = self.new.remove(&key).expect("snapshots of one architecture");
        let k = self.count as f64 + 1.0;
        param.map(|avg| {
            let dims = avg.dims();
            avg.clone() + (new.without_autodiff().reshape(dims) - avg).div_scalar(k)
        })
    }
}

impl WeightAverage {
    /// Starts the average at `model`'s current weights.
    pub fn new(model: &Net) -> Self {
        Self { model: model.valid(), count: 1 }
    }

    /// Continues an average of `count` snapshots held in `model`.
    pub fn resume(model: Net, count: usize) -> Self {
        Self { model: model.valid(), count }
    }

    /// Adds one snapshot with the same weight as every earlier one.
    pub fn update(&mut self, model: &Net) {
        let new = model.named_tensors().into_iter().map(|t| (t.key, t.tensor)).collect();
        let mut blend = Blend { path: Vec::new(), new, count: self.count };
        self.model = self.model.clone().map(&mut blend);
        self.count += 1;
    }
}

/// Switches the BatchNorm cumulative mode on or off, resetting the statistics when asked.
struct ResetBatchNorm {
    path: Vec<String>,
    reset: bool,
    cumulative: bool,
}

impl ModuleMapper for ResetBatchNorm {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        if !self.reset {
            param
        } else if path.ends_with("running_mean") || path.ends_with("num_batches_tracked") {
            param.map(|t| t.zeros_like())
        } else if path.ends_with("running_var") {
            param.map(|t| t.ones_like())
        } else {
            param
        }
    }
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        if self.path.last().is_some_and(|p| p == "cumulative") {
            flag.with_value(self.cumulative)
        } else {
            flag
        }
    }
}

/// The model with BatchNorm statistics recomputed as the plain average over one pass of
/// training-mode forwards on `data` (in a fixed order; augmented when `augment` is given, as
/// PyTorch's `update_bn` sees the training loader). Returns the model in eval mode.
pub fn recompute_batch_norm(
    model: &Net,
    data: &DeviceSet,
    batch: usize,
    augment: Option<Augment>,
    seed: u64,
) -> Net {
    let device = data.images.device();
    let train = model.clone().train().map(&mut ResetBatchNorm {
        path: Vec::new(),
        reset: true,
        cumulative: true,
    });
    let order = EpochOrder::new(data.len, batch, seed, &device);
    device.seed(seed);
    for b in 0..order.num_batches() {
        let (x, _) = data.gather(order.batch_indices(b));
        let x = match augment {
            Some(a) => a.apply(x),
            None => x,
        };
        let _ = train.forward(x);
    }
    train.map(&mut ResetBatchNorm { path: Vec::new(), reset: false, cumulative: false }).valid()
}
