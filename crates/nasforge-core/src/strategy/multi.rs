//! Multi-objective strategies: NSGA-II (Deb et al., 2002) and multi-objective regularized
//! evolution. Both rank by Pareto dominance with Deb's feasibility-first rule: a feasible arch
//! beats an infeasible one, two infeasible archs compare by their constraint violation, and a
//! failed or pruned trial ranks below every measured one. With one objective they are plain
//! (constrained) evolutionary searches.

use super::{random_unseen, Feedback, History, Strategy};
use crate::pareto::{constrained_sort, crowding_distance};
use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::{Error, Result};
use std::collections::VecDeque;

/// An evaluated arch as the selection sees it.
#[derive(Clone, Debug)]
struct Member {
    arch: Arch,
    /// Higher-is-better scores (empty for failed or pruned trials).
    scores: Vec<f64>,
    /// Constraint violation; infinite for failed or pruned trials.
    violation: f64,
}

impl Member {
    fn new(arch: &Arch, feedback: &Feedback) -> Self {
        match &feedback.scores {
            Some(s) => Member {
                arch: arch.clone(),
                scores: s.clone(),
                violation: feedback.violation.max(0.0),
            },
            None if feedback.violation > 0.0 => Member {
                arch: arch.clone(),
                scores: Vec::new(),
                violation: feedback.violation,
            },
            None => Member {
                arch: arch.clone(),
                scores: Vec::new(),
                violation: f64::INFINITY,
            },
        }
    }
}

/// Rank (front index) and crowding distance of every member, by the constrained sort.
fn rank(members: &[&Member]) -> (Vec<usize>, Vec<f64>) {
    let width = members
        .iter()
        .map(|m| m.scores.len())
        .max()
        .unwrap_or(1)
        .max(1);
    // Members without scores are infeasible (violation > 0), so their points only fill the slot.
    let points: Vec<Vec<f64>> = members
        .iter()
        .map(|m| {
            if m.scores.len() == width {
                m.scores.clone()
            } else {
                vec![0.0; width]
            }
        })
        .collect();
    // `Member::new` gives every member without scores a positive violation.
    let violations: Vec<f64> = members.iter().map(|m| m.violation).collect();
    let mut ranks = vec![0; members.len()];
    let mut crowding = vec![0.0; members.len()];
    for (r, front) in constrained_sort(&points, &violations).iter().enumerate() {
        let d = crowding_distance(&points, front);
        for (&i, di) in front.iter().zip(d) {
            ranks[i] = r;
            crowding[i] = di;
        }
    }
    (ranks, crowding)
}

/// Tells a scalar score as a one-objective feedback (for callers of [`Strategy::tell`]).
fn scalar_feedback(score: Option<f64>) -> Feedback {
    Feedback {
        scores: score.map(|s| vec![s]),
        violation: 0.0,
    }
}

/// A child of `parents` not yet in `history`: `make` draws one, up to 100 tries, then a random
/// unseen arch.
fn fresh_child(
    space: &dyn Space,
    history: &History,
    rng: &mut Rng,
    mut make: impl FnMut(&mut Rng) -> Arch,
) -> Option<Arch> {
    for _ in 0..100 {
        let child = make(rng);
        if !history.contains(&child) {
            return Some(child);
        }
    }
    random_unseen(space, history, rng)
}

/// NSGA-II with Optuna's defaults: a population of 50, binary tournaments on (rank, crowding),
/// uniform crossover with probability 0.9, and each choice resampled with probability
/// 1 / choices. The first generation is random; each later one is bred from the parents, and
/// when a generation of `population` children has been told, parents and children together
/// are sorted into fronts and the best `population` survive (the last front cut by crowding).
pub struct Nsga2 {
    rng: Rng,
    population: usize,
    crossover: f64,
    mutation: Option<f64>,
    parents: Vec<Member>,
    ranks: Vec<usize>,
    crowding: Vec<f64>,
    children: Vec<Member>,
}

