//! The `.saad` checkpoint container: everything needed to rebuild, evaluate or resume a model.
//!
//! Layout (little endian): `b"SAADCKPT"`, `u32` format version, then four length-prefixed
//! (`u64`) sections: a JSON header ([`Header`]), the model weights (burnpack bytes, burn's
//! `ModuleRecord`), the optimizer state (burnpack bytes; empty for a plain model file), and the
//! running weight average (burnpack; empty when weight averaging has not started).
//! Native code writes it atomically (temporary file + rename).

use crate::models::{ModelSpec, Net};
use crate::error::DataError;
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"SAADCKPT";
const VERSION: u32 = 1;

/// Where the data came from, so evaluation and resume use the same kind of input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    pub image_size: usize,
    pub num_classes: usize,
}

/// The JSON header of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub model: ModelSpec,
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
    pub header: Header,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub averaged: Vec<u8>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec_pretty(&self.header).expect("header serialises");
        let mut out = Vec::with_capacity(32 + header.len() + self.model.len() + self.optimizer.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for section in [&header[..], &self.model[..], &self.optimizer[..], &self.averaged[..]] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        out
    }

    /// Decodes a checkpoint; `source` names the file in errors.
    pub fn decode(bytes: &[u8], source: &str) -> Result<Self, DataError> {
        let err = |m: String| DataError::new(source, m);
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(err("not a saad checkpoint (it does not start with SAADCKPT); checkpoints are written by `saad train`, and PyTorch files are read with `saad import`".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != VERSION {
            return Err(err(format!("checkpoint format version {version}, this saad reads version {VERSION}")));
        }
        let mut pos = 12;
        let mut sections = Vec::new();
        for name in ["header", "model weights", "optimizer state", "weight average"] {
            let len_bytes = bytes.get(pos..pos + 8).ok_or_else(|| err(format!("truncated before the {name} section")))?;
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            pos += 8;
            let section = bytes
                .get(pos..pos.saturating_add(len))
                .ok_or_else(|| err(format!("truncated in the {name} section ({len} bytes announced, {} present)", bytes.len() - pos)))?;
            sections.push(section.to_vec());
            pos += len;
        }
        let header: Header = serde_json::from_slice(&sections[0]).map_err(|e| err(format!("unreadable header: {e}")))?;
        let averaged = sections.pop().unwrap();
        let optimizer = sections.pop().unwrap();
        let model = sections.pop().unwrap();
        Ok(Self { header, model, optimizer, averaged })
    }

    /// Rebuilds the model described by the header, loads the weights and puts it in eval mode
    /// (BatchNorm on running statistics even for autodiff inputs, as attacks need). Training
    /// code loads with [`load_weights`] instead.
    pub fn load_model(&self, device: &Device, source: &str) -> Result<Net, DataError> {
        Ok(load_weights(&self.header.model, &self.model, device, source)?.valid())
    }
}

/// The weights of `model` as burnpack bytes.
pub fn model_bytes(model: &Net) -> Vec<u8> {
    model.clone().into_record().into_bytes().expect("burnpack encoding").to_vec()
}

/// Builds `spec` on `device` and loads burnpack `weights` into it.
pub fn load_weights(spec: &ModelSpec, weights: &[u8], device: &Device, source: &str) -> Result<Net, DataError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| DataError::new(source, format!("unreadable model weights: {e}")))?;
    spec.init(device).try_load_record(record).map_err(|e| {
        DataError::new(source, format!("the weights do not fit a {spec}: {e}"))
    })
}
