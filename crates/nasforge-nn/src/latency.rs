//! CPU inference latency: measured, and predicted from a per-op lookup table (nn-Meter style).
//!
//! [`profile`] runs random networks of a space at batch 1 and times every node inside the
//! forward pass (the backend computes eagerly, so the time between two nodes' outputs is the
//! later node's cost). Each node is keyed by what determines its cost — the op with its
//! settings, its input shapes, and which inputs are symbolic zeros (NAS-Bench-201's `none`) —
//! and the table keeps the median time per key, plus the median overhead of a forward pass
//! beyond its nodes. [`LatencyTable::predict`] sums the table over a network's nodes;
//! [`check`] compares predictions with [`measure_latency`] on other random archs.

use crate::device::DeviceKind;
use crate::model::{Network, Probe};
use burn::prelude::*;
use nasforge_core::netspec::ops;
use nasforge_core::netspec::{NetSpec, Op};
use nasforge_core::rng::Rng;
use nasforge_core::space::Space;
use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// Median wall time (ms) of inference on a batch of `batch` inputs, after two warm-up runs.
pub fn measure_latency(model: &Network, batch: usize, repeats: usize, device: DeviceKind) -> f64 {
    let x = input(model, batch, device);
    let mut times = Vec::with_capacity(repeats);
    // Timed as training and inference run: inside the thread pool (`kernels::in_pool`).
    crate::kernels::in_pool(|| {
        for i in 0..repeats + 2 {
            let t = Instant::now();
            let y = model.forward_flat(x.clone());
            let _ = y.into_data();
            if i >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    });
    median(&mut times)
}

fn input(model: &Network, batch: usize, device: DeviceKind) -> Tensor<2> {
    let d: usize = model.spec().input_shape().iter().product();
    Tensor::<2>::from_data(
        TensorData::new(vec![0.1f32; batch * d], [batch, d]),
        &device.device(),
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Which nodes of `spec` the network keeps as symbolic zeros (never computed): `none` ops and
/// what ops that map 0 to 0 make of them. The same rules as the network's forward pass.
pub fn symbolic_zeros(spec: &NetSpec) -> Vec<bool> {
    let nodes = spec.nodes();
    let mut zero = vec![false; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let first = n.inputs.first().is_some_and(|&j| zero[j]);
        zero[i] = match n.op {
            Op::Zero(_) => true,
            Op::Relu
            | Op::Gelu
            | Op::Silu
            | Op::Tanh
            | Op::Identity
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Crop(_)
            | Op::Dropout(_)
            | Op::ChannelMask(_) => first,
            Op::Conv2d(ops::Conv2d { bias, .. }) => first && !bias,
            Op::Attention(ops::Attention { bias, .. }) => first && !bias,
            Op::LayerNorm(ops::LayerNorm { affine }) => first && !affine,
            Op::SeqPool(_) | Op::LmHead(_) => first,
            Op::Embedding(_) | Op::Position(_) | Op::SeqConv(_) => false,
            Op::Add => n.inputs.iter().all(|&j| zero[j]),
            Op::Input | Op::BatchNorm(_) | Op::Linear(_) | Op::Concat => false,
        };
    }
    zero
}

/// The key of node `i`: its op, input shapes and which inputs are symbolic zeros.
fn node_key(spec: &NetSpec, zero: &[bool], i: usize) -> String {
    let n = &spec.nodes()[i];
    let inputs: Vec<String> = n
        .inputs
        .iter()
        .map(|&j| {
            let s: Vec<String> = spec.nodes()[j]
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect();
            format!("{}{}", s.join("x"), if zero[j] { "z" } else { "" })
        })
        .collect();
    format!(
        "{} <- {}",
        serde_json::to_string(&n.op).unwrap_or_default(),
        inputs.join(", ")
    )
}

/// Per-op latencies of one space on one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    /// The space profiled and its parameters.
    pub space: String,
    /// Its parameters.
    pub space_params: serde_json::Value,
    /// The same as `key=value` settings, to build the space again.
    #[serde(default)]
    pub space_settings: Vec<String>,
    /// Batch size (1).
    pub batch: usize,
    /// CPU threads the backend used.
    pub threads: usize,
    /// The host it was measured on.
    pub host: String,
    /// Median overhead of a forward pass beyond its nodes, ms.
    pub overhead_ms: f64,
    /// Median time per node key, ms.
    pub ops: BTreeMap<String, f64>,
    /// Random archs profiled.
    pub archs: usize,
    /// Whole archs measured at the end of the profile, to tell how much faster or slower the
    /// machine runs when the table is used ([`Calibration`]); empty in tables written before.
    #[serde(default)]
    pub reference: Vec<Reference>,
}

/// An arch measured whole when its table was profiled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The arch in the space's text form.
    pub arch: String,
    /// Its measured batch-1 latency then, ms.
    pub measured_ms: f64,
}

/// Reference archs a profile measures whole.
const REFERENCES: usize = 5;

/// The machine's speed now against when a table was profiled: the table's reference archs
/// measured again, right before the prediction it scales. A shared or frequency-scaled CPU
/// runs tens of percent faster or slower for minutes at a time (this project's 2-core VM
/// does), which no per-op table can know; measured next to the prediction, the references
/// see the same state of the machine as the arch predicted would. `latency check` reports
/// calibrated agreement beside the raw one; `search` uses raw predictions, which are the same
/// every time (a resumed study judges its latency constraints again).
pub struct Calibration {
    refs: Vec<(Network, f64)>,
    repeats: usize,
    device: DeviceKind,
}

impl Calibration {
    /// The table's reference archs built on `device`, timed with `repeats` runs each, or
    /// `None` for a table without them.
    pub fn new(
        table: &LatencyTable,
        space: &dyn Space,
        repeats: usize,
        device: DeviceKind,
    ) -> Result<Option<Self>> {
        if table.reference.is_empty() {
            return Ok(None);
        }
        let dev = device.device();
        let refs = table
            .reference
            .iter()
            .map(|r| {
                let spec = space.decode(&space.parse(&r.arch)?)?;
                Ok((Network::new(&spec, &dev), r.measured_ms))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Calibration {
            refs,
            repeats: repeats.max(1),
            device,
        }))
    }

    /// Latency now over latency at profile time: the median over the reference archs.
    pub fn factor(&self) -> f64 {
        let mut ratios: Vec<f64> = self
            .refs
            .iter()
            .map(|(model, then)| measure_latency(model, 1, self.repeats, self.device) / then)
            .collect();
        median(&mut ratios)
    }
}

/// A node whose key the table lacks.
#[derive(Debug)]
pub struct Uncovered(pub String);

impl LatencyTable {
    /// The predicted batch-1 latency of `spec`, ms; an error names a node kind the profile
    /// never saw (profile more archs, or the same space parameters).
    pub fn predict(&self, spec: &NetSpec) -> std::result::Result<f64, Uncovered> {
        let zero = symbolic_zeros(spec);
        let mut total = self.overhead_ms;
        for i in 1..spec.nodes().len() {
            if zero[i] {
                continue;
            }
            let key = node_key(spec, &zero, i);
            total += self.ops.get(&key).copied().ok_or(Uncovered(key))?;
        }
        Ok(total)
    }

    /// Reads a table written by [`LatencyTable::save`].
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "{} is not a latency table written by `nasforge latency profile`: {e}",
                path.display()
            ))
        })
    }

    /// Writes it as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot encode the latency table: {e}")))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// Checks that it was profiled on `space` with the same parameters.
    pub fn check_space(&self, space: &dyn Space) -> Result<()> {
        if self.space != space.name() || self.space_params != space.params_json() {
            return Err(Error::invalid(format!(
                "the latency table was profiled on space `{}` {}, not `{}` {}; run `nasforge latency profile` for this space",
                self.space,
                self.space_params,
                space.name(),
                space.params_json()
            )));
        }
        Ok(())
    }
}

