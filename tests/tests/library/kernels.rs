//! The WGSL kernels against their tensor-op twins on the wgpu backend (lavapipe), on random
//! inputs of several shapes, including sizes that do not fill a workgroup.

use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{Distribution, TensorData};
use saad_core::kernels::{Route, saad_loss, twins};
use saad_core::train::MethodParams;
use saad_core::train::methods::saad::SaadLogits;
use saad_tests::{max_abs_diff, serial, to_vec, wgpu_device};

#[test]
fn pgd_step_kernel_equals_the_tensor_op_twin() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(4);
    for shape in [[1, 1, 1, 1], [3, 3, 5, 7], [17, 3, 8, 8], [128, 3, 32, 32]] {
        let diff = twins::pgd_step_difference(&d, shape);
        assert!(diff <= 1e-7, "{shape:?}: kernel and twin differ by {diff}");
    }
}

/// The training-mode BatchNorm kernels give burn's `batch_norm_train`: output, batch statistics
/// and the gradients of input, gamma and beta, to float rounding, for inputs and output gradients
/// laid out contiguous or channels last, channel sizes that do not fill a workgroup and a
/// ResNet-18 activation's size; the running-statistics kernel gives its twin's in both modes.
#[test]
fn batch_norm_kernels_equal_burns_batch_norm_and_its_gradients() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(7);
    for shape in [[1, 1, 1, 2], [3, 5, 7, 9], [2, 300, 1, 1], [128, 64, 16, 16]] {
        let diff = twins::batch_norm_difference(&d, shape);
        assert!(diff <= 1e-4, "{shape:?}: kernels and burn's differ by {diff} (relative)");
    }
    for channels in [1, 64, 300] {
        let diff = twins::batch_norm_running_difference(&d, channels);
        assert!(diff <= 1e-6, "{channels} channels: running statistics differ by {diff}");
    }
}

/// The flex BatchNorm (`kernels::flex_batch_norm`: two passes forward, two backward, its own
/// autodiff node) against burn's `batch_norm_train` on flex, as above: output, statistics and the
/// three gradients, inputs and output gradients contiguous or channels last, one value per
/// channel, odd sizes, more channels than threads.
#[test]
fn flex_batch_norm_equals_burns_batch_norm_and_its_gradients() {
    let _g = serial();
    let d = Device::flex();
    d.seed(17);
    for shape in [[1, 3, 1, 1], [3, 5, 7, 9], [2, 70, 1, 3], [16, 64, 8, 8]] {
        let diff = twins::batch_norm_difference(&d, shape);
        assert!(diff <= 1e-5, "{shape:?}: flex BatchNorm and burn's differ by {diff} (relative)");
    }
}

/// The flex scale-shift-SiLU (`kernels::flex_silu`: one parallel pass each way, a polynomial
/// exp, its own autodiff node) against the tensor ops on flex: values and input gradients to
/// float rounding, inputs and output gradients contiguous or channels last, one value per
/// channel, odd sizes.
#[test]
fn flex_scale_shift_silu_equals_the_tensor_ops() {
    let _g = serial();
    let d = Device::flex();
    d.seed(19);
    for shape in [[1, 1, 1, 1], [3, 5, 7, 9], [2, 3, 1, 4], [16, 64, 8, 8]] {
        let diff = twins::scale_shift_activation_difference(&d, shape);
        assert!(
            diff <= 1e-5,
            "{shape:?}: flex scale-shift-SiLU and the tensor ops differ by {diff}"
        );
    }
}

/// The scale-shift-activation kernels (a folded BatchNorm and its ReLU or SiLU) give the tensor
/// ops' values and input gradients to float rounding, in either memory order.
#[test]
fn scale_shift_activation_kernels_equal_the_tensor_ops() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(8);
    for shape in [[1, 1, 1, 1], [3, 5, 7, 9], [16, 64, 8, 8]] {
        let diff = twins::scale_shift_activation_difference(&d, shape);
        assert!(diff <= 1e-5, "{shape:?}: kernels and tensor ops differ by {diff} (relative)");
    }
}

