//! An ensemble of small multilayer perceptrons (the BANANAS predictor).

use super::{Predictor, Standard};
use crate::rng::Rng;

const HIDDEN: [usize; 3] = [32, 32, 32];
const EPOCHS: usize = 150;
const BATCH: usize = 32;
const LR: f64 = 0.01;
const WEIGHT_DECAY: f64 = 1e-4;

/// One dense layer with its Adam moments.
#[derive(Clone, Debug)]
struct Dense {
    inputs: usize,
    outputs: usize,
    /// Row-major `outputs × inputs`, then `outputs` biases.
    w: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Dense {
    fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Self {
        let std = (2.0 / inputs.max(1) as f64).sqrt();
        let mut w: Vec<f64> = (0..inputs * outputs).map(|_| rng.normal() * std).collect();
        w.resize(inputs * outputs + outputs, 0.0);
        let n = w.len();
        Dense {
            inputs,
            outputs,
            w,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn forward(&self, x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        let bias = &self.w[self.inputs * self.outputs..];
        for (row, b) in self.w.chunks_exact(self.inputs.max(1)).zip(bias) {
            out.push(row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b);
        }
    }
}

/// One MLP: dense layers with ReLU between them, a linear output.
#[derive(Clone, Debug)]
struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    fn new(inputs: usize, rng: &mut Rng) -> Self {
        let mut dims = vec![inputs];
        dims.extend(HIDDEN);
        dims.push(1);
        Mlp {
            layers: dims
                .windows(2)
                .map(|d| Dense::new(d[0], d[1], rng))
                .collect(),
        }
    }

    /// Activations of every layer (after ReLU for hidden layers), input first.
    fn forward_all(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let mut acts = vec![x.to_vec()];
        for (i, layer) in self.layers.iter().enumerate() {
            let mut out = Vec::new();
            layer.forward(acts.last().expect("input pushed"), &mut out);
            if i + 1 < self.layers.len() {
                out.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            acts.push(out);
        }
        acts
    }

    fn predict(&self, x: &[f64]) -> f64 {
        self.forward_all(x).last().expect("output")[0]
    }

    /// Trains with Adam on mean squared error, minibatches of [`BATCH`].
    fn train(&mut self, x: &[Vec<f64>], y: &[f64], rng: &mut Rng) {
        let n = x.len();
        let mut grads: Vec<Vec<f64>> = self.layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
        let mut order: Vec<usize> = (0..n).collect();
        let mut t = 0;
        for epoch in 0..EPOCHS {
            rng.shuffle(&mut order);
            let lr = LR * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / EPOCHS as f64).cos());
            for batch in order.chunks(BATCH) {
                grads.iter_mut().for_each(|g| g.fill(0.0));
                for &i in batch {
                    let acts = self.forward_all(&x[i]);
                    let mut delta = vec![2.0 * (acts.last().expect("output")[0] - y[i])];
                    for l in (0..self.layers.len()).rev() {
                        let layer = &self.layers[l];
                        let input = &acts[l];
                        let g = &mut grads[l];
                        let bias_at = layer.inputs * layer.outputs;
                        for (o, d) in delta.iter().enumerate() {
                            g[bias_at + o] += d;
                            let row = &mut g[o * layer.inputs..(o + 1) * layer.inputs];
                            row.iter_mut().zip(input).for_each(|(gw, a)| *gw += d * a);
                        }
                        if l > 0 {
                            let mut next = vec![0.0; layer.inputs];
                            for (o, d) in delta.iter().enumerate() {
                                let row = &layer.w[o * layer.inputs..(o + 1) * layer.inputs];
                                next.iter_mut().zip(row).for_each(|(nx, w)| *nx += d * w);
                            }
                            // ReLU derivative: the input of layer l is a ReLU output.
                            next.iter_mut().zip(input).for_each(|(nx, a)| {
                                if *a <= 0.0 {
                                    *nx = 0.0
                                }
                            });
                            delta = next;
                        }
                    }
                }
                t += 1;
                let scale = 1.0 / batch.len() as f64;
                let (b1, b2) = (0.9f64, 0.999f64);
                let c1 = 1.0 - b1.powi(t);
                let c2 = 1.0 - b2.powi(t);
                for (layer, g) in self.layers.iter_mut().zip(&grads) {
                    for (((w, m), v), g) in layer
                        .w
                        .iter_mut()
                        .zip(&mut layer.m)
                        .zip(&mut layer.v)
                        .zip(g)
                    {
                        let gk = g * scale + WEIGHT_DECAY * *w;
                        *m = b1 * *m + (1.0 - b1) * gk;
                        *v = b2 * *v + (1.0 - b2) * gk * gk;
                        *w -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
                    }
                }
            }
        }
    }
}

/// `members` MLPs trained from different initialisations and data orders; the prediction is
/// their mean and the uncertainty their spread.
pub struct MlpEnsemble {
    rng: Rng,
    members: usize,
    nets: Vec<Mlp>,
    standard: Option<Standard>,
}

impl MlpEnsemble {
    /// An ensemble of `members` networks, seeded.
    pub fn new(seed: u64, members: usize) -> Self {
        MlpEnsemble {
            rng: Rng::new(seed),
            members: members.max(1),
            nets: Vec::new(),
            standard: None,
        }
    }
}

impl Predictor for MlpEnsemble {
    fn name(&self) -> &'static str {
        "mlp"
    }

    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]) {
        let standard = Standard::of(y);
        let ys = standard.apply(y);
        let dim = x.first().map_or(0, Vec::len);
        self.nets = (0..self.members)
            .map(|_| {
                let mut net = Mlp::new(dim, &mut self.rng);
                net.train(x, &ys, &mut self.rng);
                net
            })
            .collect();
        self.standard = Some(standard);
    }

    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let Some(standard) = self.standard else {
            return (0.0, 1.0);
        };
        let preds: Vec<f64> = self.nets.iter().map(|n| n.predict(x)).collect();
        let (mean, std) = crate::stats::mean_std(&preds);
        standard.undo(mean, std)
    }
}
