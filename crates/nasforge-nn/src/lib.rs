//! # nasforge-nn
//!
//! The deep-learning side of nasforge: data sets and splits ([`data`]).

#![warn(missing_docs)]

pub mod data;
