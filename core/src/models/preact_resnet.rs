//! PreActResNet-18 in the RobustBench layout (`robustbench/model_zoo/architectures/resnet.py`,
//! `PreActResNet`): pre-activation blocks, a final BN + ReLU before pooling, adaptive average
//! pooling (so the same model runs at 32x32 and at 64x64 for Tiny-ImageNet).
//!
//! State-dict keys: `conv1.weight`, `layer{1..4}.{0,1}.bn{1,2}.*`,
//! `layer{1..4}.{0,1}.conv{1,2}.weight`, `layer{2,3,4}.0.shortcut.0.weight` (1x1 conv, no BN),
//! `bn.*`, `linear.{weight,bias}`.

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d, global_avg_pool, linear};
use crate::kernels::Activation;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// Pre-activation residual block: BN-ReLU before each convolution, nothing after the sum.
#[derive(Module, Debug)]
pub struct PreActBlock {
    /// BatchNorm on the block input.
    pub bn1: BatchNorm2d,
    /// First 3x3 convolution (carries the block's stride).
    pub conv1: Conv2d,
    /// BatchNorm before `conv2`.
    pub bn2: BatchNorm2d,
    /// Second 3x3 convolution, stride 1.
    pub conv2: Conv2d,
    /// `nn.Sequential(conv1x1)` when the shape changes; a one-element Vec keeps the
    /// `shortcut.0` key.
    pub shortcut: Option<Vec<Conv2d>>,
}

impl PreActBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        Self {
            bn1: BatchNorm2d::new(cin, 0.1, device),
            conv1: conv2d(cin, cout, 3, stride, 1, false, device),
            bn2: BatchNorm2d::new(cout, 0.1, device),
            conv2: conv2d(cout, cout, 3, 1, 1, false, device),
            shortcut: (stride != 1 || cin != cout)
                .then(|| vec![conv2d(cin, cout, 1, stride, 0, false, device)]),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.bn1.forward_activated(x.clone(), Activation::Relu);
        let short = match &self.shortcut {
            Some(convs) => conv(&convs[0], out.clone()),
            None => x,
        };
        let out = conv(&self.conv1, out);
        let out = conv(&self.conv2, self.bn2.forward_activated(out, Activation::Relu));
        out + short
    }
}

/// PreActResNet-18 (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct PreActResNet {
    /// Stem: 3x3 convolution, 3 -> `width` channels, stride 1 (no BN of its own).
    pub conv1: Conv2d,
    /// Stage 1: two blocks at `width` channels, stride 1.
    pub layer1: Vec<PreActBlock>,
    /// Stage 2: two blocks at `2 * width` channels, the first with stride 2.
    pub layer2: Vec<PreActBlock>,
    /// Stage 3: two blocks at `4 * width` channels, the first with stride 2.
    pub layer3: Vec<PreActBlock>,
    /// Stage 4: two blocks at `8 * width` channels, the first with stride 2.
    pub layer4: Vec<PreActBlock>,
    /// Final BatchNorm (followed by ReLU) before pooling.
    pub bn: BatchNorm2d,
    /// Classifier on the pooled `8 * width` features.
    pub linear: Linear,
}

impl PreActResNet {
    /// PreActResNet-18 (`num_blocks = [2, 2, 2, 2]`) at base width `width` (64 in RobustBench).
    pub fn preact_resnet18(num_classes: usize, width: usize, device: &Device) -> Self {
        let stage = |cin: usize, cout: usize, stride: usize| {
            vec![
                PreActBlock::new(cin, cout, stride, device),
                PreActBlock::new(cout, cout, 1, device),
            ]
        };
        let w = width;
        Self {
            conv1: conv2d(3, w, 3, 1, 1, false, device),
            layer1: stage(w, w, 1),
            layer2: stage(w, 2 * w, 2),
            layer3: stage(2 * w, 4 * w, 2),
            layer4: stage(4 * w, 8 * w, 2),
            bn: BatchNorm2d::new(8 * w, 0.1, device),
            linear: linear(8 * w, num_classes, device),
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = conv(&self.conv1, x);
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4)
        {
            x = block.forward(x);
        }
        self.linear.forward(global_avg_pool(self.bn.forward_activated(x, Activation::Relu)))
    }
}
