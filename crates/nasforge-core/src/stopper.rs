//! Early stopping of unpromising trials from their learning curves.
//!
//! A [`Stopper`] watches a running trial's intermediate values (per-epoch validation scores,
//! "higher is better") and says whether to go on. Completed trials' curves and final values teach
//! it what "promising" means.
//!
//! - `median` (the rule of Google Vizier / Optuna's MedianPruner): stop at step t when the trial's
//!   best value so far is below the median of the completed trials' values at step t.
//! - `curve` (after Domhan et al., IJCAI 2015): fit an ensemble of parametric learning curves —
//!   power law `a + b·t^(-c)`, exponential `a + b·e^(-c·t)`, logarithmic `a + b·ln t` — to the
//!   partial curve, weighted by how well each fits, and stop when the predicted final value is,
//!   with probability at least `1 - p`, below the current k-th best final value. Each family is linear in (a, b) once `c`
//!   is fixed, so it is fitted by least squares over a grid of `c`: fast and never diverges.

use crate::stats::normal_cdf;
use crate::{Error, Params, Result};

/// Decides whether a running trial goes on.
pub trait Stopper: Send {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// Whether a trial whose curve so far is `curve` (values at steps 1..=len) should stop,
    /// given that it would run to step `total`.
    fn should_stop(&self, curve: &[f64], total: usize) -> bool;

    /// A completed trial's full curve and final value.
    fn observe(&mut self, curve: &[f64], final_value: f64);
}

/// Registered stoppers.
pub const STOPPERS: &[(&str, &str)] = &[
    (
        "median",
        "stop when the best value so far is below the completed trials' median at that epoch; parameters warmup (1 epoch), min_trials (5)",
    ),
    (
        "curve",
        "stop when a fitted learning-curve ensemble predicts, with probability 1-p, a final value below the k-th best; parameters k (1), p (0.05), warmup (3 epochs), min_trials (3)",
    ),
];

/// Builds a stopper by name from its parameters (read leniently).
pub fn build(name: &str, params: &Params) -> Result<Box<dyn Stopper>> {
    Ok(match name {
        "median" => Box::new(MedianStopper {
            warmup: params.usize("warmup", 1)?,
            min_trials: params.usize("min_trials", 5)?,
            curves: Vec::new(),
        }),
        "curve" => Box::new(CurveStopper {
            k: params.usize("k", 1)?,
            p: params.f64_in("p", 0.05, 1e-6, 0.5)?,
            warmup: params.usize("warmup", 3)?,
            min_trials: params.usize("min_trials", 3)?,
            finals: Vec::new(),
        }),
        _ => {
            return Err(Error::invalid(format!(
                "unknown stopper `{name}`; choose one of: {}",
                STOPPERS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
            )))
        }
    })
}

/// The median stopping rule. See the [module docs](self).
pub struct MedianStopper {
    warmup: usize,
    min_trials: usize,
    curves: Vec<Vec<f64>>,
}

impl Stopper for MedianStopper {
    fn name(&self) -> &'static str {
        "median"
    }

    fn should_stop(&self, curve: &[f64], _total: usize) -> bool {
        let t = curve.len();
        if t < self.warmup || t == 0 {
            return false;
        }
        let mut at_t: Vec<f64> = self
            .curves
            .iter()
            .filter_map(|c| c.get(t - 1).copied())
            .collect();
        if at_t.len() < self.min_trials {
            return false;
        }
        at_t.sort_by(f64::total_cmp);
        let n = at_t.len();
        let median = if n % 2 == 1 {
            at_t[n / 2]
        } else {
            (at_t[n / 2 - 1] + at_t[n / 2]) / 2.0
        };
        let best = curve.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        best < median
    }

    fn observe(&mut self, curve: &[f64], _final_value: f64) {
        self.curves.push(curve.to_vec());
    }
}

/// The learning-curve extrapolation rule. See the [module docs](self).
pub struct CurveStopper {
    k: usize,
    p: f64,
    warmup: usize,
    min_trials: usize,
    finals: Vec<f64>,
}

/// A fitted curve family: its prediction at the final step and its residual sum of squares.
#[derive(Clone, Copy, Debug)]
struct Fit {
    at_end: f64,
    sse: f64,
}

/// Least squares of y ≈ a + b·g(t) for a fixed basis g; `None` when g is constant.
fn linear_fit(ts: &[f64], ys: &[f64], g: impl Fn(f64) -> f64, end: f64) -> Option<Fit> {
    let n = ts.len() as f64;
    let gs: Vec<f64> = ts.iter().map(|&t| g(t)).collect();
    let mg = gs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sgg: f64 = gs.iter().map(|v| (v - mg).powi(2)).sum();
    if sgg < 1e-12 {
        return None;
    }
    let b = gs
        .iter()
        .zip(ys)
        .map(|(gv, y)| (gv - mg) * (y - my))
        .sum::<f64>()
        / sgg;
    let a = my - b * mg;
    let sse = gs
        .iter()
        .zip(ys)
        .map(|(gv, y)| (y - a - b * gv).powi(2))
        .sum();
    Some(Fit {
        at_end: a + b * g(end),
        sse,
    })
}