/// The SGD step kernel equals burn's SGD operations (the twin) to float rounding, first and
/// later steps, with and without weight decay, for contiguous and channels-last gradients.
#[test]
fn sgd_step_kernel_equals_the_tensor_op_twin() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(6);
    for shape in [[1, 1, 1, 1], [3, 5, 7, 9], [64, 64, 3, 3]] {
        let diff = twins::sgd_step_difference(&d, shape);
        assert!(diff <= 1e-6, "{shape:?}: kernel and twin differ by {diff}");
    }
}

/// The ReLU kernels give burn's relu and its gradient exactly, for inputs and output gradients
/// in any memory order (contiguous, channels last, strided, broadcast), at sizes that do not
/// fill a workgroup and at a ResNet-18 activation's size.
#[test]
fn relu_kernels_equal_burns_relu_and_its_gradient() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(5);
    for shape in [[1, 1, 1, 1], [3, 5, 7, 9], [2, 3, 1, 4], [128, 64, 16, 16]] {
        let diff = twins::relu_difference(&d, shape);
        assert_eq!(diff, 0.0, "{shape:?}: kernel and burn's relu differ by {diff}");
    }
}

/// Every kernel, as wgpu compiles it (the `.wgsl` file with its parameter struct and the shared
/// constants appended), parses and validates with naga (the compiler wgpu uses), and every
/// `.wgsl` file is one of them or a part appended to several.
#[test]
fn every_shader_validates_with_naga() {
    let sources = saad_core::kernels::wgsl_sources();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut names: Vec<String> = sources.iter().map(|(name, _)| name.to_string()).collect();
    names.extend(saad_core::kernels::SHARED_WGSL_FILES.iter().map(|name| name.to_string()));
    names.sort();
    assert_eq!(files, names, "every shader file is a kernel or a part shared by kernels");
    for (name, src) in &sources {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // WebGPU defaults: <= 256 invocations per workgroup, <= 8 storage buffers per stage.
        let ep = &module.entry_points[0];
        assert!(ep.workgroup_size.iter().product::<u32>() <= 256, "{name}");
        let storage = module
            .global_variables
            .iter()
            .filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. }))
            .count();
        assert!(storage <= 8, "{name}: {storage} storage buffers");
    }
}

/// The WGSL declarations of the parameter structs (with the shared `OperandLayout` some of them
/// hold) have the size of their `#[repr(C)]` Rust twins.
#[test]
fn kernel_parameter_structs_have_one_layout_in_rust_and_wgsl() {
    use saad_core::kernels::params::{
        BatchNormParams, BatchNormRunningParams, ConvParams, FoldParams, OperandLayout,
        PgdStepParams, ReluParams, SaadLossParams, ScaleShiftParams, SgdStepParams, Strides4,
        TransferStatsParams, WgslLayout,
    };
    fn wgsl_size<P: WgslLayout>(name: &str) -> (usize, usize) {
        // The shared structs some parameter structs hold, then the struct itself.
        let mut source: String = [OperandLayout::WGSL, Strides4::WGSL]
            .into_iter()
            .filter(|&shared| shared != P::WGSL)
            .collect();
        source.push_str(P::WGSL);
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let ty = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap().0;
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        (layouter[ty].size as usize, std::mem::size_of::<P>())
    }
    for (name, (wgsl, rust)) in [
        ("PgdStepParams", wgsl_size::<PgdStepParams>("PgdStepParams")),
        ("SaadLossParams", wgsl_size::<SaadLossParams>("SaadLossParams")),
        ("TransferStatsParams", wgsl_size::<TransferStatsParams>("TransferStatsParams")),
        ("ReluParams", wgsl_size::<ReluParams>("ReluParams")),
        ("SgdStepParams", wgsl_size::<SgdStepParams>("SgdStepParams")),
        ("OperandLayout", wgsl_size::<OperandLayout>("OperandLayout")),
        ("BatchNormParams", wgsl_size::<BatchNormParams>("BatchNormParams")),
        ("BatchNormRunningParams", wgsl_size::<BatchNormRunningParams>("BatchNormRunningParams")),
        ("FoldParams", wgsl_size::<FoldParams>("FoldParams")),
        ("ScaleShiftParams", wgsl_size::<ScaleShiftParams>("ScaleShiftParams")),
        ("Strides4", wgsl_size::<Strides4>("Strides4")),
        ("ConvParams", wgsl_size::<ConvParams>("ConvParams")),
    ] {
        assert_eq!(wgsl, rust, "{name}: WGSL size vs Rust size");
    }
}

