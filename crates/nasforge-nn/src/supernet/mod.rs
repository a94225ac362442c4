//! A supernet in burn: the [`Network`] of a space's [`SuperSpec`] (every candidate of every
//! choice, with its own weights), run as one-shot methods need it — one path of candidates
//! (SPOS, GDAS, ENAS, RSPS; the others are not computed) or every candidate weighted (DARTS) —
//! and the stand-alone network of any arch extracted with the weights it inherits.
//!
//! Training: single-path training ([`Supernet::train_single_path`]: uniform for SPOS / RSPS's
//! supernet phase, strictly fair for FairNAS), progressive shrinking
//! ([`Supernet::train_progressive`], once-for-all), DARTS, GDAS and ENAS with architecture parameters ([`Supernet::train_relaxed`]),
//! each checkpointed per epoch ([`Checkpoint`]); and scoring a sub-network with inherited
//! weights after recalibrating its batch-norm statistics ([`Supernet::evaluate_inherited`]).

mod checkpoint;
mod relax;

pub use checkpoint::Checkpoint;
pub use relax::{
    ArchConfig, ArchEpoch, ArchState, Guard, Relaxation, DEFAULT_ARCH_LR, DEFAULT_BETA_DECAY,
};

use crate::data::{Dataset, Targets};
use crate::device::DeviceKind;
use crate::model::{Layer, Network, Probe};
use crate::train::loop_::{
    rng_turn, seeded_network, train_loop, Loss, Resumable, Snapshot, StepOut,
};
use crate::train::{evaluate, Control, EpochStats, Metric, TrainError, TrainSetup};
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use nasforge_core::netspec::supernet::{Elastic, SuperSpec};
use nasforge_core::netspec::Op;
use nasforge_core::rng::Rng;
use nasforge_core::{Error, Result};

/// How a pass runs the mixed modules.
pub enum Path<'a> {
    /// One candidate per choice (the arch's choice values): the others are not computed.
    Single(&'a [u16]),
    /// Every candidate, its output times its weight: per choice, a `[options]` tensor (DARTS'
    /// softmax of α; gradients flow into it).
    Weighted(&'a [Tensor<1>]),
    /// One candidate per choice, as `Single`, its output times its entry of the choice's
    /// weight vector (GDAS' straight-through sample: 1 in value, α's gradient through it).
    Sampled(&'a [u16], &'a [Tensor<1>]),
}

/// How a supernet training runs a step's batch: `(plan, network, rows, loop generator, epoch,
/// architecture parameters) -> outputs`.
type StepForward<'a> = dyn Fn(
        &Plan,
        &Network,
        Tensor<2>,
        &mut Rng,
        usize,
        Option<&mut ArchState>,
    ) -> std::result::Result<StepOut, TrainError>
    + Sync
    + 'a;

/// Which paths a single-path training step runs ([`Supernet::train_single_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// One path, a value per choice drawn uniformly (SPOS).
    Uniform,
    /// FairNAS' strict fairness: as many paths as the largest choice has options, in which
    /// every choice takes each of its values equally often (exactly once when it has the most
    /// options), one optimiser step on the mean of their losses — no candidate is trained
    /// more often, or more recently, than another of its choice. A step costs that many
    /// single-path steps.
    Fair,
}

/// How a single-path training draws a step's paths: `(plan, loop generator, epoch) -> paths`
/// (each a value per choice), all run on the step's batch.
type DrawPaths<'a> = dyn Fn(&Plan, &mut Rng, usize) -> Vec<Vec<u16>> + Sync + 'a;

/// The larger path a drawn path distils from: `(plan, drawn values) -> values`.
type TeacherPath<'a> = dyn Fn(&Plan, &[u16]) -> Vec<u16> + Sync + 'a;

/// Knowledge distillation's loss: the mean over rows of the cross-entropy of `student`'s
/// softmax against `teacher`'s (soft targets; `teacher` detached by the caller).
fn soft_cross_entropy(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let p = burn::tensor::activation::softmax(teacher, 1);
    let log_q = burn::tensor::activation::log_softmax(student, 1);
    (p * log_q).sum_dim(1).mean().neg()
}

/// A supernet's weights and where its choices are.
#[derive(Clone, Debug)]
pub struct Supernet {
    net: Network,
    plan: Plan,
}

