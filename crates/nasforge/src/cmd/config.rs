//! The search configuration: one struct that is both the command-line flags and the TOML file
//! (`--config run.toml`, `nasforge init`), so every flag has a TOML key of the same name.
//!
//! Layers, later wins: built-in defaults < `--config` file < flags. A run directory stores the
//! fully resolved configuration as `config.toml`; `--resume` reads it back.

use super::bad_input;
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::study::{self, Bound, Constraint, Direction, Goal, Objective};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Flags of `nasforge search` (all optional; see `nasforge init` for the commented defaults).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Search space: nb201, darts, macro, mlp or transformer [default: nb201 for images, mlp for
    /// tables, transformer for text].
    #[arg(long)]
    pub space: Option<String>,
    /// Space size parameter `key=value` (repeatable), e.g. `channels=16`.
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_param: Vec<String>,
    // The help lists the registry, so it never falls behind it.
    #[arg(long, help = strategy_help())]
    pub strategy: Option<String>,
    /// Strategy parameter `key=value` (repeatable), e.g. `population=20`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategy_param: Vec<String>,
    #[arg(long, help = scheduler_help())]
    pub scheduler: Option<String>,
    /// Scheduler parameter `key=value` (repeatable), e.g. `eta=3`.
    #[arg(long = "scheduler-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_param: Vec<String>,
    /// Lowest rung of a scheduler, in epochs [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<u32>)]
    pub min_epochs: Option<u32>,
    #[arg(long, help = stopper_help())]
    pub stopper: Option<String>,
    /// Stopper parameter `key=value` (repeatable), e.g. `p=0.05`.
    #[arg(long = "stopper-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopper_param: Vec<String>,
    /// End the search once its trials have trained this many epochs in total (may be raised on --resume).
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<u64>)]
    pub epoch_budget: Option<u64>,
    /// How archs are estimated during the search: `standard` (each candidate trained alone),
    /// `spos` (one weight-sharing supernet trained by uniform single-path sampling, then the
    /// strategy searches it scoring archs with inherited weights), `fairnas` (the same with
    /// FairNAS' strictly fair sampling: every op of every choice trained once per step),
    /// `rsps` (the SPOS supernet, searched at random), `darts` / `gdas` / `enas` (architecture parameters or a controller
    /// learned with the supernet; each epoch's derived arch is a trial), `ofa` (once-for-all:
    /// an elastic supernet trained by progressive shrinking, then one sub-network per
    /// --budget, scored with inherited weights and trained from scratch) [default: standard].
    #[arg(long)]
    pub method: Option<String>,
    /// A budget of --method ofa, `METRIC<=LIMIT` (repeatable): `params<=20000`,
    /// `macs<=1e5`, `latency_ms<=0.2`; the best sub-network under each is reported.
    #[arg(long, value_name = "METRIC<=LIMIT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<String>,
    /// Epochs of supernet training for a one-shot --method [default: 30].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub supernet_epochs: Option<usize>,
    /// Learning rate of the architecture parameters of --method darts, gdas or enas [default: 0.003].
    #[arg(long)]
    pub arch_lr: Option<f64>,
    /// DARTS' guard against collapsing onto parameter-free ops: `beta-decay` (β-DARTS'
    /// regulariser on α), `aux-skip` (DARTS-' auxiliary skip connection, decaying to 0) or
    /// `none` [default: beta-decay].
    #[arg(long)]
    pub collapse_guard: Option<String>,
    /// DARTS' α gradient: 1 (first order) or 2 (second order: through one unrolled weight
    /// step, about 2× slower) [default: 1].
    #[arg(long)]
    pub darts_order: Option<u8>,
    /// --method ofa: each step that draws a smaller sub-network also trains its largest
    /// version, and the smaller one learns from the larger one's predictions too (in-place
    /// knowledge distillation; two paths a step) [default: false].
    #[arg(long)]
    pub distill: Option<bool>,
    /// How candidates are measured: `train` (on data) or `table` (benchmark look-up)
    /// [default: table when --table is given, else train].
    #[arg(long)]
    pub evaluator: Option<String>,
    /// Benchmark table for `--evaluator table` [default: the built-in NAS-Bench-201 CIFAR-10 table].
    #[arg(long)]
    pub table: Option<PathBuf>,
    // The help lists the metric registry, so it never falls behind it.
    #[arg(long, value_name = "METRIC[:max|min]", help = objective_help())]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub objective: Vec<String>,
    /// `maximize` or `minimize` a single objective given without `:max`/`:min` [default: from the metric].
    #[arg(long)]
    pub direction: Option<String>,
    /// A hard limit, `METRIC<=LIMIT` or `METRIC>=LIMIT` (repeatable): `params<=500000`,
    /// `macs<=50e6`, `latency_ms<=2.0`. Limits on params, macs and peak_memory_mb are checked
    /// before training: an arch over them is never trained.
    #[arg(long, value_name = "METRIC<=LIMIT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraint: Vec<String>,
    /// Data: a CSV (.csv/.csv.gz), an IDX images file, or an image folder [default: the embedded 8x8 digits].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target column of a CSV [default: label].
    #[arg(long)]
    pub target: Option<String>,
    /// `classification`, `regression`, or `lm`: a character-level language model of the
    /// plain-text file --data, scored in bits per character (docs/TRANSFORMERS.md)
    /// [default: from the target column].
    #[arg(long)]
    pub task: Option<String>,
    /// The CSV's features are an HxWxC image (e.g. 28x28x1); for image folders, resize to it.
    #[arg(long)]
    pub image: Option<String>,
    /// A CSV column to ignore (repeatable).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
    /// Fill empty and NaN feature cells of a CSV with the `median` or `mean` of the column's
    /// training rows (saved with the model; predict and the ONNX export fill the same way).
    /// Infinite values are always an error [default: none; a missing cell is an error].
    #[arg(long, value_name = "median|mean")]
    pub impute: Option<String>,
    /// The CSV column holding text passages: the rows are then classified from their text
    /// (with --target) by the `transformer` space; other columns are not read (docs/TRANSFORMERS.md).
    #[arg(long, value_name = "COLUMN")]
    pub text_column: Option<String>,
    /// Tokens per passage with --text-column: longer passages are cut, shorter ones padded
    /// [default: the length that holds 95% of the training passages whole, at most 512];
    /// the window of a language model (--task lm) [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub seq_len: Option<usize>,
    /// What a token is with --text-column: `char` (the characters of the training passages)
    /// or `byte` (the 256 UTF-8 bytes) [default: char].
    #[arg(long, value_name = "char|byte")]
    pub tokens: Option<String>,
    /// The most token ids a vocabulary may hold (padding and unknown included); a larger one
    /// is an error [default: 1024].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub max_vocab: Option<usize>,
    /// The labels file of IDX images [default: found beside the images file].
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Fraction of rows for validation [default: 0.15; 0.05 of the text for --task lm].
    #[arg(long, allow_negative_numbers = true)]
    pub valid_fraction: Option<f64>,
    /// Fraction of rows for the test split, used only by final training [default: 0.15;
    /// 0.05 of the text for --task lm].
    #[arg(long, allow_negative_numbers = true)]
    pub test_fraction: Option<f64>,
    /// The batch of the second latency measurement of every trained candidate
    /// (`latency_ms_b<N>`; `latency_ms` is batch 1) [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub latency_batch: Option<usize>,
    /// A latency table (`nasforge latency profile`): `latency_ms` is predicted from it before
    /// training instead of measured after, so a latency constraint skips archs untrained.
    #[arg(long, value_name = "FILE")]
    pub latency_table: Option<PathBuf>,
    /// Zero-cost proxies to score every trial's network with at initialisation, stored as
    /// `proxy_<name>` metrics (report plots them against the objective): a comma-separated list
    /// of synflow, snip, grad_norm, fisher, jacob_cov, naswot, params, macs, or `all`.
    #[arg(long)]
    pub record_proxies: Option<String>,
    /// Trials to finish (a resumed run counts the ones it has) [default: 40 on data, 100 on tables].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub trials: Option<usize>,
    /// Seed of the run: split, strategy and training all derive from it [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = super::non_negative::<u64>)]
    pub seed: Option<u64>,
    /// Training epochs per candidate during the search [default: 10].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub epochs: Option<usize>,
    /// Batch size [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub batch_size: Option<usize>,
    /// Base learning rate [default: 0.05 for sgd, 0.001 for adam/adamw].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw [default: sgd; adamw for the transformer space].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SGD momentum [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Nesterov momentum for SGD [default: true].
    #[arg(long)]
    pub nesterov: Option<bool>,
    /// Weight decay [default: 5e-4 (sgd), 0 (adam), 0.01 (adamw)].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: cosine, step or constant [default: cosine].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Epochs between decays for `--schedule step` [default: 10].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub step_every: Option<usize>,
    /// Decay factor for `--schedule step` [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub step_gamma: Option<f64>,
    /// Epochs of linear learning-rate warm-up [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = super::non_negative::<usize>)]
    pub warmup_epochs: Option<usize>,
    /// Label smoothing for classification [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub label_smoothing: Option<f64>,
    /// Clip the global gradient norm (0 = off) [default: 0; 1 for the transformer space; 5 for
    /// a one-shot method's supernet].
    #[arg(long, allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    /// Random-crop augmentation on images (zero padding of 1/8 of the side) [default: false].
    #[arg(long)]
    pub augment: Option<bool>,
    /// With --augment, also flip images horizontally (wrong for digits and text) [default: false].
    #[arg(long)]
    pub flip: Option<bool>,
    /// Epochs of final training [default: 40].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub final_epochs: Option<usize>,
    /// Seeds of final training [default: 3].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub final_seeds: Option<usize>,
    /// Compute device: cpu [default: cpu]; cuda, wgpu, vulkan in a build with that cargo feature.
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for training (0 = all cores; with --workers, the cores shared between
    /// the workers) [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = super::non_negative::<usize>)]
    pub threads: Option<usize>,
    /// Processes that search together on this machine, each training one trial at a time
    /// on its share of the cores; they share the run's study (docs/WORKERS.md) [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub workers: Option<usize>,
    /// Keep the study in this PostgreSQL database instead of the run directory's study.db,
    /// so that workers on other machines can join it (`nasforge worker`; docs/WORKERS.md):
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (the password may come from PGPASSWORD).
    #[arg(long)]
    pub storage: Option<String>,
    /// The study's name in --storage (each search in one database needs its own).
    #[arg(long)]
    pub study: Option<String>,
}