/// Records the time at every probed node.
struct Clock {
    last: Instant,
    times: Vec<(usize, f64)>,
}

impl Clock {
    fn tick(&mut self, node: usize) {
        let now = Instant::now();
        self.times
            .push((node, (now - self.last).as_secs_f64() * 1e3));
        self.last = now;
    }
}

impl Probe for Clock {
    fn image(&mut self, node: usize, _: &Op, t: Tensor<4>) -> Tensor<4> {
        self.tick(node);
        t
    }
    fn vector(&mut self, node: usize, _: &Op, t: Tensor<2>) -> Tensor<2> {
        self.tick(node);
        t
    }
}

/// Per node (median over `repeats` runs after two warm-ups): ms; and the median total.
fn time_nodes(model: &Network, repeats: usize, device: DeviceKind) -> (BTreeMap<usize, f64>, f64) {
    let x = input(model, 1, device);
    let mut per_node: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut totals = Vec::new();
    // Inside the pool, as `measure_latency` times whole networks.
    crate::kernels::in_pool(|| {
        for r in 0..repeats + 2 {
            let start = Instant::now();
            let mut clock = Clock {
                last: start,
                times: Vec::new(),
            };
            let y = model.forward_probed(x.clone(), &mut clock);
            let _ = y.into_data();
            let total = start.elapsed().as_secs_f64() * 1e3;
            if r >= 2 {
                for (n, t) in clock.times {
                    per_node.entry(n).or_default().push(t);
                }
                totals.push(total);
            }
        }
    });
    let nodes = per_node
        .into_iter()
        .map(|(n, mut v)| (n, median(&mut v)))
        .collect();
    (nodes, median(&mut totals))
}

