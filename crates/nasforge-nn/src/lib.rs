//! # nasforge-nn
//!
//! The deep-learning side of nasforge, on burn with the `flex` CPU backend: data sets and
//! splits ([`data`]), NetSpec → burn models ([`model`]), training ([`train`]), zero-cost
//! proxies ([`proxies`]), ONNX export ([`onnx`]), the device choice ([`device`]) and our own
//! CPU kernels where flex is slow ([`kernels`]).

#![warn(missing_docs)]

pub mod bundle;
pub mod data;
pub mod device;
pub mod evaluator;
pub mod final_train;
pub mod kernels;
pub mod latency;
pub mod model;
pub mod onnx;
pub mod proxies;
pub mod supernet;
pub mod train;