fn strategy_help() -> String {
    let names: Vec<&str> = nasforge_core::strategy::STRATEGIES
        .iter()
        .map(|s| s.name)
        .collect();
    super::names_help(
        "Search strategy",
        &names,
        Some("rea, or mo-rea with several objectives"),
    )
}

fn objective_help() -> String {
    let names: Vec<&str> = nasforge_core::study::METRICS
        .iter()
        .map(|m| m.name)
        .collect();
    format!(
        "Metric to optimise, `METRIC` or `METRIC:max|min`; repeat it for a multi-objective search (`--objective valid_accuracy --objective params:min`). Metrics: {}, or a table's column [default: valid_accuracy (valid_mse for regression); test_acc_200ep for tables]",
        names.join(", ")
    )
}

fn scheduler_help() -> String {
    let names: Vec<&str> = nasforge_core::scheduler::SCHEDULERS
        .iter()
        .map(|s| s.name)
        .collect();
    super::names_help(
        "Multi-fidelity scheduler instead of a strategy (rungs from --min-epochs to --epochs by factors of eta)",
        &names,
        None,
    )
}

fn stopper_help() -> String {
    let names: Vec<&str> = nasforge_core::stopper::STOPPERS
        .iter()
        .map(|s| s.0)
        .collect();
    super::names_help(
        "Stop unpromising trials early from their learning curves",
        &names,
        None,
    )
}

