//! AutoAttack against its definition: every returned example within eps and [0,1]; APGD-CE at
//! least as strong as PGD-20; masked gradients raise the flag; Square alone finds exactly the
//! non-robust points of a linear classifier (closed form); the ensemble never lets a broken
//! point come back and its reported accuracy is the one recomputed on the returned examples;
//! the standard Square uses the reference's schedule and window corners.

use saad_core::attacks::apgd::Apgd;
use saad_core::attacks::autoattack::{AaAttack, AutoAttack, AutoAttackConfig};
use saad_core::attacks::fab::{Fab, linf_box_projection, linf_box_projection_tensor_ops};
use saad_core::attacks::square::{Corners, Square};
use saad_core::attacks::{Attack, AttackOutcome, ObjectiveKind, Pgd, TargetedAttack};
use saad_core::burn::module::Module;
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::checkpoint::DatasetInfo;
use saad_core::data::{DeviceSet, digits};
use saad_core::losses::{correct, dlr, dlr_targeted};
use saad_core::models::{ModelSpec, Net};
use saad_core::train::{LrSchedule, MethodKind, TrainConfig, Trainer};
use saad_tests::{devices, serial, to_vec};

const EPS: f32 = saad_core::attacks::STANDARD_EPS;

/// A small PGD-AT model on 8x8 digits: non-trivial clean and robust accuracy in seconds.
fn robust_model(device: &Device) -> (Net, DeviceSet) {
    let (train, test) = digits::load(8).unwrap();
    let train = DeviceSet::upload(&train, device);
    let mut config = TrainConfig::reference(MethodKind::PGD_AT);
    config.epochs = 6;
    config.batch_size = 64;
    config.lr = 0.05;
    config.attack.steps = 3;
    config.schedule = LrSchedule::Cosine;
    config.augment = None;
    let info = DatasetInfo { name: "digits".into(), image_size: 8, num_classes: 10 };
    let mut t =
        Trainer::new(ModelSpec::new("small-cnn-8".parse().unwrap(), 10), config, info, device);
    while !t.is_done() {
        t.train_epoch(&train, &mut |_, _| {});
    }
    (t.eval_model(), DeviceSet::upload(&test.take(160), device))
}

fn in_ball_and_box(x_adv: &Tensor<4>, x: &Tensor<4>, eps: f32, what: &str) {
    let d = to_vec((x_adv.clone() - x.clone()).abs().max())[0];
    assert!(d <= eps + 1e-6, "{what}: |x_adv - x|_inf = {d} > {eps}");
    let (lo, hi) = (to_vec(x_adv.clone().min())[0], to_vec(x_adv.clone().max())[0]);
    assert!(lo >= 0.0 && hi <= 1.0, "{what}: outside [0,1] ({lo}..{hi})");
}

#[test]
fn dlr_losses_match_hand_computed_values() {
    let d = Device::flex();
    let z = Tensor::<2>::from_data(
        TensorData::new(vec![3.0f32, 1.0, 2.0, 0.0, 0.5, 2.0, 1.0, -1.0], [2, 4]),
        &d,
    );
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0], [2]), &d);
    let t = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 3], [2]), &d);
    let v = to_vec(dlr(z.clone(), y.clone()));
    assert!((v[0] + 0.5).abs() < 1e-5 && (v[1] - 1.0).abs() < 1e-5, "{v:?}");
    let v = to_vec(dlr_targeted(z, y, t));
    assert!((v[0] + 0.4).abs() < 1e-5 && (v[1] + 2.0 / 3.0).abs() < 1e-5, "{v:?}");
}

/// The box-constrained L-infinity projection onto a hyperplane against brute force on tiny
/// problems, both the flex kernel and the tensor ops: feasible rows land on the hyperplane
/// inside the box with the smallest radius.
#[test]
fn fab_projection_is_the_smallest_box_feasible_move() {
    check_fab_projection(linf_box_projection);
    check_fab_projection(linf_box_projection_tensor_ops);
}

