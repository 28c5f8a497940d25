//! The "DM" WideResNet of Gowal et al. 2020/2021 and Rebuffi et al. 2021 (RobustBench
//! `dm_wide_resnet.py`, `DMWideResNet`): SiLU activations, BatchNorm momentum 0.01, explicit
//! `SAME`-style padding before the first conv of each block, and input normalisation inside the
//! model ((x - mean) / std; the mean/std are not part of the state dict).
//!
//! State-dict keys (identical paths): `init_conv.weight`,
//! `layer.{g}.block.{i}.{batchnorm_0.*, conv_0.weight, batchnorm_1.*, conv_1.weight, shortcut.weight}`
//! (`shortcut` only where the channel count changes), `batchnorm.*`, `logits.{weight,bias}`.

use super::batch_norm::BatchNorm2d;
use super::layers::{conv, conv2d, global_avg_pool, linear};
use crate::kernels::Activation;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;

/// Pre-activation residual block of the reference (`_Block`).
#[derive(Module, Debug)]
pub struct DmBlock {
    /// BatchNorm on the block input (momentum 0.01).
    pub batchnorm_0: BatchNorm2d,
    /// First 3x3 convolution (carries the block's stride); its input is padded by hand.
    pub conv_0: Conv2d,
    /// BatchNorm before `conv_1` (momentum 0.01).
    pub batchnorm_1: BatchNorm2d,
    /// Second 3x3 convolution, stride 1, padding 1.
    pub conv_1: Conv2d,
    /// 1x1 convolution of the activated input where the channel count changes; the identity
    /// otherwise.
    pub shortcut: Option<Conv2d>,
    /// Stride of `conv_0` (1 or 2), which picks the manual padding; not a parameter.
    pub stride: usize,
    /// SiLU activations if set, ReLU otherwise.
    pub use_silu: bool,
}

impl DmBlock {
    fn new(cin: usize, cout: usize, stride: usize, use_silu: bool, device: &Device) -> Self {
        Self {
            batchnorm_0: BatchNorm2d::new(cin, 0.01, device),
            // The reference pads by hand before an unpadded convolution; at stride 1 its padding
            // is symmetric, which the convolution does itself (the same function, one copy and
            // one fill fewer per block).
            conv_0: conv2d(cin, cout, 3, stride, if stride == 1 { 1 } else { 0 }, false, device),
            batchnorm_1: BatchNorm2d::new(cout, 0.01, device),
            conv_1: conv2d(cout, cout, 3, 1, 1, false, device),
            shortcut: (cin != cout).then(|| conv2d(cin, cout, 1, stride, 0, false, device)),
            stride,
            use_silu,
        }
    }

    fn activation(&self) -> Activation {
        if self.use_silu { Activation::Silu } else { Activation::Relu }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.batchnorm_0.forward_activated(x.clone(), self.activation());
        // The reference's padding: (1,1,1,1) at stride 1 (inside `conv_0`), (0,1,0,1)
        // (right/bottom only) at stride 2.
        let padded = match self.stride {
            1 => act.clone(),
            _ => act.clone().pad([(0, 1), (0, 1)], PadMode::Constant(0.0)),
        };
        let out = conv(&self.conv_0, padded);
        let out = conv(&self.conv_1, self.batchnorm_1.forward_activated(out, self.activation()));
        match &self.shortcut {
            Some(shortcut) => conv(shortcut, act) + out,
            None => x + out,
        }
    }
}

/// One group of blocks at one width (`_BlockGroup` in the reference).
#[derive(Module, Debug)]
pub struct BlockGroup {
    /// The group's `(depth - 4) / 6` blocks; the first changes the channels and the stride.
    pub block: Vec<DmBlock>,
}

/// The DM WideResNet (see the module docs); field names are the PyTorch keys.
#[derive(Module, Debug)]
pub struct DmWideResNet {
    /// Stem: 3x3 convolution, 3 -> 16 channels.
    pub init_conv: Conv2d,
    /// The three block groups: `16 * width`, `32 * width` (stride 2) and `64 * width`
    /// (stride 2) channels.
    pub layer: Vec<BlockGroup>,
    /// Final BatchNorm (momentum 0.01, followed by the activation) before pooling.
    pub batchnorm: BatchNorm2d,
    /// Classifier on the pooled `64 * width` features.
    pub logits: Linear,
    /// Input normalisation applied inside the model (not in the state dict).
    pub mean: [f32; 3],
    /// Per-channel standard deviation of the input normalisation (not in the state dict).
    pub std: [f32; 3],
    /// SiLU activations if set, ReLU otherwise (`dm-wrn-D-W-relu`).
    pub use_silu: bool,
}

impl DmWideResNet {
    /// A freshly initialised model; `depth` must be 6n+4, `mean` and `std` are the input
    /// normalisation per RGB channel.
    pub fn new(
        depth: usize,
        width: usize,
        num_classes: usize,
        use_silu: bool,
        mean: [f32; 3],
        std: [f32; 3],
        device: &Device,
    ) -> Self {
        let n = (depth - 4) / 6;
        let c = [16, 16 * width, 32 * width, 64 * width];
        let group = |cin: usize, cout: usize, stride: usize| BlockGroup {
            block: (0..n)
                .map(|i| {
                    if i == 0 {
                        DmBlock::new(cin, cout, stride, use_silu, device)
                    } else {
                        DmBlock::new(cout, cout, 1, use_silu, device)
                    }
                })
                .collect(),
        };
        Self {
            init_conv: conv2d(3, c[0], 3, 1, 1, false, device),
            layer: vec![group(c[0], c[1], 1), group(c[1], c[2], 2), group(c[2], c[3], 2)],
            batchnorm: BatchNorm2d::new(c[3], 0.01, device),
            logits: linear(c[3], num_classes, device),
            mean,
            std,
            use_silu,
        }
    }

    /// Logits `[batch, num_classes]` for images `[batch, 3, h, w]` in [0,1] (normalised inside).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        let mean = Tensor::<1>::from_floats(self.mean, &device).reshape([1, 3, 1, 1]);
        let std = Tensor::<1>::from_floats(self.std, &device).reshape([1, 3, 1, 1]);
        let mut x = conv(&self.init_conv, (x - mean) / std);
        for group in &self.layer {
            for block in &group.block {
                x = block.forward(x);
            }
        }
        let activation = if self.use_silu { Activation::Silu } else { Activation::Relu };
        let x = self.batchnorm.forward_activated(x, activation);
        self.logits.forward(global_avg_pool(x))
    }
}
