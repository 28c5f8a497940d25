//! Learning-rate schedules, as a function of training progress.

use serde::{Deserialize, Serialize};

/// Learning-rate schedule of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LrSchedule {
    /// Constant learning rate.
    Constant,
    /// Multiply by `gamma` at the start of each milestone epoch (1-based: `[100, 150]` means
    /// epochs 1..=100 use lr, 101..=150 lr*gamma, ...), PyTorch `MultiStepLR` stepped per epoch.
    MultiStep {
        /// Epochs after which the rate drops (`100`: from the 101st epoch on).
        milestones: Vec<usize>,
        /// Factor applied at each milestone (0.1 when [`parse`](LrSchedule::parse) gets none).
        gamma: f64,
    },
    /// Cosine annealing from lr to 0 over all iterations (stepped per batch).
    Cosine,
}

impl LrSchedule {
    /// Learning rate for batch `batch` of `num_batches` in 0-based epoch `epoch` of `epochs`.
    pub fn lr(
        &self,
        base: f64,
        epoch: usize,
        batch: usize,
        num_batches: usize,
        epochs: usize,
    ) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| epoch >= m).count();
                base * gamma.powi(passed as i32)
            }
            LrSchedule::Cosine => {
                let t = (epoch * num_batches + batch) as f64 / (epochs * num_batches).max(1) as f64;
                0.5 * base * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// Parses `constant`, `cosine`, or `multistep:100,150[:0.1]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "bad schedule {s:?}; expected constant, cosine or multistep:E1,E2[:GAMMA] (e.g. multistep:100,150:0.1)"
            )
        };
        match s.split(':').collect::<Vec<_>>().as_slice() {
            ["constant"] => Ok(LrSchedule::Constant),
            ["cosine"] => Ok(LrSchedule::Cosine),
            ["multistep", ms, rest @ ..] if rest.len() <= 1 => {
                let milestones = ms
                    .split(',')
                    .map(|m| m.trim().parse::<usize>().map_err(|_| bad()))
                    .collect::<Result<Vec<_>, _>>()?;
                let gamma = match rest {
                    [g] => g.parse::<f64>().map_err(|_| bad())?,
                    _ => 0.1,
                };
                Ok(LrSchedule::MultiStep { milestones, gamma })
            }
            _ => Err(bad()),
        }
    }
}

/// The form [`LrSchedule::parse`] reads.
impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LrSchedule::Constant => write!(f, "constant"),
            LrSchedule::Cosine => write!(f, "cosine"),
            LrSchedule::MultiStep { milestones, gamma } => {
                let ms: Vec<String> = milestones.iter().map(|m| m.to_string()).collect();
                write!(f, "multistep:{}:{gamma}", ms.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_matches_pytorch_per_epoch_stepping() {
        let s = LrSchedule::parse("multistep:100,150").unwrap();
        assert_eq!(s.lr(0.1, 99, 0, 10, 200), 0.1);
        assert!((s.lr(0.1, 100, 0, 10, 200) - 0.01).abs() < 1e-12);
        assert!((s.lr(0.1, 150, 0, 10, 200) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_ends_at_zero() {
        let s = LrSchedule::Cosine;
        assert_eq!(s.lr(0.1, 0, 0, 10, 5), 0.1);
        assert!((s.lr(0.1, 2, 5, 10, 5) - 0.05).abs() < 1e-12);
        assert!(LrSchedule::parse("multistep:a").is_err());
    }
}
