//! `saad data`: check the local files of a dataset, or download and verify an official archive.

use crate::datasets::{self, DataArgs, DatasetName};
use anyhow::{Context, Result, bail};
use saad_core::data::cifar::CifarKind;
use std::path::PathBuf;
use std::process::Command;

#[derive(Clone, Debug, clap::Args)]
pub struct DataCommand {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum DataAction {
    /// Read a dataset and print its size (checks that the files are complete).
    Check(DataArgs),
    /// Write a split in the CIFAR-10 binary format (32x32x3 images, at most 256 classes), e.g.
    /// the rendered digits for tools that read CIFAR files (the page, PyTorch scripts); the
    /// digits at another --image-size keep the record layout at that size (a label byte, then
    /// 3 x size x size pixels; bench/autoattack_reference.py takes the size).
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// train or test.
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Download the official CIFAR archive with curl, verify its MD5, extract it into --data-dir.
    Download {
        #[arg(value_enum)]
        name: DatasetName,
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd.action {
        DataAction::Check(args) => {
            let (train, test) = datasets::load(&args)?;
            println!(
                "{}: {} train and {} test images, {}x{}x{}, {} classes",
                args.data.as_str(),
                train.len(),
                test.len(),
                train.channels,
                train.height,
                train.width,
                train.num_classes
            );
            Ok(())
        }
        DataAction::Download { name, data_dir } => download(name, &data_dir),
        DataAction::Export { data, split, out } => {
            let (train, test) = datasets::load(&data)?;
            let set = match split.as_str() {
                "train" => train,
                "test" => test,
                other => bail!("--split {other:?}: expected train or test"),
            };
            let cifar_size = (set.channels, set.height, set.width) == (3, 32, 32);
            let digits_size = set.name == "digits" && set.channels == 3 && set.height == set.width;
            if !(cifar_size || digits_size) || set.num_classes > 256 {
                bail!(
                    "the CIFAR-10 format holds 3x32x32 images with byte labels (the digits also at their --image-size); this split is {}x{}x{} with {} classes",
                    set.channels,
                    set.height,
                    set.width,
                    set.num_classes
                );
            }
            crate::fsutil::write_atomic(
                &out,
                &saad_core::data::cifar::encode(&set, CifarKind::Cifar10),
            )?;
            println!("{} images -> {}", set.len(), out.display());
            Ok(())
        }
    }
}

fn download(name: DatasetName, dir: &std::path::Path) -> Result<()> {
    let kind = match name {
        DatasetName::Cifar10 => CifarKind::Cifar10,
        DatasetName::Cifar100 => CifarKind::Cifar100,
        DatasetName::Digits => bail!("the digits are built in; nothing to download"),
        DatasetName::TinyImagenet => bail!(
            "download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into {} (no checksum is published for it)",
            dir.display()
        ),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let url = kind.archive_url();
    let archive = dir.join(url.rsplit('/').next().unwrap());
    eprintln!("downloading {url}");
    let status = Command::new("curl")
        .args(["-fL", "--retry", "3", "-o"])
        .arg(&archive)
        .arg(url)
        .status()
        .context("cannot run curl (install it, or download the archive by hand)")?;
    if !status.success() {
        bail!(
            "curl failed for {url} ({status}); download it by hand and extract it into {}",
            dir.display()
        );
    }
    let bytes = crate::fsutil::read(&archive)?;
    let digest = format!("{:x}", md5::compute(&bytes));
    if digest != kind.archive_md5() {
        bail!(
            "{}: MD5 {digest}, expected {} (the download is damaged; delete it and retry)",
            archive.display(),
            kind.archive_md5()
        );
    }
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        bail!("tar could not extract {}", archive.display());
    }
    eprintln!("verified (MD5 {digest}) and extracted into {}", dir.join(kind.folder()).display());
    Ok(())
}