/// Forward: loss and weights equal the tensor-op twin (relative 1e-5) for odd and large batch
/// sizes, 10 and 100 classes, Shannon and Renyi-2 entropies, beta 0 and 0.5.
#[test]
fn saad_loss_kernel_equals_the_twin() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(6);
    for (b, c) in [(1, 3), (7, 10), (300, 10), (33, 100)] {
        // 1 + 5e-7 is inside the reference's Shannon band (|gamma - 1| < 1e-6): both sides must switch.
        for (gamma, beta) in [(1.0, 0.0), (1.0 + 5e-7, 0.0), (2.0, 0.5)] {
            let l = twins::random_saad_logits(&d, b, c);
            let p = MethodParams { saad_gamma: gamma, saad_beta: beta, ..MethodParams::default() };
            let diff = twins::saad_loss_difference(&l, &p.saad_loss_config(0.3));
            assert!(diff.loss <= 1e-5, "b={b} c={c} gamma={gamma}: loss differs by {diff:?}");
            assert!(diff.w <= 1e-4, "b={b} c={c}: weights differ: {diff:?}");
            assert!(diff.w_hat <= 1e-5, "b={b} c={c}: w^ differ: {diff:?}");
        }
    }
}

/// Backward: the custom backward equals the gradient autodiff computes for the twin, and both
/// match central finite differences of the loss.
#[test]
fn saad_loss_kernel_backward_equals_autodiff_and_finite_differences() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    let ad = d.clone().autodiff();
    d.seed(8);
    let (b, c) = (9, 10);
    let base = twins::random_saad_logits(&d, b, c);
    let p = MethodParams { saad_beta: 0.5, ..MethodParams::default() };
    let config = p.saad_loss_config(0.4);
    for (k, diff) in twins::saad_loss_backward_difference(&base, &config).into_iter().enumerate() {
        assert!(
            diff <= 1e-4,
            "student logits {k}: kernel gradient differs from autodiff by {diff}"
        );
    }
    let kern = twins::saad_loss_gradients(&base, &config, Route::Kernel);
    // Central differences on s_plus entries (the weights are constants of the teacher).
    let loss_at = |s_plus: Tensor<2>| {
        let l = SaadLogits {
            s_plus,
            ..SaadLogits {
                t0: base.t0.clone(),
                t_plus: base.t_plus.clone(),
                t_minus: base.t_minus.clone(),
                s0: base.s0.clone(),
                s_plus: base.s_plus.clone(),
                s_minus: base.s_minus.clone(),
            }
        };
        to_vec(saad_loss(Route::Kernel, &l, &p.saad_loss_config(0.4)).loss)[0] as f64
    };
    let h = 1e-2f32;
    let sp = to_vec(base.s_plus.clone());
    for idx in [0usize, 13, 47, 89] {
        let bump = |delta: f32| {
            let mut v = sp.clone();
            v[idx] += delta;
            Tensor::<2>::from_data(TensorData::new(v, [b, c]), &d)
        };
        let fd = (loss_at(bump(h)) - loss_at(bump(-h))) / (2.0 * h as f64);
        let an = kern[1][idx] as f64;
        assert!(
            (fd - an).abs() <= 2e-3 + 2e-2 * an.abs(),
            "entry {idx}: finite difference {fd} vs kernel gradient {an}"
        );
    }
    let _ = ad;
}

