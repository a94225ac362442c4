//! The training evaluator: how a study measures an arch on real data, at a fidelity.

use crate::data::{Dataset, Split};
use crate::device::DeviceKind;
use crate::proxies::{self, Proxy, ProxyBatch, DEFAULT_BATCH};
use crate::supernet::Supernet;
use crate::train::{cross_entropy, evaluate, train, Control, Metric, TrainConfig, TrainSetup};
use nasforge_core::space::{Arch, Space};
use nasforge_core::study::{metric, Cost, EvalError, Evaluation, Evaluator, Fidelity};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Trains each candidate on the training rows and scores it on the validation rows. The test
/// rows are never touched: they belong to final training.
pub struct TrainingEvaluator {
    data: Arc<Dataset>,
    train_rows: Vec<usize>,
    valid_rows: Vec<usize>,
    config: TrainConfig,
    seed: u64,
    device: DeviceKind,
    latency: bool,
    latency_batch: usize,
    proxies: Vec<Proxy>,
    proxy_batch: Option<ProxyBatch>,
}

impl TrainingEvaluator {
    /// An evaluator over `data` (normalised with training statistics) and its `split`.
    /// Every candidate is trained from the same `seed`, so differences come from the archs.
    pub fn new(
        data: Arc<Dataset>,
        split: &Split,
        config: TrainConfig,
        seed: u64,
        device: DeviceKind,
    ) -> Self {
        TrainingEvaluator {
            data,
            train_rows: split.train.clone(),
            valid_rows: split.valid.clone(),
            config,
            seed,
            device,
            latency: true,
            latency_batch: LATENCY_BATCH,
            proxies: Vec::new(),
            proxy_batch: None,
        }
    }

    /// Scores every candidate with `proxies` at initialisation, before training, and stores
    /// them as `proxy_<name>` metrics. Data-dependent proxies read a batch of training rows.
    pub fn with_proxies(mut self, proxies: Vec<Proxy>) -> nasforge_core::Result<Self> {
        self.proxy_batch = Some(ProxyBatch::from_rows(
            &self.data,
            &self.train_rows,
            DEFAULT_BATCH,
            self.seed,
        )?);
        self.proxies = proxies;
        Ok(self)
    }

    /// Measures the second latency at batch `n` (`latency_ms_b<n>`) instead of 64.
    pub fn with_latency_batch(mut self, n: usize) -> Self {
        self.latency_batch = n.max(1);
        self
    }

    /// Turns the CPU latency measurement off (tests, quick runs).
    pub fn without_latency(mut self) -> Self {
        self.latency = false;
        self
    }
}

pub use crate::latency::measure_latency;

/// The metric holding the CPU threads the latencies were measured with.
pub const LATENCY_THREADS: &str = "latency_threads";

/// The default batch of the second latency measurement (`latency_ms_b64`).
pub const LATENCY_BATCH: usize = 64;

impl TrainingEvaluator {
    /// The metric of the learning curve it reports: validation accuracy, or MSE for regression.
    pub fn curve_metric(&self) -> &'static str {
        if self.data.task() == crate::data::Task::Regression {
            metric::VALID_MSE
        } else {
            metric::VALID_ACCURACY
        }
    }
}