macro_rules! overlay {
    ($base:ident, $over:ident; $($opt:ident),*; $($vec:ident),*) => {{
        $( if $over.$opt.is_some() { $base.$opt = $over.$opt.clone(); } )*
        $( if !$over.$vec.is_empty() { $base.$vec = $over.$vec.clone(); } )*
    }};
}

macro_rules! conflicts {
    ($stored:ident, $given:ident, $out:ident; $($opt:ident),*; $($vec:ident),*) => {{
        $( if $given.$opt.is_some() && $given.$opt != $stored.$opt { $out.push(format!("--{}", stringify!($opt).replace('_', "-"))); } )*
        $( if !$given.$vec.is_empty() && $given.$vec != $stored.$vec { $out.push(format!("--{}", stringify!($vec).replace('_', "-"))); } )*
    }};
}

impl SearchConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| super::BadInput(format!("{}: {e}", path.display())).into())
    }

    /// `self` with every setting that `over` gives replaced.
    pub fn overlay(mut self, over: &SearchConfig) -> Self {
        overlay!(self, over;
            space, strategy, method, supernet_epochs, arch_lr, collapse_guard, darts_order, distill, evaluator, table, direction, data, target, task, image, labels,
            valid_fraction, test_fraction, trials, seed, epochs, batch_size, lr, optimizer, momentum, nesterov,
            weight_decay, schedule, step_every, step_gamma, warmup_epochs, label_smoothing, grad_clip, augment,
            flip, final_epochs, final_seeds, device, threads, workers, storage, study, scheduler, min_epochs, stopper, epoch_budget, impute, record_proxies, latency_table, latency_batch, text_column, seq_len, tokens, max_vocab;
            space_param, strategy_param, drop, scheduler_param, stopper_param, objective, constraint, budget);
        self
    }

    /// Flags of `given` that differ from this stored config (`--trials` may change).
    pub fn resume_conflicts(&self, given: &SearchConfig) -> Vec<String> {
        let mut out = Vec::new();
        conflicts!(self, given, out;
            space, strategy, method, supernet_epochs, arch_lr, collapse_guard, darts_order, distill, evaluator, table, direction, data, target, task, image, labels,
            valid_fraction, test_fraction, seed, epochs, batch_size, lr, optimizer, momentum, nesterov,
            weight_decay, schedule, step_every, step_gamma, warmup_epochs, label_smoothing, grad_clip, augment,
            flip, final_epochs, final_seeds, device, workers, storage, study, scheduler, min_epochs, stopper, record_proxies, impute, latency_table, latency_batch, text_column, seq_len, tokens, max_vocab;
            space_param, strategy_param, drop, scheduler_param, stopper_param, objective, constraint, budget);
        out
    }

    /// The one-shot method `--method` names (`None` for `standard`), checked against the
    /// settings it cannot work with.
    pub fn one_shot(&self) -> Result<Option<OneShot>> {
        let method = match self.method.as_deref() {
            None | Some("standard") => {
                if self.supernet_epochs.is_some() {
                    return bad_input(
                        "--supernet-epochs sets a one-shot method's supernet training; add --method spos, fairnas, rsps, darts, gdas, enas or ofa",
                    );
                }
                if self.arch_lr.is_some()
                    || self.collapse_guard.is_some()
                    || self.darts_order.is_some()
                {
                    return bad_input(
                        "--arch-lr, --collapse-guard and --darts-order set the architecture parameters of --method darts, gdas or enas; add one",
                    );
                }
                if !self.budget.is_empty() || self.distill.is_some() {
                    return bad_input(
                        "--budget and --distill set a once-for-all supernet's training and picks; add --method ofa",
                    );
                }
                return Ok(None);
            }
            Some("spos") => OneShot::Spos,
            Some("fairnas") => OneShot::Fairnas,
            Some("rsps") => OneShot::Rsps,
            Some("darts") => OneShot::Darts,
            Some("gdas") => OneShot::Gdas,
            Some("enas") => OneShot::Enas,
            Some("ofa") => OneShot::Ofa,
            Some(other) => return bad_input(format!("--method `{other}` is not {METHODS}")),
        };
        let name = method.name();
        let refuse =
            |what: &str, why: &str| bad_input(format!("--method {name} {why}; drop {what}"));
        match (method, self.budget.is_empty()) {
            (OneShot::Ofa, true) => {
                return bad_input(
                    "--method ofa picks one sub-network per budget: give at least one --budget METRIC<=LIMIT (params, macs or latency_ms), e.g. --budget params<=20000",
                )
            }
            (OneShot::Ofa, false) => {
                self.budgets()?;
            }
            (_, false) => return refuse("--budget", "has no budgets (--method ofa has)"),
            (_, true) => {}
        }
        if method != OneShot::Ofa && self.distill.is_some() {
            return refuse(
                "--distill",
                "has no larger sub-network to distil from (--method ofa has)",
            );
        }
        if self.evaluator.as_deref() == Some("table") || self.table.is_some() {
            return refuse(
                "--table/--evaluator table",
                "trains a supernet on data: a benchmark table has no weights to share",
            );
        }
        if self.scheduler.is_some() || self.stopper.is_some() || self.epoch_budget.is_some() {
            return refuse(
                "--scheduler, --stopper and --epoch-budget",
                "scores archs with inherited weights, without training epochs to schedule or stop",
            );
        }
        if self.record_proxies.is_some() {
            return refuse(
                "--record-proxies",
                "scores trained weights, not networks at initialisation",
            );
        }
        if method.relaxed() && self.strategy.is_some() {
            return refuse(
                "--strategy",
                "derives its archs from the architecture parameters it learns, one per epoch",
            );
        }
        if !method.relaxed() && self.arch_lr.is_some() {
            return refuse("--arch-lr", "has no architecture parameters");
        }
        if let Some(lr) = self.arch_lr {
            if !(lr.is_finite() && lr > 0.0) {
                return bad_input(format!("--arch-lr must be a positive number, got {lr}"));
            }
        }
        match (method, self.darts_order) {
            (_, None) | (OneShot::Darts, Some(1 | 2)) => {}
            (OneShot::Darts, Some(n)) => {
                return bad_input(format!("--darts-order is 1 or 2, got {n}"))
            }
            (_, Some(_)) => return refuse("--darts-order", "is not DARTS"),
        }
        match (method, self.collapse_guard.as_deref()) {
            (_, None) | (OneShot::Darts, Some("beta-decay" | "aux-skip" | "none")) => {}
            (OneShot::Darts, Some(other)) => {
                return bad_input(format!(
                    "--collapse-guard `{other}` is not beta-decay, aux-skip or none"
                ))
            }
            (_, Some(_)) => {
                return refuse(
                    "--collapse-guard",
                    "does not collapse as DARTS does (the guard is DARTS')",
                )
            }
        }
        if method == OneShot::Rsps && self.strategy.as_deref().is_some_and(|s| s != "random") {
            return refuse(
                "--strategy",
                "is random search on a supernet (use --method spos to search it with another strategy)",
            );
        }
        Ok(Some(method))
    }

    /// The `--budget`s of --method ofa, parsed: each `METRIC<=LIMIT` on params, macs or
    /// latency_ms.
    pub fn budgets(&self) -> Result<Vec<Constraint>> {
        let mut out = Vec::new();
        for text in &self.budget {
            let b = Constraint::parse(text).map_err(|e| super::BadInput(e.to_string()))?;
            let metrics = [
                study::metric::PARAMS,
                study::metric::MACS,
                study::metric::LATENCY_MS,
            ];
            if !metrics.contains(&b.metric.as_str()) || b.bound != Bound::AtMost {
                return bad_input(format!(
                    "--budget `{text}`: a budget is METRIC<=LIMIT with METRIC params, macs or latency_ms"
                ));
            }
            out.push(b);
        }
        Ok(out)
    }

    /// The objectives and constraints, parsed ([`parse_goal`]).
    pub fn goal(&self, fallback: Option<Direction>) -> Result<Goal> {
        parse_goal(
            &self.objective,
            self.direction.as_deref(),
            &self.constraint,
            fallback,
        )
    }

    /// Checks every setting that can be checked without data, so that a command with a bad
    /// value is refused before it writes anything. Names are the flags' (`--trials`); the TOML
    /// keys are the same words with `_`.
    pub fn validate(&self) -> Result<()> {
        if let Some(device) = &self.device {
            nasforge_nn::device::DeviceKind::parse(device)?;
        }
        let positive = [
            ("trials", self.trials.map(|n| n as u64)),
            ("epochs", self.epochs.map(|n| n as u64)),
            ("batch-size", self.batch_size.map(|n| n as u64)),
            ("final-epochs", self.final_epochs.map(|n| n as u64)),
            ("final-seeds", self.final_seeds.map(|n| n as u64)),
            ("min-epochs", self.min_epochs.map(u64::from)),
            ("epoch-budget", self.epoch_budget),
            ("step-every", self.step_every.map(|n| n as u64)),
            ("latency-batch", self.latency_batch.map(|n| n as u64)),
            ("supernet-epochs", self.supernet_epochs.map(|n| n as u64)),
            ("workers", self.workers.map(|n| n as u64)),
            ("seq-len", self.seq_len.map(|n| n as u64)),
            ("max-vocab", self.max_vocab.map(|n| n as u64)),
        ];
        for (flag, value) in positive {
            if value == Some(0) {
                return bad_input(format!("--{flag} must be at least 1, got 0"));
            }
        }
        if let (Some(min), epochs) = (self.min_epochs, self.epochs.unwrap_or(10)) {
            if min as usize > epochs {
                return bad_input(format!(
                    "--min-epochs {min} is more than --epochs {epochs}: a scheduler's rungs go from --min-epochs up to --epochs"
                ));
            }
        }
        // (flag, value, low, high, low included, high included)
        let ranges = [
            ("lr", self.lr, 0.0, f64::INFINITY, false, false),
            ("momentum", self.momentum, 0.0, 1.0, true, false),
            (
                "weight-decay",
                self.weight_decay,
                0.0,
                f64::INFINITY,
                true,
                false,
            ),
            ("step-gamma", self.step_gamma, 0.0, 1.0, false, true),
            (
                "label-smoothing",
                self.label_smoothing,
                0.0,
                1.0,
                true,
                false,
            ),
            ("grad-clip", self.grad_clip, 0.0, f64::INFINITY, true, false),
            (
                "valid-fraction",
                self.valid_fraction,
                0.0,
                1.0,
                false,
                false,
            ),
            ("test-fraction", self.test_fraction, 0.0, 1.0, false, false),
        ];
        for (flag, value, lo, hi, lo_in, hi_in) in ranges {
            let Some(v) = value else { continue };
            let above = if lo_in { v >= lo } else { v > lo };
            let below = if hi_in { v <= hi } else { v < hi };
            if !(v.is_finite() && above && below) {
                let range = match (hi.is_finite(), lo_in) {
                    (false, true) => format!("at least {lo}"),
                    (false, false) => format!("above {lo}"),
                    (true, _) => format!(
                        "in {}{lo}, {hi}{}",
                        if lo_in { "[" } else { "(" },
                        if hi_in { "]" } else { ")" }
                    ),
                };
                return bad_input(format!("--{flag} must be {range}, got {v}"));
            }
        }
        let (valid, test) = (
            self.valid_fraction.unwrap_or(0.15),
            self.test_fraction.unwrap_or(0.15),
        );
        if valid + test >= 1.0 {
            return bad_input(format!(
                "--valid-fraction {valid} and --test-fraction {test} leave no training rows; together they must stay below 1"
            ));
        }
        let goal = self.goal(Some(Direction::Maximize))?;
        for (i, o) in goal.objectives.iter().enumerate() {
            if goal.objectives[..i].iter().any(|p| p.metric == o.metric) {
                return bad_input(format!("--objective `{}` is given twice", o.metric));
            }
        }
        if let Some(image) = &self.image {
            parse_image(image)?;
        }
        self.one_shot()?;
        self.check_workers()?;
        Ok(())
    }

    /// How many processes search together.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or(1)
    }

    /// Whether the study is shared between workers: several on this machine, or a server
    /// that others may join.
    pub fn shared(&self) -> bool {
        self.workers() > 1 || self.storage.is_some()
    }

    /// Several workers share trials through the study: what needs one process is refused.
    fn check_workers(&self) -> Result<()> {
        let n = self.workers();
        match (&self.storage, &self.study) {
            (Some(url), Some(name)) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return bad_input(format!(
                        "--storage takes a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE), got `{}`; a SQLite study lives in the run directory without --storage",
                        url.split('@').next_back().unwrap_or(url)
                    ));
                }
                if name.trim().is_empty() || name.chars().any(char::is_control) {
                    return bad_input("--study needs a name (letters, digits, - or _)");
                }
            }
            (Some(_), None) => {
                return bad_input(
                    "--storage needs --study NAME: the name that workers join (`nasforge worker --storage URL --study NAME`)",
                )
            }
            (None, Some(_)) => {
                return bad_input(
                    "--study names a study in a --storage database; without --storage the study is the run directory's study.db",
                )
            }
            (None, None) => {}
        }
        if !self.shared() {
            return Ok(());
        }
        if n > MAX_WORKERS {
            return bad_input(format!(
                "--workers {n} is more than {MAX_WORKERS}; for more, start `nasforge worker` on several machines (docs/WORKERS.md)"
            ));
        }
        let who = if n > 1 {
            format!("--workers {n}")
        } else {
            "--storage".to_string()
        };
        let alone = if self.method.as_deref().is_some_and(|m| m != "standard") {
            Some("a one-shot --method trains one supernet in one process")
        } else if self.epoch_budget.is_some() {
            Some("--epoch-budget counts the epochs of one process's trials")
        } else if self.latency_table.is_some() {
            Some("--latency-table predicts latency in one process")
        } else if self.scheduler.as_deref().is_some_and(|s| s != "asha") {
            Some("this --scheduler waits for each rung to fill in the order it asked; asha is the asynchronous one")
        } else {
            None
        };
        match alone {
            Some(why) => bad_input(format!(
                "{who} shares the search between processes, but {why}; drop {} or that setting",
                who.split(' ').next().unwrap_or("--workers")
            )),
            None => Ok(()),
        }
    }

    /// Writes this config as TOML with a header comment, atomically. TOML integers are i64: a
    /// larger number (a `--seed` above 2^63 - 1, say) is an error naming its flag.
    pub fn write(&self, path: &Path, header: &str) -> Result<()> {
        let numbers = [
            ("seed", self.seed.map(u128::from)),
            ("epoch-budget", self.epoch_budget.map(u128::from)),
            ("trials", self.trials.map(|v| v as u128)),
            ("epochs", self.epochs.map(|v| v as u128)),
            ("batch-size", self.batch_size.map(|v| v as u128)),
            ("step-every", self.step_every.map(|v| v as u128)),
            ("warmup-epochs", self.warmup_epochs.map(|v| v as u128)),
            ("final-epochs", self.final_epochs.map(|v| v as u128)),
            ("final-seeds", self.final_seeds.map(|v| v as u128)),
            ("supernet-epochs", self.supernet_epochs.map(|v| v as u128)),
            ("threads", self.threads.map(|v| v as u128)),
            ("workers", self.workers.map(|v| v as u128)),
        ];
        for (flag, v) in numbers {
            if let Some(v) = v.filter(|&v| v > i64::MAX as u128) {
                return bad_input(format!(
                    "--{flag} {v} is too large: the run's config.toml holds integers up to {}",
                    i64::MAX
                ));
            }
        }
        let text = format!("{header}\n{}", toml::to_string_pretty(self)?);
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// The most `--workers` on one machine.
pub const MAX_WORKERS: usize = 64;

/// The `--method` names, for messages.
const METHODS: &str = "standard, spos, fairnas, rsps, darts, gdas, enas or ofa";

/// A one-shot method of `--method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneShot {
    /// Single-path one-shot: a uniformly sampled supernet, searched by any strategy.
    Spos,
    /// FairNAS: the single-path supernet trained with strictly fair sampling (every option of
    /// every choice once per step), searched by any strategy.
    Fairnas,
    /// Random search with parameter sharing: the same supernet, searched at random.
    Rsps,
    /// DARTS (first order) with architecture parameters.
    Darts,
    /// GDAS: Gumbel-sampled single paths with architecture parameters.
    Gdas,
    /// ENAS: a REINFORCE controller samples the paths the shared weights train.
    Enas,
    /// Once-for-all: an elastic supernet trained by progressive shrinking, searched by any
    /// strategy, one sub-network picked per budget.
    Ofa,
}

