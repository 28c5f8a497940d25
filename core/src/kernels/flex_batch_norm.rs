//! Training-mode BatchNorm on the flex CPU backend in two passes forward and two backward, with
//! its own autodiff node (native targets): the CPU counterpart of the `batch_norm_*.wgsl`
//! kernels.
//!
//! Why: burn 0.22.1 runs `batch_norm_train` as about a dozen tensor operations forward and 17
//! backward, each a pass over the activation into a freshly allocated output; on a ResNet-18 at
//! batch 128 the training forward took 2.2 s more than the eval forward of the same network,
//! 3.2x PyTorch's (bench/NOTES.md section 13). Here, per channel (one thread each): the mean,
//! then the mean of the squared deviations (the biased variance, as burn computes them; sixteen
//! f32 partial sums, each plane's total in f64), then one pass writing `(x - mean) / sqrt(var + eps) * gamma + beta`. Backward, per
//! channel: `Σ dy` and `Σ dy·x̂`, then `dx = gamma / sqrt(var + eps) · (dy - Σ dy / m - x̂ Σ dy·x̂ /
//! m)` (m values per channel), `dgamma = Σ dy·x̂`, `dbeta = Σ dy`. Every value is summed in a
//! fixed order by one thread, so results repeat bit for bit. The twin is burn's
//! `batch_norm_train` (`kernels::batch_norm_train` with `Route::TensorOps`); tested against it
//! in `tests/tests/library/kernels.rs`.

use super::flex_conv::{tensor, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, backend_extension};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

/// Training-mode BatchNorm as a custom operation of flex (and of autodiff over flex).
#[backend_extension(Flex: cfg(all()), Autodiff)]
pub trait FlexBatchNorm: Backend {
    /// `(output, batch mean, biased batch variance)` of `x` `[batch, channels, h, w]` with the
    /// per-channel `gamma` and `beta`.
    fn flex_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `[batch, channels, plane]` of a 4-D shape.
fn dims(shape: &[usize]) -> [usize; 3] {
    assert_eq!(shape.len(), 4, "flex batch_norm_train: [batch, channels, h, w], got {shape:?}");
    [shape[0], shape[1], shape[2] * shape[3]]
}

/// Per channel: the sums over every image's plane of `f(channel, x)` for each value `x` of `a`
/// and, when given, of `g(channel, x, y)` with the value `y` of `b` at the same place. Sixteen
/// f32 partial sums side by side (independent, so they vectorise), each plane's added up in f64;
/// a fixed order, so the sums repeat bit for bit.
fn channel_sums(
    a: &[f32],
    b: Option<&[f32]>,
    [n, c, plane]: [usize; 3],
    f: impl Fn(usize, f32) -> f32 + Sync,
    g: impl Fn(usize, f32, f32) -> f32 + Sync,
) -> Vec<[f64; 2]> {
    const LANES: usize = 16;
    let fold =
        |lanes: [f32; LANES], tail: f32| lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut sums = [0.0f64; 2];
            for image in 0..n {
                let start = (image * c + ch) * plane;
                let xs = &a[start..start + plane];
                let split = plane - plane % LANES;
                let (mut lanes, mut tail) = ([0.0f32; LANES], 0.0f32);
                for run in xs[..split].chunks_exact(LANES) {
                    for (l, &x) in lanes.iter_mut().zip(run) {
                        *l += f(ch, x);
                    }
                }
                for &x in &xs[split..] {
                    tail += f(ch, x);
                }
                sums[0] += fold(lanes, tail);
                if let Some(b) = b {
                    let ys = &b[start..start + plane];
                    let (mut lanes, mut tail) = ([0.0f32; LANES], 0.0f32);
                    for (run, yrun) in xs[..split].chunks_exact(LANES).zip(ys.chunks_exact(LANES)) {
                        for ((l, &x), &y) in lanes.iter_mut().zip(run).zip(yrun) {
                            *l += g(ch, x, y);
                        }
                    }
                    for (&x, &y) in xs[split..].iter().zip(&ys[split..]) {
                        tail += g(ch, x, y);
                    }
                    sums[1] += fold(lanes, tail);
                }
            }
            sums
        })
        .collect()
}

