//! The training loop.

use super::config::{OptimizerConfig, TrainConfig};
use crate::data::{Dataset, Targets};
use crate::device::DeviceKind;
use crate::model::Network;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, OptimizerRecord, SgdConfig,
};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use nasforge_core::netspec::NetSpec;
use nasforge_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// A quality measurement on some rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Metric {
    /// Classification accuracy in percent.
    Accuracy(f64),
    /// Regression errors.
    Regression {
        /// Mean squared error.
        mse: f64,
        /// Mean absolute error.
        mae: f64,
    },
    /// A language model's mean next-token cross-entropy, in bits per token (per character
    /// with `--tokens char`).
    BitsPerToken(f64),
}

impl Metric {
    /// The number a search maximises: accuracy, or minus the MSE or the bits per token.
    pub fn score(self) -> f64 {
        match self {
            Metric::Accuracy(a) => a,
            Metric::Regression { mse, .. } => -mse,
            Metric::BitsPerToken(b) => -b,
        }
    }

    /// The number as reported: accuracy, MSE or bits per token.
    pub fn value(self) -> f64 {
        match self {
            Metric::Accuracy(a) => a,
            Metric::Regression { mse, .. } => mse,
            Metric::BitsPerToken(b) => b,
        }
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation metric, when there are validation rows.
    pub valid: Option<Metric>,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// What the epoch callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on training.
    Continue,
    /// Stop now (pruned).
    Stop,
}

/// Why training did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error("the loss became {value} at epoch {epoch}, step {step}: training diverged (try a lower learning rate)")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The loss value.
        value: f32,
    },
    /// A one-shot method's architecture parameters α became NaN or infinite.
    #[error("the architecture parameters α became {value} at epoch {epoch} (validation loss {loss}): the architecture step diverged (try a lower architecture learning rate, arch_lr)")]
    ArchDiverged {
        /// Epoch (1-based).
        epoch: usize,
        /// The first non-finite α value.
        value: f32,
        /// The validation loss of that step.
        loss: f32,
    },
    /// The recipe does not fit the data.
    #[error(transparent)]
    Invalid(#[from] nasforge_core::Error),
}

/// A trained network and how it got there.
pub struct Trained {
    /// The inference copy (batch norm uses running statistics).
    pub model: Network,
    /// Per-epoch numbers.
    pub epochs: Vec<EpochStats>,
    /// Whether the callback stopped it early.
    pub stopped: bool,
}

/// Held for the whole of a training run: see [`train`].
static RNG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the process-wide turn on burn flex's global RNG: hold it while seeding, initialising
/// and running anything that draws random numbers (trainings, proxies).
pub(crate) fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    RNG_TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seeds `dev` and builds `spec` with every parameter initialised in module order, so the same
/// seed gives the same weights. Call it holding [`rng_turn`].
pub(crate) fn seeded_network(spec: &NetSpec, dev: &Device, seed: u64) -> Network {
    dev.seed(seed);
    let model = Network::new(spec, dev);
    model.visit(&mut Materialize);
    model
}

/// Reads every parameter once so that lazily initialised weights draw from the seeded RNG in
/// a fixed order (burn initialises a parameter on its first use).
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let _ = p.val();
    }
}

/// The global L2 norm of `grads` over `model`'s parameters (`None` when none has a gradient).
pub(crate) fn global_norm(model: &Network, grads: &GradientsParams) -> Option<f64> {
    struct Norm<'a>(&'a GradientsParams, Option<Tensor<1>>);
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                let s = g.square().sum();
                self.1 = Some(match self.1.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    let mut n = Norm(grads, None);
    model.visit(&mut n);
    n.1.map(|total| (total.into_scalar::<f32>() as f64).sqrt())
}

/// Scales the gradients so that their global L2 norm is at most `max` (burn's own clipping
/// works per tensor, unlike the usual recipe).
fn clip_global_norm(model: &Network, grads: &mut GradientsParams, max: f64) {
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(p.id) {
                self.0.register::<D>(p.id, g.mul_scalar(self.1));
            }
        }
    }
    let Some(norm) = global_norm(model, grads) else {
        return;
    };
    if norm > max {
        model.visit(&mut Scale(grads, max / (norm + 1e-6)));
    }
}

