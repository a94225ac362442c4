//! The data-dependent proxies: one loss pass (snip, grad_norm, fisher, naswot) and one
//! Jacobian pass (jacob_cov), with burn's autodiff in float32 on a [`ProxyBatch`].

use super::linalg::{log_abs_det, symmetric_eigenvalues};
use super::{BatchTargets, ProxyBatch};
use crate::model::{Layer, Network, Probe};
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::prelude::*;
use burn::tensor::Gradients;
use nasforge_core::netspec::Op;

/// What one forward and backward pass of the loss gives.
pub struct LossPass {
    pub snip: f64,
    pub grad_norm: f64,
    pub fisher: f64,
    pub naswot: f64,
}

fn to_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float data")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Multiplies a ones "gate" into every conv and linear output (its gradient is
/// Σ_spatial act·∂L/∂act per sample and channel) and accumulates the NASWOT kernel from the
/// binary codes of every ReLU.
struct GatesAndCodes {
    n: usize,
    gates4: Vec<Tensor<4>>,
    gates2: Vec<Tensor<2>>,
    kernel: Vec<f64>,
}

impl GatesAndCodes {
    fn codes(&mut self, flat: Tensor<2>) {
        let x = flat.detach().greater_elem(0.0).float();
        let not = x.clone().neg().add_scalar(1.0);
        let k = x.clone().matmul(x.transpose()) + not.clone().matmul(not.transpose());
        for (acc, v) in self.kernel.iter_mut().zip(to_f64(k)) {
            *acc += v;
        }
    }
}

impl Probe for GatesAndCodes {
    fn image(&mut self, _node: usize, op: &Op, t: Tensor<4>) -> Tensor<4> {
        match op {
            Op::Conv2d(_) => {
                let [n, c, _, _] = t.dims();
                let gate = Tensor::<4>::ones([n, c, 1, 1], &t.device()).require_grad();
                self.gates4.push(gate.clone());
                t * gate
            }
            Op::Relu => {
                self.codes(t.clone().reshape([self.n as i64, -1]));
                t
            }
            _ => t,
        }
    }

    fn vector(&mut self, _node: usize, op: &Op, t: Tensor<2>) -> Tensor<2> {
        match op {
            Op::Linear(_) => {
                let gate = Tensor::<2>::ones(t.dims(), &t.device()).require_grad();
                self.gates2.push(gate.clone());
                t * gate
            }
            Op::Relu => {
                self.codes(t.clone());
                t
            }
            _ => t,
        }
    }

    fn sequence(&mut self, _node: usize, op: &Op, t: Tensor<3>) -> Tensor<3> {
        match op {
            // One gate per sample and feature, shared by the positions (the spatial sum of
            // images): its gradient is Σ_t act·∂L/∂act.
            Op::Linear(_) | Op::Attention(_) | Op::SeqConv(_) => {
                let [n, _, f] = t.dims();
                let gate = Tensor::<2>::ones([n, f], &t.device()).require_grad();
                self.gates2.push(gate.clone());
                t * gate.unsqueeze_dim::<3>(1)
            }
            Op::Relu => {
                self.codes(t.clone().reshape([self.n as i64, -1]));
                t
            }
            _ => t,
        }
    }
}

fn inputs(batch: &ProxyBatch, dev: &Device) -> Tensor<2> {
    let n = batch.rows();
    Tensor::<2>::from_data(
        TensorData::new(batch.x.clone(), [n, batch.x.len() / n.max(1)]),
        dev,
    )
}

/// Weight gradients of every weight matrix or kernel (convolutions, linear layers, attention
/// projections, embedding tables; not biases, norms or position tables): Σ |θ·g| and
/// Σ ‖g‖₂ per weight.
fn weight_scores(net: &Network, grads: &Gradients) -> (f64, f64) {
    /// `(Σ |θ·g|, ‖g‖₂)` of one weight; zeros when it has no gradient.
    fn one<const D: usize>(w: Tensor<D>, grads: &Gradients) -> (f64, f64) {
        let Some(g) = w.grad(grads).map(to_f64) else {
            return (0.0, 0.0);
        };
        let w = to_f64(w.inner());
        let snip = w.iter().zip(&g).map(|(w, g)| (w * g).abs()).sum::<f64>();
        (snip, g.iter().map(|g| g * g).sum::<f64>().sqrt())
    }
    let mut parts = Vec::new();
    for layer in net.layers() {
        match layer {
            Layer::Conv(c) => parts.push(one(c.weight.val(), grads)),
            Layer::SeqConv(c) => parts.push(one(c.weight.val(), grads)),
            Layer::Linear(l) => parts.push(one(l.weight.val(), grads)),
            Layer::Embed(e) => parts.push(one(e.weight.val(), grads)),
            Layer::Attention(a) => {
                parts.push(one(a.qkv.weight.val(), grads));
                parts.push(one(a.proj.weight.val(), grads));
            }
            Layer::Norm(_)
            | Layer::LayerNorm(_)
            | Layer::Position(_)
            | Layer::Dropout(_)
            | Layer::KernelMap(_)
            | Layer::Fixed(_) => {}
        }
    }
    parts
        .iter()
        .fold((0.0, 0.0), |(s, n), (a, b)| (s + a, n + b))
}