/// Profiles `archs` random archs of `space` (seeded), `repeats` timed runs each.
pub fn profile(
    space: &dyn Space,
    archs: usize,
    repeats: usize,
    seed: u64,
    device: DeviceKind,
    threads: usize,
    mut progress: impl FnMut(usize),
) -> Result<LatencyTable> {
    let dev = device.device();
    let mut rng = Rng::new(seed);
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut overheads = Vec::new();
    for k in 0..archs.max(1) {
        let spec = space.decode(&space.sample(&mut rng))?;
        let model = Network::new(&spec, &dev);
        let zero = symbolic_zeros(&spec);
        let (nodes, total) = time_nodes(&model, repeats.max(1), device);
        let mut sum = 0.0;
        for (&i, &t) in &nodes {
            samples
                .entry(node_key(&spec, &zero, i))
                .or_default()
                .push(t);
            sum += t;
        }
        overheads.push((total - sum).max(0.0));
        progress(k + 1);
    }
    // The references last, back to back, from a stream of their own.
    let mut ref_rng = Rng::new(seed ^ 0x5EF_u64);
    let mut reference = Vec::with_capacity(REFERENCES);
    for _ in 0..REFERENCES {
        let arch = space.sample(&mut ref_rng);
        let model = Network::new(&space.decode(&arch)?, &dev);
        reference.push(Reference {
            arch: space.format(&arch),
            measured_ms: measure_latency(&model, 1, repeats.max(1), device),
        });
    }
    Ok(LatencyTable {
        reference,
        space: space.name().to_string(),
        space_params: space.params_json(),
        space_settings: Vec::new(),
        batch: 1,
        threads: if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        },
        host: std::env::var("HOSTNAME").unwrap_or_default(),
        overhead_ms: median(&mut overheads),
        ops: samples
            .into_iter()
            .map(|(k, mut v)| (k, median(&mut v)))
            .collect(),
        archs: archs.max(1),
    })
}

/// Predicted against measured latency on random archs.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Archs compared (those the table covers).
    pub archs: usize,
    /// Archs with a node kind the table lacks (left out).
    pub uncovered: usize,
    /// Root-mean-square error, ms.
    pub rmse_ms: f64,
    /// Mean measured latency, ms.
    pub mean_measured_ms: f64,
    /// Share of archs predicted within ±10% of measured (predictions calibrated when the
    /// table has reference archs).
    pub within_10pct: f64,
    /// The same share for the table's raw predictions, without calibration.
    pub uncalibrated_within_10pct: f64,
    /// The calibration factor measured before each arch (latency now over at profile time);
    /// empty for a table without reference archs.
    pub calibration: Vec<f64>,
    /// Mean absolute relative error.
    pub mean_abs_rel_error: f64,
    /// The noise floor: share of archs whose second measurement is within ±10% of the first
    /// (a predictor cannot agree with measurements better than they agree with themselves).
    pub remeasured_within_10pct: f64,
    /// (predicted, measured) per arch, ms.
    pub pairs: Vec<(f64, f64)>,
}

