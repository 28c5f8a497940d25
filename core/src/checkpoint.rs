//! The `.saad` checkpoint container: everything needed to rebuild, evaluate or resume a model.
//!
//! Layout (little endian): `b"SAADCKPT"`, `u32` format version, then four length-prefixed
//! (`u64`) sections: a JSON header ([`Header`]), the model weights (burnpack bytes, burn's
//! `ModuleRecord`), the optimizer state (burnpack bytes; empty for a plain model file), and the
//! running weight average (burnpack; empty when weight averaging has not started). Version 2
//! follows each section with its CRC-32, so that a file damaged on disk or in transfer is
//! reported as such before any of it is interpreted; version 1 files (no checksums) are still
//! read. Native code writes it atomically (temporary file + rename).

use crate::error::InputError;
use crate::models::{ModelSpec, Net};
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"SAADCKPT";
/// The version written; versions 1 (no checksums) and 2 are read.
const VERSION: u32 = 2;
const SECTIONS: [&str; 4] = ["header", "model weights", "optimizer state", "weight average"];

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// Where the data came from, so evaluation and resume use the same kind of input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset name (`digits`, `cifar10`, `cifar100`, `tiny-imagenet`).
    pub name: String,
    /// Side of the square input images in pixels.
    pub image_size: usize,
    /// Classes of the dataset.
    pub num_classes: usize,
}

/// The JSON header of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The architecture, rebuilt before the weights are loaded.
    pub model: ModelSpec,
    /// The data the model was trained on.
    pub dataset: DatasetInfo,
    /// Completed epochs.
    pub epochs_done: usize,
    /// The training configuration (method-specific JSON), for resume and for the record.
    pub train_config: serde_json::Value,
    /// One JSON object per completed epoch (the same lines as the JSONL log).
    pub history: Vec<serde_json::Value>,
    /// Free-form notes: the teacher's path, whether the weights are an average, ...
    #[serde(default)]
    pub notes: serde_json::Map<String, serde_json::Value>,
    /// Snapshots in the weight average (0: none).
    #[serde(default)]
    pub averaged_count: usize,
}

/// A decoded checkpoint.
pub struct Checkpoint {
    /// The JSON header.
    pub header: Header,
    /// Model weights (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimizer state (burnpack bytes); empty in a model file.
    pub optimizer: Vec<u8>,
    /// Weights of the running weight average (burnpack bytes); empty before averaging starts.
    pub averaged: Vec<u8>,
}

impl Checkpoint {
    /// Serialises in the current format (version 2: a CRC-32 after each section).
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec_pretty(&self.header).expect("header serialises");
        let mut out =
            Vec::with_capacity(32 + header.len() + self.model.len() + self.optimizer.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for section in [&header[..], &self.model[..], &self.optimizer[..], &self.averaged[..]] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
            out.extend_from_slice(&crc32(section).to_le_bytes());
        }
        out
    }

    /// A model file (no training state) holding `model`: what `saad import` writes and what
    /// the page and `saad eval` read.
    pub fn of_model(
        model: &Net,
        spec: ModelSpec,
        dataset: DatasetInfo,
        notes: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            header: Header {
                model: spec,
                dataset,
                epochs_done: 0,
                train_config: serde_json::json!({}),
                history: vec![],
                notes,
                averaged_count: 0,
            },
            model: model_bytes(model),
            optimizer: Vec::new(),
            averaged: Vec::new(),
        }
    }

    /// Decodes a checkpoint; `source` names the file in errors.
    pub fn decode(bytes: &[u8], source: &str) -> Result<Self, InputError> {
        let err = |m: String| InputError::new(source, m);
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(err("not a saad checkpoint (it does not start with SAADCKPT); checkpoints are written by `saad train`, and PyTorch files are read with `saad import`".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if !(1..=VERSION).contains(&version) {
            return Err(err(format!(
                "checkpoint format version {version}, this saad reads versions 1 to {VERSION} (a newer saad wrote it?)"
            )));
        }
        let mut pos = 12;
        let mut sections = Vec::new();
        for name in SECTIONS {
            let len_bytes = bytes
                .get(pos..pos + 8)
                .ok_or_else(|| err(format!("truncated before the {name} section")))?;
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            pos += 8;
            let section = bytes.get(pos..pos.saturating_add(len)).ok_or_else(|| {
                err(format!(
                    "truncated in the {name} section ({len} bytes announced, {} present)",
                    bytes.len() - pos
                ))
            })?;
            pos += len;
            if version >= 2 {
                let stored = bytes.get(pos..pos + 4).ok_or_else(|| {
                    err(format!("truncated after the {name} section (its checksum is missing)"))
                })?;
                if u32::from_le_bytes(stored.try_into().unwrap()) != crc32(section) {
                    return Err(err(format!(
                        "the {name} section is damaged (its CRC-32 does not match): the file was corrupted on disk or in transfer; use another copy"
                    )));
                }
                pos += 4;
            }
            sections.push(section.to_vec());
        }
        if pos != bytes.len() {
            return Err(err(format!(
                "{} bytes after the last section: the file is not a single checkpoint",
                bytes.len() - pos
            )));
        }
        let header: Header = serde_json::from_slice(&sections[0])
            .map_err(|e| err(format!("unreadable header: {e}")))?;
        let classes = header.model.num_classes;
        if !(1..=crate::models::MAX_CLASSES).contains(&classes) {
            return Err(err(format!(
                "the header says {classes} classes (expected 1 to {})",
                crate::models::MAX_CLASSES
            )));
        }
        let averaged = sections.pop().unwrap();
        let optimizer = sections.pop().unwrap();
        let model = sections.pop().unwrap();
        Ok(Self { header, model, optimizer, averaged })
    }

    /// Rebuilds the model described by the header, loads the weights and puts it in eval mode
    /// (BatchNorm on running statistics even for autodiff inputs, as attacks need). Training
    /// code loads with [`load_weights`] instead.
    pub fn load_model(&self, device: &Device, source: &str) -> Result<Net, InputError> {
        Ok(load_weights(&self.header.model, &self.model, device, source)?.valid())
    }
}

/// The weights of `model` as burnpack bytes.
pub fn model_bytes(model: &Net) -> Vec<u8> {
    model.clone().into_record().into_bytes().expect("burnpack encoding").to_vec()
}

/// Builds `spec` on `device` and loads burnpack `weights` into it.
pub fn load_weights(
    spec: &ModelSpec,
    weights: &[u8],
    device: &Device,
    source: &str,
) -> Result<Net, InputError> {
    // Parameters are initialised lazily: counting them allocates nothing, so a header naming a
    // model far larger than the file is refused before any memory is taken for it.
    let model = spec.init(device);
    let params = model.num_params();
    let needed = params.saturating_mul(4);
    if weights.len() < needed {
        return Err(InputError::new(
            source,
            format!(
                "the weights section holds {} bytes, too few for a {spec} ({params} parameters, {needed} bytes in f32)",
                weights.len()
            ),
        ));
    }
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| InputError::new(source, format!("unreadable model weights: {e}")))?;
    model
        .try_load_record(record)
        .map_err(|e| InputError::new(source, format!("the weights do not fit a {spec}: {e}")))
}