/// The best fit of each family on the curve, predicting step `total`.
fn fit_families(curve: &[f64], total: usize) -> Vec<Fit> {
    let ts: Vec<f64> = (1..=curve.len()).map(|t| t as f64).collect();
    let end = total as f64;
    let grid = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0];
    let best_of = |fits: Vec<Option<Fit>>| {
        fits.into_iter()
            .flatten()
            .min_by(|a, b| a.sse.total_cmp(&b.sse))
    };
    let power = best_of(
        grid.iter()
            .map(|&c| linear_fit(&ts, curve, |t| t.powf(-c), end))
            .collect(),
    );
    let exponential = best_of(
        grid.iter()
            .map(|&c| linear_fit(&ts, curve, |t| (-c * t).exp(), end))
            .collect(),
    );
    let log = linear_fit(&ts, curve, f64::ln, end);
    [power, exponential, log].into_iter().flatten().collect()
}

impl CurveStopper {
    /// The predicted final value of a partial curve: mean and standard deviation over the
    /// ensemble (model disagreement plus residual noise).
    pub fn predict(curve: &[f64], total: usize) -> Option<(f64, f64)> {
        if curve.len() < 3 {
            return None;
        }
        let fits = fit_families(curve, total);
        if fits.is_empty() {
            return None;
        }
        // Families are weighted by how well they fit the curve so far (inverse residual sum of
        // squares): a logarithm that keeps rising cannot outvote an exponential that matches a
        // saturating curve.
        let range = curve.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - curve.iter().copied().fold(f64::INFINITY, f64::min);
        let eps = 1e-9 * range.max(1e-12).powi(2);
        let weights: Vec<f64> = fits.iter().map(|f| 1.0 / (f.sse + eps)).collect();
        let total: f64 = weights.iter().sum();
        let mean = fits
            .iter()
            .zip(&weights)
            .map(|(f, w)| w * f.at_end)
            .sum::<f64>()
            / total;
        let between = fits
            .iter()
            .zip(&weights)
            .map(|(f, w)| w * (f.at_end - mean).powi(2))
            .sum::<f64>()
            / total;
        // Residual variance of the fits (2 fitted coefficients each), at least a small floor
        // relative to the curve's range so a perfect fit is not taken as certainty.
        let dof = (curve.len() as f64 - 2.0).max(1.0);
        let resid = fits
            .iter()
            .zip(&weights)
            .map(|(f, w)| w * f.sse / dof)
            .sum::<f64>()
            / total;
        let floor = (0.01 * range).powi(2);
        Some((mean, (between + resid + floor).sqrt()))
    }
}

impl Stopper for CurveStopper {
    fn name(&self) -> &'static str {
        "curve"
    }

    fn should_stop(&self, curve: &[f64], total: usize) -> bool {
        if curve.len() < self.warmup.max(3)
            || curve.len() >= total
            || self.finals.len() < self.min_trials.max(self.k)
        {
            return false;
        }
        let mut finals = self.finals.clone();
        finals.sort_by(|a, b| b.total_cmp(a));
        let threshold = finals[self.k - 1];
        // The prediction can only be wrong by under-estimating a still-rising curve; the best
        // value already reached is a floor for it.
        let best = curve.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let Some((mean, std)) = Self::predict(curve, total) else {
            return false;
        };
        let mean = mean.max(best);
        let p_above = 1.0 - normal_cdf((threshold - mean) / std.max(1e-12));
        p_above < self.p
    }

    fn observe(&mut self, _curve: &[f64], final_value: f64) {
        self.finals.push(final_value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(limit: f64, rate: f64, n: usize) -> Vec<f64> {
        (1..=n)
            .map(|t| limit - (limit - 10.0) * (-rate * t as f64).exp())
            .collect()
    }

    #[test]
    fn curve_ensemble_extrapolates_a_saturating_curve() {
        let c = curve(90.0, 0.3, 6);
        let (mean, std) = CurveStopper::predict(&c, 30).unwrap();
        assert!((mean - 90.0).abs() < 6.0, "predicted {mean}");
        assert!(std > 0.0 && std < 20.0, "std {std}");
    }

    #[test]
    fn curve_stopper_stops_hopeless_trials_only() {
        let mut s = build("curve", &Params::new()).unwrap();
        for limit in [90.0, 91.0, 92.0] {
            s.observe(&curve(limit, 0.3, 20), limit);
        }
        assert!(
            s.should_stop(&curve(60.0, 0.3, 6), 20),
            "a curve heading to 60"
        );
        assert!(
            !s.should_stop(&curve(93.0, 0.3, 6), 20),
            "a curve heading to 93"
        );
        assert!(
            !s.should_stop(&curve(60.0, 0.3, 2), 20),
            "too early to tell"
        );
    }

    #[test]
    fn median_stopper_compares_with_completed_curves_at_the_same_step() {
        let mut s = build("median", &Params::new()).unwrap();
        assert!(!s.should_stop(&[1.0], 10), "no completed trials yet");
        for v in [50.0, 60.0, 70.0, 80.0, 90.0] {
            s.observe(&[v, v + 1.0], v + 1.0);
        }
        assert!(s.should_stop(&[65.0], 10));
        assert!(!s.should_stop(&[75.0], 10));
        assert!(build("patience", &Params::new()).is_err());
    }
}
