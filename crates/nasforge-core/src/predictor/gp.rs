//! A Gaussian-process regressor with an RBF kernel on arch encodings.
//!
//! On one-hot encodings the squared distance is twice the number of differing choices, so the
//! RBF kernel is a Hamming kernel. The length scale and the noise level are chosen from a grid by
//! the log marginal likelihood of the (standardised) scores; the signal variance is 1.

use super::{Predictor, Standard};

const LENGTH_SCALES: [f64; 7] = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0];
const NOISES: [f64; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// The fitted state: training inputs, the Cholesky factor and the weights.
#[derive(Clone, Debug)]
struct Posterior {
    x: Vec<Vec<f64>>,
    /// Lower-triangular factor of K + noise·I, row-major n × n.
    chol: Vec<f64>,
    alpha: Vec<f64>,
    length: f64,
}

/// A Gaussian process with hyper-parameters fitted by marginal likelihood.
#[derive(Default)]
pub struct GaussianProcess {
    posterior: Option<Posterior>,
    standard: Option<Standard>,
}

impl GaussianProcess {
    /// An unfitted GP.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fitted length scale, if fitted.
    pub fn length_scale(&self) -> Option<f64> {
        self.posterior.as_ref().map(|p| p.length)
    }
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// In-place Cholesky of a symmetric positive-definite n × n matrix; `false` if it is not.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    true
}

/// Solves L z = b (forward substitution).
fn solve_lower(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..n {
        let mut s = z[i];
        for k in 0..i {
            s -= l[i * n + k] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    z
}

/// Solves Lᵀ z = b (back substitution).
fn solve_upper_t(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in (0..n).rev() {
        let mut s = z[i];
        for k in i + 1..n {
            s -= l[k * n + i] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    z
}

impl Predictor for GaussianProcess {
    fn name(&self) -> &'static str {
        "gp"
    }

    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]) {
        let n = x.len();
        let standard = Standard::of(y);
        let ys = standard.apply(y);
        let mut d2 = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..i {
                let d = sq_dist(&x[i], &x[j]);
                d2[i * n + j] = d;
                d2[j * n + i] = d;
            }
        }
        let mut best: Option<(f64, Posterior)> = None;
        for &length in &LENGTH_SCALES {
            for &noise in &NOISES {
                let mut k: Vec<f64> = d2
                    .iter()
                    .map(|d| (-d / (2.0 * length * length)).exp())
                    .collect();
                for i in 0..n {
                    k[i * n + i] += noise;
                }
                if !cholesky(&mut k, n) {
                    continue;
                }
                let alpha = solve_upper_t(&k, n, &solve_lower(&k, n, &ys));
                let fit: f64 = ys.iter().zip(&alpha).map(|(a, b)| a * b).sum();
                let logdet: f64 = (0..n).map(|i| k[i * n + i].ln()).sum();
                let lml = -0.5 * fit - logdet;
                if best.as_ref().is_none_or(|(b, _)| lml > *b) {
                    best = Some((
                        lml,
                        Posterior {
                            x: x.to_vec(),
                            chol: k,
                            alpha,
                            length,
                        },
                    ));
                }
            }
        }
        self.posterior = best.map(|(_, p)| p);
        self.standard = Some(standard);
    }

    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let (Some(p), Some(standard)) = (&self.posterior, self.standard) else {
            return (0.0, 1.0);
        };
        let n = p.x.len();
        let ks: Vec<f64> =
            p.x.iter()
                .map(|xi| (-sq_dist(xi, x) / (2.0 * p.length * p.length)).exp())
                .collect();
        let mean: f64 = ks.iter().zip(&p.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&p.chol, n, &ks);
        let var = (1.0 - v.iter().map(|a| a * a).sum::<f64>()).max(1e-12);
        standard.undo(mean, var.sqrt())
    }
}
