//! Datasets: parsers of the official formats (bytes in), the built-in digits, and the
//! device-resident batches with on-device augmentation.

pub mod cifar;
pub mod device_set;
pub mod digits;
pub mod image_set;
pub mod tiny_imagenet;

pub use device_set::{Augment, DeviceSet, EpochOrder, random_crop_flip};
pub use image_set::ImageSet;
