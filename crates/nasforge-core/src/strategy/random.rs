//! Random search: the baseline every other strategy must beat.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};

/// Uniform random sampling without repeats.
pub struct RandomSearch {
    rng: Rng,
}

impl RandomSearch {
    /// Random search with its own seeded generator.
    pub fn new(seed: u64) -> Self {
        RandomSearch {
            rng: Rng::new(seed),
        }
    }
}

impl Strategy for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        random_unseen(space, history, &mut self.rng)
    }

    fn tell(&mut self, _: &dyn Space, _: &Arch, _: Option<f64>, _: &History) {}
}