impl Evaluator for TrainingEvaluator {
    fn metric_names(&self) -> Vec<String> {
        let mut names = quality_names(&self.data);
        names.extend([metric::TRAIN_LOSS.into(), metric::TRAIN_SECONDS.into()]);
        if self.latency {
            names.extend(latency_names(self.latency_batch));
        }
        names.extend(self.proxies.iter().map(|p| format!("proxy_{}", p.name())));
        names
    }

    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Result<Evaluation, EvalError> {
        let spec = space.decode(arch)?;
        let mut cfg = self.config.clone();
        if let Some(e) = fidelity.epochs {
            if e == 0 {
                return Err(EvalError::Failed(
                    "a fidelity of 0 epochs cannot train anything".into(),
                ));
            }
            cfg.epochs = e as usize;
        }
        let rows: &[usize] = match fidelity.data_fraction {
            Some(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(EvalError::Failed(format!(
                    "data fraction {f} is not in (0, 1]"
                )));
            }
            Some(f) => {
                &self.train_rows[..((self.train_rows.len() as f64 * f).ceil() as usize).max(2)]
            }
            None => &self.train_rows,
        };
        let mut proxy_values = BTreeMap::new();
        if let Some(batch) = &self.proxy_batch {
            // A proxy that cannot score this network (a degenerate batch) is left out.
            if let Ok(values) = proxies::score(&spec, &self.proxies, batch, self.seed) {
                for (p, v) in self.proxies.iter().zip(values) {
                    if v.is_finite() {
                        proxy_values.insert(format!("proxy_{}", p.name()), v);
                    }
                }
            }
        }
        let start = Instant::now();
        let mut stopped = false;
        let setup = TrainSetup {
            data: &self.data,
            train_rows: rows,
            valid_rows: &self.valid_rows,
            config: &cfg,
            device: self.device,
        };
        let trained = train(
            &spec,
            setup,
            self.seed,
            &mut |e: &crate::train::EpochStats| {
                if let Some(m) = e.valid {
                    if !report(e.epoch as u64, m.value()) {
                        stopped = true;
                        return Control::Stop;
                    }
                }
                Control::Continue
            },
        )
        .map_err(|e| EvalError::Failed(e.to_string()))?;
        let train_seconds = start.elapsed().as_secs_f64();
        let last = trained.epochs.last().expect("at least one epoch");
        let valid = last
            .valid
            .ok_or_else(|| EvalError::Failed("no validation rows".into()))?;
        let mut metrics = quality_metrics(valid);
        metrics.insert(metric::TRAIN_LOSS.into(), last.train_loss);
        metrics.insert(metric::TRAIN_SECONDS.into(), train_seconds);
        metrics.extend(proxy_values);
        let cost = Cost {
            epochs: trained.epochs.len() as u32,
            seconds: train_seconds,
        };
        if stopped {
            return Err(EvalError::Pruned { metrics, cost });
        }
        if self.latency {
            metrics.extend(latency_metrics(
                &trained.model,
                self.latency_batch,
                self.device,
            ));
        }
        Ok(Evaluation { metrics, cost })
    }
}

/// The validation metrics of the data's task.
fn quality_names(data: &Dataset) -> Vec<String> {
    match data.task() {
        crate::data::Task::Regression => vec![metric::VALID_MSE.into(), metric::VALID_MAE.into()],
        crate::data::Task::Classification => vec![metric::VALID_ACCURACY.into()],
        crate::data::Task::LanguageModel => vec![metric::VALID_BPC.into()],
    }
}

/// A validation measurement as study metrics.
fn quality_metrics(m: Metric) -> BTreeMap<String, f64> {
    match m {
        Metric::Accuracy(a) => BTreeMap::from([(metric::VALID_ACCURACY.to_string(), a)]),
        Metric::Regression { mse, mae } => BTreeMap::from([
            (metric::VALID_MSE.to_string(), mse),
            (metric::VALID_MAE.to_string(), mae),
        ]),
        Metric::BitsPerToken(b) => BTreeMap::from([(metric::VALID_BPC.to_string(), b)]),
    }
}

fn latency_names(batch: usize) -> [String; 3] {
    [
        metric::LATENCY_MS.into(),
        format!("latency_ms_b{batch}"),
        LATENCY_THREADS.into(),
    ]
}

/// The inference latency of `model` at batch 1 and at `batch`, with the threads used.
fn latency_metrics(
    model: &crate::model::Network,
    batch: usize,
    device: DeviceKind,
) -> BTreeMap<String, f64> {
    let [b1, bn, threads] = latency_names(batch);
    BTreeMap::from([
        (b1, measure_latency(model, 1, 10, device)),
        (bn, measure_latency(model, batch, 5, device)),
        (threads, rayon::current_num_threads() as f64),
    ])
}

