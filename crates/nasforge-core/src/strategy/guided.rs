//! Predictor-guided search: BANANAS (White et al., AAAI 2021) and GP-based Bayesian
//! optimisation share this loop.
//!
//! After `init` random archs, each round fits a [`Predictor`] to every score seen, builds a
//! candidate pool from the neighbours and two-step mutations of the best archs plus random
//! samples, scores the pool with an acquisition function and queues the best `batch`
//! candidates. Acquisitions: independent Thompson sampling (`its`: one draw from each
//! candidate's predictive normal), upper confidence bound (`ucb`: mean + κ·std) and expected
//! improvement (`ei`).

use super::{random_unseen, History, Strategy};
use crate::predictor::{self, Encoding};
use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::stats::{normal_cdf, normal_pdf};
use crate::{Error, Result};
use std::collections::{HashSet, VecDeque};

/// How a candidate's predictive distribution becomes one number to rank by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Acquisition {
    /// Independent Thompson sampling.
    Thompson,
    /// Upper confidence bound with this κ.
    Ucb(f64),
    /// Expected improvement over the best score seen.
    Ei,
}

impl Acquisition {
    /// Parses `its`, `ucb` or `ei` (`kappa` is used by `ucb`).
    pub fn parse(s: &str, kappa: f64) -> Result<Self> {
        match s {
            "its" | "thompson" => Ok(Acquisition::Thompson),
            "ucb" => Ok(Acquisition::Ucb(kappa)),
            "ei" => Ok(Acquisition::Ei),
            _ => Err(Error::invalid(format!(
                "unknown acquisition `{s}`; choose its, ucb or ei"
            ))),
        }
    }

    fn value(self, mean: f64, std: f64, best: f64, rng: &mut Rng) -> f64 {
        match self {
            Acquisition::Thompson => mean + std * rng.normal(),
            Acquisition::Ucb(k) => mean + k * std,
            Acquisition::Ei => {
                if std <= 1e-12 {
                    return (mean - best).max(0.0);
                }
                let z = (mean - best) / std;
                (mean - best) * normal_cdf(z) + std * normal_pdf(z)
            }
        }
    }
}

/// Settings of a predictor-guided search.
#[derive(Clone, Debug)]
pub struct GuidedConfig {
    /// Registry name reported by the strategy (`bananas` or `gp`).
    pub name: &'static str,
    /// The predictor ([`predictor::PREDICTORS`]).
    pub predictor: String,
    /// The arch encoding.
    pub encoding: Encoding,
    /// The acquisition function.
    pub acquisition: Acquisition,
    /// Random archs before the first fit.
    pub init: usize,
    /// Archs queued per fit.
    pub batch: usize,
    /// How many of the best archs seed the candidate pool.
    pub parents: usize,
    /// Random archs added to the pool.
    pub random_candidates: usize,
    /// Fit the predictor on normal scores of the ranks instead of raw scores.
    pub rank_transform: bool,
}

/// A predictor-guided strategy. See the [module docs](self).
pub struct Guided {
    cfg: GuidedConfig,
    rng: Rng,
    observed: Vec<(Arch, f64)>,
    queue: VecDeque<Arch>,
}

impl Guided {
    /// A seeded strategy; errors on an unknown predictor or a zero batch.
    pub fn new(seed: u64, cfg: GuidedConfig) -> Result<Self> {
        predictor::build(&cfg.predictor, 0)?;
        if cfg.batch == 0 || cfg.parents == 0 {
            return Err(Error::invalid(format!(
                "{}: batch and parents must be at least 1",
                cfg.name
            )));
        }
        Ok(Guided {
            cfg,
            rng: Rng::new(seed),
            observed: Vec::new(),
            queue: VecDeque::new(),
        })
    }

    /// The candidate pool: neighbours and two-step mutations of the best archs, random samples.
    fn candidates(&mut self, space: &dyn Space, history: &History) -> Vec<Arch> {
        let mut ranked: Vec<&(Arch, f64)> = self.observed.iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut push = |a: Arch, out: &mut Vec<Arch>| {
            if !history.contains(&a) && seen.insert(a.clone()) {
                out.push(a);
            }
        };
        for (parent, _) in ranked.iter().take(self.cfg.parents) {
            let neighbours = space.neighbours(parent);
            for n in &neighbours {
                push(n.clone(), &mut out);
            }
            for _ in 0..neighbours.len().min(50) {
                let two = space.mutate(&space.mutate(parent, &mut self.rng), &mut self.rng);
                push(two, &mut out);
            }
        }
        for _ in 0..self.cfg.random_candidates {
            push(space.sample(&mut self.rng), &mut out);
        }
        out
    }

    fn refill(&mut self, space: &dyn Space, history: &History) {
        let pool = self.candidates(space, history);
        if pool.is_empty() {
            return;
        }
        let x: Vec<Vec<f64>> = self
            .observed
            .iter()
            .map(|(a, _)| self.cfg.encoding.encode(space, a))
            .collect();
        let raw: Vec<f64> = self.observed.iter().map(|(_, s)| *s).collect();
        // Fit on normal scores of the ranks: accuracies are skewed with far outliers (cells
        // that cannot learn), which a model fitted on raw values spends itself on.
        let y = if self.cfg.rank_transform {
            crate::stats::normal_scores(&raw)
        } else {
            raw
        };
        let mut model =
            predictor::build(&self.cfg.predictor, self.rng.next_u64()).expect("checked in new");
        model.fit(&x, &y);
        let best = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut scored: Vec<(f64, Arch)> = pool
            .into_iter()
            .map(|a| {
                let (mean, std) = model.predict(&self.cfg.encoding.encode(space, &a));
                (
                    self.cfg.acquisition.value(mean, std, best, &mut self.rng),
                    a,
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.queue = scored
            .into_iter()
            .take(self.cfg.batch)
            .map(|(_, a)| a)
            .collect();
    }
}

impl Strategy for Guided {
    fn name(&self) -> &'static str {
        self.cfg.name
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        if history.len() < self.cfg.init || self.observed.len() < 2 {
            return random_unseen(space, history, &mut self.rng);
        }
        loop {
            match self.queue.pop_front() {
                Some(a) if !history.contains(&a) => return Some(a),
                Some(_) => continue,
                None => break,
            }
        }
        self.refill(space, history);
        match self.queue.pop_front() {
            Some(a) => Some(a),
            None => random_unseen(space, history, &mut self.rng),
        }
    }

    fn tell(&mut self, _: &dyn Space, arch: &Arch, score: Option<f64>, _: &History) {
        if let Some(s) = score {
            self.observed.push((arch.clone(), s));
        }
    }
}
