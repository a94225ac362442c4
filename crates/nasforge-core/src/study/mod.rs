//! Studies: the single source of truth of a search.
//!
//! A [`Study`] asks its [`Strategy`] for archs, records every [`Trial`] in a [`Storage`], and
//! tells the strategy each outcome. Trials survive crashes: [`Study::open`] replays the stored
//! trials into a fresh strategy and continues, and a trial left `running` by a crash is marked
//! `failed` ("interrupted") and evaluated again, so no completed work is redone or lost.

mod evaluator;
mod memory;
mod scheduled;
mod sqlite;
mod storage;

pub use evaluator::{EvalError, Evaluation, Evaluator, TableEvaluator};
pub use memory::MemoryStorage;
pub use scheduled::ScheduledStudy;
pub use sqlite::SqliteStorage;
pub use storage::{FinishedTrial, NewTrial, Storage, StudyRecord};

use crate::space::{Arch, Space};
use crate::stopper::Stopper;
use crate::strategy::{History, Strategy};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether the objective is maximised (accuracy) or minimised (loss, error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

impl Direction {
    /// +1 or -1: multiplying a value by it makes higher better.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Maximize => 1.0,
            Direction::Minimize => -1.0,
        }
    }

    /// Parses `maximize`/`max` or `minimize`/`min`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "maximize" | "max" => Ok(Direction::Maximize),
            "minimize" | "min" => Ok(Direction::Minimize),
            _ => Err(Error::invalid(format!(
                "direction `{s}` is neither `maximize` nor `minimize`"
            ))),
        }
    }
}

/// Where a trial is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Created, not yet picked up by a worker.
    Queued,
    /// Being evaluated.
    Running,
    /// Evaluated; has its objective value.
    Complete,
    /// Stopped early by a scheduler or stopper.
    Pruned,
    /// The evaluation failed (the error says why).
    Failed,
}

impl TrialState {
    /// The lowercase name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    /// Complete, pruned or failed: nothing more will happen to it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Failed
        )
    }

    /// Parses what [`TrialState::as_str`] writes.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            other => return Err(Error::Storage(format!("unknown trial state `{other}`"))),
        })
    }
}

/// How much an evaluation may spend: `None` fields mean "the evaluator's full budget".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Training epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// Fraction of the training data, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_fraction: Option<f64>,
}

/// One evaluation of one arch, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0-based number within the study, in creation order.
    pub number: u64,
    /// The arch's canonical key.
    pub arch_key: String,
    /// The arch as JSON ([`Space::to_json`]).
    pub arch: serde_json::Value,
    /// The fidelity it was (or is being) evaluated at.
    pub fidelity: Fidelity,
    /// Its state.
    pub state: TrialState,
    /// The objective value, once complete.
    pub value: Option<f64>,
    /// Other measurements (accuracy columns, parameters, MACs, latency, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Intermediate objective values (step, value), such as per-epoch validation accuracy.
    pub intermediate: Vec<(u64, f64)>,
    /// Why it failed, for failed trials.
    pub error: Option<String>,
    /// The worker that ran it.
    pub worker: String,
    /// Unix times (seconds): created, started, last heartbeat, finished.
    pub created_at: f64,
    /// When a worker started it.
    pub started_at: Option<f64>,
    /// Last sign of life from its worker.
    pub heartbeat_at: Option<f64>,
    /// When it finished.
    pub finished_at: Option<f64>,
}

impl FinishedTrial {
    /// How an evaluation's outcome is stored.
    pub fn from_outcome(outcome: std::result::Result<Evaluation, EvalError>) -> Self {
        match outcome {
            Ok(ev) => FinishedTrial {
                state: TrialState::Complete,
                value: Some(ev.value),
                metrics: ev.metrics,
                error: None,
            },
            Err(EvalError::Pruned { metrics }) => FinishedTrial {
                state: TrialState::Pruned,
                value: None,
                metrics,
                error: None,
            },
            Err(EvalError::Failed(reason)) => FinishedTrial {
                state: TrialState::Failed,
                value: None,
                metrics: BTreeMap::new(),
                error: Some(reason),
            },
        }
    }
}

