//! One file per subcommand.

pub mod bench;
pub mod bench_passes;
pub mod data;
pub mod demo;
pub mod eval;
pub mod export;
pub mod import;
pub mod selftest;
pub mod serve;
pub mod teacher;
pub mod train;
pub mod transfer;

use crate::device::wgpu_adapters;
use crate::fsutil;
use anyhow::Result;
use saad_core::checkpoint::Checkpoint;
use saad_core::train::MethodKind;
use std::path::Path;

/// `8/255` or a plain number such as `0.031`.
pub fn parse_eps(s: &str) -> Result<f32, String> {
    let v = match s.split_once('/') {
        Some((a, b)) => {
            a.trim().parse::<f32>().ok().zip(b.trim().parse::<f32>().ok()).map(|(a, b)| a / b)
        }
        None => s.trim().parse::<f32>().ok(),
    };
    v.filter(|v| v.is_finite() && (0.0..=1.0).contains(v)).ok_or_else(|| {
        format!("bad radius {s:?}; expected a number in [0,1] or a fraction such as 8/255")
    })
}

/// `--method`: the core's registry of methods, each listed with its one-line summary in
/// `--help` (a new method file appears here by itself).
pub fn method_parser() -> impl clap::builder::TypedValueParser<Value = MethodKind> {
    let names = MethodKind::all()
        .map(|m| clap::builder::PossibleValue::new(m.name()).help(m.info().summary));
    clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(names), |name| {
        name.parse::<MethodKind>().expect("a name from the registry")
    })
}

pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = fsutil::read(path)?;
    Ok(Checkpoint::decode(&bytes, &path.display().to_string())?)
}

pub fn devices() -> Result<()> {
    println!("flex      CPU (pure Rust; always available)");
    let adapters = wgpu_adapters();
    if adapters.is_empty() {
        println!(
            "wgpu      no adapter (no Vulkan/Metal/DX12 driver found; on Debian: apt-get install mesa-vulkan-drivers libvulkan1)"
        );
    }
    for (i, a) in adapters.into_iter().enumerate() {
        let kind = format!("{i} {:?}", a.kind);
        let note = if matches!(a.kind, saad_core::burn::tensor::DeviceKind::Cpu) {
            " (software; `--device auto` skips it)"
        } else {
            ""
        };
        println!("wgpu      {kind:<18} {}{note}", a.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_eps;

    #[test]
    fn eps_forms() {
        assert!((parse_eps("8/255").unwrap() - 8.0 / 255.0).abs() < 1e-9);
        assert_eq!(parse_eps("0.5").unwrap(), 0.5);
        assert!(parse_eps("2").is_err());
        assert!(parse_eps("x/3").is_err());
    }
}