impl OneShot {
    /// Its `--method` name.
    pub fn name(self) -> &'static str {
        match self {
            OneShot::Spos => "spos",
            OneShot::Fairnas => "fairnas",
            OneShot::Rsps => "rsps",
            OneShot::Darts => "darts",
            OneShot::Gdas => "gdas",
            OneShot::Enas => "enas",
            OneShot::Ofa => "ofa",
        }
    }

    /// Whether it learns architecture parameters and derives its archs from them (DARTS,
    /// GDAS) rather than searching the trained supernet with a strategy.
    pub fn relaxed(self) -> bool {
        matches!(self, OneShot::Darts | OneShot::Gdas | OneShot::Enas)
    }
}

/// `--objective`s, `--direction` and `--constraint`s as a goal: `--direction` applies to a
/// single objective given without one; `fallback` is the direction of a single objective
/// whose name says nothing (a table column). No objective is an empty goal.
pub fn parse_goal(
    objective: &[String],
    direction: Option<&str>,
    constraint: &[String],
    fallback: Option<Direction>,
) -> Result<Goal> {
    let direction = direction.map(Direction::parse).transpose()?;
    if direction.is_some() && objective.len() > 1 {
        return bad_input(
            "--direction applies to a single objective; with several, give each its own: --objective valid_accuracy:max --objective params:min",
        );
    }
    let default = direction.or(if objective.len() == 1 { fallback } else { None });
    let objectives = objective
        .iter()
        .map(|o| Objective::parse(o, default))
        .collect::<nasforge_core::Result<Vec<_>>>()?;
    let constraints = constraint
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<nasforge_core::Result<Vec<_>>>()?;
    Ok(Goal {
        objectives,
        constraints,
    })
}