/// The transfer sums of a batch equal the twin, with and without student logits.
#[test]
fn transfer_stats_kernel_equals_the_twin() {
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    d.seed(9);
    for (b, c) in [(5, 10), (257, 10), (64, 200)] {
        let t = twins::random_logits(&d, b, c, 2.0);
        let s = twins::random_logits(&d, b, c, 1.0);
        let y = twins::cyclic_labels(&d, b, c);
        // The default Shannon entropy, one order inside the reference's Shannon band, Renyi-2.
        for (student, gamma) in
            [(Some(&s), 1.0), (None, 1.0), (Some(&s), 1.0 + 5e-7), (Some(&s), 2.0)]
        {
            let p = MethodParams { saad_gamma: gamma, ..MethodParams::default() };
            let diff = twins::transfer_stats_difference(&t, student, &y, p.saad_weighting());
            assert!(diff <= 1e-3, "b={b} c={c} gamma={gamma}: sums differ by {diff} (relative)");
        }
    }
}

/// SAAD training with the kernels and without them (same seed, wgpu) gives the same loss curve
/// for the first steps (f32 summation orders differ: relative 1e-4) and the same TAS.
#[test]
fn training_with_and_without_kernels_gives_the_same_loss_curve() {
    use saad_core::checkpoint::DatasetInfo;
    use saad_core::data::{DeviceSet, digits};
    use saad_core::kernels::with_kernels;
    use saad_core::models::ModelSpec;
    use saad_core::train::{LrSchedule, MethodKind, TrainConfig, Trainer};
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    let (train, _) = digits::load(8).unwrap();
    let data = DeviceSet::upload(&train.take(128), &d);
    let run = |kernels: bool| {
        with_kernels(kernels, || {
            d.seed(1);
            let teacher = ModelSpec::new("small-cnn-4".parse().unwrap(), 10).init(&d);
            let mut config = TrainConfig::reference(MethodKind::SAAD);
            config.epochs = 3;
            config.batch_size = 32;
            config.attack.steps = 2;
            config.schedule = LrSchedule::Constant;
            config.augment = None;
            config.swa_start = None;
            let info = DatasetInfo { name: "digits".into(), image_size: 8, num_classes: 10 };
            let mut t =
                Trainer::new(ModelSpec::new("small-cnn-4".parse().unwrap(), 10), config, info, &d)
                    .with_teacher(&teacher);
            (0..3).map(|_| t.train_epoch(&data, &mut |_, _| {})).collect::<Vec<_>>()
        })
    };
    let (with, without) = (run(true), run(false));
    for (a, b) in with.iter().zip(&without) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * b.loss.abs().max(1e-3),
            "epoch {}: loss {} with kernels, {} without",
            a.epoch,
            a.loss,
            b.loss
        );
        let (ta, tb) = (a.transfer.as_ref().unwrap(), b.transfer.as_ref().unwrap());
        assert_eq!(ta.weight_hist.iter().sum::<usize>(), tb.weight_hist.iter().sum::<usize>());
        assert!((ta.tas - tb.tas).abs() < 1e-9, "epoch {}: TAS {} vs {}", a.epoch, ta.tas, tb.tas);
    }
}

/// (batch, channels in, channels out, height, width, kernel, stride, padding) of a convolution.
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

/// The convolution checks below: strides 1 to 3, paddings 0 to 2, 1x1 to 5x5 kernels, odd sizes,
/// one image, padding wider than the image.
const CONV_CASES: [ConvCase; 9] = [
    (1, 1, 1, 1, 1, 1, 1, 0),
    (2, 3, 4, 5, 7, 3, 1, 1),
    (3, 5, 6, 9, 8, 3, 2, 1),
    (2, 4, 3, 7, 7, 1, 2, 0),
    (2, 2, 5, 6, 11, 5, 1, 2),
    (1, 3, 2, 4, 4, 3, 1, 2),
    (2, 3, 2, 8, 9, 4, 3, 0),
    // Padding wider than the image: some kernel columns never touch it.
    (2, 2, 3, 1, 1, 5, 1, 2),
    (1, 2, 2, 2, 3, 5, 2, 3),
];

