//! The search configuration: one struct that is both the command-line flags and the TOML file
//! (`--config run.toml`, `nasforge init`), so every flag has a TOML key of the same name.
//!
//! Layers, later wins: built-in defaults < `--config` file < flags. A run directory stores the
//! fully resolved configuration as `config.toml`; `--resume` reads it back.

use super::bad_input;
use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Flags of `nasforge search` (all optional; see `nasforge init` for the commented defaults).
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Search space: nb201, darts, macro or mlp [default: nb201 for images, mlp for tables].
    #[arg(long)]
    pub space: Option<String>,
    /// Space size parameter `key=value` (repeatable), e.g. `channels=16`.
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_param: Vec<String>,
    /// Search strategy: random, grid, rea, ls [default: rea].
    #[arg(long)]
    pub strategy: Option<String>,
    /// Strategy parameter `key=value` (repeatable), e.g. `population=20`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategy_param: Vec<String>,
    /// Multi-fidelity scheduler instead of a strategy: sh, hyperband, asha or bohb. Rungs go
    /// from --min-epochs to --epochs by factors of eta.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Scheduler parameter `key=value` (repeatable), e.g. `eta=3`.
    #[arg(long = "scheduler-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_param: Vec<String>,
    /// Lowest rung of a scheduler, in epochs [default: 1].
    #[arg(long)]
    pub min_epochs: Option<u32>,
    /// Stop unpromising trials early from their learning curves: median or curve.
    #[arg(long)]
    pub stopper: Option<String>,
    /// Stopper parameter `key=value` (repeatable), e.g. `p=0.05`.
    #[arg(long = "stopper-param", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopper_param: Vec<String>,
    /// End the search once its trials have trained this many epochs in total (may be raised on --resume).
    #[arg(long)]
    pub epoch_budget: Option<u64>,
    /// How candidates are measured: `train` (on data) or `table` (benchmark look-up)
    /// [default: table when --table is given, else train].
    #[arg(long)]
    pub evaluator: Option<String>,
    /// Benchmark table for `--evaluator table`.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Metric to optimise [default: valid_accuracy (valid_mse for regression); test_acc_200ep for tables].
    #[arg(long)]
    pub objective: Option<String>,
    /// `maximize` or `minimize` the objective [default: from the objective].
    #[arg(long)]
    pub direction: Option<String>,
    /// Data: a CSV (.csv/.csv.gz), an IDX images file, or an image folder [default: the embedded 8x8 digits].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target column of a CSV [default: label].
    #[arg(long)]
    pub target: Option<String>,
    /// `classification` or `regression` [default: from the target column].
    #[arg(long)]
    pub task: Option<String>,
    /// The CSV's features are an HxWxC image (e.g. 28x28x1); for image folders, resize to it.
    #[arg(long)]
    pub image: Option<String>,
    /// A CSV column to ignore (repeatable).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
    /// The labels file of IDX images [default: found beside the images file].
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Fraction of rows for validation [default: 0.15].
    #[arg(long)]
    pub valid_fraction: Option<f64>,
    /// Fraction of rows for the test split, used only by final training [default: 0.15].
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// Zero-cost proxies to score every trial's network with at initialisation, stored as
    /// `proxy_<name>` metrics (report plots them against the objective): a comma-separated list
    /// of synflow, snip, grad_norm, fisher, jacob_cov, naswot, params, macs, or `all`.
    #[arg(long)]
    pub record_proxies: Option<String>,
    /// Trials to finish (a resumed run counts the ones it has) [default: 40 on data, 100 on tables].
    #[arg(long)]
    pub trials: Option<usize>,
    /// Seed of the run: split, strategy and training all derive from it [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training epochs per candidate during the search [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate [default: 0.05 for sgd, 0.001 for adam/adamw].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw [default: sgd].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SGD momentum [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Nesterov momentum for SGD [default: true].
    #[arg(long)]
    pub nesterov: Option<bool>,
    /// Weight decay [default: 5e-4 (sgd), 0 (adam), 0.01 (adamw)].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: cosine, step or constant [default: cosine].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Epochs between decays for `--schedule step` [default: 10].
    #[arg(long)]
    pub step_every: Option<usize>,
    /// Decay factor for `--schedule step` [default: 0.1].
    #[arg(long)]
    pub step_gamma: Option<f64>,
    /// Epochs of linear learning-rate warm-up [default: 1].
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// Label smoothing for classification [default: 0].
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Clip the global gradient norm (0 = off) [default: 0].
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Random-crop augmentation on images (zero padding of 1/8 of the side) [default: false].
    #[arg(long)]
    pub augment: Option<bool>,
    /// With --augment, also flip images horizontally (wrong for digits and text) [default: false].
    #[arg(long)]
    pub flip: Option<bool>,
    /// Epochs of final training [default: 40].
    #[arg(long)]
    pub final_epochs: Option<usize>,
    /// Seeds of final training [default: 3].
    #[arg(long)]
    pub final_seeds: Option<usize>,
    /// Compute device: cpu [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for training (0 = all cores) [default: 0].
    #[arg(long)]
    pub threads: Option<usize>,
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
            space, strategy, evaluator, table, objective, direction, data, target, task, image, labels,
            valid_fraction, test_fraction, trials, seed, epochs, batch_size, lr, optimizer, momentum, nesterov,
            weight_decay, schedule, step_every, step_gamma, warmup_epochs, label_smoothing, grad_clip, augment,
            flip, final_epochs, final_seeds, device, threads, scheduler, min_epochs, stopper, epoch_budget;
            space_param, strategy_param, drop, scheduler_param, stopper_param);
        self
    }

    /// Flags of `given` that differ from this stored config (`--trials` may change).
    pub fn resume_conflicts(&self, given: &SearchConfig) -> Vec<String> {
        let mut out = Vec::new();
        conflicts!(self, given, out;
            space, strategy, evaluator, table, objective, direction, data, target, task, image, labels,
            valid_fraction, test_fraction, seed, epochs, batch_size, lr, optimizer, momentum, nesterov,
            weight_decay, schedule, step_every, step_gamma, warmup_epochs, label_smoothing, grad_clip, augment,
            flip, final_epochs, final_seeds, device, scheduler, min_epochs, stopper, record_proxies;
            space_param, strategy_param, drop, scheduler_param, stopper_param);
        out
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
            ("threads", self.threads.map(|v| v as u128)),
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

/// The commented starting config that `nasforge init` writes.
pub const INIT_TEMPLATE: &str = r#"# nasforge search configuration. Run it with:  nasforge search --config run.toml
# Every key is also a command-line flag (`batch_size` is `--batch-size`); flags win over this file.
# Remove the `#` of a line to set it; the value shown is the default.

# --- Data -----------------------------------------------------------------------------------
# data = "data.csv"            # CSV (.csv, .csv.gz), IDX images file, or a folder of class folders;
                               # without it, the embedded 8x8 digits
# target = "label"             # the CSV column to predict
# task = "classification"      # or "regression" (default: decided from the target column)
# image = "28x28x1"            # the CSV's features are an HxWxC image
# drop = ["id"]                # CSV columns to ignore
# valid_fraction = 0.15        # validation split (what the search sees)
# test_fraction = 0.15         # test split (used once, by final training)

# --- Search ---------------------------------------------------------------------------------
# space = "nb201"              # nb201, darts, macro (images) or mlp (tables)
# space_param = ["channels=16", "cells=1"]
# strategy = "rea"             # random, grid, rea, ls
# strategy_param = ["population=10", "sample_size=3"]
# scheduler = "hyperband"      # sh, hyperband, asha, bohb: multi-fidelity instead of a strategy
# scheduler_param = ["eta=3"]
# min_epochs = 1               # lowest rung of a scheduler (the top rung is `epochs`)
# stopper = "curve"            # median or curve: stop unpromising trials early
# epoch_budget = 400           # stop once the trials trained this many epochs in total
# record_proxies = "synflow"   # zero-cost proxies stored with every trial (the report plots them)
# trials = 40
# seed = 0
# objective = "valid_accuracy" # valid_mse for regression

# --- Training of each candidate ---------------------------------------------------------------
# epochs = 10
# batch_size = 64
# optimizer = "sgd"            # sgd, adam, adamw
# lr = 0.05
# momentum = 0.9
# nesterov = true
# weight_decay = 0.0005
# schedule = "cosine"          # cosine, step, constant
# warmup_epochs = 1
# label_smoothing = 0.0
# grad_clip = 0.0              # global gradient-norm clipping; 0 is off
# augment = false              # random crop for images
# flip = false                 # with augment: horizontal flips too (not for digits or text)

# --- Final training of the best arch from scratch ----------------------------------------------
# final_epochs = 40
# final_seeds = 3

# --- Machine ------------------------------------------------------------------------------------
# device = "cpu"
# threads = 0                  # 0 = all cores
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
        let uncommented: String = INIT_TEMPLATE
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
        assert_eq!(merged.lr, Some(0.1));
        let given = SearchConfig {
            lr: Some(0.2),
            trials: Some(9),
            ..Default::default()
        };
        assert_eq!(merged.resume_conflicts(&given), vec!["--lr"]);
    }
}