/// Copies rows into a batch, applying random crop (zero padding of 1/8 of the side) and
/// horizontal flips to images when `augment` is on.
pub(crate) fn gather(
    data: &Dataset,
    rows: &[usize],
    augment: Option<(&mut Rng, bool)>,
) -> Vec<f32> {
    let d = data.row_len();
    let mut out = Vec::with_capacity(rows.len() * d);
    match (augment, &data.shape[..]) {
        (Some((rng, flip)), &[c, h, w]) => {
            let pad_h = (h / 8).max(1) as isize;
            let pad_w = (w / 8).max(1) as isize;
            for &r in rows {
                let src = data.row(r);
                let dy = rng.below(2 * pad_h as usize + 1) as isize - pad_h;
                let dx = rng.below(2 * pad_w as usize + 1) as isize - pad_w;
                let mirror = flip && rng.below(2) == 1;
                for ch in 0..c {
                    for y in 0..h as isize {
                        for x in 0..w as isize {
                            let sy = y + dy;
                            let mut sx = x + dx;
                            if mirror {
                                sx = w as isize - 1 - sx;
                            }
                            let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                                src[ch * h * w + sy as usize * w + sx as usize]
                            } else {
                                0.0
                            };
                            out.push(v);
                        }
                    }
                }
            }
        }
        _ => {
            for &r in rows {
                out.extend_from_slice(data.row(r));
            }
        }
    }
    out
}

/// The recipe's training loss: cross-entropy (with its label smoothing) for classes, mean
/// squared error for values.
pub(crate) struct Loss {
    ce: burn::nn::loss::CrossEntropyLoss,
    dev: Device,
}

impl Loss {
    pub(crate) fn new(cfg: &TrainConfig, dev: &Device) -> Self {
        let ce = CrossEntropyLossConfig::new()
            .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing as f32))
            .init(dev);
        Loss {
            ce,
            dev: dev.clone(),
        }
    }

    /// The mean loss of `out`, the outputs for `rows` of `data`.
    pub(crate) fn of(&self, data: &Dataset, rows: &[usize], out: Tensor<2>) -> Tensor<1> {
        let n = rows.len();
        match &data.targets {
            Targets::Classes { ids, .. } => {
                let y: Vec<i64> = rows.iter().map(|&r| ids[r] as i64).collect();
                self.ce.forward(
                    out,
                    Tensor::<1, Int>::from_data(TensorData::new(y, [n]), &self.dev),
                )
            }
            Targets::Values(v) => {
                let y: Vec<f32> = rows.iter().map(|&r| v[r]).collect();
                let y = Tensor::<2>::from_data(TensorData::new(y, [n, 1]), &self.dev);
                MseLoss::new().forward(out, y, Reduction::Mean)
            }
            Targets::Tokens {
                ids,
                per_row,
                vocab,
            } => {
                // Every position is a sample of its own: `[N, T·V]` -> `[N·T, V]`.
                let y = next_tokens(ids, *per_row, rows);
                let m = y.len();
                self.ce.forward(
                    out.reshape([m, *vocab]),
                    Tensor::<1, Int>::from_data(TensorData::new(y, [m]), &self.dev),
                )
            }
        }
    }
}

/// The next-token ids of `rows`, flattened.
fn next_tokens(ids: &[u32], per_row: usize, rows: &[usize]) -> Vec<i64> {
    rows.iter()
        .flat_map(|&r| &ids[r * per_row..(r + 1) * per_row])
        .map(|&i| i64::from(i))
        .collect()
}

/// What a training run reads: the data (already normalised), which rows to train and validate
/// on, the recipe and the device.
#[derive(Clone, Copy)]
pub struct TrainSetup<'a> {
    /// The data set.
    pub data: &'a Dataset,
    /// Rows to train on.
    pub train_rows: &'a [usize],
    /// Rows to validate on after every epoch (may be empty).
    pub valid_rows: &'a [usize],
    /// The recipe.
    pub config: &'a TrainConfig,
    /// Where to run.
    pub device: DeviceKind,
}

/// Trains `spec` from `seed` as `setup` says, validating after every epoch and calling
/// `on_epoch` with the numbers.
pub fn train(
    spec: &NetSpec,
    setup: TrainSetup<'_>,
    seed: u64,
    on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
) -> Result<Trained, TrainError> {
    // burn flex draws every random number (initialisation, dropout) from one process-wide
    // generator, so concurrent trainings would interleave draws; they take turns instead.
    let _turn = rng_turn();
    let model = seeded_network(spec, &setup.device.training_device(), seed);
    train_taking_turns(model, setup, seed, on_epoch)
}

/// [`train`] from an already built `model` on the training device (an arch's weights
/// inherited from a supernet, fine-tuned) instead of freshly initialised weights.
pub fn train_network(
    model: Network,
    setup: TrainSetup<'_>,
    seed: u64,
    on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
) -> Result<Trained, TrainError> {
    let _turn = rng_turn();
    train_taking_turns(model, setup, seed, on_epoch)
}

