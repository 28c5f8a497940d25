//! `saad import`: a PyTorch checkpoint (RobustBench, DM-Improves-AT, or any state dict of our
//! architectures) into a saad model file usable as a teacher, by `saad eval` and by the page.

use super::teacher;
use crate::fsutil::write_atomic;
use anyhow::{Result, bail};
use saad_core::burn::prelude::*;
use saad_core::checkpoint::{Checkpoint, DatasetInfo};
use saad_core::models::zoo;
use serde_json::json;
use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// Architecture id (e.g. dm-wrn-28-10, wrn-34-10) or published model id
    /// (e.g. Gowal2021Improving_28_10_ddpm_100m; `saad import --list` shows them).
    #[arg(long, required_unless_present = "list")]
    pub arch: Option<String>,
    /// The PyTorch checkpoint (.pt/.pth, zip or legacy; or .safetensors).
    #[arg(long, required_unless_present = "list")]
    pub checkpoint: Option<PathBuf>,
    /// Output saad model file.
    #[arg(long, required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Classes (for an architecture id; published ids know theirs).
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Dataset the model is for (digits, cifar10, cifar100, tiny-imagenet); published ids know theirs.
    #[arg(long)]
    pub dataset: Option<String>,
    /// List the published model ids and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: ImportArgs) -> Result<()> {
    if args.list {
        for e in zoo::entries() {
            println!("{:<42} {:<14} {:<14} {}", e.id, e.dataset, e.spec.arch.to_string(), e.note);
        }
        return Ok(());
    }
    let (Some(arch), Some(path), Some(out)) = (args.arch, args.checkpoint, args.out) else {
        bail!("--arch, --checkpoint and --out are required")
    };
    let entry = zoo::entries().into_iter().find(|e| e.id.eq_ignore_ascii_case(&arch));
    let dataset =
        args.dataset.or(entry.map(|e| e.dataset.to_string())).unwrap_or_else(|| "cifar10".into());
    let (model, spec) = teacher::import(&path, &arch, args.classes, &dataset, &Device::flex())?;
    let image_size = if dataset == "tiny-imagenet" { 64 } else { 32 };
    let mut notes = serde_json::Map::new();
    notes.insert("imported_from".into(), json!(path.display().to_string()));
    notes.insert("id".into(), json!(arch));
    let dataset = DatasetInfo { name: dataset, image_size, num_classes: spec.num_classes };
    let ckpt = Checkpoint::of_model(&model, spec.clone(), dataset, notes);
    write_atomic(&out, &ckpt.encode())?;
    println!(
        "{} -> {} ({spec}, {} parameters)",
        path.display(),
        out.display(),
        model.num_trainable_params()
    );
    Ok(())
}