/// The flex kernel of the projection against its tensor-op twin at FAB's sizes (`[2·batch,
/// C·H·W]`), with rows out of the box's reach, rows already on the hyperplane and zero weights.
#[test]
fn fab_projection_kernel_equals_the_tensor_ops() {
    let d = Device::flex();
    d.seed(5);
    let (n, dim) = (40, 768);
    let t = Tensor::<2>::random([n, dim], Distribution::Uniform(0.0, 1.0), &d);
    let w = Tensor::<2>::random([n, dim], Distribution::Normal(0.0, 1.0), &d);
    // Every fifth weight zero; rows 0-9 far out of reach, rows 10-12 exactly on the plane.
    let keep = Tensor::<2>::random([n, dim], Distribution::Uniform(0.0, 1.0), &d).greater_elem(0.2);
    let w = w.clone().mask_where(keep.bool_not(), w.zeros_like());
    let on_plane = (w.clone() * t.clone()).sum_dim(1).reshape([n]);
    let scale = Tensor::<1>::random([n], Distribution::Normal(0.0, 5.0), &d);
    let offset = Tensor::<1>::from_data(
        TensorData::new((0..n).map(|i| if i < 10 { 1e4f32 } else { 1.0 }).collect::<Vec<_>>(), [n]),
        &d,
    );
    let zero = Tensor::<1>::from_data(
        TensorData::new(
            (0..n).map(|i| if (10..13).contains(&i) { 0.0f32 } else { 1.0 }).collect::<Vec<_>>(),
            [n],
        ),
        &d,
    );
    let b = on_plane + scale * offset * zero;
    let kernel = to_vec(linf_box_projection(t.clone(), w.clone(), b.clone()));
    let twin = to_vec(linf_box_projection_tensor_ops(t, w, b));
    let worst = kernel.iter().zip(&twin).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-5, "kernel vs tensor ops: {worst}");
    assert!(kernel.iter().any(|v| *v != 0.0), "the kernel moved nothing");
}

