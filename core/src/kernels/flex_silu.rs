//! A folded BatchNorm's scale-shift and SiLU on the flex CPU backend in one parallel pass each
//! way, with its own autodiff node (native targets): the CPU counterpart of the
//! `scale_shift_activation*.wgsl` kernels for the SiLU networks (DM-WRN, the SAAD teachers).
//!
//! Why: burn 0.22.1 runs `x * scale + shift` and `silu` as four passes, and burn-flex's sigmoid
//! is one scalar `exp` per value on one thread. In the host profile of a SAAD step on flex the
//! teacher's sigmoid took 9.8-12% of the CPU time (bench/NOTES.md section 16). Here `exp` is a
//! polynomial the compiler vectorises, and the work is split by channel plane over rayon's
//! threads. Forward: `z = x * scale + shift`, `y = z * sigmoid(z)`; backward: `dx = dy * scale *
//! sigmoid(z) * (1 + z * (1 - sigmoid(z)))`. The twin is the tensor ops (`Route::TensorOps`);
//! tested against them in `tests/tests/library/kernels.rs`.

use super::flex_conv::{tensor, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, backend_extension};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// Scale-shift-SiLU as a custom operation of flex (and of autodiff over flex).
#[backend_extension(Flex: cfg(all()), Autodiff)]
pub trait FlexSilu: Backend {
    /// `silu(x * scale + shift)` per channel of `x` `[batch, channels, h, w]`; `scale` and
    /// `shift` `[channels]` are constants (no gradient flows to them).
    fn flex_scale_shift_silu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `e^x` in f32 arithmetic only (no library call, so loops over it vectorise): `x = n ln 2 + r`
/// with `|r| <= ln 2 / 2`, `e^r` by the degree-6 polynomial of Cephes' `expf` (S. Moshier),
/// `2^n` built in the exponent bits. Within 2 ulp of `f32::exp` on [-87, 88] (tested); beyond,
/// clamped (sigmoid adds `e^-z` to 1, where `e^-87` does not count).
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5 * 2^23 trick (no `round` call on baseline x86-64).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    // ln 2 in two parts, so that n * ln2_hi is exact.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `[channels, plane]` of a 4-D shape.
fn channels_and_plane(shape: &[usize]) -> [usize; 2] {
    assert_eq!(shape.len(), 4, "flex scale_shift_silu: [batch, channels, h, w], got {shape:?}");
    [shape[1], shape[2] * shape[3]]
}

/// `out[i] = f(scale, shift, i)` for every value, one channel plane per parallel task.
fn per_plane(
    out: &mut [f32],
    [c, plane]: [usize; 2],
    scale: &[f32],
    shift: &[f32],
    f: impl Fn(&mut [f32], usize, f32, f32) + Sync,
) {
    out.par_chunks_mut(plane.max(1)).enumerate().for_each(|(p, part)| {
        f(part, p * plane, scale[p % c], shift[p % c]);
    });
}

fn forward(x: &[f32], dims: [usize; 2], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    per_plane(&mut y, dims, scale, shift, |out, start, s, t| {
        for (o, &v) in out.iter_mut().zip(&x[start..]) {
            let z = v * s + t;
            *o = z * sigmoid(z);
        }
    });
    y
}

/// The input's gradient, written over `dy`.
fn backward(x: &[f32], dy: &mut [f32], dims: [usize; 2], scale: &[f32], shift: &[f32]) {
    per_plane(dy, dims, scale, shift, |out, start, s, t| {
        for (g, &v) in out.iter_mut().zip(&x[start..]) {
            let z = v * s + t;
            let sg = sigmoid(z);
            *g *= s * sg * (1.0 + z * (1.0 - sg));
        }
    });
}

impl FlexSilu for Flex {
    fn flex_scale_shift_silu(x: FlexTensor, scale: FlexTensor, shift: FlexTensor) -> FlexTensor {
        let (xs, xv) = values(&x);
        let y = forward(&xv, channels_and_plane(&xs), &values(&scale).1, &values(&shift).1);
        tensor(y, [xs[0], xs[1], xs[2], xs[3]])
    }
}

/// The node: one parent (the input); the state is the input, scale and shift.
#[derive(Debug)]
struct SiluNode;

impl Backward<Flex, 1> for SiluNode {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents.map(|p| p.map(|node| node.id));
        let dy = grads.consume::<Flex>(&ops.node);
        let Some(id) = node_x else { return };
        let (x, scale, shift) = ops.state;
        let (xs, xv) = values(&x);
        let mut dx = values(&dy).1.into_owned();
        let dims = channels_and_plane(&xs);
        backward(&xv, &mut dx, dims, &values(&scale).1, &values(&shift).1);
        grads.register::<Flex>(id, tensor(dx, [xs[0], xs[1], xs[2], xs[3]]));
    }
}

impl<C: CheckpointStrategy> FlexSilu for Autodiff<Flex, C> {
    fn flex_scale_shift_silu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (scale, shift) = (scale.primitive().clone(), shift.primitive().clone());
        let x_p = x.primitive().clone();
        let y = Flex::flex_scale_shift_silu(x_p.clone(), scale.clone(), shift.clone());
        match SiluNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x_p, scale, shift), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The polynomial `exp` against the library's inside its clamp, every 0.001.
    #[test]
    fn exp_is_within_two_ulp_of_the_librarys() {
        let (mut worst, mut at) = (0.0f32, 0.0f32);
        for i in -86_999..=87_999 {
            let x = i as f32 * 1e-3;
            let (ours, theirs) = (super::exp(x), x.exp());
            let error = (ours - theirs).abs() / theirs;
            if error > worst {
                (worst, at) = (error, x);
            }
        }
        assert!(worst <= 2.0 * f32::EPSILON, "relative error {worst} at {at}");
    }
}
