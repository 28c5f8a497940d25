//! A small CNN for labs: three conv-BN-ReLU stages (32, 64, 128 channels), the last two with
//! stride 2, global average pooling and a linear classifier. ~94k parameters at width 32.
//!
//! State-dict keys (PyTorch): `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}`, ...,
//! `conv3.weight`, `bn3.*`, `fc.{weight,bias}`.

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d, global_avg_pool, linear};
use crate::kernels::relu;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// The small CNN (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// First 3x3 convolution, 3 -> `width` channels, stride 1.
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm2d,
    /// Second 3x3 convolution, `width` -> `2 * width` channels, stride 2.
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm2d,
    /// Third 3x3 convolution, `2 * width` -> `4 * width` channels, stride 2.
    pub conv3: Conv2d,
    /// BatchNorm after `conv3`.
    pub bn3: BatchNorm2d,
    /// Linear classifier on the pooled `4 * width` features.
    pub fc: Linear,
}

impl SmallCnn {
    /// A freshly initialised model with `num_classes` outputs and `width` channels in the first
    /// stage (32 for `small-cnn`).
    pub fn new(num_classes: usize, width: usize, device: &Device) -> Self {
        let (w1, w2, w3) = (width, 2 * width, 4 * width);
        Self {
            conv1: conv2d(3, w1, 3, 1, 1, false, device),
            bn1: BatchNorm2d::new(w1, 0.1, device),
            conv2: conv2d(w1, w2, 3, 2, 1, false, device),
            bn2: BatchNorm2d::new(w2, 0.1, device),
            conv3: conv2d(w2, w3, 3, 2, 1, false, device),
            bn3: BatchNorm2d::new(w3, 0.1, device),
            fc: linear(w3, num_classes, device),
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(conv(&self.conv1, x)));
        let x = relu(self.bn2.forward(conv(&self.conv2, x)));
        let x = relu(self.bn3.forward(conv(&self.conv3, x)));
        self.fc.forward(global_avg_pool(x))
    }
}
