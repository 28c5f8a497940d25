//! The training loop: an interrupted and resumed run equals the uninterrupted one bit for bit.

use saad_core::burn::module::{Module, ModuleVisitor, Param};
use saad_core::burn::prelude::*;
use saad_core::checkpoint::{Checkpoint, DatasetInfo};
use saad_core::data::{DeviceSet, digits};
use saad_core::models::ModelSpec;
use saad_core::train::{LrSchedule, MethodKind, TrainConfig, Trainer};
use saad_tests::{serial, to_vec};

fn setup(device: &Device) -> (ModelSpec, TrainConfig, DatasetInfo, DeviceSet) {
    let (train, _) = digits::load(16).unwrap();
    let data = DeviceSet::upload(&train.take(200), device);
    let mut config = TrainConfig::reference(MethodKind::PGD_AT);
    config.epochs = 3;
    config.batch_size = 64;
    config.attack.steps = 2;
    config.schedule = LrSchedule::Cosine;
    config.seed = 17;
    let info = DatasetInfo { name: "digits".into(), image_size: 16, num_classes: 10 };
    (ModelSpec::new("small-cnn-4".parse().unwrap(), 10), config, info, data)
}

#[test]
fn resume_continues_bit_for_bit() {
    let _g = serial();
    let device = Device::flex();
    let (spec, config, info, data) = setup(&device);

    let mut straight = Trainer::new(spec.clone(), config.clone(), info.clone(), &device);
    let mut losses = Vec::new();
    while !straight.is_done() {
        losses.push(straight.train_epoch(&data, &mut |_, _| {}).loss);
    }

    let mut first = Trainer::new(spec, config, info, &device);
    first.train_epoch(&data, &mut |_, _| {});
    let bytes = first.checkpoint().encode();
    drop(first); // the "kill"
    let ckpt = Checkpoint::decode(&bytes, "checkpoint.saad").unwrap();
    let mut resumed = Trainer::resume(&ckpt, &device, "checkpoint.saad").unwrap();
    assert_eq!(resumed.epochs_done, 1);
    let mut resumed_losses = vec![losses[0]];
    while !resumed.is_done() {
        resumed_losses.push(resumed.train_epoch(&data, &mut |_, _| {}).loss);
    }
    assert_eq!(losses, resumed_losses);
    // Every weight and BatchNorm statistic is identical (record bytes also hold ids, which differ).
    let values = |t: &Trainer| {
        t.model.named_tensors().into_iter().map(|t| (t.key, to_vec(t.tensor))).collect::<Vec<_>>()
    };
    assert!(values(&straight) == values(&resumed), "weights differ after resume");
    // And training did something.
    assert!(losses[2] < losses[0], "loss did not fall: {losses:?}");
}

/// The divergence watch, kept on the device and read with the epoch's statistics: with a NaN
/// learning rate the first batch's loss is finite and its step poisons the weights, so every
/// later batch is non-finite: first bad batch 2, all but one batch bad, every weight and running statistic NaN (all but
/// the three BatchNorm batch counters of small-cnn-4). A sane
/// epoch reports nothing.
#[test]
fn divergence_is_located_at_its_first_batch() {
    let _g = serial();
    for (_, device) in saad_tests::devices() {
        let (spec, mut config, info, data) = setup(&device);
        let mut fine = Trainer::new(spec.clone(), config.clone(), info.clone(), &device);
        assert_eq!(fine.train_epoch(&data, &mut |_, _| {}).divergence, None);
        config.lr = f64::NAN;
        let mut t = Trainer::new(spec, config, info, &device);
        let stats = t.train_epoch(&data, &mut |_, _| {});
        let d = stats.divergence.expect("a NaN learning rate diverges");
        let params = float_params(&t.model);
        assert_eq!(d.batches, 4); // 200 images in batches of 64
        assert_eq!(d.first_batch, Some(2), "{d:?}");
        assert_eq!(d.bad_batches, 3, "{d:?}");
        assert_eq!(d.nonfinite_weights, params - 3, "{d:?}");
    }
}

/// Float values a model's visitor reaches (parameters and BatchNorm running statistics).
fn float_params(model: &saad_core::models::Net) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0 += p.val().dims().iter().product::<usize>();
        }
    }
    let mut c = Count(0);
    model.visit(&mut c);
    c.0
}
