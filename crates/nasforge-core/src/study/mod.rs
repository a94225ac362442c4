//! Studies: the single source of truth of a search.
//!
//! A [`Study`] asks its [`Proposer`] (a strategy or a multi-fidelity scheduler) for jobs,
//! records every [`Trial`] in a [`Storage`], and tells the proposer each outcome against the
//! study's [`Goal`] (one or more objectives, constraints). There is one driver loop,
//! [`Study::optimize`]; `nasforge search` and `nasforge bench` both run it.
//!
//! Trials survive crashes: [`Study::open`] replays the stored trials into a fresh proposer
//! (which must hand out the same jobs again) and continues, and a trial left `running` by a
//! crash is marked `failed` ("interrupted") and evaluated again, so no completed work is
//! redone or lost. An arch that breaks a constraint NetSpec can judge (parameters, MACs,
//! memory) is never evaluated and never stored: the proposer learns its violation, and the
//! replay judges it again.

mod evaluator;
mod goal;
mod memory;
mod postgres;
mod proposer;
mod shared;
mod sqlite;
mod storage;

pub use self::postgres::{PostgresStorage, Retry};
pub use evaluator::{Cost, EvalError, Evaluation, Evaluator, TableEvaluator, FIDELITY_VALUE};
pub use goal::{
    is_netspec_metric, metric, natural_direction, netspec_metrics, Bound, Constraint, Goal, Judged,
    MetricInfo, Objective, METRICS,
};
pub use memory::MemoryStorage;
pub use proposer::{
    ArchList, ListProposer, Proposal, Proposer, SchedulerProposer, StrategyProposer,
};
pub use shared::Sharing;
pub use sqlite::SqliteStorage;
pub use storage::{Created, FinishedTrial, NewTrial, Storage, StudyRecord, Told};

use crate::space::{Arch, Space};
use crate::stopper::Stopper;
use crate::strategy::{Feedback, History};
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
    /// One value per objective of the study (as measured, not sign-adjusted), once complete.
    pub values: Vec<f64>,
    /// Summed relative violation of the study's constraints (0: feasible); `None` until
    /// complete.
    pub violation: Option<f64>,
    /// What the evaluation spent.
    pub cost: Cost,
    /// Every measurement (accuracy, parameters, MACs, latency, table columns, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Intermediate values of the first objective (step, value), such as per-epoch
    /// validation accuracy.
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
    /// How an evaluation's outcome is stored: its metrics merged over the NetSpec ones, judged
    /// against `goal`. An evaluation that lacks an objective's metric is a failed trial.
    pub fn judge(
        goal: &Goal,
        netspec: &BTreeMap<String, f64>,
        outcome: std::result::Result<Evaluation, EvalError>,
    ) -> Self {
        let merged = |metrics: BTreeMap<String, f64>| {
            let mut all = netspec.clone();
            all.extend(metrics);
            all
        };
        match outcome {
            Ok(ev) => {
                let metrics = merged(ev.metrics);
                match goal.judge(&metrics) {
                    Ok(j) => FinishedTrial {
                        state: TrialState::Complete,
                        values: j.values,
                        violation: Some(j.violation),
                        metrics,
                        cost: ev.cost,
                        error: None,
                    },
                    Err(reason) => FinishedTrial {
                        state: TrialState::Failed,
                        values: Vec::new(),
                        violation: None,
                        metrics,
                        cost: ev.cost,
                        error: Some(reason),
                    },
                }
            }
            Err(EvalError::Pruned { metrics, cost }) => FinishedTrial {
                state: TrialState::Pruned,
                values: Vec::new(),
                violation: None,
                metrics: merged(metrics),
                cost,
                error: None,
            },
            Err(EvalError::Failed(reason)) => FinishedTrial {
                state: TrialState::Failed,
                values: Vec::new(),
                violation: None,
                metrics: netspec.clone(),
                cost: Cost::default(),
                error: Some(reason),
            },
        }
    }

    /// What the proposer learns of this outcome under `goal`.
    fn feedback(&self, goal: &Goal) -> Feedback {
        feedback(goal, self.state, &self.values, self.violation)
    }
}

