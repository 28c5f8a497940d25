//! Small constructors shared by the model files (PyTorch defaults unless stated).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

/// `conv.forward(x)`: on the flex CPU backend through the project's batched convolution
/// ([`crate::kernels::flex_conv`]; same result, faster), on wgpu through the columns convolution
/// or the tiled one when chosen ([`crate::kernels::gemm_conv`], [`crate::kernels::tiled_conv`],
/// off by default), elsewhere burn's own.
pub fn conv(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(y) = crate::kernels::flex_conv::try_conv2d(conv, &x) {
        return y;
    }
    if let Some(y) = crate::kernels::gemm_conv::try_conv2d(conv, &x) {
        return y;
    }
    if let Some(y) = crate::kernels::tiled_conv::try_conv2d(conv, &x) {
        return y;
    }
    conv.forward(x)
}

/// `nn.Conv2d(cin, cout, k, stride, padding, bias=bias)` with PyTorch's default init
/// (kaiming-uniform, a = sqrt(5): bound 1/sqrt(fan_in)).
pub fn conv2d(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(bias)
        .init(device)
}

/// Depthwise/grouped variant of [`conv2d`] (no bias).
pub fn conv2d_grouped(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

/// Conv weights drawn from N(0, sqrt(2 / (k*k*cout))), the WideResNet (TRADES/RobustBench) init.
pub fn conv2d_he_normal(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    let std = (2.0 / (k * k * cout) as f64).sqrt();
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

/// `nn.Linear(din, dout)`. burn stores the weight as `[din, dout]`; export transposes it.
pub fn linear(din: usize, dout: usize, device: &Device) -> Linear {
    LinearConfig::new(din, dout).init(device)
}

/// Global average pooling to `[batch, channels]`; equals `F.avg_pool2d(x, 4)` on the 4x4 maps of
/// the 32x32 CIFAR models and keeps the models usable at other input sizes.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dims(&[2, 3]).reshape([b, c])
}
