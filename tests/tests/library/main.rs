//! The core's cross-crate tests on flex and on wgpu (lavapipe), one executable (each module was
//! its own executable once; linked once, the whole burn/cubecl/wgpu stack costs one link instead
//! of nine, see bench/NOTES.md section 7). Run one part with
//! `cargo test -p saad-tests --test library kernels::`.

mod attacks;
mod autoattack;
mod autoattack_reference;
mod backends;
mod data;
mod distill;
mod kernels;
mod models;
mod training;