/// Reads a TOML value that is one string or a list of strings (`objective = "valid_accuracy"`
/// as runs before several objectives wrote it, or `objective = ["valid_accuracy", "params:min"]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Parses `HxWxC`.
pub fn parse_image(s: &str) -> Result<[usize; 3]> {
    let parts: Vec<Option<usize>> = s
        .split('x')
        .map(|p| p.trim().parse().ok().filter(|&n| n > 0))
        .collect();
    match parts[..] {
        [Some(h), Some(w), Some(c)] => {
            // Bounded like a space's `input`: rows of h * w * c values are allocated from it.
            let max = nasforge_core::MAX_INPUT_VALUES;
            match h.checked_mul(w).and_then(|hw| hw.checked_mul(c)) {
                Some(n) if n <= max => Ok([h, w, c]),
                _ => bad_input(format!(
                    "--image `{s}` is too large for HxWxC: an image may hold at most {max} values"
                )),
            }
        }
        _ => bad_input(format!(
            "--image `{s}` is not HxWxC with positive numbers, e.g. 28x28x1"
        )),
    }
}

/// The commented starting config that `nasforge init` writes, with the registered strategies,
/// schedulers and stoppers listed.
pub fn init_template() -> String {
    let names = |v: Vec<&str>| v.join(", ");
    INIT_TEMPLATE
        .replace(
            "{strategies}",
            &names(
                nasforge_core::strategy::STRATEGIES
                    .iter()
                    .map(|s| s.name)
                    .collect(),
            ),
        )
        .replace(
            "{schedulers}",
            &names(
                nasforge_core::scheduler::SCHEDULERS
                    .iter()
                    .map(|s| s.name)
                    .collect(),
            ),
        )
        .replace(
            "{stoppers}",
            &names(
                nasforge_core::stopper::STOPPERS
                    .iter()
                    .map(|s| s.0)
                    .collect(),
            ),
        )
}

