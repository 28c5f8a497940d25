//! CIFAR-10 and CIFAR-100 in their official binary formats
//! (<https://www.cs.toronto.edu/~kriz/cifar.html>, "binary version").
//!
//! CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`;
//! each record is 1 label byte (0..9) and 3072 pixel bytes (the red, green and blue 32x32 planes,
//! row-major). CIFAR-100 (`cifar-100-binary/`): `train.bin`, `test.bin`; each record is a coarse
//! label byte (0..19), a fine label byte (0..99) and the same 3072 pixel bytes. We train on the
//! fine labels.

use super::image_set::ImageSet;
use crate::error::InputError;

const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 class names, indexed by label.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Which of the two official layouts a file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// CIFAR-10: one label byte per record, 10 classes.
    Cifar10,
    /// CIFAR-100: a coarse and a fine label byte per record; the 100 fine classes are used.
    Cifar100,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    /// Classes of the labels used: 10, or the 100 fine classes.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    /// Dataset name used in logs and checkpoints (`cifar10`, `cifar100`).
    pub fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar10",
            CifarKind::Cifar100 => "cifar100",
        }
    }

    /// The official file names of the (train, test) split, relative to the extracted folder.
    pub fn files(self) -> (Vec<&'static str>, &'static str) {
        match self {
            CifarKind::Cifar10 => (
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            CifarKind::Cifar100 => (vec!["train.bin"], "test.bin"),
        }
    }

    /// The folder the official archive extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            CifarKind::Cifar100 => "cifar-100-binary",
        }
    }

    /// Download address of the official binary archive.
    pub fn archive_url(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            CifarKind::Cifar100 => "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        }
    }

    /// MD5 of the official archive, as published on the CIFAR page.
    pub fn archive_md5(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "c32a1d4ab5d03f1284b67883e8d87530",
            CifarKind::Cifar100 => "03b5dce01913d631647c71ecec9e9cb8",
        }
    }
}

/// Parses one binary batch file. `source` names the file in errors.
pub fn parse(bytes: &[u8], kind: CifarKind, source: &str) -> Result<ImageSet, InputError> {
    let record = kind.label_bytes() + PIXELS;
    if bytes.is_empty() {
        return Err(InputError::new(source, "the file is empty"));
    }
    if !bytes.len().is_multiple_of(record) {
        return Err(InputError::new(
            source,
            format!(
                "{} bytes is not a whole number of {record}-byte {} records ({} complete, {} bytes left over): the file is truncated or not a {} binary batch",
                bytes.len(),
                kind.name(),
                bytes.len() / record,
                bytes.len() % record,
                kind.name()
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        // CIFAR-100 keeps the fine label in the second byte.
        let label = rec[kind.label_bytes() - 1] as u32;
        if label as usize >= kind.num_classes() {
            return Err(InputError::new(
                source,
                format!(
                    "record {i} (byte offset {}) has label {label}, outside 0..{}",
                    i * record,
                    kind.num_classes()
                ),
            ));
        }
        labels.push(label);
        pixels.extend_from_slice(&rec[kind.label_bytes()..]);
    }
    let class_names = match kind {
        CifarKind::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        CifarKind::Cifar100 => (0..100).map(|i| format!("class{i}")).collect(),
    };
    Ok(ImageSet {
        name: kind.name().into(),
        pixels,
        labels,
        channels: 3,
        height: 32,
        width: 32,
        num_classes: kind.num_classes(),
        class_names,
    })
}

/// Concatenates batches of the same dataset (the five CIFAR-10 training batches).
pub fn concat(parts: Vec<ImageSet>) -> ImageSet {
    let mut iter = parts.into_iter();
    let mut first = iter.next().expect("at least one part");
    for p in iter {
        first.pixels.extend(p.pixels);
        first.labels.extend(p.labels);
    }
    first
}

/// Writes images in the official binary record format (used by tests and by the page's
/// example files): label byte(s), then the image's pixels channel by channel. CIFAR-100 records
/// get coarse label 0. A set of 3x32x32 images is the official format; other sizes keep the
/// record layout at their own size (`saad data export` of the digits at 16x16).
pub fn encode(set: &ImageSet, kind: CifarKind) -> Vec<u8> {
    let per_image = set.image_len();
    let mut out = Vec::with_capacity(set.len() * (kind.label_bytes() + per_image));
    for (i, &l) in set.labels.iter().enumerate() {
        if kind == CifarKind::Cifar100 {
            out.push(0);
        }
        out.push(l as u8);
        out.extend_from_slice(&set.pixels[i * per_image..(i + 1) * per_image]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(kind: CifarKind, labels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            if kind == CifarKind::Cifar100 {
                out.push(7);
            }
            out.push(l);
            out.extend((0..PIXELS).map(|p| ((p + i) % 256) as u8));
        }
        out
    }

    #[test]
    fn parses_cifar10_records() {
        let set =
            parse(&records(CifarKind::Cifar10, &[3, 9, 0]), CifarKind::Cifar10, "t.bin").unwrap();
        assert_eq!(set.labels, vec![3, 9, 0]);
        assert_eq!(set.pixels.len(), 3 * PIXELS);
        // Red plane first: pixel (c=0, y=0, x=1) of image 1 is byte 1 of its pixel block.
        assert_eq!(set.pixels[PIXELS + 1], 2);
        assert_eq!(encode(&set, CifarKind::Cifar10), records(CifarKind::Cifar10, &[3, 9, 0]));
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let set = parse(&records(CifarKind::Cifar100, &[42, 99]), CifarKind::Cifar100, "train.bin")
            .unwrap();
        assert_eq!(set.labels, vec![42, 99]);
        assert_eq!(set.num_classes, 100);
    }

    #[test]
    fn truncated_and_bad_labels_are_named() {
        let mut bytes = records(CifarKind::Cifar10, &[1, 2]);
        bytes.truncate(bytes.len() - 5);
        let e = parse(&bytes, CifarKind::Cifar10, "data_batch_1.bin").unwrap_err().to_string();
        assert!(e.starts_with("data_batch_1.bin:") && e.contains("truncated"), "{e}");
        let e = parse(&records(CifarKind::Cifar10, &[1, 10]), CifarKind::Cifar10, "x.bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 1") && e.contains("label 10"), "{e}");
        assert!(parse(&[], CifarKind::Cifar10, "e.bin").unwrap_err().to_string().contains("empty"));
    }
}
