//! Training recipes: optimiser, learning-rate schedule, regularisation, budget.

use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The optimiser and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// SGD with (Nesterov) momentum and L2 weight decay; no dampening (the PyTorch recipe).
    Sgd {
        /// Momentum (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay added to the gradient.
        weight_decay: f64,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// L2 weight decay.
        weight_decay: f64,
    },
    /// AdamW: Adam with decoupled weight decay.
    AdamW {
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

/// How the learning rate changes over training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum ScheduleConfig {
    /// The base rate throughout.
    Constant,
    /// Cosine annealing from the base rate to 0 over the training steps after warm-up.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
}

/// A complete training recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// Schedule.
    pub schedule: ScheduleConfig,
    /// Epochs of linear warm-up from 0 to the base rate.
    pub warmup_epochs: usize,
    /// Label smoothing for classification (0 = none).
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Random crop (4-pixel padding, scaled to the image) and horizontal flip on image batches.
    pub augment: bool,
    /// Horizontal flips are wrong for digits and text; on by default only for images wider than 16.
    pub flip: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 64,
            lr: 0.05,
            optimizer: OptimizerConfig::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4,
            },
            schedule: ScheduleConfig::Cosine,
            warmup_epochs: 1,
            label_smoothing: 0.0,
            grad_clip: Some(5.0),
            augment: false,
            flip: false,
        }
    }
}

impl TrainConfig {
    /// Checks the recipe against the size of the training data.
    pub fn validate(&self, train_rows: usize) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch size must be at least 1"));
        }
        if self.batch_size > train_rows {
            return Err(Error::invalid(format!(
                "the batch size {} is larger than the {train_rows} training rows; use --batch-size {} or less",
                self.batch_size,
                train_rows.max(1)
            )));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid(format!(
                "the learning rate must be positive, got {}",
                self.lr
            )));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid("label smoothing must be in [0, 1)"));
        }
        Ok(())
    }

    /// The learning rate at `step` of `total` steps (`steps_per_epoch` per epoch).
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize, total: usize) -> f64 {
        let warm = self.warmup_epochs * steps_per_epoch;
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        match &self.schedule {
            ScheduleConfig::Constant => self.lr,
            ScheduleConfig::Cosine => {
                let span = total.saturating_sub(warm).max(1) as f64;
                let t = (step - warm) as f64 / span;
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * t).cos())
            }
            ScheduleConfig::Step { every, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                self.lr * gamma.powi((epoch / (*every).max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        let c = TrainConfig {
            lr: 0.1,
            warmup_epochs: 1,
            ..TrainConfig::default()
        };
        assert!((c.lr_at(0, 10, 100) - 0.01).abs() < 1e-12);
        assert!((c.lr_at(9, 10, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(10, 10, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(55, 10, 100) - 0.05).abs() < 1e-12);
        assert!(c.lr_at(99, 10, 100) < 0.001);
    }

    #[test]
    fn step_schedule_decays_every_n_epochs() {
        let c = TrainConfig {
            lr: 1.0,
            warmup_epochs: 0,
            schedule: ScheduleConfig::Step {
                every: 2,
                gamma: 0.5,
            },
            ..TrainConfig::default()
        };
        assert_eq!(c.lr_at(0, 10, 100), 1.0);
        assert_eq!(c.lr_at(19, 10, 100), 1.0);
        assert_eq!(c.lr_at(20, 10, 100), 0.5);
        assert_eq!(c.lr_at(45, 10, 100), 0.25);
    }

    #[test]
    fn batch_larger_than_data_is_rejected() {
        let c = TrainConfig {
            batch_size: 128,
            ..TrainConfig::default()
        };
        let e = c.validate(100).unwrap_err().to_string();
        assert!(
            e.contains("batch size 128") && e.contains("100 training rows"),
            "{e}"
        );
    }
}
