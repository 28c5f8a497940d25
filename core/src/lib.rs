//! saad-core: adversarial distillation on any backend burn runs on (wgpu: Vulkan, Metal, DX12,
//! WebGPU; Flex on CPU). Platform-neutral: bytes in, tensors out; no file system, no threads,
//! no clocks, so the same code runs natively and in the browser.

#![warn(missing_docs)]

pub mod attacks;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod health;
pub mod host_copy;
pub mod import;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod models;
pub mod rng;
pub mod train;
pub mod transfer;

pub use burn;
pub use error::InputError;
