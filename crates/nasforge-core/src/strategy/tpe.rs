//! The tree-structured Parzen estimator (Bergstra et al., NeurIPS 2011) over categorical
//! choices.
//!
//! The scores seen so far are split into the best γ-fraction ("good", at most 25) and the rest.
//! Per choice, each side is a categorical distribution over the options (counts of the active
//! values plus a prior of one per option). Candidates are drawn from the good distributions and
//! the one with the highest ratio l(x)/g(x) is proposed. Inactive choices do not count.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};

/// Categorical TPE; parameters `init` random archs, `candidates` draws per proposal, `gamma`.
pub struct Tpe {
    rng: Rng,
    init: usize,
    candidates: usize,
    gamma: f64,
    observed: Vec<(Arch, f64)>,
}

impl Tpe {
    /// A seeded TPE.
    pub fn new(seed: u64, init: usize, candidates: usize, gamma: f64) -> Self {
        Tpe {
            rng: Rng::new(seed),
            init,
            candidates: candidates.max(1),
            gamma: gamma.clamp(0.01, 0.99),
            observed: Vec::new(),
        }
    }
}

/// Per choice, the option probabilities of the given observations (a prior of one per option).
fn densities(space: &dyn Space, members: &[&(Arch, f64)]) -> Vec<Vec<f64>> {
    space
        .choices()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut counts = vec![1.0; c.options.len()];
            for (a, _) in members {
                if space.is_active(a.values(), i) {
                    counts[a.values()[i] as usize] += 1.0;
                }
            }
            let total: f64 = counts.iter().sum();
            counts.iter().map(|c| c / total).collect()
        })
        .collect()
}

/// One TPE proposal from `observed` (at least two): the best of `candidates` draws from the
/// good densities by l(x)/g(x), skipping archs `taken` says are used; `None` if every draw was.
pub(crate) fn propose(
    space: &dyn Space,
    observed: &[(Arch, f64)],
    gamma: f64,
    candidates: usize,
    rng: &mut Rng,
    taken: &dyn Fn(&Arch) -> bool,
) -> Option<Arch> {
    let mut ranked: Vec<&(Arch, f64)> = observed.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n_good = ((gamma * ranked.len() as f64).ceil() as usize).clamp(1, 25);
    let good = densities(space, &ranked[..n_good]);
    let bad = densities(space, &ranked[n_good..]);
    let mut best: Option<(f64, Arch)> = None;
    for _ in 0..candidates {
        let values: Vec<u16> = good.iter().map(|p| rng.weighted(p) as u16).collect();
        let arch = space.canonical(values);
        if taken(&arch) {
            continue;
        }
        let score: f64 = (0..good.len())
            .filter(|&i| space.is_active(arch.values(), i))
            .map(|i| {
                let v = arch.values()[i] as usize;
                good[i][v].ln() - bad[i][v].ln()
            })
            .sum();
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, arch));
        }
    }
    best.map(|(_, a)| a)
}

impl Strategy for Tpe {
    fn name(&self) -> &'static str {
        "tpe"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        if history.len() < self.init || self.observed.len() < 2 {
            return random_unseen(space, history, &mut self.rng);
        }
        let proposal = propose(
            space,
            &self.observed,
            self.gamma,
            self.candidates,
            &mut self.rng,
            &|a| history.contains(a),
        );
        proposal.or_else(|| random_unseen(space, history, &mut self.rng))
    }

    fn tell(&mut self, _: &dyn Space, arch: &Arch, score: Option<f64>, _: &History) {
        if let Some(s) = score {
            self.observed.push((arch.clone(), s));
        }
    }
}
