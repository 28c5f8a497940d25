//! saad-web: the browser build of saad-core (the page comes with a later issue). For now it
//! proves that the core compiles for `wasm32-unknown-unknown` and exposes one smoke function.

use saad_core::models::{Arch, ModelSpec};

/// The number of trainable parameters of an architecture id (e.g. `resnet18`), or 0 for an
/// unknown id; lets the page check that the core is alive.
pub fn param_count(arch: &str, classes: usize) -> usize {
    match arch.parse::<Arch>() {
        Ok(arch) => ModelSpec::new(arch, classes).init(&saad_core::burn::prelude::Device::flex()).num_trainable_params(),
        Err(_) => 0,
    }
}
