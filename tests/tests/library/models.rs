//! Model layouts against PyTorch: parameter counts, state-dict keys, export, checkpoints.

use saad_core::burn::prelude::*;
use saad_core::burn::tensor::Distribution;
use saad_core::checkpoint::{Checkpoint, DatasetInfo, Header, load_weights, model_bytes};
use saad_core::export::{state_dict, to_safetensors};
use saad_core::host_copy::{model_on_host, owned};
use saad_core::models::{Arch, ModelSpec};
use saad_tests::{devices, max_abs_diff, serial, to_vec};

fn count(arch: &str, classes: usize) -> usize {
    ModelSpec::new(arch.parse().unwrap(), classes).init(&Device::flex()).num_trainable_params()
}

/// Counts of `sum(p.numel() for p in model.parameters())` for the PyTorch references (ResNet-18,
/// WRN-34-10 and WRN-28-10 as published; MobileNetV2 and PreActResNet-18 computed by hand from
/// the reference layer lists).
#[test]
fn parameter_counts_equal_pytorch() {
    let _g = serial();
    assert_eq!(count("resnet18", 10), 11_173_962);
    assert_eq!(count("wrn-34-10", 10), 46_160_474);
    assert_eq!(count("wrn-28-10", 10), 36_479_194);
    assert_eq!(count("mobilenetv2", 10), 2_296_922);
    assert_eq!(count("preact-resnet18", 10), 11_172_170);
    assert_eq!(count("preact-resnet18", 200), 11_269_640);
    assert_eq!(count("dm-wrn-28-10", 10), 36_479_194);
}

#[test]
fn state_dict_keys_follow_the_pytorch_layouts() {
    let _g = serial();
    let keys = |arch: &str| -> Vec<String> {
        state_dict(&ModelSpec::new(arch.parse().unwrap(), 10).init(&Device::flex()))
            .into_iter()
            .map(|t| t.key)
            .collect()
    };
    let r = keys("resnet18-w4");
    for k in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.running_var",
        "layer4.1.bn2.weight",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(r.contains(&k.to_string()), "resnet18 lacks {k}: {r:?}");
    }
    assert!(
        !r.iter().any(|k| k.starts_with("layer1.0.shortcut")),
        "identity shortcut has no parameters"
    );
    let w = keys("wrn-16-2");
    for k in [
        "conv1.weight",
        "block1.layer.0.convShortcut.weight",
        "block2.layer.1.bn2.running_mean",
        "bn1.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(w.contains(&k.to_string()), "wrn lacks {k}: {w:?}");
    }
    let d = keys("dm-wrn-16-2");
    for k in [
        "init_conv.weight",
        "layer.0.block.0.batchnorm_0.weight",
        "layer.1.block.0.shortcut.weight",
        "layer.2.block.1.conv_1.weight",
        "batchnorm.running_var",
        "logits.bias",
    ] {
        assert!(d.contains(&k.to_string()), "dm-wrn lacks {k}: {d:?}");
    }
    let m = keys("mobilenetv2");
    for k in [
        "conv1.weight",
        "layers.0.shortcut.0.weight",
        "layers.16.conv3.weight",
        "conv2.weight",
        "bn2.bias",
        "linear.weight",
    ] {
        assert!(m.contains(&k.to_string()), "mobilenetv2 lacks {k}");
    }
    let p = keys("preact-resnet18-w4");
    for k in [
        "conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer1.0.bn1.weight",
        "bn.weight",
        "linear.bias",
    ] {
        assert!(p.contains(&k.to_string()), "preact lacks {k}");
    }
}

#[test]
fn safetensors_export_has_pytorch_shapes_and_values() {
    let _g = serial();
    let device = Device::flex();
    device.seed(1);
    let model = ModelSpec::new("small-cnn-4".parse().unwrap(), 10).init(&device);
    let bytes = to_safetensors(&state_dict(&model), &[("arch", "small-cnn-4".into())]);
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let fc = st.tensor("fc.weight").unwrap();
    assert_eq!(fc.shape(), &[10, 16], "Linear weight is [out, in] in PyTorch");
    let burn_fc =
        to_vec(model.named_tensors().into_iter().find(|t| t.key == "fc.weight").unwrap().tensor);
    // burn [in=16, out=10] -> PyTorch [out, in]: element (o, i) = burn (i, o).
    let pt: Vec<f32> =
        fc.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(pt[16 + 3], burn_fc[3 * 10 + 1]);
    assert_eq!(st.tensor("conv1.weight").unwrap().shape(), &[4, 3, 3, 3]);
    let nbt = st.tensor("bn1.num_batches_tracked").unwrap();
    assert_eq!((nbt.dtype(), nbt.shape()), (safetensors::Dtype::I64, &[][..]));
}

#[test]
fn checkpoints_round_trip_and_refuse_other_architectures() {
    let _g = serial();
    let device = Device::flex();
    device.seed(2);
    let spec = ModelSpec::new("resnet18-w4".parse().unwrap(), 10);
    let model = spec.init(&device);
    let ckpt = Checkpoint {
        header: Header {
            model: spec.clone(),
            dataset: DatasetInfo { name: "digits".into(), image_size: 32, num_classes: 10 },
            epochs_done: 3,
            train_config: serde_json::json!({}),
            history: vec![],
            notes: Default::default(),
            averaged_count: 0,
        },
        model: model_bytes(&model),
        optimizer: vec![],
        averaged: vec![],
    };
    let bytes = ckpt.encode();
    let back = Checkpoint::decode(&bytes, "c.saad").unwrap();
    assert_eq!(back.header.epochs_done, 3);
    let loaded = back.load_model(&device, "c.saad").unwrap().valid();
    let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
    assert_eq!(
        max_abs_diff(&to_vec(model.valid().forward(x.clone())), &to_vec(loaded.forward(x))),
        0.0
    );

    let other = ModelSpec::new(Arch::SmallCnn { width: 4 }, 10);
    let err = load_weights(&other, &back.model, &device, "c.saad").unwrap_err().to_string();
    assert!(err.starts_with("c.saad:") && err.contains("small-cnn-4"), "{err}");
    let err = Checkpoint::decode(&bytes[..bytes.len() / 2], "half.saad").err().unwrap().to_string();
    assert!(err.contains("half.saad") && err.contains("truncated"), "{err}");
    let err = Checkpoint::decode(b"PK\x03\x04 a zip", "model.pt").err().unwrap().to_string();
    assert!(err.contains("not a saad checkpoint"), "{err}");
}

