//! Batch normalisation on dense `[batch, channels, spatial]` `f32` slices: statistics in one
//! pass per channel (parallel over channels, sums in f64), the normalisation in one pass per
//! sample (parallel over samples). No temporaries beyond the output.
//!
//! Layer normalisation on dense `[rows, width]` slices, each row normalised over its width:
//! forward and backward in one pass per row, parallel over fixed blocks of rows (burn composes
//! it from about eight ops, each a pass over the tensor with its own output and backward node).

use super::{chunks, chunks2, lane_sum, map, map_chunks};

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

// ---- layer normalisation --------------------------------------------------------------------

/// The layout of a layer-norm input: `rows` rows of `width` features, normalised per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerGeom {
    /// Rows (samples × positions).
    pub rows: usize,
    /// Features per row (the normalised axis).
    pub width: usize,
}

/// Rows per parallel piece: fixed, so that the weights' gradients add the pieces' partial sums
/// in the same order whatever the thread count.
const ROW_BLOCK: usize = 64;

impl LayerGeom {
    fn block(&self) -> usize {
        ROW_BLOCK * self.width
    }
}

/// Forward: `out = (x − μ) / √(σ² + ε) · γ + β` per row, with the row's mean and biased variance
/// (sums in f64). Returns the output and each row's `(μ, 1/√(σ² + ε))`, interleaved, for the
/// backward pass.
pub fn layer_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    g: &LayerGeom,
) -> (Vec<f32>, Vec<f32>) {
    let d = g.width;
    let mut out = vec![0f32; x.len()];
    let mut stats = vec![0f32; 2 * g.rows];
    let block = g.block();
    chunks2(
        &mut out,
        block,
        &mut stats,
        2 * ROW_BLOCK,
        x.len(),
        |b, o, st, _| {
            let x = &x[b * block..b * block + o.len()];
            for ((o, x), st) in o
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(st.chunks_exact_mut(2))
            {
                let mean = lane_sum(x, |v| v) / d as f64;
                let mf = mean as f32;
                let var = lane_sum(x, |v| (v - mf) * (v - mf)) / d as f64;
                let rstd = (1.0 / (var + eps).sqrt()) as f32;
                for (((o, &x), &ga), &be) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
                    *o = (x - mf) * rstd * ga + be;
                }
                st[0] = mf;
                st[1] = rstd;
            }
        },
    );
    (out, stats)
}

/// Gradients of [`layer_forward`] given the output gradient `dy` and the forward's row
/// statistics: `(dx, dγ, dβ)`. Per row, with `x̂ = (x − μ)·r` and `ĝ = dy·γ`:
/// `dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`; `dγ = Σ_rows dy·x̂`, `dβ = Σ_rows dy`.
pub fn layer_backward(
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    dy: &[f32],
    g: &LayerGeom,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = g.width;
    let mut dx = vec![0f32; x.len()];
    let block = g.block();
    // Each piece returns its partial (dγ, dβ), summed below in piece order.
    let partials = map_chunks(&mut dx, block, 2 * x.len(), |b, dx| {
        let rows = b * ROW_BLOCK..b * ROW_BLOCK + dx.len() / d;
        let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
        let mut gh = vec![0f32; d];
        for (r, dx) in rows.zip(dx.chunks_exact_mut(d)) {
            let (x, dy) = (&x[r * d..(r + 1) * d], &dy[r * d..(r + 1) * d]);
            let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
            for ((((gh, &dy), &ga), &xv), (dg, db)) in gh
                .iter_mut()
                .zip(dy)
                .zip(gamma)
                .zip(x)
                .zip(dg.iter_mut().zip(db.iter_mut()))
            {
                *gh = dy * ga;
                *dg += dy * (xv - mean) * rstd;
                *db += dy;
            }
            let mean_g = (lane_sum(&gh, |v| v) / d as f64) as f32;
            let mean_gx =
                (plane_sum2(&gh, x, |gv, xv| gv * (xv - mean)) * rstd as f64 / d as f64) as f32;
            for ((dx, &gv), &xv) in dx.iter_mut().zip(&gh).zip(x) {
                let xh = (xv - mean) * rstd;
                *dx = rstd * (gv - mean_g - xh * mean_gx);
            }
        }
        (dg, db)
    });
    let (mut dgamma, mut dbeta) = (vec![0f64; d], vec![0f64; d]);
    for (dg, db) in &partials {
        for i in 0..d {
            dgamma[i] += dg[i] as f64;
            dbeta[i] += db[i] as f64;
        }
    }
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, to_f32(dgamma), to_f32(dbeta))
}
