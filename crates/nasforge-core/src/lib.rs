//! # nasforge-core
//!
//! The parts of nasforge that need no deep-learning engine: search spaces ([`space`]), the
//! network IR with its cost model ([`netspec`]), ask/tell search strategies ([`strategy`]),
//! studies and their storage ([`study`]), tabular benchmarks ([`tabular`], [`bench`]), and
//! Pareto fronts and hypervolume for multi-objective search ([`pareto`]).
//!
//! ```
//! use nasforge_core::space::{Nb201Space, Space};
//! let space = Nb201Space::new();
//! let arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|").unwrap();
//! assert_eq!(space.decode(&arch).unwrap().params(), 1_531_546);
//! ```

#![warn(missing_docs)]

pub mod bench;
mod error;
pub mod netspec;
mod params;
pub mod pareto;
pub mod predictor;
#[cfg(test)]
mod proptests;
pub mod rng;
pub mod scheduler;
pub mod space;
pub mod stats;
pub mod stopper;
pub mod strategy;
pub mod study;
pub mod tabular;

pub use error::{Error, Result};
pub use params::{Params, MAX_INPUT_VALUES, MAX_LIST};
