//! Multi-fidelity schedulers: successive halving, Hyperband, ASHA and BOHB.
//!
//! A scheduler decides both *what* to evaluate and *how much* to spend on it: each [`Job`] is an
//! arch at a rung of a ladder of budgets ([`Rungs`], e.g. 1, 3, 9 epochs). Cheap evaluations of
//! many archs decide which few earn an expensive one.
//!
//! - `sh` — successive halving (Jamieson & Talwalkar, 2016): brackets of `η^K` random archs at the
//!   lowest rung; the best `1/η` of each rung climb to the next.
//! - `hyperband` (Li et al., 2018): cycles through brackets that start at every rung, hedging
//!   between many cheap and few expensive evaluations.
//! - `asha` (Li et al., 2020): asynchronous; whenever asked, promotes an arch in the top `1/η` of
//!   its rung that was not promoted yet (highest rung first), else starts a new random arch at the
//!   lowest rung. Never waits for a rung to fill.
//! - `bohb` (Falkner et al., 2018): Hyperband whose new archs come from a TPE model fitted on the
//!   highest rung with enough results (a third of them stay random).
//!
//! Scores are "higher is better". Schedulers are seeded and deterministic: replaying the same
//! results in the same order reproduces their state, which is how a study resumes.

use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::strategy::{random_unseen, History};
use crate::{Error, Params, Result};
use std::collections::VecDeque;

/// A ladder of budgets (epochs, say), strictly increasing.
#[derive(Clone, Debug, PartialEq)]
pub struct Rungs {
    budgets: Vec<u32>,
}

impl Rungs {
    /// Budgets `max/η^K, ..., max/η, max` down to no less than `min` (rounded, at least 1).
    pub fn geometric(min: u32, max: u32, eta: u32) -> Result<Self> {
        if min == 0 || max < min || eta < 2 {
            return Err(Error::invalid(format!(
                "fidelity ladder needs 1 <= min ({min}) <= max ({max}) and eta ({eta}) >= 2"
            )));
        }
        let mut budgets = vec![max];
        let mut b = max as f64;
        loop {
            b /= eta as f64;
            let r = b.round() as u32;
            if r < min || r == *budgets.last().expect("non-empty") {
                break;
            }
            budgets.push(r);
        }
        budgets.reverse();
        Ok(Rungs { budgets })
    }

    /// Explicit budgets, strictly increasing and positive.
    pub fn explicit(budgets: Vec<u32>) -> Result<Self> {
        if budgets.is_empty() || budgets[0] == 0 || budgets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(format!(
                "fidelities must be positive and strictly increasing, got {budgets:?}"
            )));
        }
        Ok(Rungs { budgets })
    }

    /// The budgets, lowest first.
    pub fn budgets(&self) -> &[u32] {
        &self.budgets
    }

    /// The number of rungs.
    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    /// Always false: a ladder has at least one rung.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The top rung's index.
    pub fn top(&self) -> usize {
        self.budgets.len() - 1
    }
}

/// One evaluation a scheduler asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Sequence number, in the order jobs were handed out.
    pub id: u64,
    /// The arch.
    pub arch: Arch,
    /// Index into the [`Rungs`].
    pub rung: usize,
}

/// A multi-fidelity scheduler. See the [module docs](self).
pub trait Scheduler: Send {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// The next job; `None` when the space has no unseen arch left and nothing can be promoted.
    fn next(&mut self, space: &dyn Space) -> Option<Job>;

    /// The result of a job this scheduler handed out (`None`: failed or pruned).
    fn report(&mut self, space: &dyn Space, job: &Job, score: Option<f64>);

    /// The ladder it schedules on.
    fn rungs(&self) -> &Rungs;

    /// Whether it can share a study with other workers ([`Scheduler::note_foreign`]):
    /// only a scheduler that never waits for a rung to fill.
    fn is_asynchronous(&self) -> bool {
        false
    }

