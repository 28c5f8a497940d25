//! On-device augmentation against a host reference, and the device-resident batches.

use saad_core::burn::prelude::*;
use saad_core::burn::tensor::TensorData;
use saad_core::data::{DeviceSet, EpochOrder, digits, random_crop_flip};
use saad_tests::{devices, serial, to_vec};

/// Every augmented image must be exactly one of the (2p+1)^2 * 2 zero-padded crops/flips of its
/// source, and over a batch both flips and several offsets must occur.
#[test]
fn random_crop_flip_produces_padded_crops_and_flips() {
    let _g = serial();
    let (b, c, h, w, pad) = (16usize, 2usize, 5usize, 6usize, 2usize);
    // Distinct positive values so that every crop is identifiable; zeros only from padding.
    let src: Vec<f32> = (0..b * c * h * w).map(|i| 1.0 + i as f32).collect();
    for (name, device) in devices() {
        device.seed(9);
        let x = Tensor::<4>::from_data(TensorData::new(src.clone(), [b, c, h, w]), &device);
        let out = to_vec(random_crop_flip(x, pad, true));
        let mut seen_flip = [false; 2];
        let mut offsets = std::collections::HashSet::new();
        for n in 0..b {
            let at = |ch: usize, y: i64, x: i64| -> f32 {
                if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
                    0.0
                } else {
                    src[((n * c + ch) * h + y as usize) * w + x as usize]
                }
            };
            let got = &out[n * c * h * w..(n + 1) * c * h * w];
            let mut found = None;
            for oy in 0..=2 * pad as i64 {
                for ox in 0..=2 * pad as i64 {
                    for flip in [false, true] {
                        let ok = (0..c).all(|ch| {
                            (0..h).all(|y| {
                                (0..w).all(|xx| {
                                    let sx = if flip { w - 1 - xx } else { xx } as i64;
                                    got[(ch * h + y) * w + xx]
                                        == at(ch, y as i64 + oy - pad as i64, sx + ox - pad as i64)
                                })
                            })
                        });
                        if ok && found.is_none() {
                            found = Some((oy, ox, flip));
                        }
                    }
                }
            }
            let (oy, ox, flip) = found
                .unwrap_or_else(|| panic!("{name}: sample {n} is not a padded crop of its source"));
            seen_flip[flip as usize] = true;
            offsets.insert((oy, ox));
        }
        assert!(seen_flip[0] && seen_flip[1], "{name}: flips {seen_flip:?} over {b} samples");
        assert!(offsets.len() >= 4, "{name}: only {} distinct offsets", offsets.len());
    }
}

#[test]
fn epoch_order_covers_every_sample_once() {
    let _g = serial();
    let (train, _) = digits::load(8).unwrap();
    let device = Device::flex();
    let set = DeviceSet::upload(&train, &device);
    let order = EpochOrder::new(set.len, 100, 3, &device);
    let mut all: Vec<i64> = (0..order.num_batches())
        .flat_map(|b| order.batch_indices(b).into_data().iter::<i64>().collect::<Vec<_>>())
        .collect();
    assert_eq!(order.num_batches(), 15);
    all.sort();
    assert_eq!(all, (0..set.len as i64).collect::<Vec<_>>());
    let (x, y) = set.gather(order.batch_indices(14));
    assert_eq!(x.dims(), [38, 3, 8, 8]);
    assert_eq!(y.dims(), [38]);
}
