//! What a [`Study`](super::Study) asks for its next job: one interface that strategies and
//! multi-fidelity schedulers both plug into.
//!
//! A [`Proposer`] hands out a [`Proposal`] (an arch and the fidelity to evaluate it at) and
//! learns each outcome as [`Feedback`] (a score per objective, higher is better, and the
//! constraint violation). [`StrategyProposer`] adapts a [`Strategy`]: with one objective the
//! score passes through unchanged; with several, a strategy that is not multi-objective itself
//! sees a ParEGO-style random scalarisation — each ask draws a weight vector uniformly from
//! the simplex, and the outcome of that ask is told as the augmented Tchebycheff value of its
//! objectives normalised by the ranges observed so far. [`SchedulerProposer`] adapts a
//! [`Scheduler`]: its jobs carry their rung's epochs, and it ranks on the first objective.

use super::Fidelity;
use crate::rng::Rng;
use crate::scheduler::{Job, Scheduler};
use crate::space::{Arch, Space};
use crate::strategy::{Feedback, History, Strategy};
use std::collections::HashMap;

/// One job to run: evaluate `arch` at `fidelity`.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// The proposer's own sequence number of the job.
    pub id: u64,
    /// The arch.
    pub arch: Arch,
    /// How much the evaluation may spend.
    pub fidelity: Fidelity,
}

/// Proposes jobs and learns their outcomes. See the [module docs](self).
pub trait Proposer: Send {
    /// The strategy's or scheduler's registry name.
    fn name(&self) -> &str;

    /// The next job; `None` when nothing is left to propose. Never an arch at a fidelity that
    /// `history` already holds, for strategies.
    fn propose(&mut self, space: &dyn Space, history: &History) -> Option<Proposal>;

    /// The outcome of a proposal this proposer made. Records it in `history` (the score the
    /// strategy was told) and then tells the strategy or scheduler.
    fn observe(
        &mut self,
        space: &dyn Space,
        proposal: &Proposal,
        feedback: &Feedback,
        history: &mut History,
    );

    /// Whether it can share a study with other workers ([`Proposer::observe_foreign`]).
    fn shares(&self) -> bool {
        false
    }

    /// A job it did not propose: another worker's, running (`None`) or finished. It is
    /// never proposed again, and a finished one is learnt from as if proposed here.
    fn observe_foreign(
        &mut self,
        _space: &dyn Space,
        arch: &Arch,
        _fidelity: &Fidelity,
        feedback: Option<&Feedback>,
        history: &mut History,
    ) {
        match feedback {
            Some(f) => history.record(arch, f.first_score()),
            None => history.mark_asked(arch),
        }
    }
}

/// Weight of the linear term of the augmented Tchebycheff scalarisation (ParEGO's 0.05).
const RHO: f64 = 0.05;

/// A [`Strategy`] as a [`Proposer`] for `objectives` objectives.
pub struct StrategyProposer {
    strategy: Box<dyn Strategy>,
    objectives: usize,
    rng: Rng,
    next_id: u64,
    weights: HashMap<u64, Vec<f64>>,
    /// Per objective, the lowest and highest score observed (feasible outcomes).
    ranges: Vec<(f64, f64)>,
}

impl StrategyProposer {
    /// Wraps `strategy`; `seed` draws the scalarisation weights (unused with one objective or
    /// a multi-objective strategy).
    pub fn new(strategy: Box<dyn Strategy>, objectives: usize, seed: u64) -> Self {
        StrategyProposer {
            strategy,
            objectives: objectives.max(1),
            rng: Rng::new(seed ^ 0x5ca1_a815_e000_0001),
            next_id: 0,
            weights: HashMap::new(),
            ranges: Vec::new(),
        }
    }

    /// Boxed, for [`Study::open`](super::Study::open).
    pub fn boxed(strategy: Box<dyn Strategy>, objectives: usize, seed: u64) -> Box<dyn Proposer> {
        Box::new(Self::new(strategy, objectives, seed))
    }

    fn scalarises(&self) -> bool {
        self.objectives > 1 && !self.strategy.is_multi_objective()
    }