fn check_fab_projection(project: fn(Tensor<2>, Tensor<2>, Tensor<1>) -> Tensor<2>) {
    let d = Device::flex();
    d.seed(3);
    let n = 64;
    let t = Tensor::<2>::random([n, 3], Distribution::Uniform(0.0, 1.0), &d);
    let w = Tensor::<2>::random([n, 3], Distribution::Normal(0.0, 1.0), &d);
    let b = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d);
    let delta = to_vec(project(t.clone(), w.clone(), b.clone()));
    let (tv, wv, bv) = (to_vec(t), to_vec(w), to_vec(b));
    for i in 0..n {
        let (ti, wi, di) = (&tv[3 * i..3 * i + 3], &wv[3 * i..3 * i + 3], &delta[3 * i..3 * i + 3]);
        let z: Vec<f32> = (0..3).map(|k| ti[k] + di[k]).collect();
        assert!(z.iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v)), "row {i}: leaves the box");
        let reach: f32 = (0..3)
            .map(|k| {
                wi[k].abs() * if wi[k] * (bv[i] - dot(wi, ti)) > 0.0 { 1.0 - ti[k] } else { ti[k] }
            })
            .sum();
        let need = (bv[i] - dot(wi, ti)).abs();
        if need < reach - 1e-4 {
            assert!((dot(wi, &z) - bv[i]).abs() < 1e-4, "row {i}: not on the hyperplane");
            // Brute force: no radius 2% smaller reaches the hyperplane.
            let r = di.iter().fold(0f32, |m, v| m.max(v.abs())) * 0.98;
            let best: f32 = (0..3)
                .map(|k| {
                    wi[k].abs()
                        * r.min(if wi[k] * (bv[i] - dot(wi, ti)) > 0.0 {
                            1.0 - ti[k]
                        } else {
                            ti[k]
                        })
                })
                .sum();
            assert!(best < need + 1e-5, "row {i}: radius is not minimal");
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn every_attack_returns_points_in_the_ball_and_the_box() {
    let _g = serial();
    for (name, device) in devices() {
        device.seed(1);
        let model = ModelSpec::new("small-cnn-4".parse().unwrap(), 10).init(&device).valid();
        let forward = |x| model.forward(x);
        let x = Tensor::<4>::random([12, 3, 8, 8], Distribution::Uniform(0.0, 1.0), &device);
        let y = model.forward(x.clone()).argmax(1).reshape([12]); // all correctly classified
        let t = Tensor::<1, Int>::from_data(
            TensorData::new((0..12i64).map(|i| (i + 1) % 10).collect::<Vec<_>>(), [12]),
            &device,
        );
        let t =
            t.clone().mask_where(t.clone().equal(y.clone()), t.add_scalar(1).remainder_scalar(10));
        let apgd = Apgd { n_iter: 20, ..Apgd::new(EPS) };
        in_ball_and_box(&apgd.run(&forward, &x, &y).x_adv, &x, EPS, &format!("{name} apgd-ce"));
        in_ball_and_box(
            &apgd.run_targeted(&forward, &x, &y, &t).x_adv,
            &x,
            EPS,
            &format!("{name} apgd-t"),
        );
        in_ball_and_box(
            &Fab { n_iter: 20, ..Fab::new(EPS) }.run_targeted(&forward, &x, &y, &t).x_adv,
            &x,
            EPS,
            &format!("{name} fab-t"),
        );
        in_ball_and_box(
            &Square { n_queries: 200, ..Square::new(EPS, 1) }.run(&forward, &x, &y).x_adv,
            &x,
            EPS,
            &format!("{name} square"),
        );
    }
}

#[test]
fn apgd_ce_is_at_least_as_strong_as_pgd20_and_the_ensemble_bookkeeping_holds() {
    let _g = serial();
    let device = Device::flex();
    let (model, test) = robust_model(&device);
    let forward = |x| model.forward(x);
    let (x, y) = (test.images.clone(), test.labels.clone());
    // A radius where this 8x8 model is only partly robust.
    let eps = 24.0 / 255.0;
    device.seed(7);
    let pgd = Pgd::pgd20(eps).run(&forward, &ObjectiveKind::CrossEntropy { labels: y.clone() }, &x);
    let pgd_robust = to_vec(correct(model.forward(pgd), y.clone()).sum())[0];
    let apgd = Apgd::new(eps).run(&forward, &x, &y).x_adv;
    let apgd_robust = to_vec(correct(model.forward(apgd), y.clone()).sum())[0];
    let clean = to_vec(correct(model.forward(x.clone()), y.clone()).sum())[0];
    eprintln!("clean {clean}, PGD-20 robust {pgd_robust}, APGD-CE robust {apgd_robust} of 160");
    assert!(
        pgd_robust > 0.0 && pgd_robust < clean,
        "the model must be partly robust for this test"
    );
    assert!(
        apgd_robust <= pgd_robust,
        "APGD-CE {apgd_robust} robust points vs PGD-20 {pgd_robust}"
    );

    let config = AutoAttackConfig {
        apgd_iter: 30,
        fab_iter: 30,
        square_queries: 300,
        batch: 64,
        ..AutoAttackConfig::standard(eps)
    };
    let mut aa = AutoAttack::new(&forward, x.clone(), y.clone(), config);
    let mut before = aa.robust.clone();
    for attack in AaAttack::STANDARD {
        let step = aa.run_attack(attack, &mut |_, _| {});
        for (i, (b, a)) in before.iter().zip(&aa.robust).enumerate() {
            assert!(*b || !*a, "{attack:?}: point {i} came back to robust");
        }
        assert_eq!(step.robust, aa.robust_count());
        before = aa.robust.clone();
    }
    let (recheck, max_linf) = aa.recheck();
    assert_eq!(
        recheck,
        aa.robust_count(),
        "reported robust accuracy must equal the recomputed one"
    );
    assert!(max_linf <= eps + 1e-6, "max Linf {max_linf}");
    assert!(
        aa.robust_count() <= apgd_robust as usize + 5,
        "the ensemble is not weaker than APGD-CE alone"
    );
    // Robust points keep their clean image exactly.
    let idx: Vec<i64> =
        aa.robust.iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i as i64).collect();
    if !idx.is_empty() {
        let ix = Tensor::<1, Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &device);
        assert_eq!(to_vec(aa.x_adv.clone().select(0, ix.clone())), to_vec(x.select(0, ix)));
    }
}

#[test]
fn masked_gradients_raise_the_flags() {
    let _g = serial();
    let device = Device::flex();
    let (model, test) = robust_model(&device);
    // The input is cut from the graph: every input gradient is zero.
    let masked = |x: Tensor<4>| model.forward(x.detach());
    let config = AutoAttackConfig {
        apgd_iter: 10,
        fab_iter: 10,
        square_queries: 500,
        batch: 80,
        ..AutoAttackConfig::standard(EPS)
    };
    let mut aa = AutoAttack::new(&masked, test.images.clone(), test.labels.clone(), config);
    assert!(aa.flags.iter().any(|f| f.contains("zero input gradient")), "{:?}", aa.flags);
    for attack in AaAttack::STANDARD {
        aa.run_attack(attack, &mut |_, _| {});
    }
    assert!(aa.flags.iter().any(|f| f.contains("Square (black-box) broke")), "{:?}", aa.flags);
}

