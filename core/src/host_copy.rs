//! A copy of a model on the CPU (flex), read asynchronously. burn's cross-device move and its
//! record collector read each tensor synchronously, which WebGPU in the browser cannot do; this
//! reads every parameter with `into_data_async` and rebuilds the same module on flex, where
//! saving is an ordinary synchronous encode.

use crate::models::Net;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use std::sync::atomic::{AtomicU64, Ordering};

static HOST_READS: AtomicU64 = AtomicU64::new(0);

/// How many synchronous reads of device values this process has made through [`read_f32`]
/// (every read in the training loop, the attacks and the evaluation goes through it), for the
/// benchmark's reads-per-step figure and the tests that pin it.
pub fn host_reads() -> u64 {
    HOST_READS.load(Ordering::Relaxed)
}

/// Reads `t` back to the host as f32 values: a synchronisation point, counted by [`host_reads`].
pub fn read_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    HOST_READS.fetch_add(1, Ordering::Relaxed);
    t.into_data().iter::<f32>().collect()
}

/// `data` in memory of its own. A wgpu read can hand back bytes that still alias the device
/// tensor's memory (seen with burn 0.22.1 on lavapipe: a flex tensor made from
/// `x.to_data()` changed when `x` was then consumed by an in-place op), so data that outlives
/// the read is copied.
pub fn owned(data: TensorData) -> TensorData {
    TensorData::from_bytes_vec(data.as_bytes().to_vec(), data.shape().clone(), data.dtype())
}

/// The parameters in visiting order, flattened (a module visits and maps its parameters in the
/// same order, which pairs each value read with its place).
#[derive(Default)]
struct Collect {
    floats: Vec<Tensor<1>>,
    ints: Vec<Tensor<1, Int>>,
    bools: Vec<Tensor<1, Bool>>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.floats.push(param.val().reshape([-1]));
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        self.ints.push(param.val().reshape([-1]));
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        self.bools.push(param.val().reshape([-1]));
    }
}

/// Puts the values read back in place, on `device`, with each parameter's own shape and id.
struct Place {
    floats: std::vec::IntoIter<TensorData>,
    ints: std::vec::IntoIter<TensorData>,
    bools: std::vec::IntoIter<TensorData>,
    device: Device,
}

impl ModuleMapper for Place {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let data = self.floats.next().expect("one value per float parameter");
        let device = self.device.clone();
        param.map(|t| Tensor::<1>::from_data(data, &device).reshape(t.shape()))
    }
    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        let data = self.ints.next().expect("one value per int parameter");
        let device = self.device.clone();
        param.map(|t| Tensor::<1, Int>::from_data(data, &device).reshape(t.shape()))
    }
    fn map_bool<const D: usize>(
        &mut self,
        param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        let data = self.bools.next().expect("one value per bool parameter");
        let device = self.device.clone();
        param.map(|t| Tensor::<1, Bool>::from_data(data, &device).reshape(t.shape()))
    }
}

/// `model` (eval mode) with every parameter and buffer copied to the CPU, without a
/// synchronous read. The result can be saved with [`crate::checkpoint::model_bytes`].
pub async fn model_on_host(model: &Net) -> Result<Net, String> {
    let mut collect = Collect::default();
    model.visit(&mut collect);
    let mut floats = Vec::with_capacity(collect.floats.len());
    for t in collect.floats {
        floats.push(owned(
            t.into_data_async().await.map_err(|e| format!("reading the model's weights: {e:?}"))?,
        ));
    }
    let mut ints = Vec::with_capacity(collect.ints.len());
    for t in collect.ints {
        ints.push(owned(
            t.into_data_async().await.map_err(|e| format!("reading the model's buffers: {e:?}"))?,
        ));
    }
    let mut bools = Vec::with_capacity(collect.bools.len());
    for t in collect.bools {
        bools.push(owned(
            t.into_data_async().await.map_err(|e| format!("reading the model's flags: {e:?}"))?,
        ));
    }
    let mut place = Place {
        floats: floats.into_iter(),
        ints: ints.into_iter(),
        bools: bools.into_iter(),
        device: Device::flex(),
    };
    Ok(model.clone().map(&mut place))
}
