//! Eval-mode BatchNorm folded away, for the passes that run a network in eval mode many times
//! with the same weights: the attacks' forward and input-gradient passes (PGD's inner
//! maximisation of every method, each AutoAttack attack), evaluation, the frozen teacher.
//!
//! In eval mode a BatchNorm is the per-channel affine map `y = s * x + t` with
//! `s = weight / sqrt(running_var + eps)` and `t = bias - running_mean * s`. Where a
//! convolution feeds it (conv -> BN: every BN of ResNet-18, MobileNetV2 and the small CNN, the
//! inner BN of each pre-activation block) the map is merged into the convolution,
//! `W'[o] = s[o] W[o]`, `b'[o] = s[o] b[o] + t[o]`, and the BatchNorm costs nothing. Where it
//! follows a residual sum (the first BN of each pre-activation block of WRN, DM-WRN and
//! PreAct-ResNet, and their final BN) it stays as `s * x + t`: two element-wise operations
//! instead of burn's four over the activations (sub, div, mul, add) and two over the statistics.
//! The function is the same, so logits and input gradients equal the unfolded network's to
//! float rounding (tests/tests/library/models.rs: every architecture on flex, both forms on wgpu).
//!
//! On a cubecl (wgpu) device the folded copy's convolution weights are also stored channels
//! last (`[out, kh, kw, in]` in memory, still `[out, in, kh, kw]` to every reader): burn's
//! convolutions work in NHWC and copy an NCHW weight into that order at every call, 20 copies
//! per ResNet-18 forward pass, about 40 per forward and input-gradient pass; laid out once per
//! fold, a PGD-10 step makes ~380 fewer launches (bench/NOTES.md section 10).
//!
//! A folded copy is for computing only: its BatchNorms no longer hold statistics, so it must not
//! be trained, averaged or saved. Fold again whenever the weights change (once per training step
//! for the student, once per run for the teacher and for an evaluation).

use super::batch_norm::{BatchNorm2d, BatchNormForm};
use super::{DmWideResNet, MobileNetV2, Net, PreActResNet, ResNet, SmallCnn, WideResNet};
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::Conv2d;
use burn::prelude::*;

impl BatchNorm2d {
    /// The eval-mode map as `(scale, shift)` per channel: `y = scale * x + shift`.
    pub fn eval_scale_shift(&self) -> (Tensor<1>, Tensor<1>) {
        let weight = self.weight.val();
        let device = weight.device();
        let var = self.running_var.value().to_device(&device);
        let mean = self.running_mean.value().to_device(&device);
        let scale = weight / var.add_scalar(self.eps).sqrt();
        let shift = self.bias.val() - mean * scale.clone();
        (scale, shift)
    }

    /// This layer as `scale * x + shift` (see the module docs).
    pub fn folded_scale_shift(&self) -> BatchNorm2d {
        if self.form != BatchNormForm::Normalize {
            return self.clone();
        }
        let (scale, shift) = self.eval_scale_shift();
        let mut bn = self.clone();
        bn.weight = Param::from_tensor(scale);
        bn.bias = Param::from_tensor(shift);
        bn.form = BatchNormForm::ScaleShift;
        bn
    }
}

/// `conv` followed by the eval-mode `bn` as one convolution with a bias, and `bn` marked merged.
pub fn fold_conv_bn(conv: &Conv2d, bn: &BatchNorm2d) -> (Conv2d, BatchNorm2d) {
    if bn.form != BatchNormForm::Normalize {
        return (conv.clone(), bn.clone());
    }
    let mut merged = bn.clone();
    merged.form = BatchNormForm::MergedIntoConv;
    if conv.bias.is_none() {
        let device = bn.weight.val().device();
        if let Some((weight, bias)) = crate::kernels::fold_conv_batch_norm(
            conv.weight.val(),
            bn.weight.val(),
            bn.bias.val(),
            bn.running_mean.value().to_device(&device),
            bn.running_var.value().to_device(&device),
            bn.eps,
        ) {
            let mut folded = conv.clone();
            folded.weight = Param::from_tensor(weight);
            folded.bias = Some(Param::from_tensor(bias));
            return (folded, merged);
        }
    }
    let (scale, shift) = bn.eval_scale_shift();
    let weight = conv.weight.val();
    let out = weight.dims()[0];
    let bias = match &conv.bias {
        Some(b) => b.val() * scale.clone() + shift,
        None => shift,
    };
    let mut folded = conv.clone();
    folded.weight = Param::from_tensor(weight * scale.reshape([out, 1, 1, 1]));
    folded.bias = Some(Param::from_tensor(bias));
    (folded, merged)
}

impl Net {
    /// This network (in eval mode: [`Module::valid`] or a loaded model) with its BatchNorms
    /// folded (see the module docs): the same function in fewer operations.
    pub fn folded(&self) -> Net {
        let folded = match self {
            Net::SmallCnn(m) => Net::SmallCnn(m.folded()),
            Net::ResNet(m) => Net::ResNet(m.folded()),
            Net::PreActResNet(m) => Net::PreActResNet(m.folded()),
            Net::MobileNetV2(m) => Net::MobileNetV2(m.folded()),
            Net::WideResNet(m) => Net::WideResNet(m.folded()),
            Net::DmWideResNet(m) => Net::DmWideResNet(m.folded()),
        };
        let device = folded.devices().into_iter().next();
        match device {
            Some(d) if crate::kernels::has_kernels(&d) => folded.map(&mut ChannelsLast),
            _ => folded,
        }
    }
}

/// Stores every 4-D parameter (the convolution weights) channels last in memory, its shape
/// unchanged: the layout burn's cubecl convolutions read.
struct ChannelsLast;

