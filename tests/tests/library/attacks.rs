//! Attacks against their definitions: PGD stays in the eps-ball and the image box, raises the
//! loss, FGSM is one signed step, input gradients match finite differences.

use saad_core::attacks::{ObjectiveKind, Pgd, Start, fgsm, input_gradient};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::losses::cross_entropy;
use saad_core::models::{ModelSpec, Net};
use saad_tests::{devices, serial, to_vec};

fn tiny_model(arch: &str, device: &Device) -> Net {
    device.seed(11);
    ModelSpec::new(arch.parse().unwrap(), 10).init(device).valid()
}

fn batch(device: &Device, n: usize, size: usize) -> (Tensor<4>, Tensor<1, Int>) {
    let x = Tensor::<4>::random([n, 3, size, size], Distribution::Uniform(0.0, 1.0), device);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new((0..n as i64).map(|i| i % 10).collect::<Vec<_>>(), [n]),
        device,
    );
    (x, y)
}

#[test]
fn pgd_stays_in_the_ball_and_the_box_and_raises_the_loss() {
    let _g = serial();
    for (name, device) in devices() {
        let model = tiny_model("small-cnn-8", &device);
        let forward = |x| model.forward(x);
        let (x, y) = batch(&device, 6, 16);
        let eps = saad_core::attacks::STANDARD_EPS;
        let ce = ObjectiveKind::CrossEntropy { labels: y.clone() };
        for start in [Start::Uniform, Start::Gaussian(0.001), Start::Clean] {
            let pgd = Pgd {
                eps,
                alpha: saad_core::attacks::STANDARD_STEP,
                steps: 10,
                start,
                restarts: 1,
            };
            let x_adv = pgd.run(&forward, &ce, &x);
            let delta = to_vec((x_adv.clone() - x.clone()).abs().max());
            assert!(delta[0] <= eps + 1e-6, "{name} {start:?}: |delta|_inf = {} > eps", delta[0]);
            let (lo, hi) = (to_vec(x_adv.clone().min())[0], to_vec(x_adv.clone().max())[0]);
            assert!(lo >= 0.0 && hi <= 1.0, "{name}: outside [0,1]: {lo}..{hi}");
            let clean = to_vec(cross_entropy(model.forward(x.clone()), y.clone()));
            let adv = to_vec(cross_entropy(model.forward(x_adv), y.clone()));
            for (i, (c, a)) in clean.iter().zip(&adv).enumerate() {
                assert!(
                    a > c,
                    "{name} {start:?}: sample {i}: adversarial loss {a} not above clean {c}"
                );
            }
        }
    }
}

#[test]
fn fgsm_is_one_signed_step_of_size_eps() {
    let _g = serial();
    let device = Device::flex();
    let model = tiny_model("small-cnn-8", &device);
    let forward = |x| model.forward(x);
    let (x, y) = batch(&device, 4, 12);
    let eps = 0.03;
    let ce = ObjectiveKind::CrossEntropy { labels: y.clone() };
    let g = input_gradient(&forward, &ce, &x);
    let expected = (x.clone() + g.sign().mul_scalar(eps)).clamp(0.0, 1.0);
    let got = fgsm(&forward, &ce, &x, eps);
    assert_eq!(to_vec(got), to_vec(expected));
}

/// Directional derivatives of the CE loss against central differences, on a smooth (SiLU)
/// network in eval mode, in f32: relative error below 1%.
#[test]
fn input_gradient_matches_finite_differences() {
    let _g = serial();
    let device = Device::flex();
    let model = tiny_model("dm-wrn-10-1", &device);
    let forward = |x| model.forward(x);
    let (x, y) = batch(&device, 2, 8);
    let ce = ObjectiveKind::CrossEntropy { labels: y.clone() };
    let g = input_gradient(&forward, &ce, &x);
    let loss = |x: Tensor<4>| to_vec(cross_entropy(model.forward(x), y.clone()).sum())[0] as f64;
    let h = 1e-2f32;
    for k in 0..4 {
        device.seed(100 + k);
        let v = x.random_like(Distribution::Normal(0.0, 1.0));
        let analytic = to_vec((g.clone() * v.clone()).sum())[0] as f64;
        let numeric = (loss(x.clone() + v.clone().mul_scalar(h))
            - loss(x.clone() - v.mul_scalar(h)))
            / (2.0 * h as f64);
        let rel = (analytic - numeric).abs() / numeric.abs().max(1e-3);
        assert!(
            rel < 1e-2,
            "direction {k}: autodiff {analytic} vs finite difference {numeric} (rel {rel})"
        );
    }
}

#[test]
fn restarts_never_make_a_sample_worse() {
    let _g = serial();
    let device = Device::flex();
    let model = tiny_model("small-cnn-8", &device);
    let forward = |x| model.forward(x);
    let (x, y) = batch(&device, 8, 12);
    let cw = ObjectiveKind::CwMargin { labels: y.clone() };
    let one =
        Pgd { eps: 4.0 / 255.0, alpha: 1.0 / 255.0, steps: 3, start: Start::Uniform, restarts: 1 };
    device.seed(5);
    let single = one.run(&forward, &cw, &x);
    device.seed(5);
    // The first restart draws the same start as the single run, so the best of five is at
    // least as bad (for the model) per sample.
    let best = Pgd { restarts: 5, ..one }.run_with_restarts(&forward, &cw, &x, &y);
    let m1 = to_vec(saad_core::losses::cw_margin(model.forward(single), y.clone()));
    let m5 = to_vec(saad_core::losses::cw_margin(model.forward(best), y));
    for (i, (a, b)) in m1.iter().zip(&m5).enumerate() {
        assert!(*b >= *a - 1e-6, "sample {i}: margin {b} after restarts below single run {a}");
    }
}