/// [`train`]'s loop on `model`; the caller holds [`rng_turn`].
fn train_taking_turns(
    model: Network,
    setup: TrainSetup<'_>,
    seed: u64,
    on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
) -> Result<Trained, TrainError> {
    let (data, valid_rows, device) = (setup.data, setup.valid_rows, setup.device);
    let (model, epochs, stopped) = train_loop(
        model,
        setup,
        seed,
        &|m, x, _, _| Ok(m.forward_flat(x).into()),
        &|m| (!valid_rows.is_empty()).then(|| evaluate(m, data, valid_rows, device)),
        on_epoch,
        None,
    )?;
    Ok(Trained {
        model: model.valid(),
        epochs,
        stopped,
    })
}

/// How a training loop runs a batch through the model: `(model, rows, rng, epoch) -> outputs`;
/// the loop's generator (after shuffling and augmentation draws) is there for sampling paths,
/// the epoch (from 1) for schedules of them. A forward pass may fail (a one-shot method's
/// architecture step that diverged). It may run the batch several times (a supernet's paths) and
/// return their outputs stacked along the batch: the step's loss is then their mean, plus the
/// step's own term when it gives one ([`StepOut`]).
pub(crate) type Forward<'a> =
    dyn Fn(&Network, Tensor<2>, &mut Rng, usize) -> Result<StepOut, TrainError> + Sync + 'a;

/// What a training step's forward pass gives the loop: its outputs (one or more runs of the
/// batch, stacked), and a term added to their mean loss (knowledge distillation's).
pub(crate) struct StepOut {
    pub out: Tensor<2>,
    pub extra: Option<Tensor<1>>,
}

impl From<Tensor<2>> for StepOut {
    fn from(out: Tensor<2>) -> Self {
        StepOut { out, extra: None }
    }
}

/// What a training loop reports as an epoch's validation, given the inference copy of the model.
pub(crate) type Validate<'a> = dyn Fn(&Network) -> Option<Metric> + Sync + 'a;

/// Where a training loop stands between two epochs: with the weights and the optimiser's
/// state, enough to continue it as if it had never stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimiser steps taken (where the learning-rate schedule is).
    pub steps: usize,
    /// The loop's generator (shuffles, augmentation, sampled paths).
    pub rng: [u64; 4],
    /// The training rows in their current order (each epoch shuffles the previous order).
    pub order: Vec<usize>,
}

/// A loop after an epoch, for a checkpoint: the model in training mode, its optimiser, and
/// the loop's state.
pub(crate) struct Snapshot<'a> {
    pub model: &'a Network,
    pub optimizer: &'a ModuleOptimizer,
    pub state: LoopState,
    /// The epoch's numbers.
    pub stats: &'a EpochStats,
}

/// Continuation of a loop: `start` (a stored state and optimiser record) goes on from there;
/// `save` is called after every epoch, before `on_epoch` (a checkpoint).
pub(crate) struct Resumable<'a> {
    pub start: Option<(LoopState, OptimizerRecord)>,
    pub save: &'a mut dyn FnMut(Snapshot<'_>) -> Result<(), TrainError>,
}

