//! The command line's integration tests, one executable (each module was its own executable
//! once; linked once, the whole burn/cubecl/wgpu stack costs one link instead of six, see
//! bench/NOTES.md section 7). Run one part with
//! `cargo test -p saad-native --test command fuzz::`.

mod common;

mod cli;
mod fuzz;
mod multi_device;
mod pytorch_import;
mod reliability;
mod trust;
