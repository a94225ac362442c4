//! Search strategies behind one ask/tell interface.
//!
//! A [`Strategy`] proposes archs ([`Strategy::ask`]) and learns from their scores
//! ([`Strategy::tell`]). It never touches tensors and never evaluates anything itself, so the
//! same object drives a study in one process, across workers, or replayed against a tabular
//! benchmark. Scores are always "higher is better"; the study negates minimised objectives.
//!
//! Every strategy is seeded at construction and draws randomness only from its own [`Rng`], and
//! none re-proposes an arch the [`History`] already holds (evaluated or in flight).

mod evolution;
mod grid;
mod guided;
mod local_search;
mod multi;
mod random;
mod reinforce;
mod tpe;
mod warm;

pub use evolution::RegularizedEvolution;
pub use grid::GridSearch;
pub use guided::{Acquisition, Guided, GuidedConfig};
pub use local_search::LocalSearch;
pub use multi::{MultiObjectiveEvolution, MultiObjectiveTpe, Nsga2};
pub use random::RandomSearch;
pub use reinforce::Reinforce;
pub(crate) use tpe::propose as tpe_propose;
pub use tpe::Tpe;
pub use warm::{core_proxy, ProxyFn, WarmStart};

use crate::params::Params;
use crate::predictor::Encoding;
use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::{Error, Result};
use std::collections::HashMap;

/// What a study knows: every arch asked so far and, once told, its score.
#[derive(Clone, Debug, Default)]
pub struct History {
    scores: HashMap<Arch, Option<f64>>,
    best: Option<(Arch, f64)>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `arch` was asked before (evaluated, failed or still in flight).
    pub fn contains(&self, arch: &Arch) -> bool {
        self.scores.contains_key(arch)
    }

    /// The score of `arch`, if it was evaluated successfully.
    pub fn score(&self, arch: &Arch) -> Option<f64> {
        self.scores.get(arch).copied().flatten()
    }

    /// Records that `arch` was asked (its result is pending).
    pub fn mark_asked(&mut self, arch: &Arch) {
        if !self.scores.contains_key(arch) {
            self.scores.insert(arch.clone(), None);
        }
    }

    /// Records the outcome of `arch`: its score, or `None` for a failed or pruned trial.
    pub fn record(&mut self, arch: &Arch, score: Option<f64>) {
        self.mark_asked(arch);
        if let Some(s) = score {
            *self.scores.get_mut(arch).expect("just inserted") = Some(s);
            if self.best.as_ref().is_none_or(|(_, b)| s > *b) {
                self.best = Some((arch.clone(), s));
            }
        }
    }

    /// How many distinct archs were asked.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether nothing was asked yet.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The best arch so far and its score.
    pub fn best(&self) -> Option<(&Arch, f64)> {
        self.best.as_ref().map(|(a, s)| (a, *s))
    }
}

/// An ask/tell search strategy. See the [module docs](self).
pub trait Strategy: Send {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// The next arch to evaluate, never one that `history` holds; `None` when the space is
    /// exhausted.
    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch>;

    /// The outcome of an arch this strategy proposed: its score (higher is better), or `None`
    /// when the trial failed, was pruned, or broke a constraint.
    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History);

    /// Whether the strategy ranks several objectives itself ([`Strategy::tell_feedback`]);
    /// the study scalarises for those that do not (a new random weight vector per ask).
    fn is_multi_objective(&self) -> bool {
        false
    }

    /// The outcome with every objective and the constraint violation, for strategies that
    /// are [multi-objective](Strategy::is_multi_objective). The default tells the one score
    /// of a feasible single-objective outcome, and `None` otherwise.
    fn tell_feedback(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        feedback: &Feedback,
        history: &History,
    ) {
        self.tell(space, arch, feedback.single_score(), history);
    }
}

/// What a study learns of one proposed arch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Feedback {
    /// One score per objective, each higher-is-better (`Direction::sign` applied); `None` when
    /// the trial failed or was pruned.
    pub scores: Option<Vec<f64>>,
    /// Summed relative constraint violation: 0 when feasible. An arch that NetSpec shows to be
    /// infeasible is never evaluated: it comes back with no scores and its violation.
    pub violation: f64,
}

impl Feedback {
    /// A feasible outcome.
    pub fn scored(scores: Vec<f64>) -> Self {
        Feedback {
            scores: Some(scores),
            violation: 0.0,
        }
    }

    /// Whether every constraint holds.
    pub fn is_feasible(&self) -> bool {
        self.violation <= 0.0
    }

    /// The first objective's score of a feasible outcome.
    pub fn first_score(&self) -> Option<f64> {
        self.scores
            .as_ref()
            .filter(|_| self.is_feasible())
            .and_then(|s| s.first().copied())
    }

    /// The score of a feasible outcome with exactly one objective.
    pub fn single_score(&self) -> Option<f64> {
        self.first_score()
            .filter(|_| self.scores.as_ref().is_some_and(|s| s.len() == 1))
    }
}