/// Where the choices are, apart from the weights (a training loop moves the network).
#[derive(Clone, Debug)]
struct Plan {
    sup: SuperSpec,
    /// Per node: the innermost (mixed module, candidate) it belongs to.
    member: Vec<Option<(usize, usize)>>,
    /// Per choice: the value a few-shot split holds it at ([`Supernet::split`]); drawn otherwise.
    fixed: Vec<Option<u16>>,
}

impl Plan {
    fn new(sup: SuperSpec) -> Self {
        let mut member = vec![None; sup.spec().nodes().len()];
        let mut owners: Vec<(usize, usize)> = sup
            .mixed()
            .iter()
            .enumerate()
            .flat_map(|(m, mixed)| (0..mixed.candidates.len()).map(move |c| (m, c)))
            .collect();
        // Outer candidates first, so that a nested module's candidates overwrite them.
        owners.sort_by_key(|&(m, c)| std::cmp::Reverse(sup.mixed()[m].candidates[c].nodes.len()));
        for (m, c) in owners {
            member[sup.mixed()[m].candidates[c].nodes.clone()].fill(Some((m, c)));
        }
        let fixed = vec![None; sup.options().len()];
        Plan { sup, member, fixed }
    }

    /// Refuses a supernet with derived choices (the macro space's) for `method`, which runs
    /// every candidate weighted: those choices have no weights.
    fn weighs_every_candidate(&self, method: &str) -> Result<()> {
        if self.sup.weighable() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "{method} runs every candidate of every choice weighted, and this supernet has modules its archs' channel counts choose (the macro space's skip projections), which no weight can mix; use spos, fairnas, rsps, gdas, enas or ofa"
        )))
    }

    /// Checks a path against the choices: a value per choice within its options, or a weight
    /// vector per choice of its options' length.
    fn check(&self, path: &Path) -> Result<()> {
        let options = self.sup.options();
        let weights_fit = |w: &[Tensor<1>]| {
            w.len() == options.len() && w.iter().zip(options).all(|(w, &n)| w.dims() == [n])
        };
        let ok = match path {
            Path::Single(v) => {
                v.len() == options.len() && v.iter().zip(options).all(|(&v, &n)| (v as usize) < n)
            }
            Path::Weighted(w) => {
                self.weighs_every_candidate("a weighted path")?;
                weights_fit(w)
            }
            Path::Sampled(v, w) => {
                weights_fit(w)
                    && v.len() == options.len()
                    && v.iter().zip(options).all(|(&v, &n)| (v as usize) < n)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "a path through the supernet needs one value or weight vector per choice, with options {options:?}"
            )))
        }
    }

    /// `net` (this plan's network) on a batch along a checked `path`.
    fn run(&self, net: &Network, x: Tensor<2>, path: &Path) -> Tensor<2> {
        let live = match path {
            Path::Single(values) | Path::Sampled(values, _) => Some(self.sup.live(values)),
            Path::Weighted(_) => None,
        };
        net.forward_probed(
            x,
            &mut Router {
                plan: self,
                path,
                live,
            },
        )
    }

    /// A uniformly random value for every choice (a split's own value for a choice it holds).
    fn sample(&self, rng: &mut Rng) -> Vec<u16> {
        self.sup
            .options()
            .iter()
            .zip(&self.fixed)
            .map(|(&n, f)| f.unwrap_or_else(|| rng.below(n) as u16))
            .collect()
    }

    /// FairNAS' strictly fair draw: as many paths as the largest choice has options, in
    /// which every choice takes each of its values equally often — exactly once when it has
    /// the most options (a random permutation per choice), and a choice with fewer options
    /// runs through as many random permutations as it takes, the last one cut short.
    fn sample_fair(&self, rng: &mut Rng) -> Vec<Vec<u16>> {
        let options = self.sup.options();
        let m = options.iter().copied().max().unwrap_or(1);
        let columns: Vec<Vec<u16>> = options
            .iter()
            .zip(&self.fixed)
            .map(|(&n, f)| {
                if let Some(v) = f {
                    return vec![*v; m];
                }
                let mut column = Vec::with_capacity(m + n);
                while column.len() < m {
                    let mut perm: Vec<u16> = (0..n as u16).collect();
                    rng.shuffle(&mut perm);
                    column.extend(perm);
                }
                column.truncate(m);
                column
            })
            .collect();
        (0..m)
            .map(|j| columns.iter().map(|c| c[j]).collect())
            .collect()
    }
}