/// `ours(x, weight, stride, padding)` on `device` against burn's convolution and burn's autodiff
/// gradients of it on flex (so that a wgpu check does not tune burn's convolution kernels for
/// each shape): output, input gradient and weight gradient within `tolerance` times the largest
/// value, with a non-uniform upstream gradient (sin(y)) so that every position's weight matters.
fn check_convolution_against_burns(
    device: &Device,
    cases: &[ConvCase],
    ours: fn(Tensor<4>, Tensor<4>, [usize; 2], [usize; 2]) -> Tensor<4>,
    what: &str,
    tolerance: f32,
) {
    use saad_core::burn::tensor::module::conv2d;
    use saad_core::burn::tensor::ops::ConvOptions;
    let flex = Device::flex();
    for &(b, c, o, h, w, k, s, p) in cases {
        let x = Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &flex);
        let weight = Tensor::<4>::random([o, c, k, k], Distribution::Normal(0.0, 0.3), &flex);
        let run = |mine: bool| {
            let on = if mine { device } else { &flex };
            let xl = x.clone().to_device(on).autodiff().require_grad();
            let wl = weight.clone().to_device(on).autodiff().require_grad();
            let y = if mine {
                ours(xl.clone(), wl.clone(), [s, s], [p, p])
            } else {
                conv2d(xl.clone(), wl.clone(), None, ConvOptions::new([s, s], [p, p], [1, 1], 1))
            };
            let loss = (y.clone() * y.clone().detach().sin()).sum();
            let grads = loss.backward();
            (
                to_vec(y.detach().without_autodiff()),
                to_vec(xl.grad(&grads).unwrap()),
                to_vec(wl.grad(&grads).unwrap()),
            )
        };
        let (y_ref, dx_ref, dw_ref) = run(false);
        let (y, dx, dw) = run(true);
        let case = format!("{what}: b{b} c{c} o{o} {h}x{w} k{k} s{s} p{p}");
        assert_eq!(y.len(), y_ref.len(), "{case}: output size");
        let scale = |v: &[f32]| v.iter().fold(1.0f32, |m, a| m.max(a.abs()));
        for (name, mine, reference) in [
            ("output", &y, &y_ref),
            ("input gradient", &dx, &dx_ref),
            ("weight gradient", &dw, &dw_ref),
        ] {
            let diff = max_abs_diff(mine, reference);
            assert!(
                diff <= tolerance * scale(reference),
                "{case}: {name} differs by {diff} (largest {})",
                scale(reference)
            );
        }
    }
}

/// The flex CPU convolution (`kernels::flex_conv`: batched im2col + gemm or shifted products,
/// own backward) against burn's convolution and its gradients, plus a batch larger than one chunk
/// of columns and one image per chunk; every layer both ways, and as the convolution chooses.
#[test]
fn flex_convolution_equals_burns_convolution_and_its_gradients() {
    let _g = serial();
    let d = Device::flex();
    d.seed(11);
    let mut cases = CONV_CASES.to_vec();
    // Several images per chunk of columns (7 of 576x64 columns), the last chunk short.
    cases.push((40, 64, 4, 8, 8, 3, 1, 1));
    // One image per chunk (576x1024 columns).
    cases.push((3, 64, 8, 32, 32, 3, 1, 1));
    // The shifted products: two groups of images at stride 2, two groups of the weight gradient.
    cases.push((70, 16, 8, 16, 16, 3, 2, 1));
    cases.push((30, 64, 4, 32, 32, 3, 1, 1));
    // Shallow and deep tap sums in registers: 4 rows and 24 positions a block, with the rows'
    // and positions' remainders.
    cases.push((5, 7, 13, 10, 10, 3, 1, 1));
    cases.push((4, 40, 6, 9, 9, 3, 2, 1));
    use saad_core::kernels::flex_shifted::{ShiftedLayers, with_shifted};
    use saad_core::kernels::flex_tap_sums::{TapSums, available, with_tap_sums};
    let mut ways = vec![
        (ShiftedLayers::WherePaying, TapSums::WherePaying, "flex convolution"),
        (ShiftedLayers::None, TapSums::WherePaying, "flex columns convolution"),
        (ShiftedLayers::All, TapSums::Never, "flex shifted convolution, gemm per tap"),
    ];
    if available() {
        ways.push((ShiftedLayers::All, TapSums::Always, "flex shifted convolution, tap sums"));
    }
    for (layers, sums, what) in ways {
        with_shifted(layers, || {
            with_tap_sums(sums, || {
                check_convolution_against_burns(
                    &d,
                    &cases,
                    saad_core::kernels::flex_conv::conv2d,
                    what,
                    1e-5,
                )
            })
        });
    }
}

