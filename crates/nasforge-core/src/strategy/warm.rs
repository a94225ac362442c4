//! Zero-cost warm start for any strategy (Abdelfattah et al., ICLR 2021).
//!
//! Before the wrapped strategy proposes anything, a seeded pool of random archs is ranked by a
//! training-free proxy and the best `top` of them are evaluated first; the wrapped strategy is
//! told their scores like any other, so evolution starts from them as its population,
//! predictor-guided search fits on them, and so on. Strategies count their random start-up phase
//! on the shared [`History`], so the warm archs replace random ones rather than adding to them.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};
use crate::{Error, Result};
use std::sync::Arc;

/// A training-free score of an arch (higher is better); `None` when it cannot be computed.
pub type ProxyFn = Arc<dyn Fn(&dyn Space, &Arch) -> Option<f64> + Send + Sync>;

/// The proxies that need no deep-learning engine: `params` and `macs` of the decoded network.
pub fn core_proxy(name: &str) -> Option<ProxyFn> {
    match name {
        "params" => Some(Arc::new(|space: &dyn Space, arch: &Arch| {
            space.decode(arch).ok().map(|n| n.params() as f64)
        })),
        "macs" => Some(Arc::new(|space: &dyn Space, arch: &Arch| {
            space.decode(arch).ok().map(|n| n.macs() as f64)
        })),
        _ => None,
    }
}

/// Wraps a strategy with a proxy-ranked start. See the [module docs](self).
pub struct WarmStart {
    inner: Box<dyn Strategy>,
    proxy: ProxyFn,
    pool: usize,
    top: usize,
    rng: Rng,
    queue: Option<Vec<Arch>>,
}

impl WarmStart {
    /// `top` best of `pool` random archs by `proxy` go first, then `inner` takes over.
    pub fn new(
        inner: Box<dyn Strategy>,
        proxy: ProxyFn,
        seed: u64,
        pool: usize,
        top: usize,
    ) -> Result<Self> {
        if top == 0 || pool < top {
            return Err(Error::invalid(format!(
                "warm start: warm_top ({top}) must be at least 1 and at most warm_pool ({pool})"
            )));
        }
        Ok(WarmStart {
            inner,
            proxy,
            pool,
            top,
            // Independent of the inner strategy's stream, so wrapping does not change it.
            rng: Rng::new(seed ^ 0x5741_524D_5354_5254),
            queue: None,
        })
    }
}

impl Strategy for WarmStart {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        let queue = self.queue.get_or_insert_with(|| {
            let mut pool_history = history.clone();
            // `pool` is user input and may exceed the space: grow as archs come.
            let mut scored: Vec<(f64, Arch)> = Vec::new();
            for _ in 0..self.pool {
                let Some(a) = random_unseen(space, &pool_history, &mut self.rng) else {
                    break;
                };
                pool_history.mark_asked(&a);
                let s = (self.proxy)(space, &a).unwrap_or(f64::NEG_INFINITY);
                scored.push((if s.is_nan() { f64::NEG_INFINITY } else { s }, a));
            }
            // Stable sort: ties keep the pool's (seeded) order.
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.truncate(self.top);
            scored.into_iter().rev().map(|(_, a)| a).collect()
        });
        while let Some(a) = queue.pop() {
            if !history.contains(&a) {
                return Some(a);
            }
        }
        self.inner.ask(space, history)
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, history: &History) {
        self.inner.tell(space, arch, score, history);
    }
}