/// A stage of progressive shrinking: what is drawn besides the non-elastic choices (each
/// stage draws what the ones before it drew, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShrinkStage {
    /// The largest kernels, widths and depth.
    Largest,
    /// Every kernel size, the largest widths and depth.
    Kernel,
    /// Every kernel size and width, the largest depth.
    Width,
    /// Every kernel size, width and depth.
    Depth,
}

impl ShrinkStage {
    /// The stage from which an elastic choice of this kind is drawn.
    fn of(e: &Elastic) -> Self {
        match e {
            Elastic::Kernel { .. } => ShrinkStage::Kernel,
            Elastic::Width { .. } => ShrinkStage::Width,
            Elastic::Depth { .. } => ShrinkStage::Depth,
        }
    }
}

/// The stage of epoch `epoch` (from 1) of `epochs`: the first quarter `Largest`; then, with
/// elastic `kernels`, up to 40% `Kernel`; up to 60% `Width`, the rest `Depth` (each stage at
/// least one epoch when there are enough).
pub fn shrinking_stage(epoch: usize, epochs: usize, kernels: bool) -> ShrinkStage {
    let largest = epochs.div_ceil(4).max(1);
    let kernel = match kernels {
        true => (epochs * 2).div_ceil(5).max(largest + 1),
        false => largest,
    };
    let width = (epochs * 3).div_ceil(5).max(kernel + 1);
    if epoch <= largest {
        ShrinkStage::Largest
    } else if epoch <= kernel {
        ShrinkStage::Kernel
    } else if epoch <= width {
        ShrinkStage::Width
    } else {
        ShrinkStage::Depth
    }
}

/// `p` itself when it has shape `dims`, else a parameter of its leading slice of that shape.
fn lead<const D: usize>(p: &Param<Tensor<D>>, dims: [usize; D]) -> Param<Tensor<D>> {
    if p.dims() == dims {
        p.clone()
    } else {
        Param::from_tensor(p.val().slice(dims.map(|d| 0..d)).detach())
    }
}

/// Leaves out what a single path does not compute, or scales each candidate's output.
struct Router<'a> {
    plan: &'a Plan,
    path: &'a Path<'a>,
    /// On a single path: the nodes it computes ([`SuperSpec::live`]).
    live: Option<Vec<bool>>,
}

impl Router<'_> {
    /// The weight of node `node`'s output when it is a candidate's output (weighted path).
    fn weight(&self, node: usize) -> Option<Tensor<1>> {
        let (Path::Weighted(w) | Path::Sampled(_, w)) = self.path else {
            return None;
        };
        let (m, c) = self.plan.member[node]?;
        let mixed = &self.plan.sup.mixed()[m];
        // Derived choices (past the arch's) have no weights.
        let w = w.get(mixed.choice)?;
        (mixed.candidates[c].output == node).then(|| w.clone().slice(c..c + 1))
    }
}

impl Probe for Router<'_> {
    fn image(&mut self, node: usize, _: &Op, t: Tensor<4>) -> Tensor<4> {
        match self.weight(node) {
            Some(w) => t * w.reshape([1, 1, 1, 1]),
            None => t,
        }
    }
    fn vector(&mut self, node: usize, _: &Op, t: Tensor<2>) -> Tensor<2> {
        match self.weight(node) {
            Some(w) => t * w.reshape([1, 1]),
            None => t,
        }
    }
    fn skip(&mut self, node: usize) -> bool {
        self.live.as_ref().is_some_and(|live| !live[node])
    }
}

impl Supernet {
    /// The supernet of `sup` with freshly initialised weights on `device`.
    pub fn new(sup: SuperSpec, device: &Device) -> Self {
        Supernet {
            net: Network::new(sup.spec(), device).share_weights(&sup),
            plan: Plan::new(sup),
        }
    }

    /// The supernet of `sup` with weights drawn from `seed` in module order on `device` (the
    /// same seed, the same weights).
    pub fn seeded(sup: SuperSpec, device: &Device, seed: u64) -> Self {
        let _turn = rng_turn();
        Supernet {
            net: seeded_network(sup.spec(), device, seed).share_weights(&sup),
            plan: Plan::new(sup),
        }
    }