/// Measures `archs` random archs (seeded) as the training evaluator does (median of
/// `repeats` runs at batch 1 after 2 warm-ups; the evaluator uses 10) and compares with the table's predictions; each arch is
/// measured a second time for the noise floor.
pub fn check(
    table: &LatencyTable,
    space: &dyn Space,
    archs: usize,
    repeats: usize,
    seed: u64,
    device: DeviceKind,
    mut progress: impl FnMut(usize),
) -> Result<CheckResult> {
    table.check_space(space)?;
    let dev = device.device();
    let calibration = Calibration::new(table, space, repeats, device)?;
    let mut factors = Vec::new();
    let mut rng = Rng::new(seed);
    let mut pairs = Vec::new();
    let mut raw_within = 0usize;
    let mut uncovered = 0;
    let mut agree = 0usize;
    for k in 0..archs.max(1) {
        let spec = space.decode(&space.sample(&mut rng))?;
        progress(k + 1);
        let Ok(predicted) = table.predict(&spec) else {
            uncovered += 1;
            continue;
        };
        let model = Network::new(&spec, &dev);
        // As a search predicts: the references measured right before.
        let factor = calibration.as_ref().map(Calibration::factor);
        let first = measure_latency(&model, 1, repeats.max(1), device);
        let again = measure_latency(&model, 1, repeats.max(1), device);
        factors.extend(factor);
        pairs.push((predicted * factor.unwrap_or(1.0), first));
        raw_within += usize::from(((predicted - first) / first).abs() <= 0.10);
        agree += usize::from(((again - first) / first).abs() <= 0.10);
    }
    if pairs.is_empty() {
        return Err(Error::invalid(
            "the table covers none of the archs checked: profile more archs of this space",
        ));
    }
    let n = pairs.len() as f64;
    let rmse = (pairs.iter().map(|(p, m)| (p - m).powi(2)).sum::<f64>() / n).sqrt();
    let rel: Vec<f64> = pairs.iter().map(|(p, m)| ((p - m) / m).abs()).collect();
    Ok(CheckResult {
        archs: pairs.len(),
        uncovered,
        rmse_ms: rmse,
        mean_measured_ms: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        within_10pct: rel.iter().filter(|&&r| r <= 0.10).count() as f64 / n,
        uncalibrated_within_10pct: raw_within as f64 / n,
        calibration: factors,
        mean_abs_rel_error: rel.iter().sum::<f64>() / n,
        remeasured_within_10pct: agree as f64 / n,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasforge_core::space;
    use nasforge_core::Params;

    #[test]
    fn none_edges_and_what_follows_them_are_symbolic_zeros() {
        let s = space::build(
            "nb201",
            &Params::parse(&["channels=4", "cells=1", "input=8x8x1"]).unwrap(),
        )
        .unwrap();
        let all_none = s
            .parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
            .unwrap();
        let spec = s.decode(&all_none).unwrap();
        let zero = symbolic_zeros(&spec);
        let n_zero = spec
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, Op::Zero(_)))
            .count();
        assert!(zero.iter().filter(|&&z| z).count() >= n_zero && n_zero > 0);
        assert!(!zero[0] && !zero[spec.output()]);
        let convs = s
            .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
            .unwrap();
        assert!(symbolic_zeros(&s.decode(&convs).unwrap())
            .iter()
            .all(|z| !z));
    }

    #[test]
    fn a_profile_predicts_the_archs_it_saw_and_names_what_it_did_not() {
        let s = space::build("mlp", &Params::parse(&["input=8", "classes=3"]).unwrap()).unwrap();
        let table = profile(s.as_ref(), 4, 2, 7, DeviceKind::Cpu, 0, |_| {}).unwrap();
        assert!(!table.ops.is_empty() && table.overhead_ms >= 0.0);
        let mut rng = Rng::new(7);
        for _ in 0..4 {
            let spec = s.decode(&s.sample(&mut rng)).unwrap();
            let p = table.predict(&spec).unwrap();
            assert!(p > 0.0 && p.is_finite());
        }
        let wide = space::build("mlp", &Params::parse(&["input=9", "classes=3"]).unwrap()).unwrap();
        let spec = wide.decode(&wide.sample(&mut Rng::new(1))).unwrap();
        assert!(
            table.predict(&spec).is_err(),
            "another input width is another node"
        );
        assert!(table.check_space(wide.as_ref()).is_err());
        // The reference archs parse back in the space and give a positive speed factor; a
        // table without them (written before they existed) is not calibrated.
        assert_eq!(table.reference.len(), REFERENCES);
        let calibration = Calibration::new(&table, s.as_ref(), 2, DeviceKind::Cpu).unwrap();
        assert!(calibration.unwrap().factor() > 0.0);
        let old = LatencyTable {
            reference: Vec::new(),
            ..table.clone()
        };
        assert!(Calibration::new(&old, s.as_ref(), 2, DeviceKind::Cpu)
            .unwrap()
            .is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        table.save(&path).unwrap();
        // serde_json reads floats back to within an ulp.
        let back = LatencyTable::load(&path).unwrap();
        assert_eq!(back.ops.len(), table.ops.len());
        for ((k, v), (k2, v2)) in back.ops.iter().zip(&table.ops) {
            assert_eq!(k, k2);
            assert!((v - v2).abs() <= 1e-12 * v2.abs());
        }
        std::fs::write(&path, "{}").unwrap();
        assert!(LatencyTable::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a latency table"));
    }
}