const INIT_TEMPLATE: &str = r#"# nasforge search configuration. Run it with:  nasforge search --config run.toml
# Every key is also a command-line flag (`batch_size` is `--batch-size`); flags win over this file.
# Remove the `#` of a line to set it; the value shown is the default.

# --- Data -----------------------------------------------------------------------------------
# data = "data.csv"            # CSV (.csv, .csv.gz), IDX images file, or a folder of class folders;
                               # without it, the embedded 8x8 digits
# target = "label"             # the CSV column to predict
# task = "classification"      # or "regression" (default: decided from the target column), or
                               # "lm": a language model of the plain-text file `data`
# image = "28x28x1"            # the CSV's features are an HxWxC image
# drop = ["id"]                # CSV columns to ignore
# impute = "median"            # fill empty/NaN feature cells: "median" or "mean" of the training
                               # rows (kept in the model); without it a missing cell is an error
# text_column = "text"         # classify passages of this CSV column (space transformer)
# seq_len = 256                # tokens per passage (default: holds 95% of training passages)
# tokens = "char"              # "char" or "byte"
# max_vocab = 1024             # the most token ids a vocabulary may hold
# valid_fraction = 0.15        # validation split (what the search sees)
# test_fraction = 0.15         # test split (used once, by final training)

# --- Search ---------------------------------------------------------------------------------
# space = "nb201"              # nb201, darts, macro (images), mlp (tables) or transformer (text)
# space_param = ["channels=16", "cells=1"]
# strategy = "rea"             # {strategies}
# strategy_param = ["population=10", "sample_size=3"]
# scheduler = "hyperband"      # multi-fidelity instead of a strategy: {schedulers}
# scheduler_param = ["eta=3"]
# min_epochs = 1               # lowest rung of a scheduler (the top rung is `epochs`)
# stopper = "curve"            # stop unpromising trials early: {stoppers}
# epoch_budget = 400           # stop once the trials trained this many epochs in total
# record_proxies = "synflow"   # zero-cost proxies stored with every trial (the report plots them)
# method = "standard"          # or one-shot: "spos" (a weight-sharing supernet searched by the
                               # strategy), "fairnas" (its strictly fair training),
                               # "rsps" (the spos supernet searched at random),
                               # "darts", "gdas", "enas" (architecture parameters; an arch per epoch),
                               # "ofa" (once-for-all on mlp, macro: a sub-network per budget)