/// A description of a registered strategy, for `--help` texts and docs.
pub struct StrategyInfo {
    /// The name to ask for it by.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// One line on what it does and its parameters.
    pub summary: &'static str,
}

/// Every registered strategy.
pub const STRATEGIES: &[StrategyInfo] = &[
    StrategyInfo {
        name: "random",
        aliases: &[],
        summary: "uniform random sampling without repeats",
    },
    StrategyInfo {
        name: "grid",
        aliases: &[],
        summary: "every arch once, in a seeded shuffled order (exhaustive where the space is finite)",
    },
    StrategyInfo {
        name: "rea",
        aliases: &["evolution", "regularized-evolution"],
        summary: "regularized (aging) evolution; parameters population (20), sample_size (10)",
    },
    StrategyInfo {
        name: "ls",
        aliases: &["local-search"],
        summary: "first-improvement local search from the best with random restarts; parameters init (10), restart (1)",
    },
    StrategyInfo {
        name: "bananas",
        aliases: &["predictor"],
        summary: "predictor-guided search (BANANAS): MLP ensemble on path encodings, Thompson sampling over mutations of the best; parameters init (10), batch (5), predictor (mlp), encoding (path), acquisition (its), kappa (1.0), parents (10), random_candidates (100)",
    },
    StrategyInfo {
        name: "gp",
        aliases: &["bo", "gp-bo"],
        summary: "Bayesian optimisation with a Gaussian process (Hamming-RBF kernel on one-hot choices) and expected improvement over mutations of the best; parameters init (10), batch (1), encoding (onehot), acquisition (ei), kappa (1.0), parents (10), random_candidates (100)",
    },
    StrategyInfo {
        name: "tpe",
        aliases: &[],
        summary: "tree-structured Parzen estimator over the categorical choices; parameters init (10), candidates (24), gamma (0.15)",
    },
    StrategyInfo {
        name: "nsga2",
        aliases: &["nsga-ii"],
        summary: "NSGA-II, multi-objective: non-dominated sorting with crowding, feasibility first; parameters population (50), crossover (0.9), mutation (1/choices)",
    },
    StrategyInfo {
        name: "mo-rea",
        aliases: &["morea"],
        summary: "multi-objective regularized evolution: Pareto-ranked tournaments, aging population; parameters population (20), sample_size (10)",
    },
    StrategyInfo {
        name: "mo-tpe",
        aliases: &["motpe"],
        summary: "multi-objective TPE: categorical Parzen estimators with the best constrained Pareto fronts as the good set; parameters init (10), candidates (24), gamma (0.15)",
    },
    StrategyInfo {
        name: "reinforce",
        aliases: &["rl"],
        summary: "REINFORCE controller, a softmax policy per choice with a moving-average baseline; parameters lr (0.1), baseline (0.9), entropy (0.01)",
    },
];

/// Parameters every strategy accepts: a zero-cost warm start.
pub const WARM_START_PARAMS: &str = "warm_start (a proxy: params, macs, or one the caller provides), warm_pool (1000), warm_top (10)";

/// Finds a proxy by name for `warm_start`: the caller's proxies first, then [`core_proxy`].
pub type ProxyResolver<'a> = &'a (dyn Fn(&str) -> Option<ProxyFn> + Sync);

/// Builds a registered strategy by name (or alias) with a seed and its parameters; a parameter
/// the strategy does not read is an error.
pub fn build(name: &str, seed: u64, params: &Params) -> Result<Box<dyn Strategy>> {
    build_with(name, seed, params, &|_| None)
}

/// Like [`build`], with extra proxies for `warm_start`.
pub fn build_with(
    name: &str,
    seed: u64,
    params: &Params,
    proxies: ProxyResolver,
) -> Result<Box<dyn Strategy>> {
    let strategy = build_lenient(name, seed, params, proxies)?;
    params.finish(strategy.name())?;
    Ok(strategy)
}

/// Checks that every name is a registered strategy and that every parameter is read by at least
/// one of them (for runs that compare several strategies with shared parameters).
pub fn check(names: &[String], params: &Params, proxies: ProxyResolver) -> Result<()> {
    for name in names {
        build_lenient(name, 0, params, proxies)?;
    }
    params.finish(&names.join(", "))
}

/// Every registered strategy's name, in registry order (what `--strategy all` runs).
pub fn all_names() -> Vec<String> {
    STRATEGIES.iter().map(|s| s.name.to_string()).collect()
}