/// Closed-form robustness of the linear classifier `z = W x + b` and what Square finds: per
/// point (closed form robust, Square robust). The box does not bind (inputs in [0.1, 0.9],
/// eps 0.05), so a point is robust iff `margin_j > eps ||w_y - w_j||_1` for all j != y.
fn linear_model_case(k: usize, seed: u64) -> Vec<(bool, bool)> {
    let device = Device::flex();
    device.seed(seed);
    let (n, d, eps) = (96usize, 48usize, 0.05f32);
    let w = Tensor::<2>::random([d, k], Distribution::Normal(0.0, 1.0), &device);
    let bias = Tensor::<1>::random([k], Distribution::Normal(0.0, 0.5), &device);
    let x = Tensor::<4>::random([n, 3, 4, 4], Distribution::Uniform(0.1, 0.9), &device);
    let forward = |x: Tensor<4>| {
        let b = x.dims()[0];
        x.reshape([b, d]).matmul(w.clone()) + bias.clone().reshape([1, k]).expand([b, k])
    };
    let logits = to_vec(forward(x.clone()));
    let wv = to_vec(w.clone());
    let labels: Vec<usize> = (0..n)
        .map(|i| (0..k).max_by(|&a, &b| logits[i * k + a].total_cmp(&logits[i * k + b])).unwrap())
        .collect();
    let closed_form: Vec<bool> = (0..n)
        .map(|i| {
            let yi = labels[i];
            (0..k).filter(|&j| j != yi).all(|j| {
                let l1: f32 = (0..d).map(|p| (wv[p * k + yi] - wv[p * k + j]).abs()).sum();
                logits[i * k + yi] - logits[i * k + j] > eps * l1
            })
        })
        .collect();
    let y = Tensor::<1, Int>::from_data(
        TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]),
        &device,
    );
    // The paper's variant: on 4x4 images the standard one never moves the last row and column
    // after its initial stripes, so it cannot reach the optimal vertex these tests check.
    let AttackOutcome { x_adv: adv, fooled } =
        Square { n_queries: 5000, ..Square::paper(eps, seed) }.run(&forward, &x, &y);
    in_ball_and_box(&adv, &x, eps, "square on the linear model");
    let fooled = to_vec(fooled);
    closed_form.into_iter().zip(fooled).map(|(cf, f)| (cf, f < 0.5)).collect()
}

/// Two classes: the margin is linear in the perturbation, Square's block-coordinate search
/// reaches the optimal vertex, and its verdict equals the closed form on every point.
#[test]
fn square_alone_matches_the_closed_form_on_a_binary_linear_model() {
    let _g = serial();
    let points = linear_model_case(2, 21);
    let robust = points.iter().filter(|p| p.0).count();
    assert!(
        robust > 5 && robust < points.len() - 5,
        "the closed form should split the points ({robust} robust)"
    );
    for (i, (cf, sq)) in points.iter().enumerate() {
        assert_eq!(sq, cf, "point {i}: Square says robust = {sq}, closed form {cf}");
    }
}

/// Ten classes: the margin is a max of linear functions, which a black-box search can miss, so
/// Square must be sound (never break a point the closed form proves robust) and find most of
/// the others.
#[test]
fn square_alone_is_sound_and_strong_on_a_ten_class_linear_model() {
    let _g = serial();
    let points = linear_model_case(10, 22);
    let non_robust = points.iter().filter(|p| !p.0).count();
    let found = points.iter().filter(|p| !p.0 && !p.1).count();
    assert!(
        points.iter().all(|&(cf, sq)| !cf || sq),
        "Square broke a point the closed form proves robust"
    );
    eprintln!("ten classes: Square broke {found} of {non_robust} non-robust points");
    assert!(
        non_robust > 5 && found as f64 >= 0.9 * non_robust as f64,
        "Square broke only {found} of {non_robust}"
    );
}

