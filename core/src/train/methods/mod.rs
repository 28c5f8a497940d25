//! Training methods. Each file states its inner maximisation (the attack that crafts the
//! training input) and its outer loss; they share the training loop, the attack module and the
//! per-sample losses.

pub mod natural;
pub mod pgd_at;

use crate::models::Net;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What one batch of a method needs.
pub struct BatchContext<'a> {
    /// The student in training mode on an autodiff device.
    pub student: &'a Net,
    /// Clean images in [0,1] (plain device) and labels.
    pub x: Tensor<4>,
    pub y: Tensor<1, Int>,
    /// 1-based epoch and total epochs (for ramps).
    pub epoch: usize,
    pub epochs: usize,
    pub attack: &'a AttackSettings,
}

/// The training attack's radius, step and iterations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackSettings {
    pub eps: f32,
    pub alpha: f32,
    pub steps: usize,
}

impl Default for AttackSettings {
    fn default() -> Self {
        Self { eps: 8.0 / 255.0, alpha: 2.0 / 255.0, steps: 10 }
    }
}

/// One batch's result: the scalar loss to minimise and the logits whose accuracy is reported
/// as training accuracy (on the input the method trains on).
pub struct BatchLoss {
    pub loss: Tensor<1>,
    pub logits: Tensor<2>,
}

/// A training method.
pub trait Method {
    fn batch_loss(&self, ctx: &BatchContext) -> BatchLoss;
}

/// The methods by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    Natural,
    PgdAt,
}

impl MethodKind {
    pub fn build(self) -> Box<dyn Method> {
        match self {
            MethodKind::Natural => Box::new(natural::Natural),
            MethodKind::PgdAt => Box::new(pgd_at::PgdAt),
        }
    }
}

impl FromStr for MethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "natural" => Ok(MethodKind::Natural),
            "pgd-at" => Ok(MethodKind::PgdAt),
            _ => Err(format!("unknown method {s:?}; expected natural or pgd-at")),
        }
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MethodKind::Natural => "natural",
            MethodKind::PgdAt => "pgd-at",
        })
    }
}