impl Nsga2 {
    /// NSGA-II with `population` members per generation, crossover probability `crossover`,
    /// and per-choice mutation probability `mutation` (default 1 / choices).
    pub fn new(
        seed: u64,
        population: usize,
        crossover: f64,
        mutation: Option<f64>,
    ) -> Result<Self> {
        if population < 2 {
            return Err(Error::invalid(format!(
                "nsga2: population must be at least 2, got {population}"
            )));
        }
        Ok(Nsga2 {
            rng: Rng::new(seed),
            population,
            crossover,
            mutation,
            parents: Vec::new(),
            ranks: Vec::new(),
            crowding: Vec::new(),
            children: Vec::new(),
        })
    }

    /// Binary tournament: the lower rank wins, then the larger crowding distance.
    fn tournament(&mut self) -> usize {
        let n = self.parents.len();
        let (a, b) = (self.rng.below(n), self.rng.below(n));
        let key = |i: usize| (self.ranks[i], -self.crowding[i]);
        let (ka, kb) = (key(a), key(b));
        if ka.0 != kb.0 {
            return if ka.0 < kb.0 { a } else { b };
        }
        match ka.1.partial_cmp(&kb.1) {
            Some(std::cmp::Ordering::Less) => a,
            Some(std::cmp::Ordering::Greater) => b,
            _ => a,
        }
    }

    fn select(&mut self) {
        let mut pool: Vec<Member> = std::mem::take(&mut self.parents);
        pool.append(&mut self.children);
        let refs: Vec<&Member> = pool.iter().collect();
        let (ranks, crowding) = rank(&refs);
        let mut order: Vec<usize> = (0..pool.len()).collect();
        // Rank first, then crowding (larger first); the sort is stable, so ties keep age order.
        order.sort_by(|&a, &b| {
            ranks[a]
                .cmp(&ranks[b])
                .then(crowding[b].total_cmp(&crowding[a]))
        });
        order.truncate(self.population);
        let survivors: Vec<Member> = order.iter().map(|&i| pool[i].clone()).collect();
        let refs: Vec<&Member> = survivors.iter().collect();
        let (r, c) = rank(&refs);
        self.parents = survivors;
        self.ranks = r;
        self.crowding = c;
    }
}

impl Strategy for Nsga2 {
    fn name(&self) -> &'static str {
        "nsga2"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        if self.parents.is_empty() {
            return random_unseen(space, history, &mut self.rng);
        }
        let choices = space.choices().len().max(1);
        let p_mut = self.mutation.unwrap_or(1.0 / choices as f64);
        let (a, b) = (self.tournament(), self.tournament());
        let (pa, pb) = (self.parents[a].arch.clone(), self.parents[b].arch.clone());
        let crossover = self.crossover;
        fresh_child(space, history, &mut self.rng, |rng| {
            let base = if rng.next_f64() < crossover {
                space.crossover(&pa, &pb, rng)
            } else {
                pa.clone()
            };
            let mut values = base.values().to_vec();
            for (i, c) in space.choices().iter().enumerate() {
                if c.options.len() > 1 && rng.next_f64() < p_mut {
                    values[i] = rng.below(c.options.len()) as u16;
                }
            }
            space.canonical(values)
        })
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History) {
        self.tell_feedback(space, arch, &scalar_feedback(score), history);
    }

    fn is_multi_objective(&self) -> bool {
        true
    }

    fn tell_feedback(&mut self, _: &dyn Space, arch: &Arch, feedback: &Feedback, _: &History) {
        self.children.push(Member::new(arch, feedback));
        if self.children.len() >= self.population {
            self.select();
        }
    }
}

/// Regularized evolution with Pareto tournaments: the population is the last `population`
/// evaluated archs (the oldest dies when a child joins); each step samples `sample_size`
/// members, ranks the sample by constrained non-dominated sorting and crowding, and mutates
/// the best of it (one choice).
pub struct MultiObjectiveEvolution {
    rng: Rng,
    population_size: usize,
    sample_size: usize,
    population: VecDeque<Member>,
}

impl MultiObjectiveEvolution {
    /// Evolution with a population of `population` and tournaments of `sample_size`.
    pub fn new(seed: u64, population: usize, sample_size: usize) -> Result<Self> {
        if sample_size == 0 || sample_size > population {
            return Err(Error::invalid(format!(
                "mo-rea: sample_size ({sample_size}) must be between 1 and population ({population})"
            )));
        }
        Ok(MultiObjectiveEvolution {
            rng: Rng::new(seed),
            population_size: population,
            sample_size,
            population: VecDeque::new(),
        })
    }
}