/// What a proposer learns of an outcome: sign-adjusted scores of a complete trial that has a
/// value per objective, and its constraint violation.
fn feedback(goal: &Goal, state: TrialState, values: &[f64], violation: Option<f64>) -> Feedback {
    Feedback {
        scores: (state == TrialState::Complete && values.len() == goal.objectives.len())
            .then(|| goal.scores(values)),
        violation: violation.unwrap_or(0.0),
    }
}

/// Opens `record.name` in `storage`: creates it, or checks that the stored study has the same
/// space and goal and returns its trials after marking those a crash left running as failed
/// ("interrupted"). Returns the trials to replay and how many were interrupted.
fn open_stored(storage: &mut dyn Storage, record: &StudyRecord) -> Result<(Vec<Trial>, usize)> {
    let Some(stored) = storage.study(&record.name)? else {
        storage.create_study(record)?;
        return Ok((Vec::new(), 0));
    };
    let (was, now) = (stored.goal(), record.goal());
    if stored.space != record.space || was != now {
        return Err(Error::invalid(format!(
            "study `{}` was created for space `{}`, objectives {}, constraints {}; it cannot continue with space `{}`, objectives {}, constraints {}",
            record.name,
            stored.space,
            was.describe_objectives(),
            was.describe_constraints(),
            record.space,
            now.describe_objectives(),
            now.describe_constraints()
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
                    values: Vec::new(),
                    violation: None,
                    metrics: t.metrics.clone(),
                    cost: t.cost,
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

/// How the error of a trial whose worker stopped heart-beating begins.
const STALE: &str = "stale";

impl Trial {
    /// Whether this trial was left running by a process that stopped (or, in a study shared
    /// by workers, failed as stale when its worker went silent): it does not count as a
    /// finished trial (its arch is evaluated again), so readers skip it when they count trials.
    pub fn was_interrupted(&self) -> bool {
        !storage::counts(self.state, self.error.as_deref())
    }

    /// The first objective's value, once complete.
    pub fn value(&self) -> Option<f64> {
        match self.state {
            TrialState::Complete => self.values.first().copied(),
            _ => None,
        }
    }

    /// Whether the trial met every constraint (trials that are not complete are not).
    pub fn is_feasible(&self) -> bool {
        self.state == TrialState::Complete && self.violation.is_none_or(|v| v <= 0.0)
    }

    /// The first objective as a strategy sees it (`sign * value`), for complete trials only.
    pub fn score(&self, sign: f64) -> Option<f64> {
        self.value().map(|v| sign * v)
    }
}

/// The highest epochs fidelity any complete trial reached (trials without one share `None`).
fn top_fidelity(trials: &[Trial]) -> Option<u32> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.fidelity.epochs)
        .max()
}

/// The best feasible complete trial of `trials` by the first objective, at the highest
/// fidelity any complete trial reached (a score at fewer epochs is not comparable with one at
/// more; trials without an epochs fidelity all share one level). `sign` is the first
/// objective's sign. Of equal values the later trial wins.
pub fn best_of(trials: &[Trial], sign: f64) -> Option<&Trial> {
    let top = top_fidelity(trials);
    trials
        .iter()
        .filter(|t| t.is_feasible() && t.fidelity.epochs == top)
        .max_by(|a, b| (sign * a.values[0]).total_cmp(&(sign * b.values[0])))
}

/// The Pareto front of `trials` under `goal`: the feasible complete trials at the highest
/// fidelity that no other such trial dominates, in trial order. One objective: the best ones.
pub fn front_of<'t>(trials: &'t [Trial], goal: &Goal) -> Vec<&'t Trial> {
    let top = top_fidelity(trials);
    let pool: Vec<&Trial> = trials
        .iter()
        .filter(|t| {
            t.is_feasible() && t.fidelity.epochs == top && t.values.len() == goal.objectives.len()
        })
        .collect();
    let points: Vec<Vec<f64>> = pool.iter().map(|t| goal.scores(&t.values)).collect();
    crate::pareto::front(&points)
        .into_iter()
        .map(|i| pool[i])
        .collect()
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
    /// The fidelity to evaluate it at.
    pub fidelity: Fidelity,
}

/// What [`Study::open`] found in the storage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resumed {
    /// Finished trials replayed into the proposer.
    pub replayed: usize,
    /// Trials a crash had left running, now marked failed and to be evaluated again.
    pub interrupted: usize,
}

