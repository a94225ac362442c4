//! The storage interface studies talk to.
//!
//! Every method is one small transaction on one study, identified by name, so the same trait
//! fits an embedded database (SQLite, the default), a server (PostgreSQL, for many machines)
//! or memory (benchmarks, tests). Trial numbers are assigned by the storage, so several
//! workers sharing one database never collide.

use super::{Cost, Direction, Fidelity, Goal, Trial, TrialState};
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
    /// The first objective's metric (kept for studies written before several objectives).
    pub objective: String,
    /// The first objective's direction.
    pub direction: Direction,
    /// Every objective and constraint; absent in studies written before they existed, which
    /// have the one objective above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// The run's seed.
    pub seed: u64,
    /// The full configuration the run started with, as JSON.
    pub config: serde_json::Value,
    /// Unix time of creation.
    pub created_at: f64,
}

impl StudyRecord {
    /// The study's objectives and constraints.
    pub fn goal(&self) -> Goal {
        self.goal
            .clone()
            .unwrap_or_else(|| Goal::single(self.objective.clone(), self.direction))
    }

    /// A record for `goal`: `objective` and `direction` are its first objective's.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: impl Into<String>,
        space: impl Into<String>,
        space_params: serde_json::Value,
        strategy: impl Into<String>,
        goal: Goal,
        seed: u64,
        config: serde_json::Value,
    ) -> Self {
        let first = goal
            .objectives
            .first()
            .cloned()
            .unwrap_or_else(|| super::Objective::new("", Direction::Maximize));
        StudyRecord {
            name: name.into(),
            space: space.into(),
            space_params,
            strategy: strategy.into(),
            objective: first.metric,
            direction: first.direction,
            goal: Some(goal),
            seed,
            config,
            created_at: super::now(),
        }
    }
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
    /// One value per objective (complete trials).
    pub values: Vec<f64>,
    /// Summed relative constraint violation (complete trials).
    pub violation: Option<f64>,
    /// Every measurement.
    pub metrics: BTreeMap<String, f64>,
    /// What it spent.
    pub cost: Cost,
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