impl Strategy for MultiObjectiveEvolution {
    fn name(&self) -> &'static str {
        "mo-rea"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        if history.len() < self.population_size || self.population.is_empty() {
            return random_unseen(space, history, &mut self.rng);
        }
        let picks = self
            .rng
            .sample_indices(self.population.len(), self.sample_size);
        let sample: Vec<&Member> = picks.iter().map(|&i| &self.population[i]).collect();
        let (ranks, crowding) = rank(&sample);
        let best = (0..sample.len())
            .min_by(|&a, &b| {
                ranks[a]
                    .cmp(&ranks[b])
                    .then(crowding[b].total_cmp(&crowding[a]))
            })
            .expect("sample is not empty");
        let parent = sample[best].arch.clone();
        fresh_child(space, history, &mut self.rng, |rng| {
            space.mutate(&parent, rng)
        })
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History) {
        self.tell_feedback(space, arch, &scalar_feedback(score), history);
    }

    fn is_multi_objective(&self) -> bool {
        true
    }

    fn tell_feedback(&mut self, _: &dyn Space, arch: &Arch, feedback: &Feedback, _: &History) {
        // Failed and pruned trials do not join (as in single-objective evolution); an arch
        // that broke a constraint does, ranked by its violation.
        if feedback.scores.is_none() && feedback.violation <= 0.0 {
            return;
        }
        self.population.push_back(Member::new(arch, feedback));
        if self.population.len() > self.population_size {
            self.population.pop_front();
        }
    }
}

/// Multi-objective TPE (in the spirit of Ozaki et al., GECCO 2020): the categorical TPE of
/// [`super::Tpe`], with "good" the archs of the best fronts by the same constrained
/// non-dominated rank (ties in the cut broken by crowding distance) instead of the best scores.
pub struct MultiObjectiveTpe {
    rng: Rng,
    init: usize,
    candidates: usize,
    gamma: f64,
    observed: Vec<Member>,
}

impl MultiObjectiveTpe {
    /// A seeded MO-TPE: `init` random archs, `candidates` draws per proposal, `gamma`.
    pub fn new(seed: u64, init: usize, candidates: usize, gamma: f64) -> Self {
        MultiObjectiveTpe {
            rng: Rng::new(seed),
            init,
            candidates: candidates.max(1),
            gamma: gamma.clamp(0.01, 0.99),
            observed: Vec::new(),
        }
    }
}

impl Strategy for MultiObjectiveTpe {
    fn name(&self) -> &'static str {
        "mo-tpe"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        if history.len() < self.init || self.observed.len() < 2 {
            return random_unseen(space, history, &mut self.rng);
        }
        let refs: Vec<&Member> = self.observed.iter().collect();
        let (ranks, crowding) = rank(&refs);
        // Rank first; within a front, the larger crowding distance (mapped into [0, 1)).
        let scored: Vec<(Arch, f64)> = self
            .observed
            .iter()
            .zip(ranks.iter().zip(&crowding))
            .map(|(m, (&r, &c))| {
                let spread = if c.is_infinite() { 1.0 } else { c / (1.0 + c) };
                (m.arch.clone(), -(r as f64) + 0.5 * spread)
            })
            .collect();
        super::tpe_propose(
            space,
            &scored,
            self.gamma,
            self.candidates,
            &mut self.rng,
            &|a| history.contains(a),
        )
        .or_else(|| random_unseen(space, history, &mut self.rng))
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History) {
        self.tell_feedback(space, arch, &scalar_feedback(score), history);
    }

    fn is_multi_objective(&self) -> bool {
        true
    }

    fn tell_feedback(&mut self, _: &dyn Space, arch: &Arch, feedback: &Feedback, _: &History) {
        if feedback.scores.is_none() && feedback.violation <= 0.0 {
            return;
        }
        self.observed.push(Member::new(arch, feedback));
    }
}