/// How many proposals in a row may break a NetSpec-judged constraint before the study gives
/// up ([`Study::set_max_infeasible`]).
pub const MAX_INFEASIBLE: usize = 2000;

/// Metrics a study knows before training besides NetSpec's (a predicted latency, say): a
/// function of the network; an error stops the search with its message.
pub type PreMetrics = Box<dyn Fn(&crate::netspec::NetSpec) -> Result<BTreeMap<String, f64>> + Send>;

/// A job taken from the proposer that passed the NetSpec constraints, with those metrics.
struct Taken {
    proposal: Proposal,
    netspec: BTreeMap<String, f64>,
    /// Not proposed by this worker's proposer (a queued trial it claimed).
    foreign: bool,
}

/// A search in progress: proposer + storage + the history the proposer sees.
pub struct Study<'s> {
    record: StudyRecord,
    goal: Goal,
    space: &'s dyn Space,
    proposer: Box<dyn Proposer>,
    storage: Box<dyn Storage>,
    history: History,
    worker: String,
    pending: BTreeMap<u64, Taken>,
    /// A job taken but not started because it would overrun the epoch budget.
    held: Option<Taken>,
    finished: usize,
    spent: u64,
    stopper: Option<(Box<dyn Stopper>, usize)>,
    epoch_budget: Option<u64>,
    max_infeasible: usize,
    /// Archs NetSpec showed infeasible so far (never evaluated, never stored).
    skipped: usize,
    /// The least violation among skipped archs, with the arch, for the error message.
    closest: Option<(f64, String)>,
    pre_metrics: Option<PreMetrics>,
    /// Set when the study is shared with other workers ([`Study::join`]).
    shared: Option<shared::SharedState>,
}

impl<'s> Study<'s> {
    /// A study over `storage` with nothing replayed yet.
    fn new(
        storage: Box<dyn Storage>,
        record: StudyRecord,
        goal: Goal,
        space: &'s dyn Space,
        proposer: Box<dyn Proposer>,
        worker: &str,
        pre_metrics: Option<PreMetrics>,
    ) -> Self {
        Study {
            record,
            goal,
            space,
            proposer,
            storage,
            history: History::new(),
            worker: worker.to_string(),
            pending: BTreeMap::new(),
            held: None,
            finished: 0,
            spent: 0,
            stopper: None,
            epoch_budget: None,
            max_infeasible: MAX_INFEASIBLE,
            skipped: 0,
            closest: None,
            pre_metrics,
            shared: None,
        }
    }

    /// Opens the study `record.name` in `storage`, creating it if it does not exist. An
    /// existing study is resumed: its finished trials are replayed into `proposer` (propose,
    /// then observe, in order — so a deterministic proposer ends in the state an uninterrupted
    /// run would have; a proposer that hands out another job is a changed configuration or
    /// seed, and an error), and trials left running are marked failed as interrupted.
    pub fn open(
        storage: Box<dyn Storage>,
        record: StudyRecord,
        space: &'s dyn Space,
        proposer: Box<dyn Proposer>,
        worker: &str,
    ) -> Result<(Self, Resumed)> {
        Self::open_with(storage, record, space, proposer, worker, None)
    }

