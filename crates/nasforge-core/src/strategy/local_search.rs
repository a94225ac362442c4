//! Local search (White et al., "Local search is state of the art for NAS benchmarks", 2020).
//!
//! Starts from the best of `init` random archs and tries its neighbours (archs one choice away)
//! in random order, moving to the first that scores better. When every neighbour of the current
//! arch is known and none is better (a local optimum), it restarts from the best of `restart`
//! fresh random archs.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};

/// First-improvement local search with random restarts.
pub struct LocalSearch {
    rng: Rng,
    init: usize,
    restart: usize,
    /// Random archs still to ask in the current (re)start phase.
    phase_left: usize,
    current: Option<(Arch, f64)>,
    queue: Vec<Arch>,
}

impl LocalSearch {
    /// Local search that starts from the best of `init` random archs and restarts from the best
    /// of `restart` random archs at each local optimum.
    pub fn new(seed: u64, init: usize, restart: usize) -> Self {
        LocalSearch {
            rng: Rng::new(seed),
            restart,
            init: init.max(1),
            phase_left: 0,
            current: None,
            queue: Vec::new(),
        }
    }

    /// Makes `arch` the current point and queues its neighbours; moves on at once to a
    /// neighbour the history already knows to be better.
    fn move_to(&mut self, space: &dyn Space, mut arch: Arch, mut score: f64, history: &History) {
        loop {
            let mut neighbours = space.neighbours(&arch);
            let better = neighbours
                .iter()
                .filter_map(|n| history.score(n).map(|s| (n, s)))
                .filter(|(_, s)| *s > score)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(n, s)| (n.clone(), s));
            if let Some((n, s)) = better {
                arch = n;
                score = s;
                continue;
            }
            neighbours.retain(|n| !history.contains(n));
            self.rng.shuffle(&mut neighbours);
            self.queue = neighbours;
            self.current = Some((arch, score));
            return;
        }
    }
}

impl Strategy for LocalSearch {
    fn name(&self) -> &'static str {
        "ls"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        // The first `init` archs (counted on the shared history, so a warm start's count) are
        // random; so are `restart` archs after each local optimum.
        if history.len() < self.init || self.phase_left > 0 || self.current.is_none() {
            self.phase_left = self.phase_left.saturating_sub(1);
            return random_unseen(space, history, &mut self.rng);
        }
        while let Some(n) = self.queue.pop() {
            if !history.contains(&n) {
                return Some(n);
            }
        }
        // Local optimum: every neighbour is known and none is better. Restart.
        self.current = None;
        self.phase_left = self.restart.max(1) - 1;
        random_unseen(space, history, &mut self.rng)
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History) {
        let Some(s) = score else { return };
        let improves = self.current.as_ref().is_none_or(|(_, c)| s > *c);
        if improves {
            self.move_to(space, arch.clone(), s, history);
        }
    }
}
