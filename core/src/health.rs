//! Numerical health of models: non-finite weights, and whether a model's logits carry any
//! information. The trainer folds the weight check into its one read per epoch; a teacher is
//! probed once before a run starts, so that a days-long distillation does not begin from a
//! broken file.

use crate::losses::correct;
use crate::models::Net;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Every float parameter, flattened: one vector to check at once.
struct FlatParams {
    flat: Vec<Tensor<1>>,
}

impl ModuleVisitor for FlatParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let p = param.val().without_autodiff();
        let n = p.shape().num_elements();
        self.flat.push(p.reshape([n]));
    }
}

/// How many parameter values of `model` are NaN or infinite, as a one-element tensor on the
/// plain (non-autodiff) device: nothing is read. The parameters are concatenated and checked
/// once: on a GPU a check per parameter tensor cost ~9 launches each (1,100 for ResNet-18 at
/// every epoch's end), the concatenation one copy each.
pub fn nonfinite_weights(model: &Net, device: &Device) -> Tensor<1> {
    let mut v = FlatParams { flat: Vec::new() };
    model.visit(&mut v);
    if v.flat.is_empty() {
        return Tensor::zeros([1], device);
    }
    Tensor::cat(v.flat, 0).is_finite().bool_not().float().sum()
}

/// What one forward pass on a probe batch shows about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct LogitProbe {
    /// Images in the probe batch.
    pub images: usize,
    /// NaN or infinite parameter values.
    pub nonfinite_weights: usize,
    /// NaN or infinite logits.
    pub nonfinite_logits: usize,
    /// The largest, over classes, of (max - min) of a logit across the images: 0 when every
    /// image gets the same logits (e.g. all-zero weights).
    pub logit_spread: f32,
    /// The largest absolute logit.
    pub logit_scale: f32,
    /// Accuracy on the probe batch.
    pub accuracy: f64,
    /// Classes in the logits (chance accuracy is `1 / num_classes`).
    pub num_classes: usize,
}

/// Runs `model` (eval mode) on `x` with labels `y` and reads what [`LogitProbe`] holds (one read).
pub fn probe(model: &Net, x: Tensor<4>, y: Tensor<1, Int>) -> LogitProbe {
    let device = x.device();
    let n = y.dims()[0];
    let logits = model.forward(x).detach().without_autodiff();
    let num_classes = logits.dims()[1];
    let nonfinite_logits = logits.clone().is_finite().bool_not().float().sum();
    // Spread and scale over the finite logits only, so that one NaN does not hide the rest.
    let finite = logits.clone().is_finite();
    let clean = logits.clone().mask_fill(finite.bool_not(), 0.0);
    let spread = (clean.clone().max_dim(0) - clean.clone().min_dim(0)).max();
    let scale = clean.abs().max();
    let right = correct(logits, y).sum();
    let weights = nonfinite_weights(model, &device);
    let v = crate::host_copy::read_f32(Tensor::cat(
        vec![weights, nonfinite_logits, spread, scale, right],
        0,
    ));
    LogitProbe {
        images: n,
        nonfinite_weights: v[0] as usize,
        nonfinite_logits: v[1] as usize,
        logit_spread: v[2],
        logit_scale: v[3],
        accuracy: v[4] as f64 / n.max(1) as f64,
        num_classes,
    }
}

/// The verdict on a teacher from its probe.
#[derive(Clone, Debug, PartialEq)]
pub enum TeacherVerdict {
    /// Nothing wrong was seen.
    Fine,
    /// Usable, but suspicious: the message says why.
    Warn(String),
    /// Distilling from it would be meaningless: the message says why.
    Refuse(String),
}

impl LogitProbe {
    /// Judges a teacher: non-finite weights or logits, or identical logits for every image, are
    /// refused; accuracy no better than guessing is warned about (an untrained model, the wrong
    /// dataset, or the wrong input normalisation).
    pub fn teacher_verdict(&self) -> TeacherVerdict {
        if self.nonfinite_weights > 0 {
            return TeacherVerdict::Refuse(format!(
                "{} of its weights are NaN or infinite",
                self.nonfinite_weights
            ));
        }
        if self.nonfinite_logits > 0 {
            return TeacherVerdict::Refuse(format!(
                "its logits on the first {} training images hold {} NaN or infinite values",
                self.images, self.nonfinite_logits
            ));
        }
        if self.images > 1 && self.logit_spread <= 1e-6 * self.logit_scale.max(1.0) {
            return TeacherVerdict::Refuse(format!(
                "it gives the same logits to each of the first {} training images (all-zero or constant weights?), so it teaches nothing",
                self.images
            ));
        }
        let chance = 1.0 / self.num_classes.max(1) as f64;
        if self.images >= 50 && self.accuracy <= 1.5 * chance {
            return TeacherVerdict::Warn(format!(
                "it classifies {:.1}% of the first {} training images correctly, about chance ({:.1}%): is it trained, for this dataset, with this input normalisation?",
                100.0 * self.accuracy,
                self.images,
                100.0 * chance
            ));
        }
        TeacherVerdict::Fine
    }
}