/// The loss on the batch, backward once, and the four proxies it gives.
pub fn loss_pass(net: &Network, batch: &ProxyBatch, dev: &Device) -> LossPass {
    let n = batch.rows();
    let mut probe = GatesAndCodes {
        n,
        gates4: Vec::new(),
        gates2: Vec::new(),
        kernel: vec![0.0; n * n],
    };
    let out = net.forward_probed(inputs(batch, dev), &mut probe);
    let loss = match &batch.targets {
        BatchTargets::Classes(ids) => {
            let y: Vec<i64> = ids.iter().map(|&c| c as i64).collect();
            CrossEntropyLossConfig::new().init(dev).forward(
                out,
                Tensor::<1, Int>::from_data(TensorData::new(y, [n]), dev),
            )
        }
        BatchTargets::Values(v) => {
            let y = Tensor::<2>::from_data(TensorData::new(v.clone(), [n, 1]), dev);
            MseLoss::new().forward(out, y, Reduction::Mean)
        }
    };
    let grads = loss.backward();
    let (snip, grad_norm) = weight_scores(net, &grads);
    // Fisher: per channel ½·mean_n (Σ_spatial act·grad)², summed over channels and layers.
    let mut fisher = 0.0;
    let mut per_channel = |g: Vec<f64>, channels: usize| {
        for c in 0..channels {
            let s: f64 = (0..n).map(|k| g[k * channels + c].powi(2)).sum();
            fisher += 0.5 * s / n as f64;
        }
    };
    for gate in &probe.gates4 {
        if let Some(g) = gate.grad(&grads) {
            let c = g.dims()[1];
            per_channel(to_f64(g), c);
        }
    }
    for gate in &probe.gates2 {
        if let Some(g) = gate.grad(&grads) {
            let c = g.dims()[1];
            per_channel(to_f64(g), c);
        }
    }
    LossPass {
        snip,
        grad_norm,
        fisher,
        naswot: log_abs_det(probe.kernel, n),
    }
}

/// Mellor et al.'s Jacobian covariance score: the Jacobian of Σ output with respect to each
/// sample's input, their correlation matrix's eigenvalues λ, −Σ log(λ+k) + 1/(λ+k), k = 1e-5.
/// `-inf` when a sample's Jacobian is constant (its correlation is undefined).
pub fn jacob_cov(net: &Network, batch: &ProxyBatch, dev: &Device) -> f64 {
    let n = batch.rows();
    let x = inputs(batch, dev).require_grad();
    let out = net.forward_flat(x.clone());
    let grads = out.sum().backward();
    let Some(j) = x.grad(&grads) else {
        return f64::NEG_INFINITY;
    };
    let d = j.dims()[1];
    let mut z = to_f64(j);
    // Correlation = Gram matrix of the centred, unit-length rows.
    for row in z.chunks_mut(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        row.iter_mut().for_each(|v| *v -= mean);
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return f64::NEG_INFINITY;
        }
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let mut corr = vec![0.0; n * n];
    for a in 0..n {
        for b in a..n {
            let v: f64 = z[a * d..(a + 1) * d]
                .iter()
                .zip(&z[b * d..(b + 1) * d])
                .map(|(p, q)| p * q)
                .sum();
            corr[a * n + b] = v;
            corr[b * n + a] = v;
        }
    }
    const K: f64 = 1e-5;
    // Rounding can leave a zero eigenvalue a hair below 0; the correlation matrix is PSD.
    -symmetric_eigenvalues(corr, n)
        .into_iter()
        .map(|l| {
            let l = l.max(0.0) + K;
            l.ln() + 1.0 / l
        })
        .sum::<f64>()
}