/// Winograd F(4x4, 3x3) rounds more than a direct sum: the channel sums run over transformed
/// values, which its coefficients (up to 2.5 in Bᵀ, 8 in Aᵀ) make larger than the inputs and
/// outputs (Barabasz et al. 2020). Measured on the cases below (this machine, 2026-12-05): at
/// most 9.3e-6 of the largest value (the input gradient of the 64 -> 16 case), against 2.7e-6
/// for F(2x2, 3x3) before it.
const WINOGRAD_TOLERANCE: f32 = 2e-5;

/// The flex convolution's Winograd F(4x4, 3x3) path (`kernels::flex_winograd`: 3x3, stride
/// 1, 16 channels or more both ways) against burn's convolution and its gradients: paddings 0, 1
/// and 2, odd output sizes (tiles that hang over the edge), a 1x1 image, chunks of images;
/// and the same layer with the path off gives the same values to float tolerance.
#[test]
fn winograd_convolution_equals_burns_convolution_and_its_gradients() {
    use saad_core::kernels::flex_conv::{conv2d, with_winograd};
    let _g = serial();
    let d = Device::flex();
    d.seed(16);
    let cases = [
        (2, 16, 16, 8, 8, 3, 1, 1),
        (3, 20, 17, 7, 9, 3, 1, 2),
        (2, 16, 24, 5, 6, 3, 1, 0),
        (1, 64, 32, 1, 1, 3, 1, 1),
        // Chunks of 4 images, the last one short.
        (6, 64, 16, 32, 32, 3, 1, 1),
    ];
    check_convolution_against_burns(&d, &cases, conv2d, "winograd convolution", WINOGRAD_TOLERANCE);
    let x = Tensor::<4>::random([2, 16, 9, 7], Distribution::Normal(0.0, 1.0), &d);
    let w = Tensor::<4>::random([16, 16, 3, 3], Distribution::Normal(0.0, 0.3), &d);
    let winograd = to_vec(conv2d(x.clone(), w.clone(), [1, 1], [1, 1]));
    let columns = with_winograd(false, || to_vec(conv2d(x, w, [1, 1], [1, 1])));
    let scale = columns.iter().fold(1.0f32, |m, a| m.max(a.abs()));
    let diff = max_abs_diff(&winograd, &columns);
    assert!(diff > 0.0, "the two paths round differently: the Winograd one did not run");
    assert!(diff <= WINOGRAD_TOLERANCE * scale, "winograd vs columns: {diff} (largest {scale})");
}

/// The wgpu convolution (`kernels::gemm_conv`: columns of the padded input times the weights,
/// burn's backward) against burn's convolution and its gradients, on the software wgpu adapter.
/// Each shape compiles and tunes its own kernels there (~20 s a case), so one case: a stride,
/// padding and odd sizes (padding wider than the image passed too, 22 s more).
#[test]
fn columns_times_weights_convolution_equals_burns_convolution_and_its_gradients() {
    let _g = serial();
    if let Some(d) = wgpu_device() {
        Device::flex().seed(13);
        check_convolution_against_burns(
            &d,
            &[CONV_CASES[2]],
            saad_core::kernels::gemm_conv::conv2d,
            "columns convolution on wgpu",
            1e-5,
        );
    }
}

/// The tiled wgpu convolution (`kernels::tiled_conv`: implicit-GEMM WGSL kernels forward and
/// for both gradients) against burn's convolution and its gradients on the software wgpu
/// adapter: every case above (its three kernels compile once, whatever the shape), more
/// channels than one 64-wide tile on both sides, and weight gradients whose depth is cut into
/// 2 and 8 slices (split-K).
#[test]
fn tiled_convolution_equals_burns_convolution_and_its_gradients() {
    let _g = serial();
    if let Some(d) = wgpu_device() {
        Device::flex().seed(14);
        let mut cases = CONV_CASES.to_vec();
        cases.push((2, 70, 66, 5, 6, 3, 1, 1));
        cases.push((2, 3, 4, 16, 16, 3, 1, 1));
        cases.push((8, 4, 8, 16, 16, 3, 2, 1));
        check_convolution_against_burns(
            &d,
            &cases,
            |x, w, s, p| saad_core::kernels::tiled_conv::conv2d(x, w, None, s, p),
            "tiled convolution on wgpu",
            1e-5,
        );
    }
}

