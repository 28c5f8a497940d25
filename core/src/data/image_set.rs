//! An in-memory labelled image set: 8-bit pixels, NCHW, the common form of every dataset.

use crate::error::InputError;

/// Images as 8-bit NCHW (`n * channels * height * width` bytes) with one label each.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Short name used in logs and checkpoints (`digits`, `cifar10`, ...).
    pub name: String,
    /// Pixel values 0..=255, NCHW, [`ImageSet::image_len`] bytes per image.
    pub pixels: Vec<u8>,
    /// One label per image, in `0..num_classes`.
    pub labels: Vec<u32>,
    /// Channels per image.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes (every label is below it).
    pub num_classes: usize,
    /// One name per class (index = label).
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Checks the invariants every reader promises (sizes agree, labels in range).
    pub fn validate(&self, source: &str) -> Result<(), InputError> {
        if self.pixels.len() != self.len() * self.image_len() {
            return Err(InputError::new(
                source,
                format!(
                    "{} bytes of pixels for {} images of {} bytes",
                    self.pixels.len(),
                    self.len(),
                    self.image_len()
                ),
            ));
        }
        if let Some((i, &l)) =
            self.labels.iter().enumerate().find(|(_, l)| **l as usize >= self.num_classes)
        {
            return Err(InputError::new(
                source,
                format!("image {i} has label {l}, outside 0..{}", self.num_classes),
            ));
        }
        Ok(())
    }

    /// The first `n` images (all when `n >= len`).
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone()
        }
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let len = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
        }
        ImageSet {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.clone()
        }
    }

    /// Pixels scaled to [0, 1] as f32, NCHW.
    pub fn pixels_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }
}
