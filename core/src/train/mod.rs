//! Training: configuration, learning-rate schedules, methods and the shared loop.

pub mod config;
pub mod data_parallel;
pub mod log;
pub mod methods;
pub mod schedule;
pub mod sgd;
pub mod trainer;
pub mod weight_average;

pub use crate::losses::transfer_stats::TransferStats;
pub use config::TrainConfig;
pub use log::EpochLog;
pub use methods::{AttackSettings, Method, MethodKind, MethodParams};
pub use schedule::LrSchedule;
pub use trainer::{Divergence, EpochRun, EpochStats, PendingEpoch, Trainer};
pub use weight_average::{WeightAverage, recompute_batch_norm};
