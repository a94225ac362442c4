//! The storage interface studies talk to.
//!
//! Every method is one small transaction on one study, identified by name, so the same trait
//! fits an embedded database (SQLite, the default), a server (PostgreSQL, for many machines)
//! or memory (benchmarks, tests). Trial numbers are assigned by the storage, so several
//! workers sharing one database never collide.

use super::{metric, Cost, Direction, Fidelity, Goal, Trial, TrialState};
use crate::Error;
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// What [`Storage::create_trial_if`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The trial was created with this number.
    Number(u64),
    /// The study already holds a trial of this arch at this fidelity that counts (queued,
    /// running or finished, not interrupted): another worker took it.
    Taken,
    /// The study holds its limit of trials that count.
    Full,
}

/// What [`Storage::finish_owned`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told {
    /// The outcome is stored.
    Stored,
    /// The trial already holds this very outcome (a repeated tell): nothing changed.
    Repeated,
    /// The trial is no longer this worker's (it was failed as stale and queued again, or
    /// holds another outcome): nothing changed.
    Lost,
}

/// Where studies and their trials live.
pub trait Storage: Send {
    /// Creates a study; fails if the name is taken.
    fn create_study(&mut self, record: &StudyRecord) -> Result<()>;
    /// The study with this name, if any.
    fn study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// Replaces the configuration kept in study `name`'s record (a resume that changes what
    /// may change, such as the number of trials, which workers that join later read).
    fn set_config(&mut self, name: &str, config: &serde_json::Value) -> Result<()>;
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

    // What several workers sharing one study need (`Study::join`): every method is one
    // transaction, so two workers never both take the same job.

    /// Creates `trial` unless the study already holds a trial of the same arch at the same
    /// fidelity that counts ([`Created::Taken`]) or `limit` trials that count
    /// ([`Created::Full`]). A trial counts unless it failed as interrupted or stale.
    fn create_trial_if(
        &mut self,
        study: &str,
        trial: &NewTrial,
        limit: Option<u64>,
    ) -> Result<Created>;
    /// The trials numbered `from` or later, by number (what a worker has not seen finish).
    fn trials_from(&self, study: &str, from: u64) -> Result<Vec<Trial>>;
    /// Fails every running trial whose heartbeat is older than `grace` seconds as stale and,
    /// while its arch has failed stale at that fidelity fewer than `max_retry` times, queues
    /// it again as a new trial. Returns the numbers failed.
    fn reap_stale(&mut self, study: &str, grace: f64, max_retry: u32) -> Result<Vec<u64>>;
    /// Takes the oldest queued trial for `worker` (running from now), if any.
    fn claim_queued(&mut self, study: &str, worker: &str) -> Result<Option<Trial>>;
    /// Ends a running trial that `worker` holds; see [`Told`] for what happens otherwise. A
    /// trial of `worker`'s failed as stale whose re-run is still queued (nobody has started
    /// it) takes the late outcome after all: it is stored, and the queued re-run is failed as
    /// superseded (it does not count), so a worker cut off from the database for longer than
    /// the grace period loses nothing if it gets back before its trial is re-run.
    fn finish_owned(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        end: &FinishedTrial,
    ) -> Result<Told>;
    /// A second connection to the same storage (a heartbeat thread's); storages that live in
    /// one process's memory have none.
    fn reopen(&self) -> Result<Box<dyn Storage>>;
}

/// Whether a stored trial of `state` with `error` counts towards a study's trials (it was
/// not left running by a process that stopped or a worker that went silent).
pub(super) fn counts(state: TrialState, error: Option<&str>) -> bool {
    !(state == TrialState::Failed
        && error.is_some_and(|e| e.starts_with(super::INTERRUPTED) || e.starts_with(super::STALE)))
}

/// What a tell by `worker` of `end` was, when `stored` (as it is now) was no longer that
/// worker's running trial: a repeat of the outcome it holds, or lost.
pub(super) fn told_late(stored: &Trial, worker: &str, end: &FinishedTrial) -> Told {
    let same =
        stored.state == end.state && stored.values == end.values && stored.error == end.error;
    if stored.worker == worker && same {
        Told::Repeated
    } else {
        Told::Lost
    }
}

/// The error of a queued re-run made unnecessary by the late outcome of stale trial `number`.
pub(super) fn superseded_error(number: u64) -> String {
    format!(
        "{}: superseded by the late result of trial {number}",
        super::STALE
    )
}

/// Whether a trial failed with `error` was failed as stale.
pub(super) fn is_stale(error: Option<&str>) -> bool {
    error.is_some_and(|e| e.starts_with(super::STALE))
}

/// A study record stored as JSON text (`name`, when known, for the message).
pub(super) fn parse_record(text: &str, name: Option<&str>) -> Result<StudyRecord> {
    serde_json::from_str(text).map_err(|e| {
        Error::Storage(match name {
            Some(n) => format!("study `{n}`: bad record: {e}"),
            None => format!("bad study record: {e}"),
        })
    })
}

/// The error of a trial failed as stale.
pub(super) fn stale_error(worker: &str, silent: f64) -> String {
    format!(
        "{}: worker `{worker}` sent no heartbeat for {silent:.1} s",
        super::STALE
    )
}

/// A trial row as a database stores it (JSON as text), before decoding; what every SQL
/// storage reads.
pub(super) struct StoredTrial {
    pub number: u64,
    pub arch_key: String,
    pub arch: String,
    pub fidelity: String,
    pub state: TrialState,
    pub values: Vec<f64>,
    pub violation: Option<f64>,
    pub cost: Option<String>,
    pub metrics: String,
    pub error: Option<String>,
    pub worker: String,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub heartbeat_at: Option<f64>,
    pub finished_at: Option<f64>,
}

impl StoredTrial {
    /// The trial, its JSON parsed; a study written before the typed cost existed gets its cost
    /// from the `epochs` and `train_seconds` metrics, and `latency_ms_b1` is read as
    /// `latency_ms`.
    pub fn decode(self) -> Result<Trial> {
        let number = self.number;
        let json = |what: &str, text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text)
                .map_err(|e| Error::Storage(format!("trial {number}: bad {what} JSON: {e}")))
        };
        let mut metrics: BTreeMap<String, f64> =
            serde_json::from_value(json("metrics", &self.metrics)?)
                .map_err(|e| Error::Storage(format!("trial {number}: bad metrics: {e}")))?;
        if let Some(l) = metrics.remove("latency_ms_b1") {
            metrics.insert(metric::LATENCY_MS.into(), l);
        }
        let cost: Cost = match &self.cost {
            Some(t) => serde_json::from_value(json("cost", t)?)
                .map_err(|e| Error::Storage(format!("trial {number}: bad cost: {e}")))?,
            None => Cost {
                epochs: metrics.get(metric::EPOCHS).map_or(0, |&e| e as u32),
                seconds: metrics.get(metric::TRAIN_SECONDS).copied().unwrap_or(0.0),
            },
        };
        Ok(Trial {
            number,
            arch_key: self.arch_key,
            arch: json("arch", &self.arch)?,
            fidelity: serde_json::from_value::<Fidelity>(json("fidelity", &self.fidelity)?)
                .map_err(|e| Error::Storage(format!("trial {number}: bad fidelity: {e}")))?,
            state: self.state,
            values: self.values,
            violation: self.violation,
            cost,
            metrics,
            intermediate: Vec::new(),
            error: self.error,
            worker: self.worker,
            created_at: self.created_at,
            started_at: self.started_at,
            heartbeat_at: self.heartbeat_at,
            finished_at: self.finished_at,
        })
    }
}
