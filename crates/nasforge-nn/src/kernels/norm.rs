//! Batch normalisation on dense `[batch, channels, spatial]` `f32` slices: statistics in one
//! pass per channel (parallel over channels, sums in f64), the normalisation in one pass per
//! sample (parallel over samples). No temporaries beyond the output.

use super::{chunks, lane_sum, map};

/// The layout of a batch-norm input: `batch` samples of `channels` planes of `spatial` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeom {
    /// Samples.
    pub batch: usize,
    /// Channels (features).
    pub channels: usize,
    /// Values per channel and sample (H·W for images, 1 for vectors).
    pub spatial: usize,
}

impl NormGeom {
    fn count(&self) -> f64 {
        (self.batch * self.spatial) as f64
    }

    /// The `spatial` values of channel `c` in sample `n`.
    fn plane<'a>(&self, v: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let start = (n * self.channels + c) * self.spatial;
        &v[start..start + self.spatial]
    }
}

/// `Σ f(x, y)` over two planes of equal length, eight lanes in f32, then f64.
fn plane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += f(x[i], y[i]);
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>()
        + ra.iter()
            .zip(rb)
            .map(|(&x, &y)| f(x, y) as f64)
            .sum::<f64>()
}

/// `out[n, c, :] = (x[n, c, :] − center[c]) · scale[c] + shift[c]`, parallel over samples
/// (centering first keeps precision when the mean is large against the spread).
fn affine(x: &[f32], center: &[f32], scale: &[f32], shift: &[f32], g: &NormGeom) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let sample = g.channels * g.spatial;
    chunks(&mut out, sample, x.len(), |n, o, _| {
        let x = &x[n * sample..(n + 1) * sample];
        for (c, (o, x)) in o
            .chunks_exact_mut(g.spatial)
            .zip(x.chunks_exact(g.spatial))
            .enumerate()
        {
            let (m, a, b) = (center[c], scale[c], shift[c]);
            for (o, &x) in o.iter_mut().zip(x) {
                *o = (x - m) * a + b;
            }
        }
    });
    out
}

/// Training forward: normalises with the batch's own mean and biased variance.
/// Returns `(output, mean, variance)`.
pub fn train_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    g: &NormGeom,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = g.count();
    let stats: Vec<(f64, f64)> = map(g.channels, 2 * x.len(), |c| {
        let mean = (0..g.batch)
            .map(|n| lane_sum(g.plane(x, n, c), |v| v))
            .sum::<f64>()
            / m;
        let mf = mean as f32;
        let var = (0..g.batch)
            .map(|n| {
                lane_sum(g.plane(x, n, c), |v| {
                    let d = v - mf;
                    d * d
                })
            })
            .sum::<f64>()
            / m;
        (mean, var)
    });
    let mean: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
    let var: Vec<f32> = stats.iter().map(|s| s.1 as f32).collect();
    let out = inference(x, gamma, beta, &mean, &var, eps, g);
    (out, mean, var)
}

/// Inference: normalises with the given (running) statistics in one pass.
pub fn inference(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    g: &NormGeom,
) -> Vec<f32> {
    let scale: Vec<f32> = (0..g.channels)
        .map(|c| (gamma[c] as f64 / (var[c] as f64 + eps).sqrt()) as f32)
        .collect();
    affine(x, mean, &scale, beta, g)
}

/// Gradients of [`train_forward`] given the output gradient `dy`: `(dx, dgamma, dbeta)`.
pub fn train_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    dy: &[f32],
    eps: f64,
    g: &NormGeom,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = g.count();
    // Per channel: Σ dy and Σ dy·(x − mean).
    let sums: Vec<(f64, f64)> = map(g.channels, 2 * x.len(), |c| {
        let mf = mean[c];
        (0..g.batch).fold((0.0, 0.0), |(s, sx), n| {
            let (xp, dp) = (g.plane(x, n, c), g.plane(dy, n, c));
            (
                s + lane_sum(dp, |v| v),
                sx + plane_sum2(xp, dp, |xv, dv| (xv - mf) * dv),
            )
        })
    });
    let mut dgamma = Vec::with_capacity(g.channels);
    let mut dbeta = Vec::with_capacity(g.channels);
    // dx = a·(dy − Σdy/m − (x − μ)·k) with a = γ/σ, k = Σdy(x−μ)/(m σ²), computed per channel
    // as a·dy + b·(x − μ) + c.
    let mut a = Vec::with_capacity(g.channels);
    let mut b = Vec::with_capacity(g.channels);
    let mut cst = Vec::with_capacity(g.channels);
    for (c, &(s, sx)) in sums.iter().enumerate() {
        let inv_std = 1.0 / (var[c] as f64 + eps).sqrt();
        dgamma.push((sx * inv_std) as f32);
        dbeta.push(s as f32);
        let ac = gamma[c] as f64 * inv_std;
        let kc = sx * inv_std * inv_std / m;
        a.push(ac as f32);
        b.push((-ac * kc) as f32);
        cst.push((-ac * s / m) as f32);
    }
    let mut dx = vec![0f32; x.len()];
    let sample = g.channels * g.spatial;
    chunks(&mut dx, sample, 2 * x.len(), |n, o, _| {
        let (xs, ds) = (
            &x[n * sample..(n + 1) * sample],
            &dy[n * sample..(n + 1) * sample],
        );
        for c in 0..g.channels {
            let r = c * g.spatial..(c + 1) * g.spatial;
            let (ac, bc, cc, mc) = (a[c], b[c], cst[c], mean[c]);
            for ((o, &xv), &dv) in o[r.clone()].iter_mut().zip(&xs[r.clone()]).zip(&ds[r]) {
                *o = ac * dv + bc * (xv - mc) + cc;
            }
        }
    });
    (dx, dgamma, dbeta)
}
