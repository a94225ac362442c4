//! SynFlow (Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al. 2021) in float64.
//!
//! The network is run on one all-ones input with the absolute values of its weights and batch
//! norm left out; `R` is the sum of the output, and the score is Σ_θ θ·∂R/∂θ over the weights of
//! every convolution and linear layer (biases are not scored, as in the published code). Each
//! of those layers is linear in its weight, so per layer Σ_θ θ·∂R/∂θ = ⟨∂R/∂out, out − bias⟩:
//! only activation gradients are needed, never weight gradients.
//!
//! Why a dedicated engine rather than burn: the score is a product of ~50 layer gains and
//! overflows float32 on NAS-Bench-201 networks, and burn flex's float dtype is fixed per device
//! for the whole process. Batch 1 and no weight gradients also make this cheaper than autodiff
//! (measured in `docs/BENCHMARKS.md`).

use crate::model::{Layer, Network};
use nasforge_core::netspec::ops;
use nasforge_core::netspec::{NetSpec, Op};
use nasforge_core::stats::{normal_cdf, normal_pdf};
use nasforge_core::{Error, Result};

/// The weights of one learned node, in float64, as the proxy uses them (absolute values).
enum Weights {
    /// `[out, in / groups, k, k]` and an optional bias.
    Conv(Vec<f64>, Option<Vec<f64>>),
    /// burn's layout `[in, out]` and an optional bias.
    Linear(Vec<f64>, Option<Vec<f64>>),
    None,
}

fn to_f64(t: burn::prelude::Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float data")
        .into_iter()
        .map(|v| (v as f64).abs())
        .collect()
}

fn abs_weights(net: &Network) -> Vec<Weights> {
    net.layers()
        .iter()
        .map(|l| match l {
            Layer::Conv(c) => Weights::Conv(
                to_f64(c.weight.val().flatten(0, 3)),
                c.bias.as_ref().map(|b| to_f64(b.val())),
            ),
            Layer::Linear(l) => Weights::Linear(
                to_f64(l.weight.val().flatten(0, 1)),
                l.bias.as_ref().map(|b| to_f64(b.val())),
            ),
            _ => Weights::None,
        })
        .collect()
}

/// The SynFlow score of `net` at its current weights (see the module documentation).
///
/// Networks of token ids (the only ones with sequence ops) are not covered: an all-ones input
/// stands for no token ids, and attention is not positively homogeneous in its weights, so the
/// score loses the meaning it has for convolutions. They get an error naming the proxies that
/// do cover them.
pub fn synflow(net: &Network) -> Result<f64> {
    if net.spec().reads_tokens() {
        return Err(Error::invalid(
            "synflow does not cover networks of token ids (Transformers); use grad_norm, snip, fisher, naswot, params or macs",
        ));
    }
    Ok(synflow_with(net.spec(), &abs_weights(net)))
}

/// `dst (m×n) (+)= a (m×k) · b (k×n)`, row-major; `a_t` reads `a` stored as `k×m`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f64],
    a_t: bool,
    b: &[f64],
    dst: &mut [f64],
    acc: bool,
) {
    let a_strides = if a_t { (1, m) } else { (k, 1) };
    crate::kernels::matmul(
        m,
        n,
        k,
        dst,
        acc,
        (a, a_strides.0, a_strides.1),
        (b, n, 1),
        1.0,
        m * n * k >= 1 << 18,
    );
}