/// Opens `record.name` in `storage`: creates it, or checks that the stored study has the same
/// space, objective and direction and returns its trials after marking those a crash left
/// running as failed ("interrupted"). Returns the trials to replay and how many were interrupted.
fn open_stored(storage: &mut dyn Storage, record: &StudyRecord) -> Result<(Vec<Trial>, usize)> {
    let Some(stored) = storage.study(&record.name)? else {
        storage.create_study(record)?;
        return Ok((Vec::new(), 0));
    };
    if stored.space != record.space
        || stored.objective != record.objective
        || stored.direction != record.direction
    {
        return Err(Error::invalid(format!(
            "study `{}` was created for space `{}`, objective `{}` ({:?}); it cannot continue with space `{}`, objective `{}` ({:?})",
            record.name, stored.space, stored.objective, stored.direction, record.space, record.objective, record.direction
        )));
    }
    let mut replay = Vec::new();
    let mut interrupted = 0;
    for t in storage.trials(&record.name)? {
        if t.state == TrialState::Running || t.state == TrialState::Queued {
            storage.finish_trial(
                &record.name,
                t.number,
                &FinishedTrial {
                    state: TrialState::Failed,
                    value: None,
                    metrics: t.metrics.clone(),
                    error: Some(format!(
                        "{INTERRUPTED}: the run stopped before this trial finished"
                    )),
                },
            )?;
            interrupted += 1;
            continue;
        }
        if t.was_interrupted() {
            continue;
        }
        replay.push(t);
    }
    Ok((replay, interrupted))
}

/// How the error of a trial left running by a stopped process begins.
const INTERRUPTED: &str = "interrupted";

impl Trial {
    /// Whether this trial was left running by a process that stopped: it does not count as a
    /// finished trial (its arch is evaluated again by the next run), so readers skip it when
    /// they count trials.
    pub fn was_interrupted(&self) -> bool {
        self.state == TrialState::Failed
            && self
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(INTERRUPTED))
    }

    /// The objective as a strategy sees it (`sign * value`), for complete trials only.
    pub fn score(&self, sign: f64) -> Option<f64> {
        match self.state {
            TrialState::Complete => self.value.map(|v| sign * v),
            _ => None,
        }
    }
}

/// The best complete trial of `trials` at the highest fidelity any complete trial reached (a
/// score at fewer epochs is not comparable with one at more; trials without an epochs fidelity
/// all share one level). `sign` is the direction's sign. Of equal values the later trial wins.
pub fn best_of(trials: &[Trial], sign: f64) -> Option<&Trial> {
    let done = || {
        trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some())
    };
    let top = done().filter_map(|t| t.fidelity.epochs).max();
    done()
        .filter(|t| t.fidelity.epochs == top)
        .max_by(|a, b| (sign * a.value.unwrap()).total_cmp(&(sign * b.value.unwrap())))
}

/// Epochs a finished trial trained: its `epochs` metric (a pruned trial's counts the epochs it
/// ran; a failed trial has none).
pub fn epochs_trained(metrics: &BTreeMap<String, f64>) -> u64 {
    metrics.get("epochs").map_or(0, |e| *e as u64)
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A trial handed out by [`Study::ask`], to be evaluated and told back.
#[derive(Clone, Debug)]
pub struct Ask {
    /// The trial's number.
    pub number: u64,
    /// The arch to evaluate.
    pub arch: Arch,
}

/// What [`Study::open`] found in the storage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resumed {
    /// Finished trials replayed into the strategy.
    pub replayed: usize,
    /// Trials a crash had left running, now marked failed and to be evaluated again.
    pub interrupted: usize,
}

/// A search in progress: strategy + storage + the history the strategy sees.
pub struct Study<'s> {
    name: String,
    record: StudyRecord,
    space: &'s dyn Space,
    strategy: Box<dyn Strategy>,
    storage: Box<dyn Storage>,
    history: History,
    worker: String,
    pending: BTreeMap<u64, Arch>,
    finished: usize,
    stopper: Option<(Box<dyn Stopper>, usize)>,
    epoch_budget: Option<u64>,
}

impl<'s> Study<'s> {
    /// Opens the study `record.name` in `storage`, creating it if it does not exist. An existing
    /// study is resumed: its finished trials are replayed into `strategy` (ask then tell, in
    /// order, so a deterministic strategy ends in the state an uninterrupted run would have), and
    /// trials left running are marked failed as interrupted.
    pub fn open(
        mut storage: Box<dyn Storage>,
        record: StudyRecord,
        space: &'s dyn Space,
        mut strategy: Box<dyn Strategy>,
        worker: &str,
    ) -> Result<(Self, Resumed)> {
        let mut history = History::new();
        let (replay, interrupted) = open_stored(storage.as_mut(), &record)?;
        let mut resumed = Resumed {
            replayed: 0,
            interrupted,
        };
        let sign = record.direction.sign();
        for t in replay {
            let arch = space.parse_json(&t.arch)?;
            let _ = strategy.ask(space, &history);
            let score = t.score(sign);
            history.record(&arch, score);
            strategy.tell(space, &arch, score, &history);
            resumed.replayed += 1;
        }
        Ok((
            Study {
                name: record.name.clone(),
                record,
                space,
                strategy,
                storage,
                history,
                worker: worker.to_string(),
                pending: BTreeMap::new(),
                finished: resumed.replayed,
                stopper: None,
                epoch_budget: None,
            },
            resumed,
        ))
    }