/// The tiled convolution with a bias (added in its forward kernel), on an input and an
/// upstream gradient laid out NHWC in memory (how burn's convolutions leave activations, read
/// through their strides): output and the gradients of input, weight and bias against burn's on
/// flex.
#[test]
fn tiled_convolution_with_bias_on_channels_last_tensors_equals_burns() {
    use saad_core::burn::tensor::module::conv2d;
    use saad_core::burn::tensor::ops::ConvOptions;
    let _g = serial();
    let Some(d) = wgpu_device() else { return };
    let flex = Device::flex();
    flex.seed(15);
    let x = Tensor::<4>::random([2, 5, 7, 6], Distribution::Normal(0.0, 1.0), &flex);
    let weight = Tensor::<4>::random([3, 5, 3, 3], Distribution::Normal(0.0, 0.3), &flex);
    let bias = Tensor::<1>::random([3], Distribution::Normal(0.0, 1.0), &flex);
    let run = |mine: bool| {
        let on = if mine { &d } else { &flex };
        // The same values, stored NHWC: a contiguous [n, h, w, c] viewed as [n, c, h, w].
        let nhwc = x.clone().permute([0, 2, 3, 1]).to_device(on).permute([0, 3, 1, 2]);
        let xl = nhwc.autodiff().require_grad();
        let wl = weight.clone().to_device(on).autodiff().require_grad();
        let bl = bias.clone().to_device(on).autodiff().require_grad();
        let y = if mine {
            saad_core::kernels::tiled_conv::conv2d(
                xl.clone(),
                wl.clone(),
                Some(bl.clone()),
                [2, 1],
                [1, 1],
            )
        } else {
            let options = ConvOptions::new([2, 1], [1, 1], [1, 1], 1);
            conv2d(xl.clone(), wl.clone(), Some(bl.clone()), options)
        };
        let upstream = y.clone().detach().sin().permute([0, 2, 3, 1]);
        let upstream = Tensor::<4>::from_data(upstream.into_data(), on).permute([0, 3, 1, 2]);
        let grads = (y.clone() * upstream).sum().backward();
        [
            to_vec(y.detach().without_autodiff()),
            to_vec(xl.grad(&grads).unwrap()),
            to_vec(wl.grad(&grads).unwrap()),
            to_vec(bl.grad(&grads).unwrap()),
        ]
    };
    let (reference, mine) = (run(false), run(true));
    for (name, (a, b)) in ["output", "input gradient", "weight gradient", "bias gradient"]
        .iter()
        .zip(mine.iter().zip(&reference))
    {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(a, b);
        assert!(diff <= 1e-5 * scale, "tiled convolution with bias: {name} differs by {diff}");
    }
}

/// The models take the flex convolution on flex and burn's elsewhere (and with the kernels off):
/// every architecture's logits are the same either way.
#[test]
fn models_give_the_same_logits_with_and_without_the_flex_convolution() {
    use saad_core::kernels::with_kernels;
    use saad_core::models::ModelSpec;
    let _g = serial();
    let d = Device::flex();
    d.seed(12);
    for arch in
        ["resnet18", "preact-resnet18-w8", "wrn-16-2", "dm-wrn-10-1", "mobilenetv2", "small-cnn-8"]
    {
        let model = ModelSpec::new(arch.parse().unwrap(), 10).init(&d);
        let x = Tensor::<4>::random([3, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &d);
        let ours = to_vec(model.forward(x.clone()));
        let burns = with_kernels(false, || to_vec(model.forward(x)));
        let scale = burns.iter().fold(1.0f32, |m, a| m.max(a.abs()));
        let diff = max_abs_diff(&ours, &burns);
        assert!(diff <= 1e-5 * scale, "{arch}: logits differ by {diff} (largest {scale})");
    }
}