    /// [`Study::open`] with metrics known before training besides NetSpec's (a latency
    /// predictor): they are stored with every trial, and constraints on them are judged before
    /// training like NetSpec's (the replay judges them again, so give the same function on
    /// resume).
    pub fn open_with(
        mut storage: Box<dyn Storage>,
        record: StudyRecord,
        space: &'s dyn Space,
        proposer: Box<dyn Proposer>,
        worker: &str,
        pre_metrics: Option<PreMetrics>,
    ) -> Result<(Self, Resumed)> {
        let goal = record.goal();
        if goal.objectives.is_empty() {
            return Err(Error::invalid("a study needs at least one objective"));
        }
        let (replay, interrupted) = open_stored(storage.as_mut(), &record)?;
        let mut study = Study::new(storage, record, goal, space, proposer, worker, pre_metrics);
        for t in &replay {
            let Some(taken) = study.take()? else {
                return Err(Error::invalid(format!(
                    "the stored trials do not follow this {} (it has nothing to propose for trial {}); was the configuration changed?",
                    study.proposer.name(),
                    t.number
                )));
            };
            let key = space.key(&taken.proposal.arch);
            if key != t.arch_key || taken.proposal.fidelity.epochs != t.fidelity.epochs {
                return Err(Error::invalid(format!(
                    "stored trial {} ({} at {:?} epochs) is not what {} replays ({key} at {:?} epochs); was the configuration or the seed changed?",
                    t.number,
                    t.arch_key,
                    t.fidelity.epochs,
                    study.proposer.name(),
                    taken.proposal.fidelity.epochs
                )));
            }
            let feedback = feedback(&study.goal, t.state, &t.values, t.violation);
            study
                .proposer
                .observe(space, &taken.proposal, &feedback, &mut study.history);
            study.spent += u64::from(t.cost.epochs);
            study.finished += 1;
        }
        let resumed = Resumed {
            replayed: replay.len(),
            interrupted,
        };
        Ok((study, resumed))
    }

    /// Stops unpromising trials early with `stopper`; trials run to `total_steps` (epochs).
    /// The stopper first learns from the study's complete trials (a resumed run's included).
    /// It watches the first objective's learning curve.
    pub fn set_stopper(&mut self, mut stopper: Box<dyn Stopper>, total_steps: usize) -> Result<()> {
        let sign = self.goal.objectives[0].sign();
        for t in self.trials()? {
            if let Some(score) = t.score(sign) {
                let curve: Vec<f64> = t.intermediate.iter().map(|(_, x)| sign * x).collect();
                stopper.observe(&curve, score);
            }
        }
        self.stopper = Some((stopper, total_steps));
        Ok(())
    }

    /// Ends the search once the finished trials have trained this many epochs in total (a
    /// pruned trial counts the epochs it ran). A job whose fidelity would take the total past
    /// the budget is not started, so a resume with a larger budget picks it up.
    pub fn set_epoch_budget(&mut self, epochs: u64) {
        self.epoch_budget = Some(epochs);
    }

    /// How many proposals in a row may break a NetSpec-judged constraint before
    /// [`Study::ask`] gives up with an error (default [`MAX_INFEASIBLE`]).
    pub fn set_max_infeasible(&mut self, n: usize) {
        self.max_infeasible = n.max(1);
    }

    /// Epochs trained by the finished trials.
    pub fn epochs_spent(&self) -> u64 {
        self.spent
    }

    /// The study's stored description.
    pub fn record(&self) -> &StudyRecord {
        &self.record
    }

    /// The objectives and constraints.
    pub fn goal(&self) -> &Goal {
        &self.goal
    }

    /// Trials finished (complete, pruned or failed by the evaluator) so far, resumed ones
    /// included; in a shared study, every worker's that this worker has seen.
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// Archs proposed but never evaluated because NetSpec showed they break a constraint.
    pub fn skipped_infeasible(&self) -> usize {
        self.skipped
    }

