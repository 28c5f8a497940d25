//! Classifiers. Each is a plain burn module whose parameter paths mirror the PyTorch reference
//! implementation (see each file's docs for the state-dict keys); [`Net`] wraps them so one
//! training loop, one attack and one checkpoint format serve all.

pub mod batch_norm;
pub mod dm_wide_resnet;
pub mod fold;
pub mod layers;
pub mod mobilenet_v2;
pub mod preact_resnet;
pub mod resnet;
pub mod small_cnn;
pub mod wide_resnet;
pub mod zoo;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use batch_norm::{BatchNorm2d, BatchNormForm};
pub use dm_wide_resnet::DmWideResNet;
pub use mobilenet_v2::MobileNetV2;
pub use preact_resnet::PreActResNet;
pub use resnet::ResNet;
pub use small_cnn::SmallCnn;
pub use wide_resnet::WideResNet;

/// An architecture and its size, written as a short id (`resnet18`, `wrn-34-10`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Arch {
    /// `small-cnn` (width 32) or `small-cnn-W`.
    SmallCnn {
        /// Channels of the first stage (the three stages have `width`, `2 * width`, `4 * width`).
        width: usize,
    },
    /// `resnet18` (width 64) or `resnet18-wW`.
    ResNet18 {
        /// Channels of the stem and first stage (the four stages: 1, 2, 4, 8 times `width`).
        width: usize,
    },
    /// `preact-resnet18` (width 64) or `preact-resnet18-wW`.
    PreActResNet18 {
        /// Channels of the stem and first stage (the four stages: 1, 2, 4, 8 times `width`).
        width: usize,
    },
    /// `mobilenetv2`.
    MobileNetV2,
    /// `wrn-D-W`: WideResNet with ReLU, TRADES/RobustBench layout.
    WideResNet {
        /// Depth, `6n + 4` for `n` blocks per group (e.g. 28, 34, 70).
        depth: usize,
        /// Widening factor `k`: the three groups have `16k`, `32k`, `64k` channels.
        width: usize,
    },
    /// `dm-wrn-D-W`: the DM WideResNet with SiLU and CIFAR-10 normalisation inside
    /// (`dm-wrn-D-W-relu` for the ReLU variant).
    DmWideResNet {
        /// Depth, `6n + 4` for `n` blocks per group (e.g. 28, 34, 70).
        depth: usize,
        /// Widening factor `k`: the three groups have `16k`, `32k`, `64k` channels.
        width: usize,
        /// SiLU activations (the published models); `false` for ReLU.
        silu: bool,
    },
}

/// Largest width of `small-cnn-W`, `resnet18-wW` and `preact-resnet18-wW`.
pub const MAX_WIDTH: usize = 1024;
/// Largest widening factor and depth of the WideResNets (WRN-70-16 is the largest published
/// robust model).
pub const MAX_WRN_WIDTH: usize = 64;
/// Largest WideResNet depth; deeper ids (e.g. from a checkpoint header) are refused.
pub const MAX_WRN_DEPTH: usize = 202;
/// Most classes a model may have (Tiny-ImageNet has 200, ImageNet 1000).
pub const MAX_CLASSES: usize = 100_000;

