//! PyTorch checkpoints load and give PyTorch's logits. The fixtures (tests/fixtures/pytorch/) were
//! made once with PyTorch 2.15 CPU by `make_fixtures.py`: small-width instances of each teacher
//! family with random weights and non-trivial BatchNorm statistics, saved as .pt (zip, legacy,
//! nested under `state_dict`, `module.`-prefixed), with their eval-mode logits on a fixed input.
//! Tolerance: |ours - PyTorch's| <= 1e-4 + 1e-4 |PyTorch's| per logit (f32, different kernels).

use saad_core::burn::prelude::*;
use saad_core::burn::tensor::TensorData;
use saad_core::checkpoint::Checkpoint;
use saad_core::import::load_state_dict;
use saad_core::models::{ModelSpec, Normalization};
use saad_native::pytorch::read_pt;
use saad_tests::{devices, max_abs_diff, serial, to_vec};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pytorch")
}

fn input(stem: &str, size: usize, device: &Device) -> Tensor<4> {
    let bytes = std::fs::read(fixtures().join(format!("{stem}.input.bin"))).unwrap();
    let v: Vec<f32> =
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    Tensor::from_data(TensorData::new(v, [2, 3, size, size]), device)
}

fn spec(case: &Value) -> ModelSpec {
    let norm = case["normalization"].as_object().map(|n| {
        let three = |k: &str| -> [f32; 3] {
            let v: Vec<f32> =
                n[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            [v[0], v[1], v[2]]
        };
        Normalization { mean: three("mean"), std: three("std") }
    });
    ModelSpec::new(
        case["arch"].as_str().unwrap().parse().unwrap(),
        case["classes"].as_u64().unwrap() as usize,
    )
    .with_normalization(norm)
}

#[test]
fn pytorch_checkpoints_give_pytorchs_logits_on_every_backend() {
    let _g = serial();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 6, "fixtures missing");
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let stem = file.trim_end_matches(".pt");
        let size = case["size"].as_u64().unwrap() as usize;
        let want: Vec<f32> =
            case["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let path = fixtures().join(file);
        for (backend, device) in devices() {
            let dict = read_pt(&path).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            let model = load_state_dict(&spec(case), dict, &device, file)
                .unwrap_or_else(|e| panic!("{e}"))
                .valid();
            let got = to_vec(model.forward(input(stem, size, &device)));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                    "{backend} {file} ({}): logit {i} = {g}, PyTorch {w}",
                    case["format"]
                );
            }
        }
    }
}

/// `saad export` -> PyTorch `load_state_dict(strict=True)` -> `torch.save` -> import gives the
/// logits of the original model exactly (same weights, same backend).
#[test]
fn export_pytorch_import_round_trip_is_exact() {
    let _g = serial();
    let device = Device::flex();
    let bytes = std::fs::read(fixtures().join("roundtrip.saad")).unwrap();
    let ckpt = Checkpoint::decode(&bytes, "roundtrip.saad").unwrap();
    let original = ckpt.load_model(&device, "roundtrip.saad").unwrap().valid();
    let back = load_state_dict(
        &ckpt.header.model,
        read_pt(&fixtures().join("roundtrip.pt")).unwrap(),
        &device,
        "roundtrip.pt",
    )
    .unwrap()
    .valid();
    let x = input("roundtrip", 32, &device);
    assert_eq!(max_abs_diff(&to_vec(original.forward(x.clone())), &to_vec(back.forward(x))), 0.0);
    for (a, b) in original.named_tensors().into_iter().zip(back.named_tensors()) {
        assert_eq!(a.key, b.key);
        assert_eq!(to_vec(a.tensor), to_vec(b.tensor), "{} differs after the round trip", a.key);
    }
}

#[test]
fn broken_and_foreign_checkpoints_give_clear_errors() {
    let _g = serial();
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("saad-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Truncated zip checkpoint.
    let bytes = std::fs::read(fixtures().join("resnet18_w4.pt")).unwrap();
    let cut = dir.join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = format!("{:#}", read_pt(&cut).unwrap_err());
    assert!(e.contains("cut.pt") && e.contains("not a readable PyTorch checkpoint"), "{e}");
    // Not a checkpoint at all.
    let junk = dir.join("junk.pt");
    std::fs::write(&junk, b"hello, this is not pickle").unwrap();
    assert!(format!("{:#}", read_pt(&junk).unwrap_err()).contains("junk.pt"));
    // A ResNet state dict for a WideResNet: missing and unexpected keys are listed.
    let dict = read_pt(&fixtures().join("resnet18_w4.pt")).unwrap();
    let e = load_state_dict(
        &ModelSpec::new("wrn-10-2".parse().unwrap(), 10),
        dict.clone(),
        &device,
        "resnet18_w4.pt",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("resnet18_w4.pt")
            && e.contains("missing keys: ")
            && e.contains("block1.layer.0.bn1.weight")
            && e.contains("unexpected keys: "),
        "{e}"
    );
    // The right family at the wrong width: shape mismatches are listed.
    let e = load_state_dict(
        &ModelSpec::new("resnet18-w8".parse().unwrap(), 10),
        dict,
        &device,
        "resnet18_w4.pt",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("shape mismatches: ")
            && e.contains("conv1.weight: file has [4, 3, 3, 3], model needs [8, 3, 3, 3]"),
        "{e}"
    );
}

/// `saad import` writes a model file that holds the PyTorch model (published-id listing too).
#[test]
fn saad_import_writes_a_usable_model_file() {
    let _g = serial();
    let out = std::env::temp_dir().join(format!("saad-import-{}.saad", std::process::id()));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_saad")).args(args).output().unwrap()
    };
    let o = run(&[
        "import",
        "--arch",
        "dm-wrn-10-1",
        "--classes",
        "200",
        "--dataset",
        "tiny-imagenet",
        "--checkpoint",
        fixtures().join("dm_wrn_10_1_tiny.pt").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = Checkpoint::decode(&std::fs::read(&out).unwrap(), "import").unwrap();
    assert_eq!(ckpt.header.model.normalization, Some(Normalization::TINY_IMAGENET));
    assert_eq!(ckpt.header.dataset.image_size, 64);
    let device = Device::flex();
    let model = ckpt.load_model(&device, "import").unwrap().valid();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    let case = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "dm_wrn_10_1_tiny.pt")
        .unwrap()
        .clone();
    let want: Vec<f32> =
        case["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let got = to_vec(model.forward(input("dm_wrn_10_1_tiny", 64, &device)));
    assert!(max_abs_diff(&got, &want) < 1e-3, "imported model's logits differ");
    let list = String::from_utf8(run(&["import", "--list"]).stdout).unwrap();
    assert!(list.contains("Gowal2021Improving_28_10_ddpm_100m") && list.contains("dm-wrn-28-10"));
    let o = run(&[
        "import",
        "--arch",
        "wrn-10-2",
        "--checkpoint",
        fixtures().join("resnet18_w4.pt").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("missing keys") && !err.contains("panicked"),
        "{err}"
    );
}
