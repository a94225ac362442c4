//! A REINFORCE controller (Williams, 1992; the policy-gradient baseline of Zoph & Le and of
//! NAS-Bench-201): an independent softmax policy per choice.
//!
//! Each told score updates the logits of the choices the arch made by
//! `lr · (advantage · ∇log π + entropy · ∇H)`. The advantage is the score minus a moving-average
//! baseline, divided by a moving estimate of the scores' spread, so the learning rate means the
//! same on any objective scale. Inactive choices are not updated.

use super::{random_unseen, History, Strategy};
use crate::rng::Rng;
use crate::space::{Arch, Space};

/// REINFORCE; parameters `lr` (0.1), `baseline` decay (0.9), `entropy` bonus (0.01).
pub struct Reinforce {
    rng: Rng,
    lr: f64,
    decay: f64,
    entropy: f64,
    logits: Vec<Vec<f64>>,
    baseline: Option<(f64, f64)>,
}

impl Reinforce {
    /// A seeded controller.
    pub fn new(seed: u64, lr: f64, decay: f64, entropy: f64) -> Self {
        Reinforce {
            rng: Rng::new(seed),
            lr,
            decay: decay.clamp(0.0, 0.999),
            entropy,
            logits: Vec::new(),
            baseline: None,
        }
    }

    fn ensure(&mut self, space: &dyn Space) {
        if self.logits.is_empty() {
            self.logits = space
                .choices()
                .iter()
                .map(|c| vec![0.0; c.options.len()])
                .collect();
        }
    }

    fn probs(logits: &[f64]) -> Vec<f64> {
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    /// The current policy's probabilities, per choice.
    pub fn policy(&self) -> Vec<Vec<f64>> {
        self.logits.iter().map(|l| Self::probs(l)).collect()
    }
}

impl Strategy for Reinforce {
    fn name(&self) -> &'static str {
        "reinforce"
    }

    fn ask(&mut self, space: &dyn Space, history: &History) -> Option<Arch> {
        self.ensure(space);
        for _ in 0..100 {
            let values: Vec<u16> = self
                .logits
                .iter()
                .map(|l| self.rng.weighted(&Self::probs(l)) as u16)
                .collect();
            let arch = space.canonical(values);
            if !history.contains(&arch) {
                return Some(arch);
            }
        }
        random_unseen(space, history, &mut self.rng)
    }

    fn tell(&mut self, space: &dyn Space, arch: &Arch, score: Option<f64>, _: &History) {
        let Some(s) = score else { return };
        self.ensure(space);
        let (mean, var) = match self.baseline {
            None => {
                self.baseline = Some((s, 0.0));
                return;
            }
            Some(b) => b,
        };
        let spread = var.sqrt().max(1e-8);
        let advantage = if var > 0.0 { (s - mean) / spread } else { 0.0 };
        let d = self.decay;
        self.baseline = Some((
            d * mean + (1.0 - d) * s,
            d * var + (1.0 - d) * (s - mean).powi(2),
        ));
        for (i, logits) in self.logits.iter_mut().enumerate() {
            if !space.is_active(arch.values(), i) {
                continue;
            }
            let p = Self::probs(logits);
            let h: f64 = -p.iter().map(|q| q * q.max(1e-300).ln()).sum::<f64>();
            let taken = arch.values()[i] as usize;
            for (k, l) in logits.iter_mut().enumerate() {
                let grad_logp = if k == taken { 1.0 } else { 0.0 } - p[k];
                let grad_h = -p[k] * (p[k].max(1e-300).ln() + h);
                *l += self.lr * (advantage * grad_logp + self.entropy * grad_h);
            }
        }
    }
}