/// Like [`build_with`], but ignores parameters the strategy does not read.
pub fn build_lenient(
    name: &str,
    seed: u64,
    params: &Params,
    proxies: ProxyResolver,
) -> Result<Box<dyn Strategy>> {
    let inner = build_plain(name, seed, params)?;
    let Some(proxy_name) = params.text("warm_start") else {
        return Ok(inner);
    };
    let proxy = proxies(&proxy_name)
        .or_else(|| core_proxy(&proxy_name))
        .ok_or_else(|| {
            Error::invalid(format!(
                "parameter `warm_start={proxy_name}`: unknown warm-start proxy; nasforge-core knows params and macs (nasforge's CLI adds the zero-cost proxies)"
            ))
        })?;
    Ok(Box::new(WarmStart::new(
        inner,
        proxy,
        seed,
        params.usize("warm_pool", 1000)?,
        params.usize("warm_top", 10)?,
    )?))
}

fn build_plain(name: &str, seed: u64, params: &Params) -> Result<Box<dyn Strategy>> {
    let info = STRATEGIES
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
        .ok_or_else(|| {
            Error::invalid(format!(
                "unknown strategy `{name}`; choose one of: {}",
                STRATEGIES
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    Ok(match info.name {
        "random" => Box::new(RandomSearch::new(seed)),
        "grid" => Box::new(GridSearch::new(seed)),
        "rea" => Box::new(RegularizedEvolution::new(
            seed,
            params.usize("population", 20)?,
            params.usize("sample_size", 10)?,
        )?),
        "ls" => Box::new(LocalSearch::new(
            seed,
            params.usize("init", 10)?,
            params.usize("restart", 1)?,
        )),
        "bananas" => Box::new(Guided::new(
            seed,
            GuidedConfig {
                name: "bananas",
                predictor: params.text("predictor").unwrap_or_else(|| "mlp".into()),
                encoding: Encoding::parse(
                    &params.text("encoding").unwrap_or_else(|| "path".into()),
                )?,
                acquisition: Acquisition::parse(
                    &params.text("acquisition").unwrap_or_else(|| "its".into()),
                    params.f64_in("kappa", 1.0, 0.0, 100.0)?,
                )?,
                init: params.usize("init", 10)?,
                batch: params.usize("batch", 5)?,
                parents: params.usize("parents", 10)?,
                random_candidates: params.usize("random_candidates", 100)?,
                rank_transform: params.bool("rank_transform", true)?,
            },
        )?),
        "gp" => Box::new(Guided::new(
            seed,
            GuidedConfig {
                name: "gp",
                predictor: "gp".into(),
                encoding: Encoding::parse(
                    &params.text("encoding").unwrap_or_else(|| "onehot".into()),
                )?,
                acquisition: Acquisition::parse(
                    &params.text("acquisition").unwrap_or_else(|| "ei".into()),
                    params.f64_in("kappa", 1.0, 0.0, 100.0)?,
                )?,
                init: params.usize("init", 10)?,
                batch: params.usize("batch", 1)?,
                parents: params.usize("parents", 10)?,
                random_candidates: params.usize("random_candidates", 100)?,
                rank_transform: params.bool("rank_transform", true)?,
            },
        )?),
        "tpe" => Box::new(Tpe::new(
            seed,
            params.usize("init", 10)?,
            params.usize("candidates", 24)?,
            params.f64_in("gamma", 0.15, 0.01, 0.99)?,
        )),
        "nsga2" => Box::new(Nsga2::new(
            seed,
            params.usize("population", 50)?,
            params.f64_in("crossover", 0.9, 0.0, 1.0)?,
            match params.text("mutation") {
                Some(_) => Some(params.f64_in("mutation", 0.0, 0.0, 1.0)?),
                None => None,
            },
        )?),
        "mo-rea" => Box::new(MultiObjectiveEvolution::new(
            seed,
            params.usize("population", 20)?,
            params.usize("sample_size", 10)?,
        )?),
        "mo-tpe" => Box::new(MultiObjectiveTpe::new(
            seed,
            params.usize("init", 10)?,
            params.usize("candidates", 24)?,
            params.f64_in("gamma", 0.15, 0.01, 0.99)?,
        )),
        "reinforce" => Box::new(Reinforce::new(
            seed,
            params.f64_in("lr", 0.1, 0.0, 100.0)?,
            params.f64_in("baseline", 0.9, 0.0, 0.999)?,
            params.f64_in("entropy", 0.01, 0.0, 10.0)?,
        )),
        _ => unreachable!("registered above"),
    })
}

/// A uniformly random arch that `history` does not hold, or `None` if every arch is taken.
///
/// Rejection sampling first; after many collisions (a nearly exhausted small space) it scans
/// the enumeration from a random position, so it terminates and finds the last free arch.
pub fn random_unseen(space: &dyn Space, history: &History, rng: &mut Rng) -> Option<Arch> {
    for _ in 0..64 {
        let a = space.sample(rng);
        if !history.contains(&a) {
            return Some(a);
        }
    }
    let n = space.combinations();
    let start = rng.below_u128(n);
    let limit = n.min(50_000_000);
    (0..limit).find_map(|k| {
        space
            .arch_at((start + k) % n)
            .filter(|a| !history.contains(a))
    })
}

#[cfg(test)]
mod tests;
