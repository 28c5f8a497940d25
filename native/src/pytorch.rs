//! PyTorch checkpoints (`.pt`/`.pth`: the ZIP format of PyTorch >= 1.6, the legacy pickle
//! stream, and the old TAR format) read with burn's `pytorch-reader` into a state dict for
//! `saad_core::import::load_state_dict`. Weights nested under `state_dict`/`model` and
//! `module.` prefixes are handled there.

use anyhow::{Result, anyhow};
use pytorch_reader::{DType, PytorchReader};
use saad_core::import::{StateDict, StateEntry};
use std::path::Path;

fn to_f32(dtype: DType, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        DType::F32 => {
            b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        }
        DType::F64 => {
            b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
        }
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| saad_core::import::half_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        DType::I64 => {
            b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
        }
        DType::I32 => {
            b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect()
        }
        _ => return None,
    })
}

/// Every tensor of a PyTorch checkpoint, as f32, by its dotted key.
pub fn read_pt(path: &Path) -> Result<StateDict> {
    let source = path.display().to_string();
    let reader = PytorchReader::new(path).map_err(|e| {
        anyhow!("{source}: not a readable PyTorch checkpoint ({e}); expected a file written by torch.save(model.state_dict(), ...)")
    })?;
    let mut out = StateDict::new();
    for (key, t) in reader.into_tensors() {
        let bytes = t.read().map_err(|e| anyhow!("{source}: tensor {key}: {e}"))?;
        let values = to_f32(t.dtype(), &bytes).ok_or_else(|| {
            anyhow!("{source}: tensor {key} has unsupported dtype {:?}", t.dtype())
        })?;
        out.insert(key, StateEntry { shape: t.shape().to_vec(), values });
    }
    if out.is_empty() {
        return Err(anyhow!("{source}: the checkpoint holds no tensors"));
    }
    Ok(out)
}