/// AutoAttack's standard Square calls the reference's `p_selection` with `resc_schedule=False`
/// (fra31/auto-attack, autoattack/autoattack.py and square.py): at 5000 queries p_init is
/// divided by 1, 2, 4, ..., 128 at the raw iteration thresholds 10, 50, 200, 500, 1000, 2000,
/// 4000 and never reaches /256 or /512. The paper variant maps i to int(i / 5000 * 10000)
/// first. Expected divisors from the reference formula (python3).
#[test]
fn square_schedule_is_the_references_without_rescaling() {
    let standard = Square::new(EPS, 0);
    assert_eq!(
        (standard.n_queries, standard.p_init, standard.rescale_schedule, standard.corners),
        (5000, 0.8, false, Corners::Reference)
    );
    let its = [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001, 4999];
    let div = [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128];
    for (i, d) in its.into_iter().zip(div) {
        assert_eq!(standard.p_selection(i), 0.8 / d as f64, "standard, iteration {i}");
    }
    let paper = Square::paper(EPS, 0);
    assert_eq!(
        (paper.n_queries, paper.rescale_schedule, paper.corners),
        (5000, true, Corners::Full)
    );
    let its = [
        0, 5, 6, 25, 26, 100, 101, 250, 251, 500, 501, 1000, 1001, 2000, 2001, 3000, 3001, 4000,
        4001, 4999,
    ];
    let div = [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512];
    for (i, d) in its.into_iter().zip(div) {
        assert_eq!(paper.p_selection(i), 0.8 / d as f64, "paper, iteration {i}");
    }
    // Side lengths as the reference rounds them (Python's round: 2.5 -> 2 on a 5x25 image).
    assert_eq!(Square::side(0.8, 3, 32, 32), 29);
    assert_eq!(Square::side(0.8 / 128.0, 3, 32, 32), 3);
    assert_eq!(Square::side(0.8, 3, 8, 8), 7);
    assert_eq!(Square::side(0.8 / 16.0, 3, 5, 25), 2);
    assert_eq!(Square::side(0.8 / 512.0, 1, 4, 4), 1);
}

/// Window corners: the reference draws `random_int(0, h - s)`, i.e. {0, ..., h - s - 1} (only 0
/// when s = h); the paper variant {0, ..., h - s}. In a run on 8x8 images (sides 7 down to 1)
/// the standard attack therefore never moves the last column after the initial vertical
/// stripes, so each image's perturbation there stays constant down the column; the paper
/// variant moves it.
#[test]
fn square_window_corners_are_drawn_as_the_reference_draws_them() {
    let _g = serial();
    let (standard, paper) = (Square::new(EPS, 3), Square::paper(EPS, 3));
    for (len, s, reference, full) in
        [(8, 1, 7, 8), (8, 3, 5, 6), (8, 7, 1, 2), (8, 8, 1, 1), (32, 29, 3, 4), (32, 1, 31, 32)]
    {
        assert_eq!(standard.corner_choices(len, s), reference, "reference, side {len}, window {s}");
        assert_eq!(paper.corner_choices(len, s), full, "paper, side {len}, window {s}");
    }
    let device = Device::flex();
    device.seed(5);
    let (n, c, h, w) = (4usize, 3usize, 8usize, 8usize);
    let weights = Tensor::<2>::random([c * h * w, 1], Distribution::Normal(0.0, 1.0), &device);
    // Never misclassified (margin 1000 + w.x > 0), so every query runs and moves that lower
    // w.x are kept; inputs in [0.2, 0.8] keep [0,1] from clipping.
    let forward = |x: Tensor<4>| {
        let b = x.dims()[0];
        let z = x.reshape([b, c * h * w]).matmul(weights.clone()).add_scalar(1000.0);
        Tensor::cat(vec![z, Tensor::zeros([b, 1], &device)], 1)
    };
    let x = Tensor::<4>::random([n, c, h, w], Distribution::Uniform(0.2, 0.8), &device);
    let y = Tensor::<1, Int>::zeros([n], &device);
    let last_column_moved = |sq: Square| {
        let d = to_vec(sq.run(&forward, &x, &y).x_adv - x.clone());
        (0..n * c).any(|bc| {
            (1..h).any(|r| (d[(bc * h + r) * w + w - 1] - d[bc * h * w + w - 1]).abs() > 1e-6)
        })
    };
    assert!(
        !last_column_moved(Square { n_queries: 300, ..standard }),
        "the standard Square moved the last column"
    );
    assert!(
        last_column_moved(Square { n_queries: 300, ..paper }),
        "the paper variant never moved the last column"
    );
}