    /// Stops unpromising trials early with `stopper`; trials run to `total_steps` (epochs).
    /// The stopper first learns from the study's completed trials (a resumed run's included).
    pub fn set_stopper(&mut self, mut stopper: Box<dyn Stopper>, total_steps: usize) -> Result<()> {
        let sign = self.record.direction.sign();
        for t in self.trials()? {
            if let Some(score) = t.score(sign) {
                let curve: Vec<f64> = t.intermediate.iter().map(|(_, x)| sign * x).collect();
                stopper.observe(&curve, score);
            }
        }
        self.stopper = Some((stopper, total_steps));
        Ok(())
    }

    /// Ends the search once the finished trials have trained this many epochs in total (their
    /// `epochs` metric: a pruned trial counts the epochs it ran).
    pub fn set_epoch_budget(&mut self, epochs: u64) {
        self.epoch_budget = Some(epochs);
    }

    /// Epochs trained by the stored trials (the `epochs` metric of finished trials).
    pub fn epochs_spent(&self) -> Result<u64> {
        Ok(self
            .trials()?
            .iter()
            .map(|t| epochs_trained(&t.metrics))
            .sum())
    }

    /// The study's stored description.
    pub fn record(&self) -> &StudyRecord {
        &self.record
    }

    /// Trials finished (complete, pruned or failed by the evaluator) so far, resumed ones included.
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// The next trial, stored as `running`; `None` when the space is exhausted.
    pub fn ask(&mut self, fidelity: Fidelity) -> Result<Option<Ask>> {
        let Some(arch) = self.strategy.ask(self.space, &self.history) else {
            return Ok(None);
        };
        self.history.mark_asked(&arch);
        let number = self.storage.create_trial(
            &self.name,
            &NewTrial {
                arch_key: self.space.key(&arch),
                arch: self.space.to_json(&arch),
                fidelity,
                state: TrialState::Running,
                worker: self.worker.clone(),
            },
        )?;
        self.pending.insert(number, arch.clone());
        Ok(Some(Ask { number, arch }))
    }

    /// Stores an intermediate value (a learning-curve point) of a running trial.
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> Result<()> {
        self.storage.report(&self.name, number, step, value)
    }

    /// Ends a trial with its outcome and tells the strategy.
    pub fn tell(
        &mut self,
        number: u64,
        outcome: std::result::Result<Evaluation, EvalError>,
    ) -> Result<()> {
        let arch = self.pending.remove(&number).ok_or_else(|| {
            Error::invalid(format!(
                "trial {number} was not asked by this study or was already told"
            ))
        })?;
        let finished = FinishedTrial::from_outcome(outcome);
        self.storage.finish_trial(&self.name, number, &finished)?;
        let score = finished.value.map(|v| self.record.direction.sign() * v);
        self.history.record(&arch, score);
        self.strategy.tell(self.space, &arch, score, &self.history);
        self.finished += 1;
        Ok(())
    }

    /// All stored trials of the study.
    pub fn trials(&self) -> Result<Vec<Trial>> {
        self.storage.trials(&self.name)
    }

    /// The best complete trial by the objective.
    pub fn best(&self) -> Result<Option<Trial>> {
        Ok(best_of(&self.trials()?, self.record.direction.sign()).cloned())
    }

    /// Runs trials until `trials` have finished (resumed ones count), calling `progress` after
    /// each. Evaluation failures end that trial as failed and the search goes on; storage errors
    /// stop the run (every trial finished so far is already stored).
    pub fn optimize(
        &mut self,
        evaluator: &mut dyn Evaluator,
        trials: usize,
        fidelity: &Fidelity,
        mut progress: impl FnMut(&Study<'s>, &Trial),
    ) -> Result<()> {
        let sign = self.record.direction.sign();
        let mut spent = match self.epoch_budget {
            Some(_) => self.epochs_spent()?,
            None => 0,
        };
        while self.finished < trials && self.epoch_budget.is_none_or(|b| spent < b) {
            let Some(ask) = self.ask(fidelity.clone())? else {
                break;
            };
            let name = self.name.clone();
            let storage = &mut self.storage;
            let stopper = &self.stopper;
            let mut report_err = None;
            let mut curve = Vec::new();
            let outcome =
                evaluator.evaluate(self.space, &ask.arch, fidelity, &mut |step, value| {
                    if let Err(e) = storage.report(&name, ask.number, step, value) {
                        report_err.get_or_insert(e);
                    }
                    curve.push(sign * value);
                    !stopper
                        .as_ref()
                        .is_some_and(|(s, total)| s.should_stop(&curve, *total))
                });
            if let Some(e) = report_err {
                return Err(e);
            }
            if let (Ok(ev), Some((s, _))) = (&outcome, self.stopper.as_mut()) {
                s.observe(&curve, sign * ev.value);
            }
            self.tell(ask.number, outcome)?;
            let trial = self.storage.trial(&self.name, ask.number)?;
            spent += epochs_trained(&trial.metrics);
            progress(self, &trial);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
