//! ResNet-18, CIFAR variant (kuangliu/pytorch-cifar `models/resnet.py`): 3x3 stride-1 stem, no
//! max-pool, four stages of two BasicBlocks (64, 128, 256, 512 channels), average pooling, linear.
//! 11,173,962 parameters for 10 classes.
//!
//! State-dict keys (identical paths in burn and PyTorch): `conv1.weight`, `bn1.*`,
//! `layer{1..4}.{0,1}.conv{1,2}.weight`, `layer{1..4}.{0,1}.bn{1,2}.*`,
//! `layer{2,3,4}.0.shortcut.0.weight` (1x1 conv), `layer{2,3,4}.0.shortcut.1.*` (BN),
//! `linear.{weight,bias}`. BN `*` = `weight, bias, running_mean, running_var`
//! (+ `num_batches_tracked` added on export).

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d, global_avg_pool, linear};
use crate::kernels::relu;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// The two-convolution residual block (`BasicBlock`, expansion 1).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution (carries the block's stride).
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm2d,
    /// Second 3x3 convolution, stride 1.
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`, before the residual sum.
    pub bn2: BatchNorm2d,
    /// `nn.Sequential(conv1x1, BN)` when the shape changes, empty otherwise.
    pub shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || cin != cout).then(|| {
            (conv2d(cin, cout, 1, stride, 0, false, device), BatchNorm2d::new(cout, 0.1, device))
        });
        Self {
            conv1: conv2d(cin, cout, 3, stride, 1, false, device),
            bn1: BatchNorm2d::new(cout, 0.1, device),
            conv2: conv2d(cout, cout, 3, 1, 1, false, device),
            bn2: BatchNorm2d::new(cout, 0.1, device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(conv(&self.conv1, x.clone())));
        let out = self.bn2.forward(conv(&self.conv2, out));
        let short = match &self.shortcut {
            Some((shortcut, bn)) => bn.forward(conv(shortcut, x)),
            None => x,
        };
        relu(out + short)
    }
}

/// ResNet-18 for CIFAR (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem: 3x3 convolution, 3 -> `width` channels, stride 1.
    pub conv1: Conv2d,
    /// BatchNorm after the stem.
    pub bn1: BatchNorm2d,
    /// Stage 1: two blocks at `width` channels, stride 1.
    pub layer1: Vec<BasicBlock>,
    /// Stage 2: two blocks at `2 * width` channels, the first with stride 2.
    pub layer2: Vec<BasicBlock>,
    /// Stage 3: two blocks at `4 * width` channels, the first with stride 2.
    pub layer3: Vec<BasicBlock>,
    /// Stage 4: two blocks at `8 * width` channels, the first with stride 2.
    pub layer4: Vec<BasicBlock>,
    /// Classifier on the pooled `8 * width` features.
    pub linear: Linear,
}

impl ResNet {
    /// ResNet-18 (`num_blocks = [2, 2, 2, 2]`) at base width `width` (64 in the paper).
    pub fn resnet18(num_classes: usize, width: usize, device: &Device) -> Self {
        let stage = |cin: usize, cout: usize, stride: usize| {
            vec![BasicBlock::new(cin, cout, stride, device), BasicBlock::new(cout, cout, 1, device)]
        };
        let w = width;
        Self {
            conv1: conv2d(3, w, 3, 1, 1, false, device),
            bn1: BatchNorm2d::new(w, 0.1, device),
            layer1: stage(w, w, 1),
            layer2: stage(w, 2 * w, 2),
            layer3: stage(2 * w, 4 * w, 2),
            layer4: stage(4 * w, 8 * w, 2),
            linear: linear(8 * w, num_classes, device),
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(conv(&self.conv1, x)));
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4)
        {
            x = block.forward(x);
        }
        self.linear.forward(global_avg_pool(x))
    }
}
