//! PyTorch state dicts as safetensors, written by hand: the format is an 8-byte header length,
//! a JSON header (`name -> {dtype, shape, data_offsets}`) and the raw little-endian data
//! (<https://github.com/huggingface/safetensors>, format description).
//!
//! Keys are PyTorch's (see each model file), Linear weights are transposed to `[out, in]`, and
//! each BatchNorm's `num_batches_tracked` is written as the 0-d int64 tensor PyTorch expects.

use crate::models::Net;
use serde_json::{Map, Value, json};

/// One tensor of a state dict.
pub struct StateTensor {
    /// PyTorch state-dict key.
    pub key: String,
    /// PyTorch shape (`[]` for the 0-d `num_batches_tracked`).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: StateData,
}

/// A tensor's values in its safetensors dtype.
pub enum StateData {
    /// `F32`: weights and BatchNorm statistics.
    F32(Vec<f32>),
    /// `I64`: a BatchNorm's `num_batches_tracked`.
    I64(Vec<i64>),
}

/// The model's PyTorch state dict, in PyTorch's key order for each module.
pub fn state_dict(model: &Net) -> Vec<StateTensor> {
    let mut out = Vec::new();
    for t in model.named_tensors() {
        let mut values = t.tensor.into_data().try_to_vec::<f32>().expect("f32 weights");
        let mut shape = t.shape.clone();
        if shape.len() == 2 {
            // burn Linear stores [in, out]; PyTorch [out, in].
            let (din, dout) = (shape[0], shape[1]);
            values = (0..dout)
                .flat_map(|o| (0..din).map(move |i| (o, i)))
                .map(|(o, i)| values[i * dout + o])
                .collect();
            shape = vec![dout, din];
        }
        if t.key.ends_with("num_batches_tracked") {
            // PyTorch keeps the batch count as a 0-d int64 tensor.
            out.push(StateTensor {
                key: t.key,
                shape: vec![],
                data: StateData::I64(vec![values[0].round() as i64]),
            });
        } else {
            out.push(StateTensor { key: t.key, shape, data: StateData::F32(values) });
        }
    }
    out
}

/// Serialises tensors as a safetensors file with optional string metadata.
pub fn to_safetensors(tensors: &[StateTensor], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        let meta: Map<String, Value> =
            metadata.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut data = Vec::new();
    for t in tensors {
        let begin = data.len();
        let dtype = match &t.data {
            StateData::F32(v) => {
                v.iter().for_each(|x| data.extend_from_slice(&x.to_le_bytes()));
                "F32"
            }
            StateData::I64(v) => {
                v.iter().for_each(|x| data.extend_from_slice(&x.to_le_bytes()));
                "I64"
            }
        };
        header.insert(
            t.key.clone(),
            json!({"dtype": dtype, "shape": t.shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&Value::Object(header)).expect("json");
    // Pad the header with spaces so the data starts 8-byte aligned.
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}
