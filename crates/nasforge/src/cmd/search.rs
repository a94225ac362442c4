//! `nasforge search`: one stored study.
//!
//! A run directory holds `config.toml` (the resolved configuration) and `study.db` (SQLite).
//! `--resume` reopens both and continues without redoing any finished trial.

use super::{bad_input, build_space};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nasforge_core::space::SPACE_NAMES;
use nasforge_core::strategy;
use nasforge_core::study::{
    Direction, Fidelity, SqliteStorage, Study, StudyRecord, TableEvaluator,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `nasforge search`. Every option but `--run-dir`, `--resume`, `--json` and
/// `--quiet` is stored in the run's `config.toml`.
#[derive(Args)]
pub struct SearchArgs {
    /// The search space.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: Option<String>,
    /// A space size parameter `key=value` (repeatable).
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_params: Vec<String>,
    /// The search strategy (see `nasforge bench --help` for the list).
    #[arg(long)]
    pub strategy: Option<String>,
    /// A strategy parameter `key=value` (repeatable).
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    pub strategy_params: Vec<String>,
    /// How candidates are evaluated. `table` looks them up in a benchmark table.
    #[arg(long, value_parser = ["table"])]
    pub evaluator: Option<String>,
    /// The benchmark table for `--evaluator table`.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// The metric to optimise (a table column).
    #[arg(long)]
    pub objective: Option<String>,
    /// `maximize` or `minimize` the objective.
    #[arg(long)]
    pub direction: Option<String>,
    /// Trials to finish in total (a resumed run counts the ones it has).
    #[arg(long)]
    pub trials: Option<usize>,
    /// The run's seed: the same seed and config give the same trials.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The run directory (created; must not hold a study unless `--resume`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the study in `--run-dir` with its stored configuration.
    #[arg(long)]
    pub resume: bool,
    /// Print one JSON summary at the end, nothing else on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The configuration a run is created with, stored as `config.toml` in the run directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SearchConfig {
    /// Space name.
    pub space: String,
    /// Space parameters.
    #[serde(default)]
    pub space_params: BTreeMap<String, String>,
    /// Strategy name.
    pub strategy: String,
    /// Strategy parameters.
    #[serde(default)]
    pub strategy_params: BTreeMap<String, String>,
    /// Evaluator name.
    pub evaluator: String,
    /// Benchmark table.
    pub table: Option<PathBuf>,
    /// Metric optimised.
    pub objective: String,
    /// Its direction.
    pub direction: Direction,
    /// Total trials.
    pub trials: usize,
    /// Seed.
    pub seed: u64,
}

fn kv_map(items: &[String]) -> Result<BTreeMap<String, String>> {
    Ok(Params::parse(items)?.entries().clone())
}

fn kv_list(map: &BTreeMap<String, String>) -> Vec<String> {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl SearchConfig {
    fn from_args(a: &SearchArgs) -> Result<Self> {
        let evaluator = a.evaluator.clone().unwrap_or_else(|| "table".into());
        if evaluator == "table" && a.table.is_none() {
            return bad_input(
                "--evaluator table needs --table FILE (a benchmark CSV with an `arch` column); \
                 training candidates on data is not available yet",
            );
        }
        Ok(SearchConfig {
            space: a.space.clone().unwrap_or_else(|| "nb201".into()),
            space_params: kv_map(&a.space_params)?,
            strategy: a.strategy.clone().unwrap_or_else(|| "rea".into()),
            strategy_params: kv_map(&a.strategy_params)?,
            evaluator,
            table: a.table.clone(),
            objective: a
                .objective
                .clone()
                .unwrap_or_else(|| "test_acc_200ep".into()),
            direction: Direction::parse(a.direction.as_deref().unwrap_or("maximize"))?,
            trials: a.trials.unwrap_or(100),
            seed: a.seed.unwrap_or(0),
        })
    }

    /// Fails if the command line asks for something other than the stored config (only
    /// `--trials` may change, to extend a run).
    fn check_resume_args(&self, a: &SearchArgs) -> Result<()> {
        let mut conflicts = Vec::new();
        let mut differs = |flag: &str, given: bool, same: bool| {
            if given && !same {
                conflicts.push(flag.to_string());
            }
        };
        differs(
            "--space",
            a.space.is_some(),
            a.space.as_ref() == Some(&self.space),
        );
        differs(
            "--strategy",
            a.strategy.is_some(),
            a.strategy.as_ref() == Some(&self.strategy),
        );
        differs(
            "--objective",
            a.objective.is_some(),
            a.objective.as_ref() == Some(&self.objective),
        );
        differs("--seed", a.seed.is_some(), a.seed == Some(self.seed));
        differs("--table", a.table.is_some(), a.table == self.table);
        differs(
            "--evaluator",
            a.evaluator.is_some(),
            a.evaluator.as_ref() == Some(&self.evaluator),
        );
        differs(
            "--direction",
            a.direction.is_some(),
            a.direction.as_deref().map(Direction::parse).transpose()? == Some(self.direction),
        );
        differs(
            "--space-param",
            !a.space_params.is_empty(),
            kv_map(&a.space_params)? == self.space_params,
        );
        differs(
            "--strategy-param",
            !a.strategy_params.is_empty(),
            kv_map(&a.strategy_params)? == self.strategy_params,
        );
        if conflicts.is_empty() {
            Ok(())
        } else {
            bad_input(format!(
                "--resume continues the run with its stored config.toml; {} differ(s) from it. \
                 Drop them, or start a new run in another --run-dir",
                conflicts.join(", ")
            ))
        }
    }
}

fn default_run_dir() -> PathBuf {
    let secs = nasforge_core::study::now() as u64;
    PathBuf::from("runs").join(format!("search-{secs}"))
}

/// Runs `nasforge search`.
pub fn run(args: SearchArgs) -> Result<()> {
    let start = Instant::now();
    let (dir, config) = if args.resume {
        let Some(dir) = args.run_dir.clone() else {
            return bad_input("--resume needs --run-dir DIR, the run to continue");
        };
        let path = dir.join("config.toml");
        if !path.exists() {
            return bad_input(format!(
                "{} is not a nasforge run (no config.toml); start one with `nasforge search --run-dir {}`",
                dir.display(),
                dir.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: SearchConfig = toml::from_str(&text)
            .map_err(|e| super::BadInput(format!("{}: {e}", path.display())))?;
        config.check_resume_args(&args)?;
        if let Some(t) = args.trials {
            config.trials = t;
        }
        (dir, config)
    } else {
        let dir = args.run_dir.clone().unwrap_or_else(default_run_dir);
        if dir.join("study.db").exists() || dir.join("config.toml").exists() {
            return bad_input(format!(
                "{} already holds a run; pass --resume to continue it, or choose another --run-dir",
                dir.display()
            ));
        }
        (dir, SearchConfig::from_args(&args)?)
    };

    let space = build_space(&config.space, &kv_list(&config.space_params))?;
    let strategy_params = Params::parse(&kv_list(&config.strategy_params))?;
    let strat = strategy::build(&config.strategy, config.seed, &strategy_params)?;
    let table_path = config.table.clone().expect("checked in from_args");
    let table = Arc::new(Table::load(&table_path, space.as_ref())?);
    let mut evaluator = TableEvaluator::new(table, &config.objective)?;
    if config.trials == 0 {
        return bad_input("--trials must be at least 1");
    }

    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_config(&dir, &config)?;
    let storage = SqliteStorage::open(&dir.join("study.db"))?;
    let record = StudyRecord {
        name: "search".into(),
        space: config.space.clone(),
        space_params: space.params_json(),
        strategy: config.strategy.clone(),
        objective: config.objective.clone(),
        direction: config.direction,
        seed: config.seed,
        config: serde_json::to_value(&config)?,
        created_at: nasforge_core::study::now(),
    };
    let (mut study, resumed) = Study::open(
        Box::new(storage),
        record,
        space.as_ref(),
        strat,
        &worker_id(),
    )?;
    if args.resume && !args.quiet && !args.json {
        eprintln!(
            "resuming {}: {} finished trials kept, {} interrupted trial(s) to run again",
            dir.display(),
            resumed.replayed,
            resumed.interrupted
        );
    }

    let bar = if args.quiet || args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(config.trials as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} trial {pos}/{len} {msg} [{elapsed} < {eta}]")
                .expect("valid template"),
        );
        bar
    };
    bar.set_position(study.finished() as u64);
    let sign = config.direction.sign();
    let mut best: Option<f64> = study.best()?.and_then(|t| t.value);
    study.optimize(
        &mut evaluator,
        config.trials,
        &Fidelity::default(),
        |s, trial| {
            if let Some(v) = trial.value {
                if best.is_none_or(|b| sign * v > sign * b) {
                    best = Some(v);
                }
            }
            bar.set_position(s.finished() as u64);
            if let Some(b) = best {
                bar.set_message(format!("best {}={b:.4}", config.objective));
            }
        },
    )?;
    bar.finish_and_clear();

    let trials = study.trials()?;
    let best = study.best()?;
    let seconds = start.elapsed().as_secs_f64();
    let failed = trials
        .iter()
        .filter(|t| t.state == nasforge_core::study::TrialState::Failed)
        .count();
    if args.json {
        let doc = serde_json::json!({
            "run_dir": dir,
            "space": config.space,
            "strategy": config.strategy,
            "objective": config.objective,
            "trials": study.finished(),
            "failed": failed,
            "seconds": seconds,
            "arch": best.as_ref().and_then(|b| b.arch["arch"].as_str().map(str::to_string)),
            "value": best.as_ref().and_then(|b| b.value),
            "best_trial": best.as_ref().map(|b| b.number),
            "metrics": best.as_ref().map(|b| &b.metrics),
            "resumed": {"replayed": resumed.replayed, "interrupted": resumed.interrupted},
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("run        {}", dir.display());
    println!(
        "trials     {} finished ({failed} failed) in {seconds:.2} s",
        study.finished()
    );
    match best {
        Some(b) => {
            println!(
                "best       trial {}: {} = {:.4}",
                b.number,
                config.objective,
                b.value.unwrap_or(f64::NAN)
            );
            println!(
                "arch       {}",
                b.arch["arch"].as_str().unwrap_or(&b.arch_key)
            );
            for (k, v) in &b.metrics {
                println!("  {k:<16} {v}");
            }
        }
        None => println!("best       none: no trial completed"),
    }
    Ok(())
}

fn write_config(dir: &Path, config: &SearchConfig) -> Result<()> {
    let text = format!(
        "# nasforge search configuration: `nasforge search --resume --run-dir {}` continues this run.\n{}",
        dir.display(),
        toml::to_string_pretty(config)?
    );
    let path = dir.join("config.toml");
    let tmp = dir.join("config.toml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}