/// Batches of training rows that recalibrate an inherited network's batch norms (SPOS's
/// recipe recomputes them on a few thousand training images).
pub const CALIBRATION_BATCHES: usize = 20;

/// Scores archs with the weights they inherit from a trained supernet instead of training
/// them (the search phase of every one-shot method: SPOS's and RSPS's strategies, DARTS',
/// GDAS' and ENAS' derived archs): each arch's network is extracted, its batch norms
/// recalibrated on training rows, and it is scored on the validation rows. An evaluation
/// costs no training epoch. The test rows are never touched.
pub struct InheritedEvaluator {
    supernet: Supernet,
    data: Arc<Dataset>,
    calibration: Vec<usize>,
    valid_rows: Vec<usize>,
    batch: usize,
    device: DeviceKind,
    latency: Option<usize>,
}

impl InheritedEvaluator {
    /// An evaluator over a trained `supernet`, recalibrating on [`CALIBRATION_BATCHES`]
    /// batches of `batch` training rows drawn with `seed`; latency measured at batch 1 and
    /// [`LATENCY_BATCH`].
    pub fn new(
        supernet: Supernet,
        data: Arc<Dataset>,
        split: &Split,
        batch: usize,
        seed: u64,
        device: DeviceKind,
    ) -> Self {
        let mut calibration = split.train.clone();
        nasforge_core::rng::Rng::new(seed ^ 0xCA1B).shuffle(&mut calibration);
        calibration.truncate(CALIBRATION_BATCHES * batch.max(2));
        InheritedEvaluator {
            supernet,
            data,
            calibration,
            valid_rows: split.valid.clone(),
            batch,
            device,
            latency: Some(LATENCY_BATCH),
        }
    }

    /// The arch `values` scored on `rows` with the weights it inherits (batch norms
    /// recalibrated as for every evaluation): how once-for-all reports a sub-network's test
    /// accuracy.
    pub fn score(&self, values: &[u16], rows: &[usize]) -> nasforge_core::Result<Metric> {
        let net = self.supernet.inherited(
            values,
            &self.data,
            &self.calibration,
            self.batch,
            self.device,
        )?;
        Ok(evaluate(&net, &self.data, rows, self.device))
    }

    /// Measures the second latency at batch `n`, or no latency at all with `None`.
    pub fn with_latency(mut self, batch: Option<usize>) -> Self {
        self.latency = batch.map(|n| n.max(1));
        self
    }
}

impl InheritedEvaluator {
    /// What it measures on `data`, with latency at batch 1 and `latency` (when `Some`): a
    /// classifier's validation loss beside its accuracy (inherited weights rank archs better
    /// by it, docs/ONESHOT.md).
    pub fn names(data: &Dataset, latency: Option<usize>) -> Vec<String> {
        let mut names = quality_names(data);
        if data.task() == crate::data::Task::Classification {
            names.push(metric::VALID_LOSS.into());
        }
        names.extend(latency.into_iter().flat_map(latency_names));
        names
    }
}

impl Evaluator for InheritedEvaluator {
    fn metric_names(&self) -> Vec<String> {
        Self::names(&self.data, self.latency)
    }

    fn evaluate(
        &mut self,
        _: &dyn Space,
        arch: &Arch,
        _: &Fidelity,
        _: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Result<Evaluation, EvalError> {
        let start = Instant::now();
        let net = self.supernet.inherited(
            arch.values(),
            &self.data,
            &self.calibration,
            self.batch,
            self.device,
        )?;
        let mut metrics =
            quality_metrics(evaluate(&net, &self.data, &self.valid_rows, self.device));
        if let Some(loss) = cross_entropy(&net, &self.data, &self.valid_rows, self.device) {
            metrics.insert(metric::VALID_LOSS.into(), loss);
        }
        if let Some(batch) = self.latency {
            metrics.extend(latency_metrics(&net, batch, self.device));
        }
        Ok(Evaluation {
            metrics,
            cost: Cost {
                epochs: 0,
                seconds: start.elapsed().as_secs_f64(),
            },
        })
    }
}
