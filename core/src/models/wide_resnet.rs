//! WideResNet-depth-width with ReLU, the TRADES / RobustBench layout
//! (`robustbench/model_zoo/architectures/wide_resnet.py`). WRN-34-10: 46,160,474 parameters,
//! WRN-28-10: 36,479,194 (10 classes).
//!
//! State-dict keys (identical paths): `conv1.weight`,
//! `block{1,2,3}.layer.{i}.{bn1.*, conv1.weight, bn2.*, conv2.weight, convShortcut.weight}`
//! (`convShortcut` only where the channel count changes), `bn1.*`, `fc.{weight,bias}`.
//! Some TRADES checkpoints also carry an unused `sub_block1.*`; the importer ignores it.

#![allow(non_snake_case)]

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d_he_normal, global_avg_pool};
use crate::kernels::Activation;
use burn::nn::conv::Conv2d;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

/// Pre-activation block of the reference (`BasicBlock`): BN-ReLU-conv twice plus a shortcut.
#[derive(Module, Debug)]
pub struct WrnBlock {
    /// BatchNorm on the block input.
    pub bn1: BatchNorm2d,
    /// First 3x3 convolution (carries the block's stride).
    pub conv1: Conv2d,
    /// BatchNorm before `conv2`.
    pub bn2: BatchNorm2d,
    /// Second 3x3 convolution, stride 1.
    pub conv2: Conv2d,
    /// 1x1 convolution of the activated input where the channel count changes; the identity
    /// otherwise.
    pub convShortcut: Option<Conv2d>,
}

impl WrnBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        Self {
            bn1: BatchNorm2d::new(cin, 0.1, device),
            conv1: conv2d_he_normal(cin, cout, 3, stride, 1, device),
            bn2: BatchNorm2d::new(cout, 0.1, device),
            conv2: conv2d_he_normal(cout, cout, 3, 1, 1, device),
            convShortcut: (cin != cout).then(|| conv2d_he_normal(cin, cout, 1, stride, 0, device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.bn1.forward_activated(x.clone(), Activation::Relu);
        let out = conv(&self.conv1, act.clone());
        let out = conv(&self.conv2, self.bn2.forward_activated(out, Activation::Relu));
        match &self.convShortcut {
            // The shortcut sees the activated input when the shape changes (as in the reference).
            Some(shortcut) => conv(shortcut, act) + out,
            None => x + out,
        }
    }
}

/// `NetworkBlock`: a `layer` of blocks.
#[derive(Module, Debug)]
pub struct NetworkBlock {
    /// The group's `(depth - 4) / 6` blocks; the first changes the channels and the stride.
    pub layer: Vec<WrnBlock>,
}

impl NetworkBlock {
    fn new(n: usize, cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let layer = (0..n)
            .map(|i| {
                if i == 0 {
                    WrnBlock::new(cin, cout, stride, device)
                } else {
                    WrnBlock::new(cout, cout, 1, device)
                }
            })
            .collect();
        Self { layer }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for block in &self.layer {
            x = block.forward(x);
        }
        x
    }
}

/// WideResNet-depth-width (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct WideResNet {
    /// Stem: 3x3 convolution, 3 -> 16 channels.
    pub conv1: Conv2d,
    /// First group: `16 * width` channels, stride 1.
    pub block1: NetworkBlock,
    /// Second group: `32 * width` channels, stride 2.
    pub block2: NetworkBlock,
    /// Third group: `64 * width` channels, stride 2.
    pub block3: NetworkBlock,
    /// Final BatchNorm (followed by ReLU) before pooling.
    pub bn1: BatchNorm2d,
    /// Classifier on the pooled `64 * width` features (bias initialised to 0).
    pub fc: Linear,
}

impl WideResNet {
    /// `depth` must be 6n+4 (16, 22, 28, 34, 40, ...).
    pub fn new(depth: usize, width: usize, num_classes: usize, device: &Device) -> Self {
        let n = (depth - 4) / 6;
        let c = [16, 16 * width, 32 * width, 64 * width];
        Self {
            conv1: conv2d_he_normal(3, c[0], 3, 1, 1, device),
            block1: NetworkBlock::new(n, c[0], c[1], 1, device),
            block2: NetworkBlock::new(n, c[1], c[2], 2, device),
            block3: NetworkBlock::new(n, c[2], c[3], 2, device),
            bn1: BatchNorm2d::new(c[3], 0.1, device),
            // The reference zeroes the classifier bias.
            fc: LinearConfig::new(c[3], num_classes)
                .with_initializer(Initializer::KaimingUniform {
                    gain: 1.0 / 3f64.sqrt(),
                    fan_out_only: false,
                })
                .init(device)
                .zero_bias(),
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = conv(&self.conv1, x);
        let x = self.block3.forward(self.block2.forward(self.block1.forward(x)));
        self.fc.forward(global_avg_pool(self.bn1.forward_activated(x, Activation::Relu)))
    }
}

trait ZeroBias {
    fn zero_bias(self) -> Self;
}

impl ZeroBias for Linear {
    fn zero_bias(mut self) -> Self {
        self.bias = self.bias.map(|b| b.map(|t| t.zeros_like()));
        self
    }
}
