//! The same weights give the same logits (and input gradients) on flex and on wgpu (lavapipe).
//! Tolerance: 1e-4 absolute on logits of magnitude ~1-10 (f32 with different summation orders).

use saad_core::attacks::{ObjectiveKind, input_gradient};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::checkpoint::{load_weights, model_bytes};
use saad_core::models::ModelSpec;
use saad_tests::{max_abs_diff, serial, to_vec, wgpu_device};

const ARCHS: [&str; 6] =
    ["small-cnn-4", "resnet18-w4", "preact-resnet18-w4", "mobilenetv2", "wrn-10-2", "dm-wrn-10-2"];

#[test]
fn flex_and_wgpu_agree_on_logits_and_input_gradients() {
    let _g = serial();
    let Some(wgpu) = wgpu_device() else { return };
    let flex = Device::flex();
    for arch in ARCHS {
        let spec = ModelSpec::new(arch.parse().unwrap(), 10);
        flex.seed(3);
        let model = spec.init(&flex).valid();
        // Non-trivial BatchNorm statistics: a few training-mode forwards on the autodiff device.
        let train =
            load_weights(&spec, &model_bytes(&model), &flex.clone().autodiff(), "test").unwrap();
        for _ in 0..2 {
            let _ = train.forward(Tensor::<4>::random(
                [4, 3, 16, 16],
                Distribution::Uniform(0.0, 1.0),
                &flex,
            ));
        }
        let weights = model_bytes(&train);
        let on_flex = load_weights(&spec, &weights, &flex, "flex").unwrap().valid();
        let on_wgpu = load_weights(&spec, &weights, &wgpu, "wgpu").unwrap().valid();

        let x = Tensor::<4>::random([3, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &flex);
        let x_data = x.to_data();
        let xw = Tensor::<4>::from_data(x_data, &wgpu);
        let lf = to_vec(on_flex.forward(x.clone()));
        let lw = to_vec(on_wgpu.forward(xw.clone()));
        let d = max_abs_diff(&lf, &lw);
        assert!(d < 1e-4, "{arch}: logits differ by {d}");

        let y = [1i64, 4, 9];
        let ce_f = ObjectiveKind::CrossEntropy {
            labels: Tensor::from_data(TensorData::new(y.to_vec(), [3]), &flex),
        };
        let ce_w = ObjectiveKind::CrossEntropy {
            labels: Tensor::from_data(TensorData::new(y.to_vec(), [3]), &wgpu),
        };
        let gf = to_vec(input_gradient(&|x| on_flex.forward(x), &ce_f, &x));
        let gw = to_vec(input_gradient(&|x| on_wgpu.forward(x), &ce_w, &xw));
        let scale = gf.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&gf, &gw);
        assert!(
            d <= 1e-3 * scale.max(1e-3),
            "{arch}: input gradients differ by {d} (max |g| {scale})"
        );
    }
}