/// The accepted architecture ids, for help texts and parse errors.
pub const ARCH_HELP: &str = "small-cnn[-W], resnet18[-wW], preact-resnet18[-wW], mobilenetv2, wrn-D-W (e.g. wrn-34-10), dm-wrn-D-W[-relu] (e.g. dm-wrn-28-10)";

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown architecture {s:?}; expected one of: {ARCH_HELP}");
        let num = |t: &str| t.parse::<usize>().ok().filter(|&v| v > 0);
        let wrn_depth = |d: usize| (d >= 10 && (d - 4).is_multiple_of(6)).then_some(d);
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('-').collect();
        let arch = match parts.as_slice() {
            ["small", "cnn"] => Arch::SmallCnn { width: 32 },
            ["small", "cnn", w] => Arch::SmallCnn { width: num(w).ok_or_else(bad)? },
            ["resnet18"] => Arch::ResNet18 { width: 64 },
            ["resnet18", w] => {
                Arch::ResNet18 { width: w.strip_prefix('w').and_then(num).ok_or_else(bad)? }
            }
            ["preact", "resnet18"] => Arch::PreActResNet18 { width: 64 },
            ["preact", "resnet18", w] => {
                Arch::PreActResNet18 { width: w.strip_prefix('w').and_then(num).ok_or_else(bad)? }
            }
            ["mobilenetv2"] => Arch::MobileNetV2,
            ["wrn", d, w] => Arch::WideResNet {
                depth: num(d).and_then(wrn_depth).ok_or_else(|| {
                    format!("{s:?}: WideResNet depth must be 6n+4 (16, 22, 28, 34, ...)")
                })?,
                width: num(w).ok_or_else(bad)?,
            },
            ["dm", "wrn", d, w, rest @ ..]
                if rest.is_empty() || rest == ["relu"] || rest == ["silu"] =>
            {
                Arch::DmWideResNet {
                    depth: num(d).and_then(wrn_depth).ok_or_else(|| {
                        format!("{s:?}: WideResNet depth must be 6n+4 (16, 22, 28, 34, ...)")
                    })?,
                    width: num(w).ok_or_else(bad)?,
                    silu: rest != ["relu"],
                }
            }
            _ => return Err(bad()),
        };
        // Ids also arrive from files (checkpoint headers): sizes far beyond any published model
        // are refused before anything is allocated for them.
        let (width, limit) = match arch {
            Arch::SmallCnn { width }
            | Arch::ResNet18 { width }
            | Arch::PreActResNet18 { width } => (width, MAX_WIDTH),
            Arch::WideResNet { width, depth } | Arch::DmWideResNet { width, depth, .. } => {
                if depth > MAX_WRN_DEPTH {
                    return Err(format!(
                        "{s:?}: depth {depth} is beyond the largest supported WideResNet depth ({MAX_WRN_DEPTH})"
                    ));
                }
                (width, MAX_WRN_WIDTH)
            }
            Arch::MobileNetV2 => (1, 1),
        };
        if width > limit {
            return Err(format!("{s:?}: width {width} is beyond the largest supported ({limit})"));
        }
        Ok(arch)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::SmallCnn { width } => write!(f, "small-cnn-{width}"),
            Arch::ResNet18 { width: 64 } => write!(f, "resnet18"),
            Arch::ResNet18 { width } => write!(f, "resnet18-w{width}"),
            Arch::PreActResNet18 { width: 64 } => write!(f, "preact-resnet18"),
            Arch::PreActResNet18 { width } => write!(f, "preact-resnet18-w{width}"),
            Arch::MobileNetV2 => write!(f, "mobilenetv2"),
            Arch::WideResNet { depth, width } => write!(f, "wrn-{depth}-{width}"),
            Arch::DmWideResNet { depth, width, silu: true } => write!(f, "dm-wrn-{depth}-{width}"),
            Arch::DmWideResNet { depth, width, silu: false } => {
                write!(f, "dm-wrn-{depth}-{width}-relu")
            }
        }
    }
}

impl TryFrom<String> for Arch {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Arch> for String {
    fn from(a: Arch) -> String {
        a.to_string()
    }
}

/// Input normalisation inside a model: `(x - mean) / std` per channel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel (RGB) mean subtracted from the [0,1] input.
    pub mean: [f32; 3],
    /// Per-channel (RGB) standard deviation the centred input is divided by.
    pub std: [f32; 3],
}

impl Normalization {
    /// CIFAR-10 training-set statistics (also the default of DM WideResNets).
    pub const CIFAR10: Normalization =
        Normalization { mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] };
    /// CIFAR-100 training-set statistics.
    pub const CIFAR100: Normalization =
        Normalization { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
    /// Tiny-ImageNet training-set statistics.
    pub const TINY_IMAGENET: Normalization =
        Normalization { mean: [0.4802, 0.4481, 0.3975], std: [0.2302, 0.2265, 0.2262] };

    /// The statistics DM models use for a dataset (`cifar10`, `cifar100`, `tiny-imagenet`).
    pub fn for_dataset(name: &str) -> Option<Normalization> {
        match name {
            "cifar10" => Some(Self::CIFAR10),
            "cifar100" => Some(Self::CIFAR100),
            "tiny-imagenet" => Some(Self::TINY_IMAGENET),
            _ => None,
        }
    }
}

/// Everything needed to rebuild a model before loading its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The architecture and its size.
    pub arch: Arch,
    /// Classes, i.e. logits per image.
    pub num_classes: usize,
    /// Normalisation inside the model (DM WideResNets; CIFAR-10 statistics when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
}

impl ModelSpec {
    /// A spec without explicit normalisation (DM WideResNets then use CIFAR-10 statistics).
    pub fn new(arch: Arch, num_classes: usize) -> Self {
        Self { arch, num_classes, normalization: None }
    }