    /// Its description.
    pub fn spec(&self) -> &SuperSpec {
        &self.plan.sup
    }

    /// Its weights as a network (every candidate's).
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Runs a batch (flat rows, as [`Network::forward_flat`]) along `path`.
    pub fn forward(&self, x: Tensor<2>, path: &Path) -> Result<Tensor<2>> {
        self.plan.check(path)?;
        Ok(self.plan.run(&self.net, x, path))
    }

    /// The stand-alone network of the arch with choice values `values`, its weights (batch-norm
    /// statistics included) those the supernet holds for it: a layer narrowed by a width
    /// choice takes the leading slice of the widest layer's (the first rows and columns), a
    /// convolution sharing a larger one's weights their centre through its kernel map.
    pub fn extract(&self, values: &[u16]) -> Result<Network> {
        let (spec, origin) = self.plan.sup.sub_network(values)?;
        let nodes = spec.nodes();
        let layers = origin
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let out = nodes[k].shape[0];
                let input = nodes[k].inputs.first().map_or(0, |&j| nodes[j].shape[0]);
                let own = o;
                let o = self.plan.sup.shared()[o].unwrap_or(o);
                match &self.net.layers()[o] {
                    Layer::Fixed(_) => Layer::Fixed(k),
                    // Running statistics of its own (a clone would share the supernet's, and
                    // recalibrating the sub-network would change them).
                    Layer::Norm(bn) => Layer::Norm(BatchNorm {
                        gamma: lead(&bn.gamma, [out]),
                        beta: lead(&bn.beta, [out]),
                        running_mean: RunningState::new(bn.running_mean.value().slice(0..out)),
                        running_var: RunningState::new(bn.running_var.value().slice(0..out)),
                        ..bn.clone()
                    }),
                    Layer::Linear(lin) => Layer::Linear(Linear {
                        weight: lead(&lin.weight, [input, out]),
                        bias: lin.bias.as_ref().map(|b| lead(b, [out])),
                    }),
                    // The mapped centre of a larger convolution's kernels (`conv_of`), then
                    // narrowed (a depthwise convolution with its input: fewer groups).
                    Layer::Conv(conv) => match &nodes[k].op {
                        Op::Conv2d(c) => {
                            let conv = &*self.net.conv_of(own, conv, c);
                            // Its own leaf: a mapped centre is computed from the supernet's.
                            let weight = Param::from_tensor(conv.weight.val().detach());
                            Layer::Conv(Conv2d {
                                weight: lead(&weight, [out, input / c.groups, c.kernel, c.kernel]),
                                bias: conv.bias.as_ref().map(|b| lead(b, [out])),
                                groups: c.groups,
                                ..conv.clone()
                            })
                        }
                        _ => Layer::Conv(conv.clone()),
                    },
                    learned => learned.clone(),
                }
            })
            .collect();
        Ok(Network::from_layers(&spec, layers))
    }

    /// Few-shot NAS's split (Zhao et al., ICML 2021): this supernet, its weights as they are,
    /// with choice `choice` held at `value` — the sub-supernet of the archs that take that
    /// value. Trained further by single-path training or progressive shrinking, it draws
    /// every other choice as before and this one never; one split per value of a choice
    /// replaces the one-shot supernet's shared candidates of that choice by a supernet each.
    /// A choice out of range, a value beyond its options, or a choice already held is an error.
    pub fn split(mut self, choice: usize, value: u16) -> Result<Supernet> {
        let options = self.plan.sup.options();
        let Some(&n) = options.get(choice) else {
            return Err(Error::invalid(format!(
                "the supernet has {} choices, so choice {choice} cannot be split",
                options.len()
            )));
        };
        if value as usize >= n {
            return Err(Error::invalid(format!(
                "choice {choice} has {n} options, so it cannot be held at value {value}"
            )));
        }
        if let Some(held) = self.plan.fixed[choice] {
            return Err(Error::invalid(format!(
                "choice {choice} is held at {held} already"
            )));
        }
        self.plan.fixed[choice] = Some(value);
        Ok(self)
    }

    /// The choices a [`Supernet::split`] holds, with their values.
    pub fn held(&self) -> Vec<(usize, u16)> {
        self.plan
            .fixed
            .iter()
            .enumerate()
            .filter_map(|(c, v)| v.map(|v| (c, v)))
            .collect()
    }

    /// Single-path training: every step trains the paths `sampling` draws — one uniformly
    /// random path (SPOS; RSPS's supernet phase), or FairNAS' strictly fair set of paths
    /// ([`Sampling::Fair`]) — on the step's batch, with the recipe, data and rows of `setup`
    /// (its validation rows are not read: a supernet epoch has no single arch to validate).
    /// Deterministic for a seed, as [`crate::train::train`].
    ///
    /// With a `checkpoint`, every epoch is stored there, and a stored training of the same
    /// supernet, sampling, seed and recipe is continued from its last epoch (its weights
    /// replace this supernet's); the epochs returned are all of them, stored ones first. A
    /// checkpoint of another training is an error.
    pub fn train_single_path(
        self,
        sampling: Sampling,
        setup: TrainSetup<'_>,
        seed: u64,
        checkpoint: Option<&Checkpoint>,
        on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
    ) -> std::result::Result<(Supernet, Vec<EpochStats>), TrainError> {
        let (method, draw): (&str, &DrawPaths<'_>) = match sampling {
            Sampling::Uniform => ("single_path", &|plan, rng, _| vec![plan.sample(rng)]),
            Sampling::Fair => ("fair_single_path", &|plan, rng, _| plan.sample_fair(rng)),
        };
        self.train_paths(method, setup, seed, checkpoint, on_epoch, draw, None)
    }

    /// Once-for-all's progressive shrinking over the supernet's elastic choices (kernel
    /// sizes, widths and depth): the first quarter of the epochs trains the largest network
    /// (the other choices drawn uniformly), then, with elastic kernels, up to 40% the kernel
    /// sizes are drawn too, up to 60% the widths as well, then the depth — a path per step,
    /// as [`Supernet::train_single_path`], checkpointed and resumed the same way. A supernet
    /// without elastic choices is an error.
    ///
    /// With `distill` (classification data only), once the drawn path is smaller than the
    /// largest one it distils from it in place: every such step also runs the path with each
    /// elastic choice at its largest, and the loss is half the sum of the larger path's
    /// cross-entropy, the drawn path's, and the drawn path's cross-entropy against the larger
    /// one's predictions (detached; each path's two terms weigh as one) — once-for-all's knowledge distillation, with the
    /// supernet's own largest path as the teacher (BigNAS' in-place distillation) rather
    /// than a separately trained network. Such a step costs two paths.
    pub fn train_progressive(
        self,
        setup: TrainSetup<'_>,
        seed: u64,
        distill: bool,
        checkpoint: Option<&Checkpoint>,
        on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
    ) -> std::result::Result<(Supernet, Vec<EpochStats>), TrainError> {
        let elastic = self.plan.sup.elastic();
        if elastic.iter().all(Option::is_none) {
            return Err(TrainError::Invalid(Error::invalid(
                "progressive shrinking needs a supernet with elastic kernel sizes, widths or depth (the mlp and macro spaces')",
            )));
        }
        let kernels = elastic
            .iter()
            .any(|e| matches!(e, Some(Elastic::Kernel { .. })));
        let epochs = setup.config.epochs;
        // `values` with every elastic choice (but a split's) that `stage` does not draw yet at
        // its largest.
        let enlarge = |plan: &Plan, mut values: Vec<u16>, stage: ShrinkStage| {
            for ((v, e), f) in values.iter_mut().zip(&elastic).zip(&plan.fixed) {
                if let Some(e) = e
                    .as_ref()
                    .filter(|e| f.is_none() && ShrinkStage::of(e) > stage)
                {
                    *v = e.largest(*v);
                }
            }
            values
        };
        let distill = distill && matches!(setup.data.targets, Targets::Classes { .. });
        let teacher =
            |plan: &Plan, values: &[u16]| enlarge(plan, values.to_vec(), ShrinkStage::Largest);
        self.train_paths(
            if distill {
                "progressive_shrinking_kd"
            } else {
                "progressive_shrinking"
            },
            setup,
            seed,
            checkpoint,
            on_epoch,
            &|plan, rng, epoch| {
                let stage = shrinking_stage(epoch, epochs, kernels);
                vec![enlarge(plan, plan.sample(rng), stage)]
            },
            distill.then_some(&teacher as &TeacherPath<'_>),
        )
    }

    /// Training the paths `draw(plan, generator, epoch)` chooses for each step, on the step's
    /// batch, one optimiser step on the mean of their losses; with a `teacher`, a single drawn
    /// path that differs from its teacher's path distils from it (see
    /// [`Supernet::train_progressive`]). Checkpointed as `method` (see
    /// [`Supernet::train_single_path`]).
    #[allow(clippy::too_many_arguments)]
    fn train_paths(
        self,
        method: &str,
        setup: TrainSetup<'_>,
        seed: u64,
        checkpoint: Option<&Checkpoint>,
        on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
        draw: &DrawPaths<'_>,
        teacher: Option<&TeacherPath<'_>>,
    ) -> std::result::Result<(Supernet, Vec<EpochStats>), TrainError> {
        let identity = self.identity(method, seed, &setup, None);
        let forward = |plan: &Plan,
                       net: &Network,
                       x: Tensor<2>,
                       rng: &mut Rng,
                       epoch: usize,
                       _: Option<&mut ArchState>| {
            let paths = draw(plan, rng, epoch);
            let big = match (teacher, &paths[..]) {
                (Some(teacher), [one]) => Some(teacher(plan, one)).filter(|big| big != one),
                _ => None,
            };
            if let Some(big) = big {
                // In-place distillation: the larger path learns from the labels, the drawn one
                // from the labels and the larger one's predictions.
                let t = plan.run(net, x.clone(), &Path::Single(&big));
                let s = plan.run(net, x, &Path::Single(&paths[0]));
                let kd = soft_cross_entropy(s.clone(), t.clone().detach());
                return Ok(StepOut {
                    out: Tensor::cat(vec![t, s], 0),
                    extra: Some(kd * 0.5),
                });
            }
            let outs: Vec<Tensor<2>> = paths
                .iter()
                .map(|values| plan.run(net, x.clone(), &Path::Single(values)))
                .collect();
            Ok(Tensor::cat(outs, 0).into())
        };
        let (sn, epochs, _) =
            self.train_stored(setup, seed, identity, checkpoint, &forward, None, on_epoch)?;
        Ok((sn, epochs))
    }

    /// DARTS, GDAS or ENAS (see [`Relaxation`] and docs/ONESHOT.md): architecture parameters α trained beside the
    /// weights, an α step on a batch of `setup`'s validation rows before every weight step on
    /// its training rows. Deterministic for a seed; with a `checkpoint`, every epoch (α, their
    /// optimiser and history included) is stored and a stored training continued, as
    /// [`Supernet::train_single_path`]. Returns the supernet, every epoch, and α with the arch
    /// each epoch derived.
    pub fn train_relaxed(
        self,
        setup: TrainSetup<'_>,
        seed: u64,
        arch: ArchConfig,
        checkpoint: Option<&Checkpoint>,
        on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
    ) -> std::result::Result<(Supernet, Vec<EpochStats>, ArchState), TrainError> {
        arch.validate()?;
        if !self.held().is_empty() {
            return Err(TrainError::Invalid(Error::invalid(format!(
                "{} learns a distribution over every choice, and this few-shot split holds {:?} (choice, value): train a split by single-path training or progressive shrinking",
                arch.method(),
                self.held()
            ))));
        }
        if let Relaxation::Darts { .. } = arch.relaxation {
            self.plan
                .weighs_every_candidate("darts")
                .map_err(TrainError::Invalid)?;
        }
        if setup.valid_rows.len() < 2 {
            return Err(TrainError::Invalid(Error::invalid(format!(
                "{} takes its architecture steps on validation rows, and there are {}: give the validation split at least 2 rows",
                arch.method(),
                setup.valid_rows.len()
            ))));
        }
        let identity = self.identity(arch.method(), seed, &setup, Some(arch));
        let state = ArchState::new(self.plan.sup.options(), &mut Rng::new(seed ^ 0xA1FA));
        let (n, batch) = (setup.train_rows.len(), setup.config.batch_size);
        let per_epoch = n / batch + usize::from(n % batch >= 2);
        let dev = setup.device.training_device();
        let relaxed = relax::Relaxed {
            cfg: arch,
            data: setup.data,
            valid_rows: setup.valid_rows,
            train_rows: setup.train_rows,
            weight_lr: setup.config.lr,
            batch,
            total_steps: (per_epoch * setup.config.epochs) as u64,
            loss: Loss::new(setup.config, &dev),
            skip: relax::identity_options(&self.plan),
            device: dev,
        };
        let forward = |plan: &Plan,
                       net: &Network,
                       x: Tensor<2>,
                       rng: &mut Rng,
                       _,
                       st: Option<&mut ArchState>| {
            relaxed
                .step(plan, net, x, rng, st.expect("architecture parameters"))
                .map(StepOut::from)
        };
        let (sn, epochs, st) = self.train_stored(
            setup,
            seed,
            identity,
            checkpoint,
            &forward,
            Some(state),
            on_epoch,
        )?;
        Ok((sn, epochs, st.expect("architecture parameters")))
    }

    /// What a checkpoint of this supernet's training by `method` must match.
    fn identity(
        &self,
        method: &str,
        seed: u64,
        setup: &TrainSetup<'_>,
        arch: Option<ArchConfig>,
    ) -> checkpoint::Identity {
        checkpoint::Identity {
            method: method.into(),
            seed,
            options: self.plan.sup.options().to_vec(),
            params: self.plan.sup.params(),
            recipe: setup.config.clone(),
            arch,
            held: self.held(),
        }
    }

    /// The loop every supernet training shares: `forward` runs a step's batch along the
    /// method's path; with a `checkpoint`, every epoch is stored (with `arch`, the relaxed
    /// methods' architecture parameters, when given) and a stored training of the same
    /// `identity` is continued. Returns the supernet, every epoch (stored ones first) and the
    /// architecture parameters at the end.
    #[allow(clippy::too_many_arguments)]
    fn train_stored(
        self,
        setup: TrainSetup<'_>,
        seed: u64,
        identity: checkpoint::Identity,
        checkpoint: Option<&Checkpoint>,
        forward: &StepForward<'_>,
        arch: Option<ArchState>,
        on_epoch: &mut dyn FnMut(&EpochStats) -> Control,
    ) -> std::result::Result<(Supernet, Vec<EpochStats>, Option<ArchState>), TrainError> {
        let _turn = rng_turn();
        let plan = self.plan;
        let mut net = self.net;
        let mut done = Vec::new();
        let mut start = None;
        let mut arch = arch;
        if let Some(c) = checkpoint {
            let dev = setup.device.training_device();
            if let Some(stored) = c.load(&identity, &plan.sup, &dev)? {
                net = stored.net;
                done = stored.epochs;
                start = Some((stored.loop_state, stored.optimizer));
                if arch.is_some() {
                    arch = Some(stored.arch.ok_or_else(|| {
                        TrainError::Invalid(c.damaged(&"no architecture parameters"))
                    })?);
                }
            }
        }
        let arch = std::sync::Mutex::new(arch);
        let step = |net: &Network, x: Tensor<2>, rng: &mut Rng, epoch: usize| {
            let mut a = arch.lock().unwrap_or_else(|e| e.into_inner());
            forward(&plan, net, x, rng, epoch, a.as_mut())
        };
        let mut all = done;
        let mut save = |snap: Snapshot<'_>| {
            all.push(snap.stats.clone());
            let mut a = arch.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = a.as_mut() {
                a.end_epoch(snap.stats.epoch);
            }
            match checkpoint {
                Some(c) => c.save(&identity, snap, &all, a.as_ref()),
                None => Ok(()),
            }
        };
        let (net, _, _) = train_loop(
            net,
            setup,
            seed,
            &step,
            &|_| None,
            on_epoch,
            Some(Resumable {
                start,
                save: &mut save,
            }),
        )?;
        let arch = arch.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((Supernet { net, plan }, all, arch))
    }

    /// The stand-alone network of the arch `values` with the weights it inherits, ready for
    /// inference: extracted, then its batch-norm statistics recomputed as the mean over the
    /// batches of `calibration` rows (a supernet's running statistics mix every path's; SPOS
    /// recalibrates them).
    pub fn inherited(
        &self,
        values: &[u16],
        data: &Dataset,
        calibration: &[usize],
        batch: usize,
        device: DeviceKind,
    ) -> Result<Network> {
        // On the inference device with batch statistics forced on: any forward pass on the
        // autodiff device that never runs backward leaves memory behind in burn's autodiff
        // server (50 MB per arch tracked, 2.3 MB untracked on the 8×8 digits: an
        // out-of-memory kill after 14 archs on 28×28 MNIST, 1.7 GB after 100 DARTS cells).
        let mut net = self.extract(values)?.valid();
        net.set_batch_statistics(true);
        let dev = device.device();
        let d = data.row_len();
        crate::kernels::in_pool(|| {
            let chunks = calibration.chunks(batch.max(2)).filter(|c| c.len() >= 2);
            for (k, chunk) in chunks.enumerate() {
                net.set_norm_momentum(1.0 / (k + 1) as f64);
                let x: Vec<f32> = chunk.iter().flat_map(|&r| data.row(r)).copied().collect();
                let _ = net.forward_flat(Tensor::<2>::from_data(
                    TensorData::new(x, [chunk.len(), d]),
                    &dev,
                ));
            }
        });
        net.set_batch_statistics(false);
        Ok(net)
    }

    /// The arch `values` scored on `rows` of `data` with the weights it inherits, batch norms
    /// recalibrated on `calibration` rows ([`Supernet::inherited`]).
    pub fn evaluate_inherited(
        &self,
        values: &[u16],
        data: &Dataset,
        calibration: &[usize],
        rows: &[usize],
        batch: usize,
        device: DeviceKind,
    ) -> Result<Metric> {
        let net = self.inherited(values, data, calibration, batch, device)?;
        Ok(evaluate(&net, data, rows, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasforge_core::space;
    use nasforge_core::Params;
    use std::collections::BTreeSet;

    #[test]
    fn distillation_loss_is_the_cross_entropy_against_the_teachers_softmax() {
        let dev = Default::default();
        let logits =
            |v: [f32; 3]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, 3]), &dev);
        let value = |s, t| soft_cross_entropy(s, t).into_scalar::<f32>();
        // Against itself: the entropy of its softmax.
        let p: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let z: f32 = p.iter().sum();
        let entropy: f32 = p.iter().map(|v| -(v / z) * (v / z).ln()).sum();
        assert!((value(logits([1.0, 2.0, 3.0]), logits([1.0, 2.0, 3.0])) - entropy).abs() < 1e-5);
        // A one-hot teacher: the ordinary cross-entropy of its class.
        let ce = -(p[0] / z).ln();
        assert!((value(logits([1.0, 2.0, 3.0]), logits([60.0, 0.0, 0.0])) - ce).abs() < 1e-4);
        // Lowest where the student agrees with the teacher.
        assert!(
            value(logits([3.0, 2.0, 1.0]), logits([1.0, 2.0, 3.0]))
                > value(logits([1.0, 2.0, 3.0]), logits([1.0, 2.0, 3.0]))
        );
    }

    #[test]
    fn a_fair_draw_gives_every_value_of_every_choice_its_share_of_the_paths() {
        // The macro space's choices have 7 (ops), 2 (skips) and a few (widths) options.
        let params = Params::parse(&["layers=3", "input=8x8x1"]).unwrap();
        let sup = space::build("macro", &params).unwrap().supernet().unwrap();
        let plan = Plan::new(sup);
        let options = plan.sup.options().to_vec();
        let m = *options.iter().max().unwrap();
        assert!(
            options.iter().any(|&n| n < m) && options.contains(&2),
            "{options:?}"
        );
        let mut rng = Rng::new(11);
        let mut first_paths = BTreeSet::new();
        for _ in 0..20 {
            let paths = plan.sample_fair(&mut rng);
            assert_eq!(paths.len(), m);
            for (i, &n) in options.iter().enumerate() {
                let mut count = vec![0; n];
                for p in &paths {
                    count[p[i] as usize] += 1;
                }
                // Each value m / n times, rounded either way.
                assert!(
                    count.iter().all(|&c| c == m / n || c == m.div_ceil(n)),
                    "choice {i} of {n} options: {count:?}"
                );
            }
            first_paths.insert(paths[0].clone());
        }
        assert!(first_paths.len() > 1, "the draws are random");
    }
}