impl ModuleMapper for ChannelsLast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 4 {
            return param;
        }
        param.map(|w| {
            let dims = w.dims();
            let (mut to_last, mut back) = ([0isize; D], [0isize; D]);
            to_last.copy_from_slice(&[0, 2, 3, 1][..D]);
            back.copy_from_slice(&[0, 3, 1, 2][..D]);
            let last = w.permute(to_last);
            let last_dims = last.dims();
            // A reshape that merges permuted axes cannot be a view: burn copies the values into
            // the permuted order, which the permute back then leaves in place.
            last.reshape([dims[0], dims[1] * dims[2] * dims[3]]).reshape(last_dims).permute(back)
        })
    }
}

impl SmallCnn {
    fn folded(&self) -> Self {
        let (conv1, bn1) = fold_conv_bn(&self.conv1, &self.bn1);
        let (conv2, bn2) = fold_conv_bn(&self.conv2, &self.bn2);
        let (conv3, bn3) = fold_conv_bn(&self.conv3, &self.bn3);
        Self { conv1, bn1, conv2, bn2, conv3, bn3, fc: self.fc.clone() }
    }
}

impl ResNet {
    fn folded(&self) -> Self {
        let blocks = |layer: &[super::resnet::BasicBlock]| {
            layer
                .iter()
                .map(|b| {
                    let (conv1, bn1) = fold_conv_bn(&b.conv1, &b.bn1);
                    let (conv2, bn2) = fold_conv_bn(&b.conv2, &b.bn2);
                    let shortcut = b.shortcut.as_ref().map(|(c, bn)| fold_conv_bn(c, bn));
                    super::resnet::BasicBlock { conv1, bn1, conv2, bn2, shortcut }
                })
                .collect()
        };
        let (conv1, bn1) = fold_conv_bn(&self.conv1, &self.bn1);
        Self {
            conv1,
            bn1,
            layer1: blocks(&self.layer1),
            layer2: blocks(&self.layer2),
            layer3: blocks(&self.layer3),
            layer4: blocks(&self.layer4),
            linear: self.linear.clone(),
        }
    }
}

impl PreActResNet {
    fn folded(&self) -> Self {
        let blocks = |layer: &[super::preact_resnet::PreActBlock]| {
            layer
                .iter()
                .map(|b| {
                    let (conv1, bn2) = fold_conv_bn(&b.conv1, &b.bn2);
                    super::preact_resnet::PreActBlock {
                        bn1: b.bn1.folded_scale_shift(),
                        conv1,
                        bn2,
                        conv2: b.conv2.clone(),
                        shortcut: b.shortcut.clone(),
                    }
                })
                .collect()
        };
        Self {
            conv1: self.conv1.clone(),
            layer1: blocks(&self.layer1),
            layer2: blocks(&self.layer2),
            layer3: blocks(&self.layer3),
            layer4: blocks(&self.layer4),
            bn: self.bn.folded_scale_shift(),
            linear: self.linear.clone(),
        }
    }
}

impl MobileNetV2 {
    fn folded(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|b| {
                let (conv1, bn1) = fold_conv_bn(&b.conv1, &b.bn1);
                let (conv2, bn2) = fold_conv_bn(&b.conv2, &b.bn2);
                let (conv3, bn3) = fold_conv_bn(&b.conv3, &b.bn3);
                let shortcut = b.shortcut.as_ref().map(|(c, bn)| fold_conv_bn(c, bn));
                super::mobilenet_v2::InvertedResidual {
                    conv1,
                    bn1,
                    conv2,
                    bn2,
                    conv3,
                    bn3,
                    shortcut,
                    stride: b.stride,
                }
            })
            .collect();
        let (conv1, bn1) = fold_conv_bn(&self.conv1, &self.bn1);
        let (conv2, bn2) = fold_conv_bn(&self.conv2, &self.bn2);
        Self { conv1, bn1, layers, conv2, bn2, linear: self.linear.clone() }
    }
}

impl WideResNet {
    fn folded(&self) -> Self {
        let group = |g: &super::wide_resnet::NetworkBlock| super::wide_resnet::NetworkBlock {
            layer: g
                .layer
                .iter()
                .map(|b| {
                    let (conv1, bn2) = fold_conv_bn(&b.conv1, &b.bn2);
                    super::wide_resnet::WrnBlock {
                        bn1: b.bn1.folded_scale_shift(),
                        conv1,
                        bn2,
                        conv2: b.conv2.clone(),
                        convShortcut: b.convShortcut.clone(),
                    }
                })
                .collect(),
        };
        Self {
            conv1: self.conv1.clone(),
            block1: group(&self.block1),
            block2: group(&self.block2),
            block3: group(&self.block3),
            bn1: self.bn1.folded_scale_shift(),
            fc: self.fc.clone(),
        }
    }
}

impl DmWideResNet {
    fn folded(&self) -> Self {
        let group = |g: &super::dm_wide_resnet::BlockGroup| super::dm_wide_resnet::BlockGroup {
            block: g
                .block
                .iter()
                .map(|b| {
                    let (conv_0, batchnorm_1) = fold_conv_bn(&b.conv_0, &b.batchnorm_1);
                    super::dm_wide_resnet::DmBlock {
                        batchnorm_0: b.batchnorm_0.folded_scale_shift(),
                        conv_0,
                        batchnorm_1,
                        conv_1: b.conv_1.clone(),
                        shortcut: b.shortcut.clone(),
                        stride: b.stride,
                        use_silu: b.use_silu,
                    }
                })
                .collect(),
        };
        Self {
            init_conv: self.init_conv.clone(),
            layer: self.layer.iter().map(group).collect(),
            batchnorm: self.batchnorm.folded_scale_shift(),
            logits: self.logits.clone(),
            mean: self.mean,
            std: self.std,
            use_silu: self.use_silu,
        }
    }
}