    /// A job another worker runs (`None`) or ran (`Some(score)`, `Some(None)`: failed or
    /// pruned): it is never handed out again, and a score ranks in its rung.
    fn note_foreign(
        &mut self,
        _space: &dyn Space,
        _arch: &Arch,
        _rung: usize,
        _outcome: Option<Option<f64>>,
    ) {
    }
}

/// A description of a registered scheduler.
pub struct SchedulerInfo {
    /// The name to ask for it by.
    pub name: &'static str,
    /// One line on what it does and its parameters.
    pub summary: &'static str,
}

/// Every registered scheduler.
pub const SCHEDULERS: &[SchedulerInfo] = &[
    SchedulerInfo {
        name: "sh",
        summary: "successive halving: brackets of eta^K random archs, the best 1/eta climb each rung; parameter eta (3)",
    },
    SchedulerInfo {
        name: "hyperband",
        summary: "Hyperband: successive-halving brackets starting at every rung in turn; parameter eta (3)",
    },
    SchedulerInfo {
        name: "asha",
        summary: "asynchronous successive halving: promote a top-1/eta arch when one is ready, else start a new one; parameter eta (3)",
    },
    SchedulerInfo {
        name: "bohb",
        summary: "BOHB: Hyperband with TPE-proposed archs from the highest rung with enough results; parameters eta (3), random_fraction (0.33), min_points (choices + 1)",
    },
];

/// Whether `name` is a registered scheduler.
pub fn is_scheduler(name: &str) -> bool {
    SCHEDULERS.iter().any(|s| s.name == name)
}

