//! The `saad` command line as a library (the binary is `src/main.rs`): file formats that need
//! the file system (PyTorch `.pt`), datasets on disk, device choice, and one module per command.

pub mod commands;
pub mod datasets;
pub mod device;
pub mod fsutil;
pub mod host_profile;
pub mod plot;
pub mod progress;
pub mod pytorch;
pub mod remote;
