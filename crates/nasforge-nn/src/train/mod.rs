//! Training a [`Network`](crate::model::Network) on a [`Dataset`](crate::data::Dataset): mini-batch SGD/Adam/AdamW with a schedule,
//! per-epoch validation, divergence detection, and the final evaluation on held-out rows.

pub mod config;
pub(crate) mod loop_;

pub use config::{OptimizerConfig, ScheduleConfig, TrainConfig};
pub use loop_::LoopState;
pub use loop_::{
    cross_entropy, evaluate, train, train_network, Control, EpochStats, Metric, TrainError,
    TrainSetup, Trained,
};
pub(crate) use loop_::{rng_turn, seeded_network};
