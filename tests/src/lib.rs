//! Helpers shared by the cross-crate tests: the backends to test on, a lock for tests that seed
//! the (process-global) device RNG, and tensor comparisons.

use saad_core::burn::prelude::*;
use saad_core::burn::tensor::{DeviceKind, DeviceType};
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every test that seeds or draws from the device RNG: the seed is process-global on
/// both backends, so two such tests must not interleave.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The software wgpu adapter (lavapipe) if this machine has one. With `SAAD_REQUIRE_WGPU=1`
/// (set by `.ci/run`) its absence is an error rather than a skip.
pub fn wgpu_device() -> Option<Device> {
    let listed = std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Wgpu).into_iter().collect::<Vec<_>>()
    })
    .unwrap_or_default();
    let found = [DeviceKind::Cpu, DeviceKind::DefaultDevice]
        .into_iter()
        .map(Device::wgpu)
        .find(|d| listed.contains(d))
        .or_else(|| listed.into_iter().next());
    if found.is_none() {
        if std::env::var("SAAD_REQUIRE_WGPU").is_ok_and(|v| v == "1") {
            panic!(
                "SAAD_REQUIRE_WGPU=1 but no wgpu adapter was found (install mesa-vulkan-drivers libvulkan1)"
            );
        }
        eprintln!(
            "note: no wgpu adapter; wgpu checks skipped (set SAAD_REQUIRE_WGPU=1 to make this an error)"
        );
    }
    found
}

/// flex, plus wgpu when present.
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut v = vec![("flex", Device::flex())];
    if let Some(d) = wgpu_device() {
        v.push(("wgpu", d));
    }
    v
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// Largest absolute difference; NaN when any difference is (`f32::max` would drop it and let a
/// NaN pass a bound).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| if m.is_nan() || d.is_nan() { f32::NAN } else { m.max(d) })
}
