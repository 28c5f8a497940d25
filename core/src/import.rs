//! PyTorch state dicts into our models: every key of the model must be present with the right
//! shape, and every key of the file must be used; otherwise the error lists what is missing,
//! unexpected or mis-shaped. Linear weights are transposed from PyTorch's `[out, in]`.

use crate::error::InputError;
use crate::models::{ModelSpec, Net};
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use std::collections::BTreeMap;

/// One tensor of a state dict: shape and values as f32 (integers such as
/// `num_batches_tracked` converted).
#[derive(Clone, Debug, PartialEq)]
pub struct StateEntry {
    /// Shape as stored in the file (PyTorch's layout).
    pub shape: Vec<usize>,
    /// The values converted to f32, row-major.
    pub values: Vec<f32>,
}

/// A state dict by key.
pub type StateDict = BTreeMap<String, StateEntry>;

/// Reads a safetensors file (F32, F64, F16, BF16, I64, I32 tensors).
pub fn parse_safetensors(bytes: &[u8], source: &str) -> Result<StateDict, InputError> {
    let err = |m: String| InputError::new(source, m);
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a readable safetensors file: {e}")))?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
            }
            safetensors::Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            safetensors::Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            safetensors::Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            safetensors::Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            safetensors::Dtype::I32 => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            other => return Err(err(format!("tensor {name}: unsupported dtype {other:?}"))),
        };
        out.insert(name, StateEntry { shape: view.shape().to_vec(), values });
    }
    Ok(out)
}

/// IEEE half to f32.
pub fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Unwraps the usual containers of a state dict: a checkpoint dictionary holding the weights
/// under `state_dict`, `model_state_dict` or `model` (other entries, such as optimizer state,
/// are dropped), and the `module.` prefix of DataParallel, repeatedly.
pub fn strip_prefixes(mut dict: StateDict) -> StateDict {
    loop {
        let nested = ["state_dict.", "model_state_dict.", "model.", "net."]
            .into_iter()
            .find(|p| dict.keys().any(|k| k.starts_with(p)));
        let all_module = !dict.is_empty() && dict.keys().all(|k| k.starts_with("module."));
        let prefix = match (nested, all_module) {
            (_, true) => "module.",
            (Some(p), false) => p,
            (None, false) => return dict,
        };
        dict = dict
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v)))
            .collect();
    }
}

/// Keys some published checkpoints carry that the architecture does not use (TRADES WRNs keep
/// an unused `sub_block1`).
fn ignorable(key: &str) -> bool {
    key.starts_with("sub_block1.")
}

struct Loader {
    path: Vec<String>,
    dict: StateDict,
    missing: Vec<String>,
    mismatched: Vec<String>,
}

impl ModuleMapper for Loader {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path[1..].join(".");
        let Some(entry) = self.dict.remove(&key) else {
            self.missing.push(key);
            return param;
        };
        let current = param.val();
        let want = current.dims().to_vec();
        let device = current.device();
        // PyTorch shapes: Linear [out, in] (ours [in, out]); num_batches_tracked is 0-d.
        let (expected, transpose) = match want.len() {
            2 => (vec![want[1], want[0]], true),
            _ if key.ends_with("num_batches_tracked") => (vec![], false),
            _ => (want.clone(), false),
        };
        let shape_ok = entry.shape == expected
            || (key.ends_with("num_batches_tracked") && entry.values.len() == 1);
        if !shape_ok {
            self.mismatched
                .push(format!("{key}: file has {:?}, model needs {:?}", entry.shape, expected));
            return param;
        }
        let values = if transpose {
            let (rows, cols) = (expected[0], expected[1]); // [out, in]
            (0..cols)
                .flat_map(|i| (0..rows).map(move |o| (o, i)))
                .map(|(o, i)| entry.values[o * cols + i])
                .collect()
        } else {
            entry.values
        };
        let tensor = Tensor::<D>::from_data(TensorData::new(values, want), &device);
        param.map(|_| tensor)
    }
}

/// Builds `spec` and loads a PyTorch state dict into it, strictly.
pub fn load_state_dict(
    spec: &ModelSpec,
    dict: StateDict,
    device: &Device,
    source: &str,
) -> Result<Net, InputError> {
    let mut loader = Loader {
        path: Vec::new(),
        dict: strip_prefixes(dict),
        missing: Vec::new(),
        mismatched: Vec::new(),
    };
    let model = spec.init(device).map(&mut loader);
    let unexpected: Vec<&String> = loader.dict.keys().filter(|k| !ignorable(k)).collect();
    if loader.missing.is_empty() && loader.mismatched.is_empty() && unexpected.is_empty() {
        return Ok(model);
    }
    let list = |v: &[String]| {
        if v.len() > 12 {
            format!("{} (and {} more)", v[..12].join(", "), v.len() - 12)
        } else {
            v.join(", ")
        }
    };
    let mut msg = format!("this state dict does not fit a {spec}:");
    if !loader.missing.is_empty() {
        msg += &format!("\n  missing keys: {}", list(&loader.missing));
    }
    if !unexpected.is_empty() {
        let u: Vec<String> = unexpected.into_iter().cloned().collect();
        msg += &format!("\n  unexpected keys: {}", list(&u));
    }
    if !loader.mismatched.is_empty() {
        msg += &format!("\n  shape mismatches: {}", list(&loader.mismatched));
    }
    Err(InputError::new(source, msg))
}
