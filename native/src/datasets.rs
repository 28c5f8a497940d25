//! Reads the datasets from their official files (the parsing is in `saad_core::data`).

use crate::fsutil;
use anyhow::{Result, bail};
use saad_core::data::cifar::{self, CifarKind};
use saad_core::data::{Augment, ImageSet, digits, tiny_imagenet};
use std::path::{Path, PathBuf};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// The built-in handwritten digits (offline, embedded).
    Digits,
    Cifar10,
    Cifar100,
    TinyImagenet,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Digits => "digits",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
            DatasetName::TinyImagenet => "tiny-imagenet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DatasetName::Digits,
            DatasetName::Cifar10,
            DatasetName::Cifar100,
            DatasetName::TinyImagenet,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// The training augmentation of this dataset: crop padding 4 at 32x32 (8 at 64x64, scaled
    /// for other digit sizes), horizontal flip except for digits (not mirror-symmetric).
    pub fn augment(self, image_size: usize) -> Augment {
        Augment { pad: (image_size / 8).max(1), flip: self != DatasetName::Digits }
    }
}

/// Where and what to read.
#[derive(Clone, Debug, clap::Args)]
pub struct DataArgs {
    /// Dataset: the built-in digits, or an official dataset read from --data-dir.
    #[arg(long, value_enum, default_value = "digits")]
    pub data: DatasetName,
    /// Folder holding the extracted official files (e.g. `cifar-10-batches-bin/`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Rendering size of the built-in digits (square, 3 channels).
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
}

/// Which part of a dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    /// The test set (Tiny-ImageNet: the labelled validation set).
    Test,
}

/// (train, test) for the chosen dataset.
/// The dataset a checkpoint was trained on, read from `data_dir` (its name and image size come
/// from the checkpoint `path`).
pub fn of_checkpoint(
    info: &saad_core::checkpoint::DatasetInfo,
    data_dir: &Path,
    path: &Path,
) -> Result<DataArgs> {
    let Some(data) = DatasetName::parse(&info.name) else {
        bail!("unknown dataset {:?} in {}", info.name, path.display());
    };
    Ok(DataArgs { data, data_dir: data_dir.to_path_buf(), image_size: info.image_size })
}

pub fn load(args: &DataArgs) -> Result<(ImageSet, ImageSet)> {
    Ok((load_split(args, Split::Train)?, load_split(args, Split::Test)?))
}

/// One split, reading only its files (evaluation never touches the training files: on
/// Tiny-ImageNet those are 100,000 JPEGs).
pub fn load_split(args: &DataArgs, split: Split) -> Result<ImageSet> {
    match args.data {
        DatasetName::Digits => {
            let (train, test) = digits::load(args.image_size)?;
            Ok(if split == Split::Train { train } else { test })
        }
        DatasetName::Cifar10 => load_cifar(&args.data_dir, CifarKind::Cifar10, split),
        DatasetName::Cifar100 => load_cifar(&args.data_dir, CifarKind::Cifar100, split),
        DatasetName::TinyImagenet => load_tiny_imagenet(&args.data_dir, split),
    }
}

/// The image size of a dataset as loaded with `args`.
pub fn image_size(args: &DataArgs) -> usize {
    match args.data {
        DatasetName::Digits => args.image_size,
        DatasetName::Cifar10 | DatasetName::Cifar100 => 32,
        DatasetName::TinyImagenet => tiny_imagenet::SIZE,
    }
}

/// The folder holding the files: `dir/<official folder>` if present, else `dir` itself.
fn resolve(dir: &Path, folder: &str, probe: &str) -> PathBuf {
    let nested = dir.join(folder);
    if nested.join(probe).exists() { nested } else { dir.to_path_buf() }
}

fn missing(path: &Path, name: &str, url: &str, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is missing. Download {url} and extract it into {} (or run `saad data download {name} --data-dir {}`)",
        path.display(),
        dir.display(),
        dir.display()
    )
}

pub fn load_cifar(dir: &Path, kind: CifarKind, split: Split) -> Result<ImageSet> {
    let (train_files, test_file) = kind.files();
    let root = resolve(dir, kind.folder(), test_file);
    let read = |name: &str| -> Result<ImageSet> {
        let path = root.join(name);
        if !path.exists() {
            return Err(missing(&path, kind.name(), kind.archive_url(), dir));
        }
        let bytes = fsutil::read(&path)?;
        Ok(cifar::parse(&bytes, kind, &path.display().to_string())?)
    };
    match split {
        Split::Train => {
            Ok(cifar::concat(train_files.iter().map(|f| read(f)).collect::<Result<Vec<_>>>()?))
        }
        Split::Test => read(test_file),
    }
}

/// Decodes `files` on all cores, keeping their order.
fn decode_all(files: &[PathBuf]) -> Result<Vec<u8>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<Vec<u8>> {
                    let mut out = Vec::new();
                    for f in part {
                        let bytes = fsutil::read(f)?;
                        out.extend(tiny_imagenet::decode_image(&bytes, &f.display().to_string())?);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("decoder thread")?);
        }
        Ok(all)
    })
}

pub fn load_tiny_imagenet(dir: &Path, split: Split) -> Result<ImageSet> {
    let url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip";
    let root = resolve(dir, "tiny-imagenet-200", "wnids.txt");
    let wnids_path = root.join("wnids.txt");
    if !wnids_path.exists() {
        return Err(missing(&wnids_path, "tiny-imagenet", url, dir));
    }
    let wnids =
        tiny_imagenet::parse_wnids(&read_text(&wnids_path)?, &wnids_path.display().to_string())?;
    let make = |pixels: Vec<u8>, labels: Vec<u32>| ImageSet {
        name: "tiny-imagenet".into(),
        pixels,
        labels,
        channels: 3,
        height: tiny_imagenet::SIZE,
        width: tiny_imagenet::SIZE,
        num_classes: wnids.len(),
        class_names: wnids.clone(),
    };
    if split == Split::Test {
        let ann_path = root.join("val").join("val_annotations.txt");
        if !ann_path.exists() {
            return Err(missing(&ann_path, "tiny-imagenet", url, dir));
        }
        let ann = tiny_imagenet::parse_val_annotations(
            &read_text(&ann_path)?,
            &wnids,
            &ann_path.display().to_string(),
        )?;
        let val_files: Vec<PathBuf> =
            ann.iter().map(|(f, _)| root.join("val").join("images").join(f)).collect();
        return Ok(make(decode_all(&val_files)?, ann.iter().map(|(_, l)| *l).collect()));
    }
    let mut train_files = Vec::new();
    let mut train_labels = Vec::new();
    for (label, wnid) in wnids.iter().enumerate() {
        let folder = root.join("train").join(wnid).join("images");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|_| missing(&folder, "tiny-imagenet", url, dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg")
                })
            })
            .collect();
        if files.is_empty() {
            bail!("{} holds no JPEG images", folder.display());
        }
        files.sort();
        train_labels.extend(std::iter::repeat_n(label as u32, files.len()));
        train_files.extend(files);
    }
    Ok(make(decode_all(&train_files)?, train_labels))
}

/// A text file; unreadable or non-UTF-8 content is reported with the file's path.
fn read_text(path: &Path) -> Result<String> {
    let bytes = fsutil::read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a text file (invalid UTF-8 at byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