/// The asynchronous copy to the CPU (how the page saves a student trained on WebGPU) holds the
/// same weights and buffers: the same encoded bytes, the same logits.
#[test]
fn model_on_host_is_the_same_model_on_the_cpu() {
    let _g = serial();
    for (name, device) in devices() {
        device.seed(5);
        let model = ModelSpec::new("dm-wrn-10-1".parse().unwrap(), 10).init(&device).valid();
        let host = saad_core::burn::tensor::read_sync(model_on_host(&model)).unwrap();
        assert!(model_bytes(&model) == model_bytes(&host), "{name}: the encoded weights differ");
        let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
        let host_x = Tensor::<4>::from_data(owned(x.to_data()), &Device::flex());
        let (a, b) = (to_vec(model.forward(x)), to_vec(host.forward(host_x)));
        let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert!(max_abs_diff(&a, &b) < 1e-4 * scale, "{name}: {a:?} vs {b:?}");
    }
}

#[test]
fn architecture_ids_parse_and_print() {
    for id in [
        "small-cnn-32",
        "resnet18",
        "resnet18-w16",
        "preact-resnet18",
        "mobilenetv2",
        "wrn-34-10",
        "dm-wrn-28-10",
        "dm-wrn-70-16-relu",
    ] {
        let a: Arch = id.parse().unwrap();
        assert_eq!(a.to_string(), id);
    }
    assert_eq!("small-cnn".parse::<Arch>().unwrap(), Arch::SmallCnn { width: 32 });
    assert!("wrn-33-10".parse::<Arch>().unwrap_err().contains("6n+4"));
    assert!("vgg16".parse::<Arch>().unwrap_err().contains("expected one of"));
}

/// BatchNorm folded for the eval-mode passes (`models::fold`) is the same function: the same
/// logits and the same input gradients as the unfolded eval-mode network, for every
/// architecture on flex (conv -> BN merged into the convolution, BN after a residual sum as a
/// scale and shift), and one architecture of each form on wgpu. The BatchNorms get random affine
/// parameters and statistics first, so that a scale or shift taken from the wrong tensor shows.
#[test]
fn folded_batch_norm_gives_the_same_logits_and_input_gradients() {
    use saad_core::attacks::{ObjectiveKind, loss_and_gradient};
    use saad_core::burn::module::{Module, ModuleMapper, Param};

    /// Random BatchNorm weights, biases, means and variances (variances in [0.5, 2]). The only
    /// 1-D `weight`s are BatchNorms'; the 1-D `bias`es are theirs and the classifier's, which
    /// folding leaves as it is.
    struct RandomStatistics {
        path: Vec<String>,
    }
    impl ModuleMapper for RandomStatistics {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let range = match self.path.last().map(String::as_str) {
                Some("running_var") => Some((0.5, 2.0)),
                Some("running_mean" | "bias") if D == 1 => Some((-0.2, 0.2)),
                Some("weight") if D == 1 => Some((0.8, 1.2)),
                _ => None,
            };
            match range {
                Some((lo, hi)) => param.map(|t| {
                    let dist = Distribution::Uniform(lo, hi);
                    Tensor::random(t.shape(), dist, &t.device())
                }),
                None => param,
            }
        }
    }

    let _g = serial();
    for (name, device) in devices() {
        device.seed(11);
        // Folding is tensor arithmetic, the same on every backend: flex checks every
        // architecture; wgpu (whose kernels lavapipe compiles for every new shape, 30-80 s an
        // architecture) one with each form: conv -> BN merged, and a scale and shift after a sum.
        let archs: &[&str] = match name {
            "flex" => &[
                "small-cnn-4",
                "resnet18-w4",
                "preact-resnet18-w4",
                "mobilenetv2",
                "wrn-10-2",
                "dm-wrn-10-1",
            ],
            _ => &["small-cnn-4", "dm-wrn-10-1"],
        };
        for &arch in archs {
            let net = ModelSpec::new(arch.parse().unwrap(), 10)
                .init(&device)
                .map(&mut RandomStatistics { path: Vec::new() })
                .valid();
            let folded = net.folded();
            let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
            let labels = Tensor::<1, Int>::from_ints([3, 7], &device);
            let ce = ObjectiveKind::CrossEntropy { labels };
            let (_, logits, grad) = loss_and_gradient(&|x| net.forward(x), &ce, &x);
            let (_, f_logits, f_grad) = loss_and_gradient(&|x| folded.forward(x), &ce, &x);
            let (a, b) = (to_vec(logits), to_vec(f_logits));
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            assert!(max_abs_diff(&a, &b) < 1e-4 * scale, "{name} {arch} logits: {a:?} vs {b:?}");
            let (g, fg) = (to_vec(grad), to_vec(f_grad));
            let gscale = g.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(gscale > 1e-9, "{name} {arch}: the input gradient is zero ({gscale})");
            let d = max_abs_diff(&g, &fg);
            assert!(d < 2e-4 * gscale, "{name} {arch} input gradient: max diff {d} of {gscale}");
        }
    }
}