/// Builds a registered scheduler on `rungs`; `params` are read leniently (callers that build one
/// scheduler should call [`Params::finish`]).
pub fn build(name: &str, seed: u64, rungs: Rungs, params: &Params) -> Result<Box<dyn Scheduler>> {
    let eta = params.usize("eta", 3)?;
    if eta < 2 {
        return Err(Error::invalid("scheduler parameter eta must be at least 2"));
    }
    Ok(match name {
        "sh" => Box::new(Bracketed::new(seed, rungs, eta, Plan::Halving, None)),
        "hyperband" => Box::new(Bracketed::new(seed, rungs, eta, Plan::Hyperband, None)),
        "bohb" => {
            let tpe = TpeSampler {
                random_fraction: params.f64_in("random_fraction", 1.0 / 3.0, 0.0, 1.0)?,
                min_points: params.usize("min_points", 0)?,
            };
            Box::new(Bracketed::new(seed, rungs, eta, Plan::Hyperband, Some(tpe)))
        }
        "asha" => Box::new(Asha::new(seed, rungs, eta)),
        _ => {
            return Err(Error::invalid(format!(
                "unknown scheduler `{name}`; choose one of: {}",
                SCHEDULERS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    })
}

/// Results per rung, in arrival order.
#[derive(Clone, Debug, Default)]
struct Ladder {
    results: Vec<Vec<(Arch, f64)>>,
}

impl Ladder {
    fn new(rungs: usize) -> Self {
        Ladder {
            results: vec![Vec::new(); rungs],
        }
    }
}

/// New archs: uniformly random, or (BOHB) proposed by TPE on the highest rung with enough data.
#[derive(Clone, Debug)]
struct TpeSampler {
    random_fraction: f64,
    min_points: usize,
}

fn new_arch(
    space: &dyn Space,
    seen: &History,
    ladder: &Ladder,
    tpe: Option<&TpeSampler>,
    rng: &mut Rng,
) -> Option<Arch> {
    if let Some(t) = tpe {
        let min = if t.min_points == 0 {
            space.choices().len() + 1
        } else {
            t.min_points
        };
        let rung = ladder.results.iter().rposition(|r| r.len() >= min.max(3));
        if let Some(r) = rung {
            if rng.next_f64() >= t.random_fraction {
                if let Some(a) =
                    crate::strategy::tpe_propose(space, &ladder.results[r], 0.15, 64, rng, &|a| {
                        seen.contains(a)
                    })
                {
                    return Some(a);
                }
            }
        }
    }
    random_unseen(space, seen, rng)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    /// Every bracket starts at the lowest rung.
    Halving,
    /// Brackets start at the lowest, then each higher rung in turn, then again.
    Hyperband,
}

/// One successive-halving bracket.
#[derive(Debug)]
struct Bracket {
    /// The rung it currently fills.
    rung: usize,
    /// Jobs of the current rung not yet handed out.
    todo: VecDeque<Arch>,
    /// Jobs handed out and not yet reported.
    pending: usize,
    /// Results of the current rung.
    done: Vec<(Arch, f64)>,
    /// How many archs the current rung holds.
    size: usize,
}

/// Successive halving, Hyperband and BOHB: synchronous brackets.
pub struct Bracketed {
    rng: Rng,
    rungs: Rungs,
    eta: usize,
    plan: Plan,
    tpe: Option<TpeSampler>,
    brackets: Vec<Bracket>,
    /// Which bracket the next new one is in the Hyperband cycle (0 = starts at the lowest rung).
    cycle: usize,
    seen: History,
    ladder: Ladder,
    next_id: u64,
    jobs: Vec<(u64, usize)>,
}

impl Bracketed {
    fn new(seed: u64, rungs: Rungs, eta: usize, plan: Plan, tpe: Option<TpeSampler>) -> Self {
        let n = rungs.len();
        Bracketed {
            rng: Rng::new(seed),
            rungs,
            eta,
            plan,
            tpe,
            brackets: Vec::new(),
            cycle: 0,
            seen: History::new(),
            ladder: Ladder::new(n),
            next_id: 0,
            jobs: Vec::new(),
        }
    }

    /// Opens the next bracket: `n` new archs at its starting rung.
    fn open(&mut self, space: &dyn Space) -> bool {
        let k = self.rungs.top();
        let s = match self.plan {
            Plan::Halving => k,
            Plan::Hyperband => k - self.cycle % (k + 1),
        };
        self.cycle += 1;
        let n =
            ((k + 1) as f64 / (s + 1) as f64 * (self.eta as f64).powi(s as i32)).ceil() as usize;
        let mut todo = VecDeque::new();
        for _ in 0..n {
            let Some(a) = new_arch(
                space,
                &self.seen,
                &self.ladder,
                self.tpe.as_ref(),
                &mut self.rng,
            ) else {
                break;
            };
            self.seen.mark_asked(&a);
            todo.push_back(a);
        }
        if todo.is_empty() {
            return false;
        }
        self.brackets.push(Bracket {
            rung: k - s,
            size: todo.len(),
            todo,
            pending: 0,
            done: Vec::new(),
        });
        true
    }
}

impl Scheduler for Bracketed {
    fn name(&self) -> &'static str {
        match (self.plan, self.tpe.is_some()) {
            (_, true) => "bohb",
            (Plan::Halving, _) => "sh",
            (Plan::Hyperband, _) => "hyperband",
        }
    }

    fn rungs(&self) -> &Rungs {
        &self.rungs
    }

    fn next(&mut self, space: &dyn Space) -> Option<Job> {
        loop {
            if let Some(i) = self.brackets.iter().position(|b| !b.todo.is_empty()) {
                let b = &mut self.brackets[i];
                let arch = b.todo.pop_front().expect("non-empty");
                b.pending += 1;
                let id = self.next_id;
                self.next_id += 1;
                self.jobs.push((id, i));
                return Some(Job {
                    id,
                    arch,
                    rung: b.rung,
                });
            }
            if !self.open(space) {
                return None;
            }
        }
    }

    fn report(&mut self, _: &dyn Space, job: &Job, score: Option<f64>) {
        let Some(pos) = self.jobs.iter().position(|(id, _)| *id == job.id) else {
            return;
        };
        let (_, i) = self.jobs.remove(pos);
        if let Some(s) = score {
            self.ladder.results[job.rung].push((job.arch.clone(), s));
        }
        let top = self.rungs.top();
        let eta = self.eta;
        let b = &mut self.brackets[i];
        b.pending -= 1;
        if let Some(s) = score {
            b.done.push((job.arch.clone(), s));
        }
        if b.pending == 0 && b.todo.is_empty() {
            if b.rung == top || b.done.is_empty() {
                b.size = 0;
            } else {
                let keep = (b.size / eta).max(1).min(b.done.len());
                let mut done = std::mem::take(&mut b.done);
                // Stable: ties keep arrival order, so runs are reproducible.
                done.sort_by(|x, y| y.1.total_cmp(&x.1));
                b.todo = done.into_iter().take(keep).map(|(a, _)| a).collect();
                b.rung += 1;
                b.size = keep;
            }
        }
        // Finished brackets stay in place (job indices point into the list) but are empty.
    }
}

/// Asynchronous successive halving. See the [module docs](self).
pub struct Asha {
    rng: Rng,
    rungs: Rungs,
    eta: usize,
    seen: History,
    ladder: Ladder,
    /// Per rung, archs already promoted out of it.
    promoted: Vec<History>,
    next_id: u64,
}

impl Asha {
    fn new(seed: u64, rungs: Rungs, eta: usize) -> Self {
        let n = rungs.len();
        Asha {
            rng: Rng::new(seed),
            rungs,
            eta,
            seen: History::new(),
            ladder: Ladder::new(n),
            promoted: vec![History::new(); n],
            next_id: 0,
        }
    }
}

impl Scheduler for Asha {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn rungs(&self) -> &Rungs {
        &self.rungs
    }

    fn next(&mut self, space: &dyn Space) -> Option<Job> {
        let id = self.next_id;
        for k in (0..self.rungs.top()).rev() {
            let results = &self.ladder.results[k];
            let quota = results.len() / self.eta;
            if quota == 0 {
                continue;
            }
            let mut ranked: Vec<&(Arch, f64)> = results.iter().collect();
            ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
            if let Some((arch, _)) = ranked
                .into_iter()
                .take(quota)
                .find(|(a, _)| !self.promoted[k].contains(a))
            {
                let arch = arch.clone();
                self.promoted[k].mark_asked(&arch);
                self.next_id += 1;
                return Some(Job {
                    id,
                    arch,
                    rung: k + 1,
                });
            }
        }
        let arch = random_unseen(space, &self.seen, &mut self.rng)?;
        self.seen.mark_asked(&arch);
        self.next_id += 1;
        Some(Job { id, arch, rung: 0 })
    }

    fn report(&mut self, _: &dyn Space, job: &Job, score: Option<f64>) {
        if let Some(s) = score {
            self.ladder.results[job.rung].push((job.arch.clone(), s));
        }
    }

    fn is_asynchronous(&self) -> bool {
        true
    }

    fn note_foreign(
        &mut self,
        _: &dyn Space,
        arch: &Arch,
        rung: usize,
        outcome: Option<Option<f64>>,
    ) {
        self.seen.mark_asked(arch);
        if rung > 0 {
            self.promoted[rung - 1].mark_asked(arch);
        }
        if let Some(Some(s)) = outcome {
            if !self.ladder.results[rung].iter().any(|(a, _)| a == arch) {
                self.ladder.results[rung].push((arch.clone(), s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Nb201Space;

    /// A noisy-at-low-budget score: the true quality plus an error that shrinks with budget.
    fn score(space: &dyn Space, arch: &Arch, budget: u32) -> f64 {
        let q: f64 = arch
            .values()
            .iter()
            .map(|&v| [0.0, 1.0, 2.0, 3.0, 1.5][v as usize])
            .sum();
        let noise = ((space.key(arch).len() * 7919 + arch.values()[0] as usize * 31) % 13) as f64;
        q + noise / budget as f64
    }

    #[test]
    fn geometric_rungs() {
        assert_eq!(
            Rungs::geometric(1, 27, 3).unwrap().budgets(),
            &[1, 3, 9, 27]
        );
        assert_eq!(Rungs::geometric(2, 20, 3).unwrap().budgets(), &[2, 7, 20]);
        assert_eq!(Rungs::geometric(5, 5, 3).unwrap().budgets(), &[5]);
        assert!(Rungs::geometric(0, 5, 3).is_err());
        assert!(Rungs::explicit(vec![12, 12]).is_err());
    }

    #[test]
    fn successive_halving_promotes_the_best_third() {
        let space = Nb201Space::new();
        let rungs = Rungs::explicit(vec![1, 3, 9]).unwrap();
        let mut s = build("sh", 1, rungs, &Params::new()).unwrap();
        let mut per_rung = [0usize; 3];
        let mut at_rung: Vec<Vec<(Arch, f64)>> = vec![Vec::new(); 3];
        for _ in 0..13 {
            let job = s.next(&space).unwrap();
            let v = score(&space, &job.arch, [1, 3, 9][job.rung]);
            per_rung[job.rung] += 1;
            at_rung[job.rung].push((job.arch.clone(), v));
            s.report(&space, &job, Some(v));
        }
        assert_eq!(
            per_rung,
            [9, 3, 1],
            "one bracket: 9 archs, 3 promoted, 1 at the top"
        );
        let mut first = at_rung[0].clone();
        first.sort_by(|a, b| b.1.total_cmp(&a.1));
        let best3: Vec<&Arch> = first.iter().take(3).map(|(a, _)| a).collect();
        assert!(at_rung[1].iter().all(|(a, _)| best3.contains(&a)));
    }

    #[test]
    fn hyperband_cycles_brackets_and_asha_promotes_without_waiting() {
        let space = Nb201Space::new();
        let rungs = Rungs::explicit(vec![1, 3, 9]).unwrap();
        let mut hb = build("hyperband", 2, rungs.clone(), &Params::new()).unwrap();
        let mut starts = Vec::new();
        for _ in 0..(9 + 3 + 1) + (5 + 1) + 3 {
            let job = hb.next(&space).unwrap();
            starts.push(job.rung);
            let v = score(&space, &job.arch, [1, 3, 9][job.rung]);
            hb.report(&space, &job, Some(v));
        }
        // Bracket s=2: 9@1, 3@3, 1@9; s=1: ceil(3/2*3)=5@3, 1@9; s=0: 3@9.
        assert_eq!(starts.iter().filter(|&&r| r == 0).count(), 9);
        assert_eq!(starts.iter().filter(|&&r| r == 1).count(), 3 + 5);
        assert_eq!(starts.iter().filter(|&&r| r == 2).count(), 1 + 1 + 3);

        let mut asha = build("asha", 3, rungs, &Params::new()).unwrap();
        let mut rungs_seen = Vec::new();
        for _ in 0..4 {
            let job = asha.next(&space).unwrap();
            rungs_seen.push(job.rung);
            let v = score(&space, &job.arch, 1);
            asha.report(&space, &job, Some(v));
        }
        assert_eq!(
            rungs_seen,
            vec![0, 0, 0, 1],
            "after 3 results the best climbs"
        );
    }

    #[test]
    fn bohb_is_deterministic_and_uses_the_model() {
        let space = Nb201Space::new();
        let run = |seed| {
            let rungs = Rungs::explicit(vec![1, 3, 9]).unwrap();
            let mut b = build("bohb", seed, rungs, &Params::new()).unwrap();
            (0..60)
                .map(|_| {
                    let job = b.next(&space).unwrap();
                    let v = score(&space, &job.arch, [1, 3, 9][job.rung]);
                    b.report(&space, &job, Some(v));
                    (job.arch, job.rung)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(4), run(4));
        assert!(build("nope", 0, Rungs::explicit(vec![1]).unwrap(), &Params::new()).is_err());
    }
}
