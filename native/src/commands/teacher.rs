//! Loading a teacher: a saad checkpoint, or a PyTorch state dict (`.pt`/`.pth` or
//! `.safetensors`) with its architecture named by `--teacher-arch` (an architecture id such as
//! `dm-wrn-28-10`, or a published model id such as `Gowal2021Improving_28_10_ddpm_100m`).

use super::read_checkpoint;
use crate::{fsutil, pytorch};
use anyhow::{Context, Result, anyhow, bail};
use saad_core::burn::module::Module;
use saad_core::burn::prelude::*;
use saad_core::data::{DeviceSet, ImageSet};
use saad_core::health::{self, TeacherVerdict};
use saad_core::import::{StateDict, load_state_dict, parse_safetensors};
use saad_core::models::{Arch, ModelSpec, Net, Normalization, zoo};
use std::path::Path;

/// A PyTorch state dict read from `.pt`/`.pth` or `.safetensors`, if `path` is one.
pub fn read_state_dict(path: &Path) -> Result<Option<StateDict>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    Ok(match ext.as_str() {
        "pt" | "pth" | "bin" | "ckpt" => Some(pytorch::read_pt(path)?),
        "safetensors" => {
            Some(parse_safetensors(&fsutil::read(path)?, &path.display().to_string())?)
        }
        _ => None,
    })
}

/// A PyTorch checkpoint as a model of the architecture (or published model) `id`. For an
/// architecture id, a DM WideResNet normalises with the statistics of `dataset`.
pub fn import(
    path: &Path,
    id: &str,
    num_classes: usize,
    dataset: &str,
    device: &Device,
) -> Result<(Net, ModelSpec)> {
    let source = path.display().to_string();
    let dict = read_state_dict(path)?.ok_or_else(|| {
        anyhow!("{source}: expected a .pt, .pth or .safetensors PyTorch state dict")
    })?;
    let mut spec = zoo::resolve(id, num_classes).map_err(|e| anyhow!("{e}"))?;
    if spec.normalization.is_none() && matches!(spec.arch, Arch::DmWideResNet { .. }) {
        spec.normalization = Normalization::for_dataset(dataset);
    }
    Ok((load_state_dict(&spec, dict, device, &source)?, spec))
}

/// The teacher at `path` for `dataset` of `num_classes` classes, in eval mode.
pub fn load(
    path: &Path,
    arch: Option<&str>,
    dataset: &str,
    num_classes: usize,
    device: &Device,
) -> Result<(Net, ModelSpec)> {
    let source = path.display().to_string();
    let (model, spec) = if fsutil::read(path)?.starts_with(b"SAADCKPT") {
        let ckpt = read_checkpoint(path)?;
        (ckpt.load_model(device, &source)?, ckpt.header.model)
    } else {
        let arch = arch.with_context(|| {
            format!("{source} is not a saad checkpoint: if it is a PyTorch state dict, name its architecture with --teacher-arch (e.g. dm-wrn-28-10 or Gowal2021Improving_28_10_ddpm_100m)")
        })?;
        import(path, arch, num_classes, dataset, device)?
    };
    if spec.num_classes != num_classes {
        bail!("{source}: the teacher has {} classes, the data {num_classes}", spec.num_classes);
    }
    Ok((model.valid(), spec))
}

/// Probes a loaded teacher on the first training images before a run starts: NaN or infinite
/// weights or logits, or the same logits for every image, are refused (a distillation from it
/// would waste the whole run); accuracy about chance is warned about.
pub fn check(teacher: &Net, path: &Path, train: &ImageSet, device: &Device) -> Result<()> {
    let probe_set = DeviceSet::upload(&train.take(PROBE_IMAGES), device);
    let (x, y) =
        probe_set.batches_in_order(PROBE_IMAGES).next().context("the training set is empty")?;
    match health::probe(teacher, x, y).teacher_verdict() {
        TeacherVerdict::Fine => Ok(()),
        TeacherVerdict::Warn(why) => {
            eprintln!("warning: the teacher {}: {why}", path.display());
            Ok(())
        }
        TeacherVerdict::Refuse(why) => bail!(
            "the teacher {} is not usable: {why}. Check that the file is the trained model you meant (`saad eval --checkpoint {}` shows its accuracy)",
            path.display(),
            path.display()
        ),
    }
}

/// Images the teacher check runs on.
const PROBE_IMAGES: usize = 256;
