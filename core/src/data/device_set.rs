//! A dataset resident on the device, and batches drawn from it without host round trips.

use super::image_set::ImageSet;
use crate::rng::SplitMix64;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use burn::tensor::{Distribution, TensorData};

/// Images in [0,1] (`[n, c, h, w]`) and labels (`[n]`) uploaded once.
#[derive(Clone, Debug)]
pub struct DeviceSet {
    /// Images `[n, c, h, w]` in [0,1].
    pub images: Tensor<4>,
    /// Labels `[n]` in `0..num_classes`.
    pub labels: Tensor<1, Int>,
    /// Number of images `n`.
    pub len: usize,
    /// Classes of the dataset.
    pub num_classes: usize,
}

impl DeviceSet {
    /// Uploads `set` to `device`, pixels scaled to [0,1].
    pub fn upload(set: &ImageSet, device: &Device) -> Self {
        let shape = [set.len(), set.channels, set.height, set.width];
        let images = Tensor::from_data(TensorData::new(set.pixels_f32(), shape), device);
        let labels = Tensor::from_data(
            TensorData::new(set.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [set.len()]),
            device,
        );
        Self { images, labels, len: set.len(), num_classes: set.num_classes }
    }

    /// The images and labels at `indices` (a device tensor).
    pub fn gather(&self, indices: Tensor<1, Int>) -> (Tensor<4>, Tensor<1, Int>) {
        (self.images.clone().select(0, indices.clone()), self.labels.clone().select(0, indices))
    }

    /// Consecutive batches of `batch` in dataset order (the last may be smaller).
    pub fn batches_in_order(
        &self,
        batch: usize,
    ) -> impl Iterator<Item = (Tensor<4>, Tensor<1, Int>)> + '_ {
        (0..self.len.div_ceil(batch)).map(move |b| {
            let end = ((b + 1) * batch).min(self.len);
            (self.images.clone().slice(b * batch..end), self.labels.clone().slice(b * batch..end))
        })
    }
}

/// The order of one epoch: a permutation drawn from the run seed and the epoch number, uploaded
/// once; batch `b` is a slice of it.
pub struct EpochOrder {
    /// The permutation of `0..len`, `[len]`.
    pub indices: Tensor<1, Int>,
    /// Images in the dataset.
    pub len: usize,
    /// Batch size (the last batch may be smaller).
    pub batch: usize,
}

impl EpochOrder {
    /// Draws the permutation on the host from `seed` ([`SplitMix64`]) and uploads it.
    pub fn new(len: usize, batch: usize, seed: u64, device: &Device) -> Self {
        let perm = SplitMix64::new(seed).permutation(len);
        let indices = Tensor::from_data(
            TensorData::new(perm.into_iter().map(|i| i as i64).collect::<Vec<_>>(), [len]),
            device,
        );
        Self { indices, len, batch }
    }

    /// Batches in the epoch, the last one possibly partial.
    pub fn num_batches(&self) -> usize {
        self.len.div_ceil(self.batch)
    }

    /// Dataset indices of batch `b`, `[batch]` (fewer for the last batch).
    pub fn batch_indices(&self, b: usize) -> Tensor<1, Int> {
        let end = ((b + 1) * self.batch).min(self.len);
        self.indices.clone().slice(b * self.batch..end)
    }
}

/// Training-time augmentation: random crop with zero padding, optional horizontal flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Zero padding of the random crop (4 for 32x32 CIFAR, 8 for 64x64 Tiny-ImageNet).
    pub pad: usize,
    /// Random horizontal flip (p = 0.5); off for digits, which are not mirror-symmetric.
    pub flip: bool,
}

impl Augment {
    /// Augments a batch `[batch, c, h, w]` with [`random_crop_flip`].
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        random_crop_flip(x, self.pad, self.flip)
    }
}

/// Random crop with zero padding `pad` and (if `flip`) random horizontal flip (p = 0.5), per
/// sample, on the device (torchvision `RandomCrop(size, padding=pad)` +
/// `RandomHorizontalFlip()`). Draws from the device RNG: seed the device first for reproducible
/// batches.
pub fn random_crop_flip(x: Tensor<4>, pad: usize, flip: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let padded = if pad > 0 { x.pad([(pad, pad), (pad, pad)], PadMode::Constant(0.0)) } else { x };
    let span = (2 * pad + 1) as f64;
    let offset = |n: usize| {
        Tensor::<1>::random([n], Distribution::Uniform(0.0, span), &device)
            .floor()
            .clamp(0.0, span - 1.0)
            .int()
    };
    let (oy, ox) = (offset(b), offset(b));
    let flip = Tensor::<1>::random([b], Distribution::Uniform(0.0, 1.0), &device)
        .lower_elem(if flip { 0.5 } else { -1.0 });

    let rows = oy.reshape([b, 1, 1, 1])
        + Tensor::<1, Int>::arange(0..h as i64, &device).reshape([1, 1, h, 1]);
    let rows = rows.expand([b, c, h, w + 2 * pad]);
    let cropped_rows = padded.gather(2, rows);

    let straight =
        Tensor::<1, Int>::arange(0..w as i64, &device).reshape([1, 1, 1, w]).expand([b, 1, 1, w]);
    let mirrored = straight.clone().neg().add_scalar(w as i64 - 1);
    let cols = straight.mask_where(flip.reshape([b, 1, 1, 1]).expand([b, 1, 1, w]), mirrored)
        + ox.reshape([b, 1, 1, 1]);
    cropped_rows.gather(3, cols.expand([b, c, h, w]))
}