/// The loop of [`train`] on an already built `model` (the caller holds [`rng_turn`]): the
/// recipe's optimiser and schedule, batches through `forward`, `validate` after each epoch.
/// Returns the model in training mode, the epochs run by this call, and whether `on_epoch`
/// stopped it. With `resumable`, it starts from a checkpoint and writes one per epoch; an
/// interrupted run continued from its last checkpoint ends with the same weights as one never
/// interrupted (burn's own generator, which dropout draws from, is reseeded every epoch).
pub(crate) fn train_loop(
    model: Network,
    setup: TrainSetup<'_>,
    seed: u64,
    forward: &Forward<'_>,
    validate: &Validate<'_>,
    on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
    mut resumable: Option<Resumable<'_>>,
) -> Result<(Network, Vec<EpochStats>, bool), TrainError> {
    let TrainSetup {
        data,
        train_rows,
        config: cfg,
        device,
        ..
    } = setup;
    cfg.validate(train_rows.len())?;
    let dev = device.training_device();
    let mut model = model;
    let mut optim = match cfg.optimizer {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            }))
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .init(),
        OptimizerConfig::Adam { weight_decay } => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .init(),
        OptimizerConfig::AdamW { weight_decay } => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(weight_decay as f32)
            .init(),
    };
    let loss_fn = Loss::new(cfg, &dev);
    let d = data.row_len();
    let mut rng = Rng::new(seed ^ 0x7EA1_u64);
    let mut order = train_rows.to_vec();
    let batches_per_epoch = order.len().div_ceil(cfg.batch_size);
    let total_steps = batches_per_epoch * cfg.epochs;
    let mut step_global = 0;
    let mut first = 1;
    if let Some((state, record)) = resumable.as_mut().and_then(|r| r.start.take()) {
        let mut sorted = state.order.clone();
        sorted.sort_unstable();
        let mut rows = train_rows.to_vec();
        rows.sort_unstable();
        let damaged = |why: &str| {
            Err(TrainError::Invalid(nasforge_core::Error::invalid(format!(
                "the checkpoint does not continue this training: {why}"
            ))))
        };
        if sorted != rows {
            return damaged("its training rows differ");
        }
        if state.epochs_done > cfg.epochs || state.steps > state.epochs_done * batches_per_epoch {
            return damaged("its epoch and step counts do not fit the recipe");
        }
        let Some(r) = Rng::from_state(state.rng) else {
            return damaged("its generator state is zero");
        };
        rng = r;
        order = state.order;
        step_global = state.steps;
        first = state.epochs_done + 1;
        optim = optim.load_record(record);
    }
    let mut epochs = Vec::new();
    let mut stopped = false;
    for epoch in first..=cfg.epochs {
        let t0 = std::time::Instant::now();
        // Dropout draws from burn's process-wide generator: a fixed seed per epoch keeps an
        // epoch's draws the same whether or not the run was resumed before it.
        dev.seed(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // The epoch's steps and validation run inside the thread pool (see `kernels::in_pool`);
        // `on_epoch` runs on the caller's thread.
        let (trained, loss_sum, loss_n, valid) = crate::kernels::in_pool(|| {
            let mut model = model;
            rng.shuffle(&mut order);
            let mut loss_sum = 0.0;
            let mut loss_n = 0usize;
            for (step, rows) in order.chunks(cfg.batch_size).enumerate() {
                if rows.len() < 2 {
                    continue; // batch norm needs two samples
                }
                let n = rows.len();
                let augment = (cfg.augment && data.is_image()).then_some((&mut rng, cfg.flip));
                let x = Tensor::<2>::from_data(
                    TensorData::new(gather(data, rows, augment), [n, d]),
                    &dev,
                );
                let StepOut { out, extra } = forward(&model, x, &mut rng, epoch)?;
                // A forward may run the batch several times (a supernet's paths), its outputs
                // stacked: the loss is their mean.
                let runs = out.dims()[0] / n;
                let loss = if runs > 1 {
                    loss_fn.of(data, &rows.repeat(runs), out)
                } else {
                    loss_fn.of(data, rows, out)
                };
                let loss = match extra {
                    Some(term) => loss + term,
                    None => loss,
                };
                let value = loss.clone().into_scalar::<f32>();
                if !value.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step: step + 1,
                        value,
                    });
                }
                loss_sum += value as f64 * n as f64;
                loss_n += n;
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                if let Some(max) = cfg.grad_clip {
                    clip_global_norm(&model, &mut grads, max);
                }
                let lr = cfg.lr_at(step_global, batches_per_epoch, total_steps);
                model = optim.step(lr, model, grads);
                step_global += 1;
            }
            // The inference copy also syncs burn's batch-norm running statistics (kept per
            // thread until synced) on the thread that updated them, so the next epoch (maybe
            // on another pool thread) starts from this one's values whether or not anything
            // validates.
            let valid = validate(&model.valid());
            Ok((model, loss_sum, loss_n, valid))
        })?;
        model = trained;
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / loss_n.max(1) as f64,
            valid,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if let Some(r) = resumable.as_mut() {
            (r.save)(Snapshot {
                model: &model,
                optimizer: &optim,
                state: LoopState {
                    epochs_done: epoch,
                    steps: step_global,
                    rng: rng.state(),
                    order: order.clone(),
                },
                stats: &stats,
            })?;
        }
        let control = on_epoch(&stats);
        epochs.push(stats);
        if control == Control::Stop {
            stopped = true;
            break;
        }
    }
    Ok((model, epochs, stopped))
}

