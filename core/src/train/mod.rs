//! Training: configuration, learning-rate schedules, methods and the shared loop.

pub mod config;
pub mod methods;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use methods::{AttackSettings, Method, MethodKind};
pub use schedule::LrSchedule;
pub use trainer::{EpochStats, Trainer};
