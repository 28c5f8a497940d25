//! `--device auto|wgpu|flex`: picks the backend once per process.

use anyhow::{Result, bail};
use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{DeviceKind, DeviceType};
use std::panic::{AssertUnwindSafe, catch_unwind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// A real GPU through wgpu (Vulkan, Metal, DX12) if one is present, else flex.
    Auto,
    /// wgpu: a GPU if present, else a software adapter (lavapipe/llvmpipe).
    Wgpu,
    /// The flex CPU backend.
    Flex,
}

/// A wgpu adapter: its kind, the burn device, and its name.
pub struct Adapter {
    pub kind: DeviceKind,
    pub device: Device,
    pub name: String,
}

/// The wgpu adapters of this machine, GPUs first. Never panics: a machine without a Vulkan
/// (Metal, DX12) driver has none.
pub fn wgpu_adapters() -> Vec<Adapter> {
    let listed =
        catch_unwind(|| Device::enumerate(DeviceType::Wgpu).into_iter().collect::<Vec<_>>())
            .unwrap_or_default();
    let mut out = Vec::new();
    let kinds = (0..4)
        .flat_map(|i| {
            [DeviceKind::DiscreteGpu(i), DeviceKind::IntegratedGpu(i), DeviceKind::VirtualGpu(i)]
        })
        .chain((0..1).map(|_| DeviceKind::Cpu));
    for kind in kinds {
        let device = Device::wgpu(kind.clone());
        if listed.contains(&device) {
            let name = catch_unwind(AssertUnwindSafe(|| device.identity().map(|i| i.name)))
                .ok()
                .flatten()
                .unwrap_or_else(|| "unknown adapter".into());
            out.push(Adapter { kind, device, name });
        }
    }
    out
}

fn is_gpu(kind: &DeviceKind) -> bool {
    !matches!(kind, DeviceKind::Cpu)
}

/// The device for `choice` and a one-line description of it.
pub fn select(choice: DeviceChoice) -> Result<(Device, String)> {
    let flex = || (Device::flex(), "flex (CPU)".to_string());
    match choice {
        DeviceChoice::Flex => Ok(flex()),
        DeviceChoice::Auto => Ok(wgpu_adapters()
            .into_iter()
            .find(|a| is_gpu(&a.kind))
            .map(|a| (a.device, format!("wgpu {:?}: {}", a.kind, a.name)))
            .unwrap_or_else(flex)),
        DeviceChoice::Wgpu => {
            let mut adapters = wgpu_adapters();
            if adapters.is_empty() {
                bail!(
                    "no wgpu adapter found. Install a GPU driver, or for a software Vulkan device on Debian: \
                     `sudo apt-get install mesa-vulkan-drivers libvulkan1`; or use --device flex"
                );
            }
            let a = adapters.remove(0);
            Ok((a.device, format!("wgpu {:?}: {}", a.kind, a.name)))
        }
    }
}
