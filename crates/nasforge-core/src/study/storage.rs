//! The storage interface studies talk to.
//!
//! Every method is one small transaction on one study, identified by name, so the same trait
//! fits an embedded database (SQLite, the default), a server (PostgreSQL, for many machines)
//! or memory (benchmarks, tests). Trial numbers are assigned by the storage, so several
//! workers sharing one database never collide.

use super::{Direction, Fidelity, Trial, TrialState};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What identifies a study and what it searches for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    /// Unique name within the storage.
    pub name: String,
    /// Space name.
    pub space: String,
    /// Space parameters as JSON.
    pub space_params: serde_json::Value,
    /// Strategy name.
    pub strategy: String,
    /// The metric optimised.
    pub objective: String,
    /// Maximise or minimise it.
    pub direction: Direction,
    /// The run's seed.
    pub seed: u64,
    /// The full configuration the run started with, as JSON.
    pub config: serde_json::Value,
    /// Unix time of creation.
    pub created_at: f64,
}

/// A trial to create.
#[derive(Clone, Debug)]
pub struct NewTrial {
    /// Canonical key.
    pub arch_key: String,
    /// Arch JSON.
    pub arch: serde_json::Value,
    /// Fidelity.
    pub fidelity: Fidelity,
    /// Initial state (queued, or running when the creating worker evaluates it at once).
    pub state: TrialState,
    /// The worker creating it.
    pub worker: String,
}

/// The end of a trial.
#[derive(Clone, Debug)]
pub struct FinishedTrial {
    /// Complete, pruned or failed.
    pub state: TrialState,
    /// The objective value (complete trials).
    pub value: Option<f64>,
    /// Other measurements.
    pub metrics: BTreeMap<String, f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Where studies and their trials live.
pub trait Storage: Send {
    /// Creates a study; fails if the name is taken.
    fn create_study(&mut self, record: &StudyRecord) -> Result<()>;
    /// The study with this name, if any.
    fn study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// All studies.
    fn studies(&self) -> Result<Vec<StudyRecord>>;
    /// Creates a trial and returns its number (the next in the study).
    fn create_trial(&mut self, study: &str, trial: &NewTrial) -> Result<u64>;
    /// Stores an intermediate value and refreshes the trial's heartbeat.
    fn report(&mut self, study: &str, number: u64, step: u64, value: f64) -> Result<()>;
    /// Refreshes a running trial's heartbeat.
    fn heartbeat(&mut self, study: &str, number: u64) -> Result<()>;
    /// Ends a trial.
    fn finish_trial(&mut self, study: &str, number: u64, end: &FinishedTrial) -> Result<()>;
    /// One trial.
    fn trial(&self, study: &str, number: u64) -> Result<Trial>;
    /// All trials of a study, by number.
    fn trials(&self, study: &str) -> Result<Vec<Trial>>;
}
