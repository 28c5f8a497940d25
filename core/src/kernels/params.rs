//! The kernels' parameter structs, each defined once here: `#[repr(C)]` for the bytes uploaded to
//! the device, and the same declaration in WGSL ([`WgslLayout::WGSL`]) appended to the shaders
//! that read it, so a field can only be renamed, added or moved in one place.

use crate::losses::transfer_stats::{WEIGHT_BINS, sums};

/// Workgroup size of every kernel (WebGPU's default limit is 256 invocations); the shaders
/// receive it as the WGSL constant `WORKGROUP`.
pub const WORKGROUP: u32 = 256;

/// A parameter struct whose layout is also written out in WGSL.
pub trait WgslLayout: bytemuck::Pod {
    /// `struct Name { field: type, ... }` in WGSL, the same fields in the same order (all 4-byte
    /// scalars, so the WGSL storage layout equals `#[repr(C)]`).
    const WGSL: &'static str;
}

macro_rules! kernel_params {
    ($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident: $ty:ident,)* }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        impl WgslLayout for $name {
            const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)*
                "}\n"
            );
        }
    };
}

kernel_params! {
    /// `pgd_step.wgsl`: the batch's size and the 2-D launch's row width.
    PgdStepParams {
        /// Elements of the batch.
        elements: u32,
        /// Elements per sample.
        per_sample: u32,
        /// Workgroups along x (launches past 65535 workgroups fold into y).
        groups_x: u32,
    }
}

kernel_params! {
    /// `saad_loss_terms.wgsl`, `saad_loss_reduce.wgsl` and `saad_loss_backward.wgsl`: the shape
    /// of the stacked logits `[3, batch, classes]` and [`crate::losses::saad::SaadLossConfig`].
    SaadLossParams {
        /// Samples.
        batch: u32,
        /// Classes.
        classes: u32,
        /// Rényi order of the entropy (1 = Shannon).
        gamma: f32,
        /// Scale of the weights.
        scale: f32,
        /// Weight of the input-gradient-matching term.
        ig: f32,
        /// Weight of the inverse-weighted clean term.
        beta: f32,
    }
}

kernel_params! {
    /// `transfer_stats.wgsl`: the shape of the logits `[batch, classes]`, the SAAD weighting and
    /// whether the student's logits were given.
    TransferStatsParams {
        /// Samples.
        batch: u32,
        /// Classes.
        classes: u32,
        /// Rényi order of the entropy.
        gamma: f32,
        /// Scale of the weights.
        scale: f32,
        /// 1 when the student's logits were given, else 0.
        has_student: u32,
    }
}

/// The WGSL constants every shader gets: the workgroup size, and the transfer-statistics layout
/// (`SUMS_<NAME>` for each offset of [`sums`], `WEIGHT_BINS`).
pub fn wgsl_constants() -> String {
    let mut out =
        format!("const WORKGROUP: u32 = {WORKGROUP}u;\nconst WEIGHT_BINS: u32 = {WEIGHT_BINS}u;\n");
    for (name, offset) in sums::NAMED {
        out.push_str(&format!("const SUMS_{name}: u32 = {offset}u;\n"));
    }
    out
}