    /// A weight vector drawn uniformly from the simplex (normalised exponentials).
    fn draw_weights(&mut self) -> Vec<f64> {
        let mut w: Vec<f64> = (0..self.objectives)
            .map(|_| -(1.0 - self.rng.next_f64()).ln())
            .collect();
        let sum: f64 = w.iter().sum();
        for x in &mut w {
            *x /= sum;
        }
        w
    }

    /// The augmented Tchebycheff value (higher is better) of `scores` under `w`, each
    /// objective normalised to [0, 1] by the observed range.
    fn scalarise(&self, scores: &[f64], w: &[f64]) -> f64 {
        let mut worst = 0.0f64;
        let mut sum = 0.0;
        for ((s, &(lo, hi)), wi) in scores.iter().zip(&self.ranges).zip(w) {
            let z = if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };
            let gap = wi * (1.0 - z);
            worst = worst.max(gap);
            sum += gap;
        }
        -(worst + RHO * sum)
    }
}

impl Proposer for StrategyProposer {
    fn name(&self) -> &str {
        self.strategy.name()
    }

    fn propose(&mut self, space: &dyn Space, history: &History) -> Option<Proposal> {
        let arch = self.strategy.ask(space, history)?;
        let id = self.next_id;
        self.next_id += 1;
        if self.scalarises() {
            let w = self.draw_weights();
            self.weights.insert(id, w);
        }
        Some(Proposal {
            id,
            arch,
            fidelity: Fidelity::default(),
        })
    }

    fn observe(
        &mut self,
        space: &dyn Space,
        proposal: &Proposal,
        feedback: &Feedback,
        history: &mut History,
    ) {
        self.learn(space, &proposal.arch, Some(proposal.id), feedback, history);
    }

    fn shares(&self) -> bool {
        true
    }

    fn observe_foreign(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        _: &Fidelity,
        feedback: Option<&Feedback>,
        history: &mut History,
    ) {
        match feedback {
            Some(f) => self.learn(space, arch, None, f, history),
            None => history.mark_asked(arch),
        }
    }
}

impl StrategyProposer {
    /// Records the outcome of `arch` (proposed here as `id`, or by another worker) and tells
    /// the strategy; another worker's outcome is scalarised with equal weights.
    fn learn(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        id: Option<u64>,
        feedback: &Feedback,
        history: &mut History,
    ) {
        if !self.scalarises() {
            history.record(arch, feedback.first_score());
            self.strategy.tell_feedback(space, arch, feedback, history);
            return;
        }
        let w = id
            .and_then(|id| self.weights.remove(&id))
            .unwrap_or_else(|| vec![1.0 / self.objectives as f64; self.objectives]);
        let score = match &feedback.scores {
            Some(s) if feedback.is_feasible() && s.len() == self.objectives => {
                if self.ranges.is_empty() {
                    self.ranges = s.iter().map(|&x| (x, x)).collect();
                }
                for (r, &x) in self.ranges.iter_mut().zip(s) {
                    *r = (r.0.min(x), r.1.max(x));
                }
                Some(self.scalarise(s, &w))
            }
            _ => None,
        };
        history.record(arch, score);
        self.strategy.tell(space, arch, score, history);
    }
}

/// A [`Scheduler`] as a [`Proposer`]: each job's fidelity is its rung's epochs, and it ranks
/// jobs on the first objective of feasible outcomes.
pub struct SchedulerProposer {
    scheduler: Box<dyn Scheduler>,
    jobs: HashMap<u64, Job>,
}

impl SchedulerProposer {
    /// Wraps `scheduler`.
    pub fn new(scheduler: Box<dyn Scheduler>) -> Self {
        SchedulerProposer {
            scheduler,
            jobs: HashMap::new(),
        }
    }

    /// Boxed, for [`Study::open`](super::Study::open).
    pub fn boxed(scheduler: Box<dyn Scheduler>) -> Box<dyn Proposer> {
        Box::new(Self::new(scheduler))
    }
}

impl Proposer for SchedulerProposer {
    fn name(&self) -> &str {
        self.scheduler.name()
    }