# budget = ["params<=20000", "params<=100000"]  # ofa: METRIC<=LIMIT on params, macs, latency_ms
# distill = false              # ofa: smaller sub-networks also learn from their largest version
# supernet_epochs = 30         # supernet training of a one-shot method
# arch_lr = 0.003              # darts / gdas / enas: learning rate of the architecture parameters
# collapse_guard = "beta-decay"  # darts: β-DARTS' regulariser against collapse, "aux-skip", "none"
# darts_order = 1              # darts: 2 for the second-order α gradient
# trials = 40
# seed = 0
# objective = "valid_accuracy" # valid_mse for regression; a list for a Pareto front,
#                                e.g. ["valid_accuracy", "latency_ms:min"] (params, macs, peak_memory_mb too)
# constraint = ["params<=100000"]  # METRIC<=LIMIT or >=; params, macs, peak_memory_mb judged before training
# latency_table = "latency.json"  # `nasforge latency profile`: predict latency_ms before training
# latency_batch = 64              # the second measured latency, latency_ms_b64

# --- Training of each candidate ---------------------------------------------------------------
# epochs = 10
# batch_size = 64
# optimizer = "sgd"            # sgd, adam, adamw (default adamw for the transformer space)
# lr = 0.05
# momentum = 0.9
# nesterov = true
# weight_decay = 0.0005
# schedule = "cosine"          # cosine, step, constant
# warmup_epochs = 1
# label_smoothing = 0.0
# grad_clip = 0.0              # global gradient-norm clipping; 0 is off (1 for transformer, 5 for a supernet)
# augment = false              # random crop for images
# flip = false                 # with augment: horizontal flips too (not for digits or text)