    /// The next job from the proposer that passes the NetSpec constraints (the others are
    /// told their violation at once); `None` when the proposer has nothing left.
    fn take(&mut self) -> Result<Option<Taken>> {
        if let Some(t) = self.held.take() {
            return Ok(Some(t));
        }
        let mut in_a_row = 0usize;
        loop {
            let Some(proposal) = self.proposer.propose(self.space, &self.history) else {
                return Ok(None);
            };
            self.history.mark_asked(&proposal.arch);
            let netspec = self.pre_training_metrics(&proposal.arch)?;
            let violation = self.goal.violation_before_training(&netspec);
            if violation <= 0.0 {
                return Ok(Some(Taken {
                    proposal,
                    netspec,
                    foreign: false,
                }));
            }
            self.skipped += 1;
            in_a_row += 1;
            if self.closest.as_ref().is_none_or(|(v, _)| violation < *v) {
                self.closest = Some((violation, self.describe_netspec(&proposal.arch, &netspec)));
            }
            let feedback = Feedback {
                scores: None,
                violation,
            };
            self.proposer
                .observe(self.space, &proposal, &feedback, &mut self.history);
            if in_a_row >= self.max_infeasible {
                return Err(Error::invalid(format!(
                    "{in_a_row} proposals in a row broke the constraints {} before any training (closest: {}); nothing in this space may satisfy them — loosen the constraint or change the space's size parameters",
                    self.goal.describe_constraints(),
                    self.closest.as_ref().map_or(String::new(), |c| c.1.clone())
                )));
            }
        }
    }

    /// What is known of `arch` before training: NetSpec's metrics and the pre-metrics (none
    /// for an arch the space cannot decode: the evaluator fails it with the reason).
    fn pre_training_metrics(&self, arch: &Arch) -> Result<BTreeMap<String, f64>> {
        Ok(match self.space.decode(arch) {
            Ok(spec) => {
                let mut m = netspec_metrics(&spec);
                if let Some(f) = &self.pre_metrics {
                    m.extend(f(&spec)?);
                }
                m
            }
            Err(_) => BTreeMap::new(),
        })
    }

    /// The stored form of a proposal, running on this worker.
    fn new_trial(&self, p: &Proposal) -> NewTrial {
        NewTrial {
            arch_key: self.space.key(&p.arch),
            arch: self.space.to_json(&p.arch),
            fidelity: p.fidelity.clone(),
            state: TrialState::Running,
            worker: self.worker.clone(),
        }
    }

    fn describe_netspec(&self, arch: &Arch, netspec: &BTreeMap<String, f64>) -> String {
        let parts: Vec<String> = self
            .goal
            .constraints
            .iter()
            .filter_map(|c| netspec.get(&c.metric).map(|v| format!("{}={v}", c.metric)))
            .collect();
        format!("{} with {}", self.space.format(arch), parts.join(", "))
    }

    /// The next trial, stored as `running`; `None` when the proposer has nothing left or the
    /// next job would overrun the epoch budget.
    pub fn ask(&mut self) -> Result<Option<Ask>> {
        if self.shared.is_some() {
            return self.ask_shared();
        }
        let Some(taken) = self.take()? else {
            return Ok(None);
        };
        if let (Some(b), Some(e)) = (self.epoch_budget, taken.proposal.fidelity.epochs) {
            if self.spent + u64::from(e) > b {
                self.held = Some(taken);
                return Ok(None);
            }
        }
        let p = &taken.proposal;
        let number = self
            .storage
            .create_trial(&self.record.name, &self.new_trial(p))?;
        let ask = Ask {
            number,
            arch: p.arch.clone(),
            fidelity: p.fidelity.clone(),
        };
        self.pending.insert(number, taken);
        Ok(Some(ask))
    }

    /// Stores an intermediate value (a learning-curve point of the first objective) of a
    /// running trial.
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> Result<()> {
        self.storage.report(&self.record.name, number, step, value)
    }

