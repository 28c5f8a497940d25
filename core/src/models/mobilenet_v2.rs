//! MobileNetV2, CIFAR variant (kuangliu/pytorch-cifar `models/mobilenetv2.py`): stride-1 first
//! conv and stride 1 in the second stage, so 32x32 inputs end at 4x4. 2,296,922 parameters for
//! 10 classes.
//!
//! State-dict keys: `conv1.weight`, `bn1.*`, `layers.{i}.conv{1,2,3}.weight`,
//! `layers.{i}.bn{1,2,3}.*`, `layers.{i}.shortcut.{0.weight,1.*}` (only where stride is 1 and
//! the channel count changes), `conv2.weight`, `bn2.*`, `linear.{weight,bias}`.

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d, conv2d_grouped, global_avg_pool, linear};
use crate::kernels::relu;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// (expansion, out_planes, num_blocks, stride) per stage.
const CFG: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Inverted residual block: expand (1x1), depthwise (3x3), project (1x1).
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1x1 expansion convolution, `cin` -> `expansion * cin` channels.
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm2d,
    /// 3x3 depthwise convolution (carries the block's stride).
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm2d,
    /// 1x1 projection convolution to `cout` channels (linear: no ReLU after its BN).
    pub conv3: Conv2d,
    /// BatchNorm after `conv3`.
    pub bn3: BatchNorm2d,
    /// 1x1 convolution + BN (`shortcut.0`, `shortcut.1`) at stride 1 where the channel count
    /// changes; `None` otherwise (identity at stride 1, no residual at stride 2).
    pub shortcut: Option<(Conv2d, BatchNorm2d)>,
    /// Stride of the depthwise convolution; at 2 the block has no residual. Not a parameter.
    pub stride: usize,
}

impl InvertedResidual {
    fn new(cin: usize, cout: usize, expansion: usize, stride: usize, device: &Device) -> Self {
        let planes = expansion * cin;
        Self {
            conv1: conv2d(cin, planes, 1, 1, 0, false, device),
            bn1: BatchNorm2d::new(planes, 0.1, device),
            conv2: conv2d_grouped(planes, planes, 3, stride, 1, planes, device),
            bn2: BatchNorm2d::new(planes, 0.1, device),
            conv3: conv2d(planes, cout, 1, 1, 0, false, device),
            bn3: BatchNorm2d::new(cout, 0.1, device),
            shortcut: (stride == 1 && cin != cout).then(|| {
                (conv2d(cin, cout, 1, 1, 0, false, device), BatchNorm2d::new(cout, 0.1, device))
            }),
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(conv(&self.conv1, x.clone())));
        let out = relu(self.bn2.forward(conv(&self.conv2, out)));
        let out = self.bn3.forward(conv(&self.conv3, out));
        if self.stride != 1 {
            return out;
        }
        match &self.shortcut {
            Some((shortcut, bn)) => out + bn.forward(conv(shortcut, x)),
            None => out + x,
        }
    }
}

/// MobileNetV2 for CIFAR (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// Stem: 3x3 convolution, 3 -> 32 channels, stride 1.
    pub conv1: Conv2d,
    /// BatchNorm after the stem.
    pub bn1: BatchNorm2d,
    /// The 17 inverted residual blocks of the seven stages.
    pub layers: Vec<InvertedResidual>,
    /// 1x1 convolution, 320 -> 1280 channels.
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm2d,
    /// Classifier on the pooled 1280 features.
    pub linear: Linear,
}

impl MobileNetV2 {
    /// A freshly initialised model with `num_classes` outputs.
    pub fn new(num_classes: usize, device: &Device) -> Self {
        let mut layers = Vec::new();
        let mut cin = 32;
        for (expansion, cout, n, stride) in CFG {
            for i in 0..n {
                layers.push(InvertedResidual::new(
                    cin,
                    cout,
                    expansion,
                    if i == 0 { stride } else { 1 },
                    device,
                ));
                cin = cout;
            }
        }
        Self {
            conv1: conv2d(3, 32, 3, 1, 1, false, device),
            bn1: BatchNorm2d::new(32, 0.1, device),
            layers,
            conv2: conv2d(320, 1280, 1, 1, 0, false, device),
            bn2: BatchNorm2d::new(1280, 0.1, device),
            linear: linear(1280, num_classes, device),
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(conv(&self.conv1, x)));
        for block in &self.layers {
            x = block.forward(x);
        }
        let x = relu(self.bn2.forward(conv(&self.conv2, x)));
        self.linear.forward(global_avg_pool(x))
    }
}