# --- Final training of the best arch from scratch ----------------------------------------------
# final_epochs = 40
# final_seeds = 3

# --- Machine ------------------------------------------------------------------------------------
# device = "cpu"
# threads = 0                  # 0 = all cores (shared between the workers)
# workers = 1                  # processes searching together on this machine
# storage = "postgres://nasforge@db-host:5432/nasforge"   # a shared study (docs/WORKERS.md)
# study = "digits-1"           # its name in that database
"#;

#[cfg(test)]
#[path = "config_proptests.rs"]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_every_key_is_a_field() {
        // Uncomment every key: the file must still parse (no typos in key names).
        let template = init_template();
        assert!(
            template.contains("bananas") && template.contains("asha") && !template.contains('{')
        );
        let uncommented: String = template
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .map(|l| format!("{}\n", l.split("  #").next().unwrap()))
            .collect();
        let cfg: SearchConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(cfg.epochs, Some(10));
        assert_eq!(cfg.space_param, vec!["channels=16", "cells=1"]);
        assert!(
            toml::from_str::<SearchConfig>("epoch = 3").is_err(),
            "unknown keys are errors"
        );
    }

    #[test]
    fn flags_win_over_the_file_and_resume_conflicts_are_named() {
        let file = SearchConfig {
            epochs: Some(3),
            lr: Some(0.1),
            ..Default::default()
        };
        let flags = SearchConfig {
            epochs: Some(5),
            ..Default::default()
        };
        let merged = file.clone().overlay(&flags);
        assert_eq!(merged.epochs, Some(5));
        let proxies = SearchConfig {
            record_proxies: Some("synflow".into()),
            ..Default::default()
        };
        assert_eq!(
            file.clone().overlay(&proxies).record_proxies.as_deref(),
            Some("synflow"),
            "every flag overlays a config file"
        );
        assert_eq!(merged.lr, Some(0.1));
        let given = SearchConfig {
            lr: Some(0.2),
            trials: Some(9),
            impute: Some("median".into()),
            ..Default::default()
        };
        assert_eq!(merged.resume_conflicts(&given), vec!["--lr", "--impute"]);
        let imputing = file.overlay(&SearchConfig {
            impute: Some("mean".into()),
            ..Default::default()
        });
        assert_eq!(imputing.impute.as_deref(), Some("mean"));
    }
}