    fn propose(&mut self, space: &dyn Space, _: &History) -> Option<Proposal> {
        let job = self.scheduler.next(space)?;
        let epochs = self.scheduler.rungs().budgets()[job.rung];
        let proposal = Proposal {
            id: job.id,
            arch: job.arch.clone(),
            fidelity: Fidelity {
                epochs: Some(epochs),
                data_fraction: None,
            },
        };
        self.jobs.insert(job.id, job);
        Some(proposal)
    }

    fn observe(
        &mut self,
        space: &dyn Space,
        proposal: &Proposal,
        feedback: &Feedback,
        history: &mut History,
    ) {
        let score = feedback.first_score();
        history.record(&proposal.arch, score);
        if let Some(job) = self.jobs.remove(&proposal.id) {
            self.scheduler.report(space, &job, score);
        }
    }

    fn shares(&self) -> bool {
        self.scheduler.is_asynchronous()
    }

    fn observe_foreign(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        feedback: Option<&Feedback>,
        history: &mut History,
    ) {
        let outcome = feedback.map(|f| f.first_score());
        match outcome {
            Some(score) => history.record(arch, score),
            None => history.mark_asked(arch),
        }
        let budgets = self.scheduler.rungs().budgets();
        if let Some(rung) = fidelity
            .epochs
            .and_then(|e| budgets.iter().position(|&b| b == e))
        {
            self.scheduler.note_foreign(space, arch, rung, outcome);
        }
    }
}

/// The archs a [`ListProposer`] hands out, shared with whoever fills it (a one-shot method
/// appends each supernet epoch's derived arch).
pub type ArchList = std::sync::Arc<std::sync::Mutex<Vec<Arch>>>;

/// Proposes the archs of a list in its order, each once (an arch already asked is passed
/// over), until the list runs out: a one-shot method's derived archs, fixed by its supernet
/// training before any trial runs.
pub struct ListProposer {
    name: String,
    archs: ArchList,
    next: usize,
    next_id: u64,
}

impl ListProposer {
    /// A proposer named `name` (the method) over `archs`.
    pub fn new(name: impl Into<String>, archs: ArchList) -> Self {
        ListProposer {
            name: name.into(),
            archs,
            next: 0,
            next_id: 0,
        }
    }
}

impl Proposer for ListProposer {
    fn name(&self) -> &str {
        &self.name
    }

    fn propose(&mut self, _: &dyn Space, history: &History) -> Option<Proposal> {
        let archs = self.archs.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(arch) = archs.get(self.next) {
            self.next += 1;
            if !history.contains(arch) {
                let id = self.next_id;
                self.next_id += 1;
                return Some(Proposal {
                    id,
                    arch: arch.clone(),
                    fidelity: Fidelity::default(),
                });
            }
        }
        None
    }

    fn observe(
        &mut self,
        _: &dyn Space,
        proposal: &Proposal,
        feedback: &Feedback,
        h: &mut History,
    ) {
        h.record(&proposal.arch, feedback.first_score());
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;
    use crate::space;

    #[test]
    fn a_list_proposer_hands_out_each_arch_once_in_order_and_sees_appended_ones() {
        let space = space::build("nb201", &Default::default()).unwrap();
        let a = space.arch_from_values(&[0, 1, 2, 3, 4, 0]).unwrap();
        let b = space.arch_from_values(&[1, 1, 1, 1, 1, 1]).unwrap();
        let list: ArchList = Default::default();
        list.lock()
            .unwrap()
            .extend([a.clone(), a.clone(), b.clone()]);
        let mut p = ListProposer::new("darts", list.clone());
        let mut h = History::new();
        let mut got = Vec::new();
        while let Some(prop) = p.propose(space.as_ref(), &h) {
            h.mark_asked(&prop.arch);
            got.push(prop.arch);
        }
        assert_eq!(got, [a.clone(), b.clone()], "the repeated arch once");
        list.lock()
            .unwrap()
            .extend([b, a.clone(), space.arch_from_values(&[2; 6]).unwrap()]);
        let next = p.propose(space.as_ref(), &h).unwrap();
        assert_eq!(next.arch.values(), [2; 6]);
        assert!(p.propose(space.as_ref(), &h).is_none());
        assert_eq!(p.name(), "darts");
    }
}
