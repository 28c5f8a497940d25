//! Loading a teacher: a saad checkpoint, or a PyTorch state dict as safetensors with its
//! architecture named by `--teacher-arch`.

use super::read_checkpoint;
use crate::fsutil;
use anyhow::{Context, Result, bail};
use saad_core::burn::prelude::*;
use saad_core::import::{load_state_dict, parse_safetensors};
use saad_core::models::{Arch, ModelSpec, Net};
use std::path::Path;

/// The teacher at `path` for a dataset of `num_classes` classes, in eval mode.
pub fn load(path: &Path, arch: Option<&Arch>, num_classes: usize, device: &Device) -> Result<(Net, ModelSpec)> {
    let source = path.display().to_string();
    let bytes = fsutil::read(path)?;
    let (model, spec) = if bytes.starts_with(b"SAADCKPT") {
        let ckpt = read_checkpoint(path)?;
        (ckpt.load_model(device, &source)?, ckpt.header.model)
    } else if path.extension().is_some_and(|e| e == "safetensors") {
        let arch = arch.with_context(|| format!("{source} is a PyTorch state dict: name its architecture with --teacher-arch (e.g. dm-wrn-28-10)"))?;
        let spec = ModelSpec::new(arch.clone(), num_classes);
        (load_state_dict(&spec, parse_safetensors(&bytes, &source)?, device, &source)?, spec)
    } else {
        bail!("{source}: not a saad checkpoint nor a .safetensors state dict (PyTorch .pt files: convert with safetensors.torch.save_file)");
    };
    if spec.num_classes != num_classes {
        bail!("{source}: the teacher has {} classes, the data {num_classes}", spec.num_classes);
    }
    Ok((model.valid(), spec))
}