/// A convolution's sizes.
struct Geom {
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn of(spec: &NetSpec, node: usize) -> Geom {
        let n = &spec.nodes()[node];
        let s = &spec.nodes()[n.inputs[0]].shape;
        match n.op {
            Op::Conv2d(ops::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            }) => Geom {
                cin: s[0],
                h: s[1],
                w: s[2],
                cout: out_channels,
                k: kernel,
                stride,
                pad: padding,
                dil: dilation,
                groups,
                oh: n.shape[1],
                ow: n.shape[2],
            },
            _ => unreachable!("a conv node"),
        }
    }

    /// Whether the input itself is the column matrix (1×1, stride 1, no padding).
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Calls `f(col_index, input_index)` for every in-bounds tap of group `g`.
    fn taps(&self, g: usize, mut f: impl FnMut(usize, usize)) {
        let cg = self.cin / self.groups;
        let p = self.oh * self.ow;
        for c in 0..cg {
            let ch = g * cg + c;
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let row = (c * self.k + ky) * self.k + kx;
                    for oy in 0..self.oh {
                        let iy = (oy * self.stride + ky * self.dil) as isize - self.pad as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        for ox in 0..self.ow {
                            let ix =
                                (ox * self.stride + kx * self.dil) as isize - self.pad as isize;
                            if ix >= 0 && ix < self.w as isize {
                                f(
                                    row * p + oy * self.ow + ox,
                                    (ch * self.h + iy as usize) * self.w + ix as usize,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn conv(&self, x: &[f64], wt: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let p = self.oh * self.ow;
        let (cg, og) = (self.cin / self.groups, self.cout / self.groups);
        let kk = cg * self.k * self.k;
        let mut out = vec![0.0; self.cout * p];
        let mut col = if self.pointwise() {
            Vec::new()
        } else {
            vec![0.0; kk * p]
        };
        for g in 0..self.groups {
            let cols: &[f64] = if self.pointwise() {
                &x[g * cg * p..(g + 1) * cg * p]
            } else {
                col.iter_mut().for_each(|v| *v = 0.0);
                self.taps(g, |c, i| col[c] = x[i]);
                &col
            };
            matmul(
                og,
                p,
                kk,
                &wt[g * og * kk..],
                false,
                cols,
                &mut out[g * og * p..],
                false,
            );
        }
        if let Some(b) = bias {
            for (c, &bc) in b.iter().enumerate() {
                out[c * p..(c + 1) * p].iter_mut().for_each(|v| *v += bc);
            }
        }
        out
    }

    /// Adds the gradient with respect to the input into `dx`.
    fn conv_back(&self, wt: &[f64], dy: &[f64], dx: &mut [f64]) {
        let p = self.oh * self.ow;
        let (cg, og) = (self.cin / self.groups, self.cout / self.groups);
        let kk = cg * self.k * self.k;
        let mut col = vec![0.0; kk * p];
        for g in 0..self.groups {
            // wt's group block is og×kk; its transpose times dy's og×p block.
            matmul(
                kk,
                p,
                og,
                &wt[g * og * kk..],
                true,
                &dy[g * og * p..],
                &mut col,
                false,
            );
            if self.pointwise() {
                dx[g * cg * p..(g + 1) * cg * p]
                    .iter_mut()
                    .zip(&col)
                    .for_each(|(d, c)| *d += c);
            } else {
                self.taps(g, |c, i| dx[i] += col[c]);
            }
        }
    }
}

/// Pooling windows: calls `f(out_index, input_indices)` for every output cell.
fn windows(
    shape_in: &[usize],
    shape_out: &[usize],
    k: usize,
    stride: usize,
    pad: usize,
    mut f: impl FnMut(usize, &[usize]),
) {
    let (c, h, w) = (shape_in[0], shape_in[1], shape_in[2]);
    let (oh, ow) = (shape_out[1], shape_out[2]);
    let mut idx = Vec::with_capacity(k * k);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                idx.clear();
                for ky in 0..k {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        if ix >= 0 && ix < w as isize {
                            idx.push((ch * h + iy as usize) * w + ix as usize);
                        }
                    }
                }
                f((ch * oh + oy) * ow + ox, &idx);
            }
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// SynFlow on `spec` with the given absolute weights; `None` values are known zeros.
fn synflow_with(spec: &NetSpec, weights: &[Weights]) -> f64 {
    let nodes = spec.nodes();
    let size = |i: usize| nodes[i].shape.iter().product::<usize>();
    let mut values: Vec<Option<Vec<f64>>> = vec![None; nodes.len()];
    values[0] = Some(vec![1.0; size(0)]);
    for i in 1..nodes.len() {
        let node = &nodes[i];
        let x = values[node.inputs[0]].as_deref();
        let out = match (&node.op, &weights[i]) {
            (Op::Conv2d(_), Weights::Conv(wt, b)) => match (x, b) {
                (None, None) => None,
                (None, Some(b)) => Some(
                    b.iter()
                        .flat_map(|&v| std::iter::repeat_n(v, size(i) / b.len()))
                        .collect(),
                ),
                (Some(x), b) => Some(Geom::of(spec, i).conv(x, wt, b.as_deref())),
            },
            (Op::Linear(ops::Linear { out_features, .. }), Weights::Linear(wt, b)) => {
                let mut y = b.clone().unwrap_or_else(|| vec![0.0; *out_features]);
                if let Some(x) = x {
                    matmul(1, *out_features, x.len(), x, false, wt, &mut y, true);
                }
                (x.is_some() || b.is_some()).then_some(y)
            }
            // Batch norm is left out (identity); dropout is off at initialisation scoring.
            (Op::BatchNorm(_) | Op::Identity | Op::Dropout(_) | Op::Flatten, _) => {
                x.map(<[f64]>::to_vec)
            }
            (Op::Relu, _) => x.map(|x| x.iter().map(|v| v.max(0.0)).collect()),
            (Op::Gelu, _) => x.map(|x| x.iter().map(|&v| v * normal_cdf(v)).collect()),
            (Op::Silu, _) => x.map(|x| x.iter().map(|&v| v * sigmoid(v)).collect()),
            (Op::Tanh, _) => x.map(|x| x.iter().map(|v| v.tanh()).collect()),
            (Op::Zero(_), _) => None,
            (Op::ChannelMask(ops::ChannelMask { keep }), _) => x.map(|x| {
                let mut y = x.to_vec();
                y[keep * size(i) / node.shape[0]..].fill(0.0);
                y
            }),
            (
                Op::MaxPool(ops::MaxPool {
                    kernel,
                    stride,
                    padding,
                }),
                _,
            ) => x.map(|x| {
                let mut y = vec![0.0; size(i)];
                let s_in = &nodes[node.inputs[0]].shape;
                windows(s_in, &node.shape, *kernel, *stride, *padding, |o, idx| {
                    y[o] = idx.iter().map(|&j| x[j]).fold(f64::NEG_INFINITY, f64::max)
                });
                y
            }),
            (
                Op::AvgPool(ops::AvgPool {
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                }),
                _,
            ) => x.map(|x| {
                let mut y = vec![0.0; size(i)];
                let s_in = &nodes[node.inputs[0]].shape;
                windows(s_in, &node.shape, *kernel, *stride, *padding, |o, idx| {
                    let d = if *count_include_pad {
                        kernel * kernel
                    } else {
                        idx.len()
                    };
                    y[o] = idx.iter().map(|&j| x[j]).sum::<f64>() / d as f64
                });
                y
            }),
            (Op::GlobalAvgPool, _) => x.map(|x| {
                let c = node.shape[0];
                let p = x.len() / c;
                x.chunks(p)
                    .map(|ch| ch.iter().sum::<f64>() / p as f64)
                    .collect()
            }),
            (Op::Crop(ops::Crop { offset }), _) => x.map(|x| {
                let s = &nodes[node.inputs[0]].shape;
                let (h, w) = (s[1], s[2]);
                let mut y = Vec::with_capacity(size(i));
                for c in 0..s[0] {
                    for r in *offset..h {
                        y.extend_from_slice(&x[(c * h + r) * w + offset..(c * h + r + 1) * w]);
                    }
                }
                y
            }),
            (Op::Add, _) => {
                let mut sum: Option<Vec<f64>> = None;
                for &j in &node.inputs {
                    if let Some(v) = &values[j] {
                        match &mut sum {
                            None => sum = Some(v.clone()),
                            Some(s) => s.iter_mut().zip(v).for_each(|(a, b)| *a += b),
                        }
                    }
                }
                sum
            }
            (Op::Concat, _) => {
                let mut y = Vec::with_capacity(size(i));
                for &j in &node.inputs {
                    match &values[j] {
                        Some(v) => y.extend_from_slice(v),
                        None => y.resize(y.len() + size(j), 0.0),
                    }
                }
                Some(y)
            }
            (op @ (Op::Input | Op::Conv2d(_) | Op::Linear(_)), _) => {
                unreachable!("node {i}: {op:?} without its weights")
            }
            (
                op @ (Op::Embedding(_)
                | Op::Position(_)
                | Op::LayerNorm(_)
                | Op::Attention(_)
                | Op::SeqPool(_)
                | Op::LmHead(_)
                | Op::SeqConv(_)),
                _,
            ) => unreachable!("node {i}: {} is refused by synflow()", op.kind()),
        };
        values[i] = out;
    }

    // Backward from R = Σ output. Nodes whose value is a known zero only lead back to `Zero`
    // ops (which pass no gradient) through other zero nodes, whose layers score 0: skip them.
    let mut grads: Vec<Option<Vec<f64>>> = vec![None; nodes.len()];
    grads[spec.output()] = Some(vec![1.0; size(spec.output())]);
    let mut score = 0.0;
    for i in (1..nodes.len()).rev() {
        let (Some(g), Some(y)) = (grads[i].take(), values[i].as_deref()) else {
            continue;
        };
        let node = &nodes[i];
        let j = node.inputs[0];
        let x = values[j].as_deref();
        match (&node.op, &weights[i]) {
            (Op::Conv2d(_), Weights::Conv(wt, b)) => {
                let geom = Geom::of(spec, i);
                let p = geom.oh * geom.ow;
                score += dot(&g, y);
                if let Some(b) = b {
                    score -= b
                        .iter()
                        .enumerate()
                        .map(|(c, bc)| bc * g[c * p..(c + 1) * p].iter().sum::<f64>())
                        .sum::<f64>();
                }
                if x.is_some() {
                    let mut dx = vec![0.0; size(j)];
                    geom.conv_back(wt, &g, &mut dx);
                    push(&mut grads, j, &dx);
                }
            }
            (Op::Linear(ops::Linear { out_features, .. }), Weights::Linear(wt, b)) => {
                score += dot(&g, y) - b.as_deref().map_or(0.0, |b| dot(&g, b));
                if x.is_some() {
                    let mut dx = vec![0.0; size(j)];
                    matmul(size(j), 1, *out_features, wt, false, &g, &mut dx, false);
                    push(&mut grads, j, &dx);
                }
            }
            (Op::BatchNorm(_) | Op::Identity | Op::Dropout(_) | Op::Flatten, _) => {
                if x.is_some() {
                    push(&mut grads, j, &g)
                }
            }
            (Op::Relu | Op::Gelu | Op::Silu | Op::Tanh, _) => {
                if let Some(x) = x {
                    let d: Vec<f64> = match node.op {
                        Op::Relu => g
                            .iter()
                            .zip(y)
                            .map(|(g, &y)| if y > 0.0 { *g } else { 0.0 })
                            .collect(),
                        Op::Tanh => g.iter().zip(y).map(|(g, y)| g * (1.0 - y * y)).collect(),
                        Op::Gelu => g
                            .iter()
                            .zip(x)
                            .map(|(g, &x)| g * (normal_cdf(x) + x * normal_pdf(x)))
                            .collect(),
                        _ => g
                            .iter()
                            .zip(x)
                            .map(|(g, &x)| {
                                let s = sigmoid(x);
                                g * s * (1.0 + x * (1.0 - s))
                            })
                            .collect(),
                    };
                    push(&mut grads, j, &d);
                }
            }
            (Op::Zero(_), _) => {}
            (Op::ChannelMask(ops::ChannelMask { keep }), _) => {
                if x.is_some() {
                    let mut d = g.clone();
                    d[keep * size(i) / node.shape[0]..].fill(0.0);
                    push(&mut grads, j, &d);
                }
            }
            (
                Op::MaxPool(ops::MaxPool {
                    kernel,
                    stride,
                    padding,
                }),
                _,
            ) => {
                if let Some(x) = x {
                    let mut dx = vec![0.0; size(j)];
                    windows(
                        &nodes[j].shape,
                        &node.shape,
                        *kernel,
                        *stride,
                        *padding,
                        |o, idx| {
                            // The first maximum takes the gradient.
                            let best = idx
                                .iter()
                                .copied()
                                .reduce(|a, b| if x[b] > x[a] { b } else { a })
                                .expect("windows are never empty");
                            dx[best] += g[o];
                        },
                    );
                    push(&mut grads, j, &dx);
                }
            }
            (
                Op::AvgPool(ops::AvgPool {
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                }),
                _,
            ) => {
                if x.is_some() {
                    let mut dx = vec![0.0; size(j)];
                    windows(
                        &nodes[j].shape,
                        &node.shape,
                        *kernel,
                        *stride,
                        *padding,
                        |o, idx| {
                            let d = if *count_include_pad {
                                kernel * kernel
                            } else {
                                idx.len()
                            };
                            let share = g[o] / d as f64;
                            idx.iter().for_each(|&k| dx[k] += share);
                        },
                    );
                    push(&mut grads, j, &dx);
                }
            }
            (Op::GlobalAvgPool, _) => {
                if x.is_some() {
                    let p = size(j) / g.len();
                    let dx: Vec<f64> = g
                        .iter()
                        .flat_map(|&gc| std::iter::repeat_n(gc / p as f64, p))
                        .collect();
                    push(&mut grads, j, &dx);
                }
            }
            (Op::Crop(ops::Crop { offset }), _) => {
                if x.is_some() {
                    let s = &nodes[j].shape;
                    let (h, w) = (s[1], s[2]);
                    let ow = w - offset;
                    let mut dx = vec![0.0; size(j)];
                    let mut k = 0;
                    for c in 0..s[0] {
                        for r in *offset..h {
                            let at = (c * h + r) * w + offset;
                            dx[at..at + ow].copy_from_slice(&g[k..k + ow]);
                            k += ow;
                        }
                    }
                    push(&mut grads, j, &dx);
                }
            }
            (Op::Add, _) => {
                for &j in &node.inputs {
                    if values[j].is_some() {
                        push(&mut grads, j, &g);
                    }
                }
            }
            (Op::Concat, _) => {
                let mut at = 0;
                for &j in &node.inputs {
                    let n = size(j);
                    if values[j].is_some() {
                        push(&mut grads, j, &g[at..at + n]);
                    }
                    at += n;
                }
            }
            (op @ (Op::Input | Op::Conv2d(_) | Op::Linear(_)), _) => {
                unreachable!("node {i}: {op:?} without its weights")
            }
            (
                op @ (Op::Embedding(_)
                | Op::Position(_)
                | Op::LayerNorm(_)
                | Op::Attention(_)
                | Op::SeqPool(_)
                | Op::LmHead(_)
                | Op::SeqConv(_)),
                _,
            ) => unreachable!("node {i}: {} is refused by synflow()", op.kind()),
        }
    }
    score
}

/// Adds `d` to the gradient of node `j`.
fn push(grads: &mut [Option<Vec<f64>>], j: usize, d: &[f64]) {
    match &mut grads[j] {
        Some(acc) => acc.iter_mut().zip(d).for_each(|(a, b)| *a += b),
        slot @ None => *slot = Some(d.to_vec()),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasforge_core::netspec::NetSpecBuilder;

    /// Brute force: Σ θ·∂R/∂θ by central differences of R over every weight (R is a polynomial
    /// of degree ≤ 2 in each single weight here, so central differences are exact up to rounding).
    fn finite_difference(spec: &NetSpec, weights: &mut [Weights]) -> f64 {
        let r = |spec: &NetSpec, w: &[Weights]| -> f64 {
            // R itself: re-run the forward pass by scoring a network whose output is summed.
            forward_sum(spec, w)
        };
        let mut total = 0.0;
        for i in 0..weights.len() {
            let n = match &weights[i] {
                Weights::Conv(w, _) | Weights::Linear(w, _) => w.len(),
                Weights::None => 0,
            };
            for k in 0..n {
                fn get(ws: &mut [Weights], i: usize, k: usize) -> &mut f64 {
                    match &mut ws[i] {
                        Weights::Conv(w, _) | Weights::Linear(w, _) => &mut w[k],
                        Weights::None => unreachable!(),
                    }
                }
                let theta = *get(weights, i, k);
                let h = 1e-4 * theta.max(1e-3);
                *get(weights, i, k) = theta + h;
                let up = r(spec, weights);
                *get(weights, i, k) = theta - h;
                let down = r(spec, weights);
                *get(weights, i, k) = theta;
                total += theta * (up - down) / (2.0 * h);
            }
        }
        total
    }

    /// R = Σ output, computed naively (no gemm, no symbolic zeros) as an independent check.
    fn forward_sum(spec: &NetSpec, weights: &[Weights]) -> f64 {
        let nodes = spec.nodes();
        let mut v: Vec<Vec<f64>> = vec![vec![1.0; nodes[0].shape.iter().product()]];
        for (i, node) in nodes.iter().enumerate().skip(1) {
            let x = &v[node.inputs[0]];
            let y = match (&node.op, &weights[i]) {
                (Op::Conv2d(_), Weights::Conv(w, b)) => {
                    let g = Geom::of(spec, i);
                    let cg = g.cin / g.groups;
                    let og = g.cout / g.groups;
                    let mut y = vec![0.0; g.cout * g.oh * g.ow];
                    for o in 0..g.cout {
                        let grp = o / og;
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let mut s = b.as_ref().map_or(0.0, |b| b[o]);
                                for c in 0..cg {
                                    for ky in 0..g.k {
                                        for kx in 0..g.k {
                                            let iy = (oy * g.stride + ky * g.dil) as isize
                                                - g.pad as isize;
                                            let ix = (ox * g.stride + kx * g.dil) as isize
                                                - g.pad as isize;
                                            if iy >= 0
                                                && ix >= 0
                                                && (iy as usize) < g.h
                                                && (ix as usize) < g.w
                                            {
                                                s += w[((o * cg + c) * g.k + ky) * g.k + kx]
                                                    * x[((grp * cg + c) * g.h + iy as usize) * g.w
                                                        + ix as usize];
                                            }
                                        }
                                    }
                                }
                                y[(o * g.oh + oy) * g.ow + ox] = s;
                            }
                        }
                    }
                    y
                }
                (Op::Linear(ops::Linear { out_features, .. }), Weights::Linear(w, b)) => (0
                    ..*out_features)
                    .map(|o| {
                        b.as_ref().map_or(0.0, |b| b[o])
                            + x.iter()
                                .enumerate()
                                .map(|(k, xk)| xk * w[k * out_features + o])
                                .sum::<f64>()
                    })
                    .collect(),
                (Op::Relu, _) => x.iter().map(|v| v.max(0.0)).collect(),
                (Op::Zero(_), _) => vec![0.0; x.len()],
                (Op::Add, _) => {
                    let mut s = vec![0.0; x.len()];
                    for &j in &node.inputs {
                        s.iter_mut().zip(&v[j]).for_each(|(a, b)| *a += b);
                    }
                    s
                }
                (Op::GlobalAvgPool, _) => {
                    let p = x.len() / node.shape[0];
                    x.chunks(p)
                        .map(|c| c.iter().sum::<f64>() / p as f64)
                        .collect()
                }
                (Op::BatchNorm(_) | Op::Identity, _) => x.clone(),
                (op, _) => panic!("the brute force does not know {op:?}"),
            };
            v.push(y);
        }
        v[spec.output()].iter().sum()
    }

    #[test]
    fn synflow_matches_finite_differences_on_a_small_network() {
        // stem conv (bias) -> bn -> relu -> {3x3 conv stride 2 groups 2, zero} summed with a
        // 1x1 stride-2 conv shortcut -> gap -> linear(bias).
        let mut b = NetSpecBuilder::new(&[2, 5, 5]).unwrap();
        let x = b
            .push(
                Op::Conv2d(ops::Conv2d {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    dilation: 1,
                    groups: 1,
                    bias: true,
                }),
                &[0],
            )
            .unwrap();
        let x = b.bn(x).unwrap();
        let x = b.relu(x).unwrap();
        let a = b
            .push(
                Op::Conv2d(ops::Conv2d {
                    out_channels: 4,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    dilation: 1,
                    groups: 2,
                    bias: false,
                }),
                &[x],
            )
            .unwrap();
        let s = b.conv(x, 4, 1, 2, 0).unwrap();
        let z = b.push(Op::Zero(ops::Zero { stride: 1 }), &[a]).unwrap();
        let y = b.push(Op::Add, &[a, s, z]).unwrap();
        let g = b.push(Op::GlobalAvgPool, &[y]).unwrap();
        let out = b
            .push(
                Op::Linear(ops::Linear {
                    out_features: 3,
                    bias: true,
                }),
                &[g],
            )
            .unwrap();
        let spec = b.finish(out);
        // Deterministic positive weights of varied size.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            0.05 + (seed >> 40) as f64 / (1u64 << 24) as f64
        };
        let mut weights: Vec<Weights> = spec
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| match n.op {
                Op::Conv2d(ops::Conv2d {
                    out_channels, bias, ..
                }) => Weights::Conv(
                    (0..spec.node_params(i) as usize - if bias { out_channels } else { 0 })
                        .map(|_| next())
                        .collect(),
                    bias.then(|| (0..out_channels).map(|_| next()).collect()),
                ),
                Op::Linear(ops::Linear { out_features, .. }) => Weights::Linear(
                    (0..spec.node_params(i) as usize - out_features)
                        .map(|_| next())
                        .collect(),
                    Some((0..out_features).map(|_| next()).collect()),
                ),
                _ => Weights::None,
            })
            .collect();
        let fast = synflow_with(&spec, &weights);
        let brute = finite_difference(&spec, &mut weights);
        assert!(fast > 0.0);
        assert!(
            ((fast - brute) / brute).abs() < 1e-7,
            "synflow {fast} vs finite differences {brute}"
        );
    }
}
