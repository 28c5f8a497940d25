//! FAB's box-constrained L-infinity projection onto a hyperplane on the flex CPU backend, one
//! row per task (native targets). The twin, and the definition, is the tensor-op version
//! `attacks::fab::linf_box_projection_tensor_ops`; tested against it and against brute force in
//! `tests/tests/library/autoattack.rs`.
//!
//! Why: the tensor ops take about 25 passes over `[2·batch, C·H·W]` (each a fresh tensor) and
//! burn-flex's sort with indices, which compares through `f32::total_cmp` one pair at a time.
//! In a flex AutoAttack run on the demo's teacher the projection was 12-16% of the CPU time, most
//! of it in that sort (bench/NOTES.md section 17). Here each row is one pass for its rooms, one
//! sort of 64-bit keys (the room's order-preserving bits above the column index) and one pass
//! for the prefix sums and the result.

use super::flex_conv::{tensor, values};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// The projection as a custom operation of flex (no autodiff: its inputs are constants).
#[backend_extension(Flex: cfg(all()))]
pub trait FlexBoxProjection: Backend {
    /// Per row of `t` `[n, d]`: the smallest L-infinity move `delta` with `<w, t + delta> = b`
    /// and `t + delta` in [0, 1] (see `attacks::fab::linf_box_projection`).
    fn flex_linf_box_projection(
        t: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `f32` bits whose unsigned order is the floats' total order.
fn ordered_bits(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | 1 << 31 }
}

/// One row: `t`, `w` and the row's `b` in, the move out. `keys` is scratch of the row's length.
fn project_row(t: &[f32], w: &[f32], b: f32, out: &mut [f32], keys: &mut Vec<u64>) {
    let d = t.len();
    let r = b - t.iter().zip(w).map(|(t, w)| t * w).sum::<f32>();
    let need = r.abs();
    let sign = |v: f32| {
        if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    let r_sign = sign(r);
    keys.clear();
    // `out` holds the rooms until the end: the distance to the box in the direction that moves
    // `<w, z>` towards `b`, zero where the coordinate does not move it.
    let mut total = 0.0f32;
    let mut total_w = 0.0f32;
    for i in 0..d {
        let dir = sign(w[i]) * r_sign;
        let room = if dir == 0.0 {
            0.0
        } else if dir > 0.0 {
            1.0 - t[i]
        } else {
            t[i]
        };
        out[i] = room;
        total += w[i].abs() * room;
        total_w += w[i].abs();
        keys.push((ordered_bits(room) as u64) << 32 | i as u64);
    }
    keys.sort_unstable();
    // Walk the rooms in increasing order: `reach_j = prefix_j + room_j · suffix_j` is the change
    // of `<w, z>` reachable at radius `room_j`; the first `j` where it reaches `need` holds
    // lambda.
    let (mut prefix, mut cumulative) = (0.0f32, 0.0f32);
    let mut lambda = None;
    let mut last = (0.0f32, 0.0f32);
    for &key in keys.iter() {
        let i = (key & 0xffff_ffff) as usize;
        let (room, aw) = (out[i], w[i].abs());
        cumulative += aw;
        let suffix = total_w - cumulative + aw;
        last = (prefix, suffix);
        if prefix + room * suffix >= need {
            lambda = Some((need - prefix) / suffix.max(1e-12));
            break;
        }
        prefix += aw * room;
    }
    // No segment reaches it: the last one's formula, as the twin clamps its segment to d - 1.
    let lambda = lambda.unwrap_or((need - last.0) / last.1.max(1e-12));
    let lambda = if need < total { lambda } else { f32::MAX };
    for i in 0..d {
        let dir = sign(w[i]) * r_sign;
        out[i] = dir * out[i].min(lambda);
    }
}

impl FlexBoxProjection for Flex {
    fn flex_linf_box_projection(t: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let (shape, tv) = values(&t);
        let (wv, bv) = (values(&w).1, values(&b).1);
        let (n, d) = (shape[0], shape[1]);
        assert!(wv.len() == n * d && bv.len() == n, "linf_box_projection: shapes differ");
        let mut out = vec![0.0; n * d];
        if d > 0 {
            out.par_chunks_mut(d).enumerate().for_each_init(Vec::new, |keys, (row, dst)| {
                let at = row * d..(row + 1) * d;
                project_row(&tv[at.clone()], &wv[at], bv[row], dst, keys);
            });
        }
        tensor(out, [n, d])
    }
}

/// [`FlexBoxProjection`] on flex tensors; inputs with autodiff are taken as constants, the
/// result has none.
pub fn linf_box_projection(
    t: burn::prelude::Tensor<2>,
    w: burn::prelude::Tensor<2>,
    b: burn::prelude::Tensor<1>,
) -> burn::prelude::Tensor<2> {
    burn::prelude::Tensor::from_dispatch(
        <burn::backend::Dispatch as FlexBoxProjection>::flex_linf_box_projection(
            t.without_autodiff().into_dispatch(),
            w.without_autodiff().into_dispatch(),
            b.without_autodiff().into_dispatch(),
        ),
    )
}
