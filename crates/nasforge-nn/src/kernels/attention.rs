//! Multi-head self-attention fused from the packed `qkv` projection, forward and backward, on
//! dense `f32` slices, parallel over samples.
//!
//! The input is the qkv linear layer's output `[N, T, 3D]` as it comes (per position: the D
//! query values, then the keys, then the values; head `h` owns columns `h·dh..(h+1)·dh` of
//! each), the output `[N, T, D]` with the heads side by side, ready for the output projection.
//! No reshape, permute or slice is copied, and the `T × T` scores of one head live in a
//! per-thread scratch buffer (L2-sized for the sequences we train) instead of a fresh
//! `[N, H, T, T]` tensor per op: burn's decomposed path under autodiff materialised five of
//! those per layer and step, and page-faulted them in.
//!
//! The forward keeps each row's log-sum-exp; the backward recomputes the probabilities from it
//! (as FlashAttention does) rather than storing them:
//! `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale`, `dQ = dS K`,
//! `dK = dSᵀ Q`, with `scale = 1/√dh`. Causal rows read only positions up to their own.

use super::{chunks, chunks2, math, matmul};

/// The shapes of one self-attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionGeom {
    /// Samples.
    pub batch: usize,
    /// Positions.
    pub seq: usize,
    /// Model width D (= heads · head width).
    pub width: usize,
    /// Heads (dividing the width).
    pub heads: usize,
    /// Whether position `i` attends only to positions `≤ i`.
    pub causal: bool,
}

impl AttentionGeom {
    fn head_width(&self) -> usize {
        self.width / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_width() as f32).sqrt()
    }

    /// The positions row `i` reads.
    fn span(&self, i: usize) -> usize {
        if self.causal {
            i + 1
        } else {
            self.seq
        }
    }

    /// Multiply-adds of one pass (for the parallel threshold).
    fn work(&self) -> usize {
        2 * self.batch * self.seq * self.seq * self.width
    }
}

/// `scores[T×T] = Q_h K_hᵀ` of head `h` of one sample's `qkv` rows.
fn head_scores(qkv: &[f32], g: &AttentionGeom, h: usize, scores: &mut [f32]) {
    let (t, d, dh) = (g.seq, g.width, g.head_width());
    let q = &qkv[h * dh..];
    let k = &qkv[d + h * dh..];
    matmul(
        t,
        t,
        dh,
        scores,
        false,
        (q, 3 * d, 1),
        (k, 1, 3 * d),
        1.0,
        false,
    );
}

/// Forward: the attended values `[N, T, D]` and each row's log-sum-exp `[N, H, T]` (of the
/// scaled scores), kept for the backward pass.
pub fn forward(qkv: &[f32], g: &AttentionGeom) -> (Vec<f32>, Vec<f32>) {
    let (t, d, dh, heads) = (g.seq, g.width, g.head_width(), g.heads);
    let scale = g.scale();
    let mut out = vec![0f32; g.batch * t * d];
    let mut lse = vec![0f32; g.batch * heads * t];
    chunks2(
        &mut out,
        t * d,
        &mut lse,
        heads * t,
        g.work(),
        |s, out, lse, buf| {
            let qkv = &qkv[s * t * 3 * d..(s + 1) * t * 3 * d];
            buf.resize(t * t + t * dh, 0.0);
            let (p, o) = buf.split_at_mut(t * t);
            for h in 0..heads {
                head_scores(qkv, g, h, p);
                for i in 0..t {
                    let row = &mut p[i * t..(i + 1) * t];
                    let (live, masked) = row.split_at_mut(g.span(i));
                    // The scale is positive: the largest scaled score is the scaled largest.
                    let max = scale * math::max(live);
                    let sum = math::exp_affine(live, scale, -max);
                    let inv = 1.0 / sum;
                    live.iter_mut().for_each(|v| *v *= inv);
                    masked.fill(0.0);
                    lse[h * t + i] = max + sum.ln();
                }
                let v = &qkv[2 * d + h * dh..];
                matmul(t, dh, t, o, false, (p, t, 1), (v, 3 * d, 1), 1.0, false);
                for i in 0..t {
                    out[i * d + h * dh..i * d + (h + 1) * dh]
                        .copy_from_slice(&o[i * dh..(i + 1) * dh]);
                }
            }
        },
    );
    (out, lse)
}

/// Backward: the gradient of the packed `qkv` input `[N, T, 3D]` from the output's `dy`
/// `[N, T, D]`, given the forward's log-sum-exp.
pub fn backward(qkv: &[f32], lse: &[f32], dy: &[f32], g: &AttentionGeom) -> Vec<f32> {
    let (t, d, dh, heads) = (g.seq, g.width, g.head_width(), g.heads);
    let scale = g.scale();
    let mut dqkv = vec![0f32; g.batch * t * 3 * d];
    chunks(&mut dqkv, t * 3 * d, 2 * g.work(), |s, dqkv, buf| {
        let qkv = &qkv[s * t * 3 * d..(s + 1) * t * 3 * d];
        let dy = &dy[s * t * d..(s + 1) * t * d];
        let lse = &lse[s * heads * t..(s + 1) * heads * t];
        buf.resize(2 * t * t + t * dh, 0.0);
        let (p, rest) = buf.split_at_mut(t * t);
        let (dp, tmp) = rest.split_at_mut(t * t);
        for h in 0..heads {
            let (q, k, v) = (&qkv[h * dh..], &qkv[d + h * dh..], &qkv[2 * d + h * dh..]);
            let dout = &dy[h * dh..];
            head_scores(qkv, g, h, p);
            for i in 0..t {
                let row = &mut p[i * t..(i + 1) * t];
                let (live, masked) = row.split_at_mut(g.span(i));
                math::exp_affine(live, scale, -lse[h * t + i]);
                masked.fill(0.0);
            }
            // dV = Pᵀ dO
            matmul(t, dh, t, tmp, false, (p, 1, t), (dout, d, 1), 1.0, false);
            scatter(dqkv, tmp, t, 3 * d, 2 * d + h * dh, dh);
            // dP = dO Vᵀ, then dS in place.
            matmul(t, t, dh, dp, false, (dout, d, 1), (v, 1, 3 * d), 1.0, false);
            for i in 0..t {
                let span = g.span(i);
                let (pr, dr) = (&p[i * t..i * t + span], &mut dp[i * t..(i + 1) * t]);
                let dot = math::dot(pr, dr);
                for (x, &pv) in dr.iter_mut().zip(pr) {
                    *x = pv * (*x - dot) * scale;
                }
                dr[span..].fill(0.0);
            }
            // dQ = dS K, dK = dSᵀ Q
            matmul(t, dh, t, tmp, false, (dp, t, 1), (k, 3 * d, 1), 1.0, false);
            scatter(dqkv, tmp, t, 3 * d, h * dh, dh);
            matmul(t, dh, t, tmp, false, (dp, 1, t), (q, 3 * d, 1), 1.0, false);
            scatter(dqkv, tmp, t, 3 * d, d + h * dh, dh);
        }
    });
    dqkv
}

/// Copies the rows of `src` (`rows × cols`, dense) into columns `at..at + cols` of `dst`
/// (row stride `stride`).
fn scatter(dst: &mut [f32], src: &[f32], rows: usize, stride: usize, at: usize, cols: usize) {
    for i in 0..rows {
        dst[i * stride + at..i * stride + at + cols]
            .copy_from_slice(&src[i * cols..(i + 1) * cols]);
    }
}