    /// Sets the normalisation inside the model (only DM WideResNets use it).
    pub fn with_normalization(mut self, n: Option<Normalization>) -> Self {
        self.normalization = n;
        self
    }

    /// A freshly initialised model (draws from the device RNG: seed it first).
    pub fn init(&self, device: &Device) -> Net {
        let c = self.num_classes;
        match self.arch {
            Arch::SmallCnn { width } => Net::SmallCnn(SmallCnn::new(c, width, device)),
            Arch::ResNet18 { width } => Net::ResNet(ResNet::resnet18(c, width, device)),
            Arch::PreActResNet18 { width } => {
                Net::PreActResNet(PreActResNet::preact_resnet18(c, width, device))
            }
            Arch::MobileNetV2 => Net::MobileNetV2(MobileNetV2::new(c, device)),
            Arch::WideResNet { depth, width } => {
                Net::WideResNet(WideResNet::new(depth, width, c, device))
            }
            Arch::DmWideResNet { depth, width, silu } => {
                let n = self.normalization.unwrap_or(Normalization::CIFAR10);
                Net::DmWideResNet(DmWideResNet::new(depth, width, c, silu, n.mean, n.std, device))
            }
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} classes)", self.arch, self.num_classes)
    }
}

/// Any of the classifiers. Parameter paths are `<Variant>.<PyTorch key>`.
// One value per model, moved rarely: boxing the large variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// [`SmallCnn`] (`small-cnn[-W]`).
    SmallCnn(SmallCnn),
    /// [`ResNet`] (`resnet18[-wW]`).
    ResNet(ResNet),
    /// [`PreActResNet`] (`preact-resnet18[-wW]`).
    PreActResNet(PreActResNet),
    /// [`MobileNetV2`] (`mobilenetv2`).
    MobileNetV2(MobileNetV2),
    /// [`WideResNet`] (`wrn-D-W`).
    WideResNet(WideResNet),
    /// [`DmWideResNet`] (`dm-wrn-D-W[-relu]`).
    DmWideResNet(DmWideResNet),
}

impl Net {
    /// Logits `[batch, classes]` for images `[batch, 3, h, w]` in [0,1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::SmallCnn(m) => m.forward(x),
            Net::ResNet(m) => m.forward(x),
            Net::PreActResNet(m) => m.forward(x),
            Net::MobileNetV2(m) => m.forward(x),
            Net::WideResNet(m) => m.forward(x),
            Net::DmWideResNet(m) => m.forward(x),
        }
    }

    /// Number of trainable parameters as PyTorch counts them (`model.parameters()`: BatchNorm
    /// running statistics are buffers and are not counted).
    pub fn num_trainable_params(&self) -> usize {
        self.named_tensors()
            .iter()
            .filter(|t| !t.is_buffer())
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Every float tensor of the model with its PyTorch state-dict key, in visiting order.
    pub fn named_tensors(&self) -> Vec<NamedTensor> {
        let mut v = NameCollector::default();
        self.visit(&mut v);
        v.out
    }
}

/// A model tensor with its PyTorch key (the path without the [`Net`] variant segment).
#[derive(Clone, Debug)]
pub struct NamedTensor {
    /// PyTorch state-dict key, e.g. `layer1.0.conv1.weight`.
    pub key: String,
    /// Shape in burn's layout (Linear weights `[in, out]`, the transpose of PyTorch's).
    pub shape: Vec<usize>,
    /// The values flattened to `[numel]`.
    pub tensor: Tensor<1>,
}

impl NamedTensor {
    /// BatchNorm running statistics and batch counts are buffers in PyTorch.
    pub fn is_buffer(&self) -> bool {
        is_buffer_key(&self.key)
    }
}

/// Whether a state-dict key names a buffer (BatchNorm statistics) rather than a parameter.
pub fn is_buffer_key(key: &str) -> bool {
    ["running_mean", "running_var", "num_batches_tracked"].iter().any(|b| key.ends_with(b))
}

#[derive(Default)]
struct NameCollector {
    path: Vec<String>,
    out: Vec<NamedTensor>,
}

impl ModuleVisitor for NameCollector {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let n = shape.iter().product::<usize>();
        // Skip the enum variant segment: the rest is the PyTorch key.
        let key = self.path[1..].join(".");
        self.out.push(NamedTensor { key, shape, tensor: tensor.reshape([n]) });
    }
}