fn forward(x: &[f32], shape: [usize; 3], gamma: &[f32], beta: &[f32], eps: f64) -> [Vec<f32>; 3] {
    let [n, c, plane] = shape;
    let m = (n * plane).max(1) as f64;
    let none = |_: usize, _: f32, _: f32| 0.0;
    let mean: Vec<f32> =
        channel_sums(x, None, shape, |_, v| v, none).iter().map(|s| (s[0] / m) as f32).collect();
    let variance: Vec<f32> = channel_sums(x, None, shape, |ch, v| (v - mean[ch]).powi(2), none)
        .iter()
        .map(|s| (s[0] / m) as f32)
        .collect();
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(plane.max(1)).zip(x.par_chunks(plane.max(1))).enumerate().for_each(
        |(p, (out, src))| {
            let ch = p % c;
            // (x - mean) first: with a tiny variance the scale is large, and x * scale + (beta -
            // mean * scale) would cancel.
            let scale = gamma[ch] / (variance[ch] as f64 + eps).sqrt() as f32;
            let (mu, shift) = (mean[ch], beta[ch]);
            for (o, &v) in out.iter_mut().zip(src) {
                *o = (v - mu) * scale + shift;
            }
        },
    );
    [y, mean, variance]
}

/// The gradients `(x, gamma, beta)` from the output gradient `dy` (same shape as `x`).
fn backward(
    x: &[f32],
    dy: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    eps: f64,
) -> [Vec<f32>; 3] {
    let [n, c, plane] = shape;
    let m = (n * plane).max(1) as f64;
    let inv_std: Vec<f32> =
        variance.iter().map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32).collect();
    // One pass over dy and x: Σ dy and Σ dy (x - mean); x̂ = (x - mean) / std.
    let sums = channel_sums(dy, Some(x), shape, |_, g| g, |ch, g, v| g * (v - mean[ch]));
    let sum_dy: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
    let sum_dy_xhat: Vec<f32> =
        sums.iter().zip(&inv_std).map(|(s, &k)| (s[1] * k as f64) as f32).collect();
    let mut dx = vec![0.0f32; x.len()];
    let m = m as f32;
    dx.par_chunks_mut(plane.max(1)).enumerate().for_each(|(p, out)| {
        let ch = p % c;
        let start = p * plane;
        let (k, mu, s) = (gamma[ch] * inv_std[ch], mean[ch], inv_std[ch]);
        let (a, b) = (sum_dy[ch] / m, sum_dy_xhat[ch] / m);
        let (xs, gs) = (&x[start..start + plane], &dy[start..start + plane]);
        for ((o, &v), &g) in out.iter_mut().zip(xs).zip(gs) {
            *o = k * (g - a - (v - mu) * s * b);
        }
    });
    [dx, sum_dy_xhat, sum_dy]
}

impl FlexBatchNorm for Flex {
    fn flex_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (xs, xv) = values(&x);
        let shape = dims(&xs);
        let [y, mean, variance] = forward(&xv, shape, &values(&gamma).1, &values(&beta).1, eps);
        let c = shape[1];
        (tensor(y, [xs[0], xs[1], xs[2], xs[3]]), tensor(mean, [c]), tensor(variance, [c]))
    }
}

/// The node: parents input, gamma, beta; the state is what the backward pass reads.
#[derive(Debug)]
struct BatchNormNode;

impl Backward<Flex, 3> for BatchNormNode {
    /// Input, gamma, batch mean, batch variance, eps.
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents.map(|p| p.map(|node| node.id));
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, mean, variance, eps) = ops.state;
        let (xs, xv) = values(&x);
        let shape = dims(&xs);
        let [dx, dgamma, dbeta] = backward(
            &xv,
            &values(&dy).1,
            shape,
            &values(&gamma).1,
            &values(&mean).1,
            &values(&variance).1,
            eps,
        );
        let c = shape[1];
        for (id, g) in [
            (node_x, tensor(dx, [xs[0], xs[1], xs[2], xs[3]])),
            (node_gamma, tensor(dgamma, [c])),
            (node_beta, tensor(dbeta, [c])),
        ] {
            if let Some(id) = id {
                grads.register::<Flex>(id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> FlexBatchNorm for Autodiff<Flex, C> {
    fn flex_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x_p, gamma_p) = (x.primitive().clone(), gamma.primitive().clone());
        let (y, mean, variance) = Flex::flex_batch_norm_train(
            x_p.clone(),
            gamma_p.clone(),
            beta.primitive().clone(),
            eps,
        );
        // No gradient flows through the batch statistics (as through burn's own).
        let constant = super::autodiff::constant::<Flex, C>;
        let parents = [x.node(), gamma.node(), beta.node()];
        let y = match BatchNormNode.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((x_p, gamma_p, mean.clone(), variance.clone(), eps), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, constant(mean), constant(variance))
    }
}
