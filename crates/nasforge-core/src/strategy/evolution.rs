//! Regularized (aging) evolution (Real et al., AAAI 2019).
//!
//! A population of the most recent `population` evaluated archs. Each step samples
//! `sample_size` members, mutates the best of them (one choice), and the oldest member dies when
//! a child joins. Ageing instead of killing the worst keeps the search from settling on archs
//! that were merely lucky once.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::{Error, Result};
use std::collections::VecDeque;

/// Regularized evolution with tournament selection and single-choice mutation.
pub struct RegularizedEvolution {
    rng: Rng,
    population_size: usize,
    sample_size: usize,
    population: VecDeque<(Arch, f64)>,
}

impl RegularizedEvolution {
    /// Evolution with a population of `population` and tournaments of `sample_size`.
    pub fn new(seed: u64, population: usize, sample_size: usize) -> Result<Self> {
        if sample_size > population {
            return Err(Error::invalid(format!(
                "rea: sample_size ({sample_size}) cannot exceed population ({population})"
            )));
        }
        Ok(RegularizedEvolution {
            rng: Rng::new(seed),
            population_size: population,
            sample_size,
            // Not preallocated: `population` is user input and may be absurdly large.
            population: VecDeque::new(),
        })
    }
}

impl Strategy for RegularizedEvolution {
    fn name(&self) -> &'static str {
        "rea"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        // Counted on the shared history, so archs a warm start put first replace random ones.
        if history.len() < self.population_size || self.population.is_empty() {
            return random_unseen(space, history, &mut self.rng);
        }
        let picks = self
            .rng
            .sample_indices(self.population.len(), self.sample_size);
        let parent = picks
            .iter()
            .map(|&i| &self.population[i])
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(a, _)| a.clone())
            .expect("population is not empty");
        for _ in 0..100 {
            let child = space.mutate(&parent, &mut self.rng);
            if !history.contains(&child) {
                return Some(child);
            }
        }
        random_unseen(space, history, &mut self.rng)
    }

    fn tell(&mut self, _: &dyn Space, arch: &Arch, score: Option<f64>, _: &History) {
        if let Some(s) = score {
            self.population.push_back((arch.clone(), s));
            if self.population.len() > self.population_size {
                self.population.pop_front();
            }
        }
    }
}