    /// Ends a trial with its outcome and tells the proposer.
    pub fn tell(
        &mut self,
        number: u64,
        outcome: std::result::Result<Evaluation, EvalError>,
    ) -> Result<()> {
        let taken = self.pending.remove(&number).ok_or_else(|| {
            Error::invalid(format!(
                "trial {number} was not asked by this study or was already told"
            ))
        })?;
        let finished = FinishedTrial::judge(&self.goal, &taken.netspec, outcome);
        if self.shared.is_some() {
            let told =
                match self
                    .storage
                    .finish_owned(&self.record.name, number, &self.worker, &finished)
                {
                    Ok(told) => told,
                    Err(e) => return Err(self.keep_unsent(number, &finished, e)),
                };
            if told == Told::Lost {
                // The trial was failed as stale and queued again: its re-run's outcome is
                // the one that counts, and the proposer learns it from the storage.
                self.count_lost();
                return Ok(());
            }
        } else {
            self.storage
                .finish_trial(&self.record.name, number, &finished)?;
        }
        let feedback = finished.feedback(&self.goal);
        let p = &taken.proposal;
        if taken.foreign {
            self.proposer.observe_foreign(
                self.space,
                &p.arch,
                &p.fidelity,
                Some(&feedback),
                &mut self.history,
            );
        } else {
            self.proposer
                .observe(self.space, p, &feedback, &mut self.history);
        }
        self.spent += u64::from(finished.cost.epochs);
        self.finished += 1;
        Ok(())
    }

    /// All stored trials of the study.
    pub fn trials(&self) -> Result<Vec<Trial>> {
        self.storage.trials(&self.record.name)
    }

    /// The best feasible complete trial by the first objective ([`best_of`]).
    pub fn best(&self) -> Result<Option<Trial>> {
        Ok(best_of(&self.trials()?, self.goal.objectives[0].sign()).cloned())
    }

    /// Runs trials until `trials` have finished (resumed ones count), the proposer has
    /// nothing left, or the epoch budget is spent, calling `progress` after each. Evaluation
    /// failures end that trial as failed and the search goes on; storage errors stop the run
    /// (every trial finished so far is already stored). A worker of a shared study
    /// ([`Study::join`]) counts every worker's trials against `trials` and stops once the
    /// study holds that many and none is unfinished.
    pub fn optimize(
        &mut self,
        evaluator: &mut dyn Evaluator,
        trials: usize,
        mut progress: impl FnMut(&Study<'s>, &Trial),
    ) -> Result<()> {
        let sign = self.goal.objectives[0].sign();
        let shared = self.shared.is_some();
        if shared {
            self.set_limit(trials);
        }
        while (shared || self.finished < trials) && self.epoch_budget.is_none_or(|b| self.spent < b)
        {
            let Some(ask) = self.ask()? else {
                break;
            };
            self.beat_for(Some(ask.number));
            let name = &self.record.name;
            let storage = &mut self.storage;
            let stopper = &self.stopper;
            let mut report_err = None;
            let mut curve = Vec::new();
            let outcome =
                evaluator.evaluate(self.space, &ask.arch, &ask.fidelity, &mut |step, value| {
                    // After one failure (each may have retried for a while) the curve is no
                    // longer stored; training goes on.
                    if report_err.is_none() {
                        if let Err(e) = storage.report(name, ask.number, step, value) {
                            report_err = Some(e);
                        }
                    }
                    curve.push(sign * value);
                    !stopper
                        .as_ref()
                        .is_some_and(|(s, total)| s.should_stop(&curve, *total))
                });
            self.beat_for(None);
            if let Some(e) = report_err {
                // A shared study's worker tells the outcome all the same: it is worth more than
                // its curve, and if the database is still gone it is kept in the spool folder.
                if !shared {
                    return Err(e);
                }
            }
            self.tell(ask.number, outcome)?;
            let trial = self.storage.trial(&self.record.name, ask.number)?;
            if let (Some(score), Some((s, _))) = (trial.score(sign), self.stopper.as_mut()) {
                s.observe(&curve, score);
            }
            progress(self, &trial);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
