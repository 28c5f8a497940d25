//! `saad export`: a checkpoint as a PyTorch state dict (safetensors) or as weights only.

use super::read_checkpoint;
use crate::fsutil::write_atomic;
use anyhow::Result;
use saad_core::burn::prelude::*;
use saad_core::checkpoint::Checkpoint;
use saad_core::export::{state_dict, to_safetensors};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// PyTorch state dict (`model.load_state_dict(safetensors.torch.load_file(path))`).
    Safetensors,
    /// A saad checkpoint without optimizer state (for `saad eval`, teachers, the page).
    Saad,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: ExportFormat,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let ckpt = read_checkpoint(&args.checkpoint)?;
    let bytes = match args.format {
        ExportFormat::Safetensors => {
            let model = ckpt.load_model(&Device::flex(), &args.checkpoint.display().to_string())?;
            let meta = [
                ("arch", ckpt.header.model.arch.to_string()),
                ("num_classes", ckpt.header.model.num_classes.to_string()),
                ("dataset", ckpt.header.dataset.name.clone()),
                ("producer", format!("saad {}", env!("CARGO_PKG_VERSION"))),
            ];
            to_safetensors(&state_dict(&model), &meta)
        }
        ExportFormat::Saad => {
            let mut header = ckpt.header.clone();
            header.averaged_count = 0;
            Checkpoint {
                header,
                model: ckpt.model.clone(),
                optimizer: Vec::new(),
                averaged: Vec::new(),
            }
            .encode()
        }
    };
    write_atomic(&args.out, &bytes)?;
    println!("{}", args.out.display());
    Ok(())
}