/// The mean cross-entropy, in nats, of `model` (an inference copy) on `rows` of classification
/// data; `None` for other targets or no rows.
pub fn cross_entropy(
    model: &Network,
    data: &Dataset,
    rows: &[usize],
    device: DeviceKind,
) -> Option<f64> {
    let Targets::Classes { ids, .. } = &data.targets else {
        return None;
    };
    if rows.is_empty() {
        return None;
    }
    let dev = device.device();
    let d = data.row_len();
    let total = crate::kernels::in_pool(|| {
        let mut total = 0.0;
        for chunk in rows.chunks(256) {
            let n = chunk.len();
            let x =
                Tensor::<2>::from_data(TensorData::new(gather(data, chunk, None), [n, d]), &dev);
            let y: Vec<i64> = chunk.iter().map(|&r| ids[r] as i64).collect();
            let y = Tensor::<2, Int>::from_data(TensorData::new(y, [n, 1]), &dev);
            let log_p = log_softmax(model.forward_flat(x), 1).gather(1, y);
            let sum = log_p.sum().into_data().convert::<f64>();
            total -= sum.as_slice::<f64>().expect("f64 data")[0];
        }
        total
    });
    Some(total / rows.len() as f64)
}

/// Runs `model` (an inference copy) on `rows` and measures accuracy or regression errors.
pub fn evaluate(model: &Network, data: &Dataset, rows: &[usize], device: DeviceKind) -> Metric {
    crate::kernels::in_pool(|| evaluate_here(model, data, rows, device))
}

fn evaluate_here(model: &Network, data: &Dataset, rows: &[usize], device: DeviceKind) -> Metric {
    let dev = device.device();
    let d = data.row_len();
    let mut correct = 0usize;
    let (mut se, mut ae) = (0f64, 0f64);
    let (mut nll, mut tokens) = (0f64, 0usize);
    for chunk in rows.chunks(256) {
        let n = chunk.len();
        let x = Tensor::<2>::from_data(TensorData::new(gather(data, chunk, None), [n, d]), &dev);
        let out = model.forward_flat(x);
        match &data.targets {
            Targets::Classes { ids, .. } => {
                let pred = out
                    .argmax(1)
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .expect("int data");
                correct += chunk
                    .iter()
                    .zip(pred)
                    .filter(|(&r, p)| ids[r] as i64 == *p)
                    .count();
            }
            Targets::Values(v) => {
                let pred = out
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("float data");
                let scale = data.target_scale.map(|(_, s)| s).unwrap_or(1.0);
                for (&r, p) in chunk.iter().zip(pred) {
                    // Errors in the target's own units.
                    let e = ((p - v[r]) * scale) as f64;
                    se += e * e;
                    ae += e.abs();
                }
            }
            Targets::Tokens {
                ids,
                per_row,
                vocab,
            } => {
                let y = next_tokens(ids, *per_row, chunk);
                let m = y.len();
                let y = Tensor::<2, Int>::from_data(TensorData::new(y, [m, 1]), &dev);
                let log_p = log_softmax(out.reshape([m, *vocab]), 1).gather(1, y);
                let sum = log_p.sum().into_data().convert::<f64>();
                nll -= sum.as_slice::<f64>().expect("f64 data")[0];
                tokens += m;
            }
        }
    }
    let n = rows.len().max(1) as f64;
    match data.targets {
        Targets::Classes { .. } => Metric::Accuracy(100.0 * correct as f64 / n),
        Targets::Values(_) => Metric::Regression {
            mse: se / n,
            mae: ae / n,
        },
        Targets::Tokens { .. } => {
            Metric::BitsPerToken(nll / tokens.max(1) as f64 / std::f64::consts::LN_2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;

    fn one_image() -> Dataset {
        Dataset {
            features: vec![1.0, 2.0, 3.0, 4.0],
            shape: vec![1, 2, 2],
            targets: Targets::Classes {
                ids: vec![0],
                names: vec!["a".into()],
            },
            feature_names: Vec::new(),
            source: "test".into(),
            target_scale: None,
        }
    }

    #[test]
    fn augmentation_crops_and_flips_only_when_asked() {
        let d = one_image();
        let mut rng = Rng::new(1);
        let mut saw_mirror = false;
        for _ in 0..200 {
            let out = gather(&d, &[0], Some((&mut rng, false)));
            assert_eq!(out.len(), 4);
            assert!(out.iter().all(|v| [0.0, 1.0, 2.0, 3.0, 4.0].contains(v)));
            assert_ne!(out, vec![2.0, 1.0, 4.0, 3.0], "no flips without flip");
            let out = gather(&d, &[0], Some((&mut rng, true)));
            saw_mirror |= out == vec![2.0, 1.0, 4.0, 3.0];
        }
        assert!(saw_mirror, "flip=true mirrors some images");
        assert_eq!(gather(&d, &[0], None), vec![1.0, 2.0, 3.0, 4.0]);
    }
}
