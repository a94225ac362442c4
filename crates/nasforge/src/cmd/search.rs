//! `nasforge search`: one stored study, then (on data) final training of the best arch.
//!
//! A run directory holds `config.toml` (the resolved configuration), `study.db` (SQLite) and,
//! after final training, `best/` (model, arch, weights, `final.json`). `--resume` reopens the
//! study and continues without redoing any finished trial.

use super::config::{OneShot, SearchConfig};
use super::lock::RunLock;
use super::pipeline::{self, Prepared};
use super::{bad_input, build_space, BadInput};
use crate::report::run::{Activity, STUDY, SUPERNET_DIR};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use nasforge_core::scheduler::{self, Rungs};
use nasforge_core::space::{Arch, Space};
use nasforge_core::strategy;
use nasforge_core::study::{
    self as study, Direction, EvalError, Evaluation, Evaluator, Fidelity, Goal, PostgresStorage,
    SchedulerProposer, Sharing, SqliteStorage, Storage, StrategyProposer, Study, StudyRecord,
    TableEvaluator, TrialState,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use nasforge_nn::data::Task;
use nasforge_nn::evaluator::{InheritedEvaluator, TrainingEvaluator};
use nasforge_nn::supernet::{
    ArchConfig, ArchState, Checkpoint, Guard, Sampling, Supernet, DEFAULT_BETA_DECAY,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `nasforge search`.
#[derive(Args)]
pub struct SearchArgs {
    /// A TOML configuration (see `nasforge init`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The run directory (default: runs/search-<time>); must not hold a run unless --resume.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir with its stored configuration.
    #[arg(long)]
    pub resume: bool,
    /// Print one JSON summary at the end, nothing else on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success: no progress, no summary (the run directory holds the results).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    /// Set by `search --workers N` on the workers it starts (1..N-1): such a process joins
    /// the run's study, searches, and leaves final training to the search.
    #[arg(long, hide = true, requires = "resume")]
    pub worker_index: Option<usize>,
    /// Set by `nasforge worker`: a worker of a study in a database, with no run directory.
    #[arg(skip)]
    pub standalone: bool,
    #[command(flatten)]
    pub settings: SearchConfig,
}

/// The environment variable that carries the run lock's token to the workers a search starts.
const WORKER_TOKEN: &str = "NASFORGE_RUN_TOKEN";

/// Wraps an evaluator to show each epoch on the progress bar.
struct ShowEpochs<'a> {
    inner: &'a mut dyn Evaluator,
    bar: &'a ProgressBar,
    best: Option<f64>,
    sign: f64,
    objective: String,
    epochs: usize,
}

impl<'a> ShowEpochs<'a> {
    fn new(
        inner: &'a mut dyn Evaluator,
        bar: &'a ProgressBar,
        best: Option<f64>,
        direction: Direction,
        objective: String,
        epochs: usize,
    ) -> Self {
        ShowEpochs {
            inner,
            bar,
            best,
            sign: direction.sign(),
            objective,
            epochs,
        }
    }
}

/// The trial progress bar of a search, at `finished` of `trials`.
fn trial_bar(quiet: bool, trials: usize, finished: usize) -> ProgressBar {
    let bar = super::progress_bar(
        quiet,
        trials as u64,
        "search {bar:30} trial {pos}/{len} {msg} [{elapsed} < {eta}]",
    );
    bar.set_position(finished as u64);
    bar
}

impl Evaluator for ShowEpochs<'_> {
    fn metric_names(&self) -> Vec<String> {
        self.inner.metric_names()
    }

    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError> {
        let best = self
            .best
            .map(|b| format!(" · best {}={b:.4}", self.objective))
            .unwrap_or_default();
        let bar = self.bar;
        let epochs = fidelity.epochs.map_or(self.epochs, |e| e as usize);
        let out = self
            .inner
            .evaluate(space, arch, fidelity, &mut |step, value| {
                bar.set_message(format!("epoch {step}/{epochs} {value:.3}{best}"));
                report(step, value)
            });
        if let Some(v) = out
            .as_ref()
            .ok()
            .and_then(|ev| ev.metrics.get(&self.objective))
        {
            if self.best.is_none_or(|b| self.sign * v > self.sign * b) {
                self.best = Some(*v);
            }
            self.bar.set_message(format!(
                "best {}={:.4}",
                self.objective,
                self.best.unwrap_or(f64::NAN)
            ));
        }
        out
    }
}

fn default_run_dir() -> PathBuf {
    PathBuf::from("runs").join(format!("search-{}", nasforge_core::study::now() as u64))
}

/// Runs `nasforge search`.
pub fn run(args: SearchArgs) -> Result<()> {
    let start = Instant::now();
    let (dir, cfg) = if args.standalone {
        (PathBuf::new(), args.settings.clone())
    } else if args.resume {
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
        let stored = SearchConfig::from_file(&path)?;
        let given = match &args.config {
            Some(p) => SearchConfig::from_file(p)?.overlay(&args.settings),
            None => args.settings.clone(),
        };
        let conflicts = stored.resume_conflicts(&given);
        if !conflicts.is_empty() {
            return bad_input(format!(
                "--resume continues the run with its stored config.toml; {} differ(s) from it. \
                 Drop them, or start a new run in another --run-dir",
                conflicts.join(", ")
            ));
        }
        let mut cfg = stored;
        if given.trials.is_some() {
            cfg.trials = given.trials;
        }
        if given.epoch_budget.is_some() {
            cfg.epoch_budget = given.epoch_budget;
        }
        (dir, cfg)
    } else {
        let dir = args.run_dir.clone().unwrap_or_else(default_run_dir);
        if holds_run(&dir) {
            return already_a_run(&dir);
        }
        let cfg = match &args.config {
            Some(p) => SearchConfig::from_file(p)?.overlay(&args.settings),
            None => args.settings.clone(),
        };
        (dir, cfg)
    };
    // Everything that can be checked without data is checked before anything is written.
    cfg.validate()?;
    if args.resume {
        check_stored_study(&dir, &cfg)?;
    }
    let quiet = args.quiet || args.json;
    let evaluator = cfg.evaluator.clone().unwrap_or_else(|| {
        if cfg.table.is_some() {
            "table"
        } else {
            "train"
        }
        .into()
    });
    match evaluator.as_str() {
        "table" => search_table(args, dir, cfg, start, quiet),
        "train" => search_train(args, dir, cfg, start, quiet),
        other => bad_input(format!("--evaluator `{other}` is not `train` or `table`")),
    }
}

/// What proposes the next job, with the early stopper a strategy may have. Built, with every
/// parameter checked, before the run directory is touched.
struct Proposer {
    proposer: Box<dyn study::Proposer>,
    stopper: Option<Box<dyn nasforge_core::stopper::Stopper>>,
}

impl Proposer {
    /// The strategy or scheduler `cfg` names, with its parameters, for `goal`; `epochs` is the
    /// top rung.
    /// Worker `worker` of a shared search draws from its own seed (`seed + worker`).
    fn build(
        cfg: &SearchConfig,
        goal: &Goal,
        epochs: usize,
        proxy_data: Option<(Arc<nasforge_nn::data::Dataset>, Vec<usize>)>,
        worker: usize,
    ) -> Result<Proposer> {
        let seed = cfg.seed.unwrap_or(0).wrapping_add(worker as u64);
        if let Some(name) = &cfg.scheduler {
            let params = Params::parse(&cfg.scheduler_param)?;
            let rungs = Rungs::geometric(
                cfg.min_epochs.unwrap_or(1),
                epochs as u32,
                params.usize("eta", 3)? as u32,
            )?;
            let scheduler = scheduler::build(name, seed, rungs, &params)?;
            params.finish(name)?;
            return Ok(Proposer {
                proposer: SchedulerProposer::boxed(scheduler),
                stopper: None,
            });
        }
        let name = cfg.strategy.as_deref().unwrap_or("rea");
        let strat = strategy::build_with(
            name,
            seed,
            &Params::parse(&cfg.strategy_param)?,
            &super::nn_proxies(proxy_data, seed),
        )?;
        let stopper = match &cfg.stopper {
            Some(name) => {
                let params = Params::parse(&cfg.stopper_param)?;
                let stopper = nasforge_core::stopper::build(name, &params)?;
                params.finish(name)?;
                Some(stopper)
            }
            None => None,
        };
        Ok(Proposer {
            proposer: StrategyProposer::boxed(strat, goal.objectives.len(), seed),
            stopper,
        })
    }
}

/// Checks `goal` against what the training evaluator measures. A scheduler or a stopper ranks
/// trials by its learning curve, so it needs that metric as the one objective.
/// `names`: what the evaluator measures; `curve`: the metric of its learning curve.
fn check_goal(cfg: &SearchConfig, goal: &Goal, mut names: Vec<String>, curve: &str) -> Result<()> {
    if cfg.latency_table.is_some() {
        names.push(study::metric::LATENCY_MS.into());
    }
    goal.check(&names)?;
    if cfg.scheduler.is_some() || cfg.stopper.is_some() {
        let what = if cfg.scheduler.is_some() {
            "--scheduler"
        } else {
            "--stopper"
        };
        if goal.objectives.len() > 1 {
            return bad_input(format!(
                "{what} ranks trials on one objective; with several objectives use a strategy (nsga2, mo-rea, or any other through random scalarisation)"
            ));
        }
        if curve != goal.objectives[0].metric {
            return bad_input(format!(
                "{what} ranks trials by their learning curve of `{curve}`; it cannot rank by `{}`",
                goal.objectives[0].metric
            ));
        }
    }
    Ok(())
}

/// On `--resume`, the study must be there and readable: a missing, empty or damaged
/// `study.db` (or a study gone from its database) is never taken for a fresh start.
fn check_stored_study(dir: &std::path::Path, cfg: &SearchConfig) -> Result<()> {
    if let (Some(url), Some(name)) = (&cfg.storage, &cfg.study) {
        let storage = PostgresStorage::open(url)?;
        return match storage.study(name)? {
            Some(_) => Ok(()),
            None => bad_input(format!(
                "study `{name}` is not in {}: it was deleted, or the database is another one. Nothing was changed; to run the same search anew, `nasforge search --config {} --run-dir NEW_DIR`",
                storage.shown(),
                dir.join("config.toml").display()
            )),
        };
    }
    let db = dir.join("study.db");
    let anew = format!(
        "Nothing was changed. If you have a copy of study.db, put it back; to run the same search anew,          `nasforge search --config {} --run-dir NEW_DIR`",
        dir.join("config.toml").display()
    );
    match std::fs::metadata(&db) {
        Err(_) => {
            return bad_input(format!(
            "{} is missing: the trials of this run are lost (config.toml is still there). {anew}",
            db.display()
        ))
        }
        Ok(m) if m.len() == 0 => {
            return bad_input(format!(
                "{} is empty (0 bytes): the trials of this run are lost. {anew}",
                db.display()
            ))
        }
        Ok(_) => {}
    }
    let damaged = |e: &dyn std::fmt::Display| {
        bad_input::<()>(format!(
            "{} cannot be read as a nasforge study ({e}); it may be truncated or overwritten. {anew}",
            db.display()
        ))
    };
    let storage = match SqliteStorage::open_existing(&db) {
        Ok(s) => s,
        Err(e) => return damaged(&e),
    };
    if let Err(e) = storage.verify() {
        return damaged(&e);
    }
    match storage.study(STUDY) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => damaged(&format!("it holds no `{STUDY}` study")),
        Err(e) => damaged(&e),
    }
}

/// Makes the run directory and takes its one-writer lock. A new run must not find a run
/// there (checked again under the lock: two searches started at once on one directory).
fn claim_run_dir(dir: &std::path::Path, resume: bool) -> Result<RunLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = RunLock::acquire(dir, "search")?;
    if !resume && holds_run(dir) {
        return already_a_run(dir);
    }
    Ok(lock)
}

/// The right to write a run: the search's lock, with the workers it started, or a worker's
/// admission by the search that started it. Workers still running when it is dropped (the
/// search failed) are stopped; every trial they finished is stored.
struct Claim {
    lock: Option<RunLock>,
    workers: Vec<(usize, std::process::Child)>,
}

impl Claim {
    fn take(dir: &std::path::Path, args: &SearchArgs) -> Result<Claim> {
        if args.standalone {
            return Ok(Claim {
                lock: None,
                workers: Vec::new(),
            });
        }
        if args.worker_index.is_none() {
            return Ok(Claim {
                lock: Some(claim_run_dir(dir, args.resume)?),
                workers: Vec::new(),
            });
        }
        let token = std::env::var(WORKER_TOKEN).unwrap_or_default();
        RunLock::admits(dir, &token)?;
        // A worker whose search has gone (killed) stops too: the trial it was training is
        // failed as stale and run again when the run is resumed; what it finished is stored.
        let dir = dir.to_path_buf();
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(2));
            if RunLock::admits(&dir, &token).is_err() {
                std::process::exit(3);
            }
        });
        Ok(Claim {
            lock: None,
            workers: Vec::new(),
        })
    }

    /// Starts workers 1..N-1 of `--workers N` (the search itself is worker 0), each a
    /// `search --resume --worker-index K` of this run.
    fn start_workers(&mut self, dir: &std::path::Path, cfg: &SearchConfig) -> Result<()> {
        let Some(lock) = &self.lock else {
            return Ok(());
        };
        let exe = std::env::current_exe().context("cannot find the nasforge executable")?;
        for k in 1..cfg.workers() {
            let child = std::process::Command::new(&exe)
                .arg("search")
                .arg("--resume")
                .arg("--run-dir")
                .arg(dir)
                .args(["--worker-index", &k.to_string(), "--quiet"])
                .env(WORKER_TOKEN, lock.token())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start worker {k} ({})", exe.display()))?;
            self.workers.push((k, child));
        }
        Ok(())
    }

    /// Waits for the workers the search started (its study loop returns only once every trial
    /// has finished, so they are ending too). Whether this process goes on to final training:
    /// false for a worker.
    fn finish_workers(&mut self, quiet: bool) -> Result<bool> {
        for (k, mut child) in std::mem::take(&mut self.workers) {
            let status = child
                .wait()
                .with_context(|| format!("cannot wait for worker {k}"))?;
            if !status.success() && !quiet {
                eprintln!(
                    "note: worker {k} ended with {status}; the trials it finished are kept, one it left running was run again"
                );
            }
        }
        Ok(self.lock.is_some())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn holds_run(dir: &std::path::Path) -> bool {
    dir.join("study.db").exists() || dir.join("config.toml").exists()
}

fn already_a_run<T>(dir: &std::path::Path) -> Result<T> {
    bad_input(format!(
        "{} already holds a run; pass --resume to continue it, or choose another --run-dir",
        dir.display()
    ))
}

/// What a finished study leaves for the summary.
struct Searched {
    trials: Vec<study::Trial>,
    best: Option<study::Trial>,
    finished: usize,
    replayed: usize,
    skipped: usize,
    /// A one-shot method's supernet phase.
    one_shot: Option<OneShotRun>,
}

/// Writes the run's config and opens (or resumes) its study in `dir` (claimed by the caller).
#[allow(clippy::too_many_arguments)]
fn open_study<'s>(
    args: &SearchArgs,
    dir: &std::path::Path,
    cfg: &SearchConfig,
    goal: &Goal,
    space: &'s dyn Space,
    quiet: bool,
    epochs: usize,
    proposer: Proposer,
    pre_metrics: Option<study::PreMetrics>,
) -> Result<(Study<'s>, usize)> {
    let strategy_name = proposer_name(cfg, cfg.one_shot()?).to_string();
    let worker = args.worker_index.is_some();
    if !worker {
        cfg.write(
            &dir.join("config.toml"),
            &format!("# nasforge search configuration: `nasforge search --resume --run-dir {}` continues this run.", dir.display()),
        )?;
    }
    let (mut storage, name) = crate::report::run::open_storage(dir, cfg, true)?;
    if !worker {
        Activity::mark(dir, "searching")?;
    }
    let record = StudyRecord::new(
        name.clone(),
        space.name(),
        space.params_json(),
        strategy_name,
        goal.clone(),
        cfg.seed.unwrap_or(0),
        serde_json::to_value(cfg)?,
    );
    if cfg.shared() {
        let sharing = Sharing::default();
        if args.resume && !worker && cfg.storage.is_none() && storage.study(&name)?.is_some() {
            // The search holds the run's lock, so no worker of an earlier start is alive:
            // the trials they left running are run again now. (Workers of a study in a
            // database may be alive on other machines: theirs go stale in their own time.)
            storage.reap_stale(&name, 0.0, sharing.max_retry)?;
        }
        if args.resume && !worker {
            // What a resume may change (--trials): workers that join from now on read it.
            if let Some(stored) = storage.study(&name)? {
                if stored.config != record.config {
                    storage.set_config(&name, &record.config)?;
                }
            }
        }
        let mut study = Study::join(
            storage,
            record,
            space,
            proposer.proposer,
            &worker_id(),
            sharing,
        )?;
        if let Some(stopper) = proposer.stopper {
            study.set_stopper(stopper, epochs)?;
        }
        let spool = spool_dir();
        let sent = study.set_spool(&spool)?;
        if sent > 0 && !quiet {
            eprintln!(
                "stored {sent} outcome(s) that an earlier worker on this machine could not store ({})",
                spool.display()
            );
        }
        let kept = study.finished();
        if args.resume && !quiet {
            eprintln!(
                "resuming {} with {} workers: {kept} finished trials kept",
                dir.display(),
                cfg.workers()
            );
        }
        return Ok((study, kept));
    }
    let (mut study, resumed) = Study::open_with(
        storage,
        record,
        space,
        proposer.proposer,
        &worker_id(),
        pre_metrics,
    )?;
    if let Some(stopper) = proposer.stopper {
        study.set_stopper(stopper, epochs)?;
    }
    if let Some(b) = cfg.epoch_budget {
        study.set_epoch_budget(b);
    }
    report_resume(args, dir, quiet, &resumed);
    Ok((study, resumed.replayed))
}

/// Runs an opened study to `cfg.trials`, measuring with `evaluator`.
fn run_study(
    mut study: Study<'_>,
    replayed: usize,
    cfg: &SearchConfig,
    goal: &Goal,
    evaluator: &mut dyn Evaluator,
    quiet: bool,
    epochs: usize,
) -> Result<Searched> {
    let trials = cfg.trials.expect("resolved");
    let bar = trial_bar(quiet, trials, study.finished());
    let best = study.best()?.and_then(|t| t.value());
    let first = &goal.objectives[0];
    let mut shown = ShowEpochs::new(
        evaluator,
        &bar,
        best,
        first.direction,
        first.metric.clone(),
        epochs,
    );
    study.optimize(&mut shown, trials, |s, _| {
        bar.set_position(s.finished() as u64)
    })?;
    bar.finish_and_clear();
    Ok(Searched {
        trials: study.trials()?,
        best: study.best()?,
        finished: study.finished(),
        replayed,
        skipped: study.skipped_infeasible(),
        one_shot: None,
    })
}

fn report_resume(
    args: &SearchArgs,
    dir: &std::path::Path,
    quiet: bool,
    resumed: &nasforge_core::study::Resumed,
) {
    if args.resume && !quiet {
        eprintln!(
            "resuming {}: {} finished trials kept, {} interrupted trial(s) to run again",
            dir.display(),
            resumed.replayed,
            resumed.interrupted
        );
    }
}

fn search_table(
    args: SearchArgs,
    dir: PathBuf,
    mut cfg: SearchConfig,
    start: Instant,
    quiet: bool,
) -> Result<()> {
    cfg.evaluator = Some("table".into());
    if cfg.scheduler.is_some() || cfg.stopper.is_some() || cfg.epoch_budget.is_some() {
        return bad_input(
            "a benchmark table holds fixed results at fixed fidelities: --scheduler, --stopper and --epoch-budget need the training evaluator. Compare schedulers on a table with `nasforge bench --epochs`",
        );
    }
    if cfg.record_proxies.is_some() {
        return bad_input(
            "--record-proxies scores the networks a search trains; on a benchmark table use `nasforge proxies --table`",
        );
    }
    if cfg.latency_table.is_some() {
        return bad_input(
            "--latency-table predicts the latency of networks a search trains; a benchmark table has no latency column to replace",
        );
    }
    cfg.space.get_or_insert_with(|| "nb201".into());
    let default = default_strategy(&cfg);
    cfg.strategy.get_or_insert_with(|| default.into());
    if cfg.objective.is_empty() {
        cfg.objective = vec!["test_acc_200ep".into()];
    }
    cfg.trials.get_or_insert(100);
    cfg.seed.get_or_insert(0);
    let space = build_space(cfg.space.as_deref().expect("set"), &cfg.space_param)?;
    // Without --table, the built-in NAS-Bench-201 table (the stored config then has none either,
    // so a resume reads the same one).
    let table = Arc::new(Table::load_or_builtin(
        cfg.table.as_deref(),
        space.as_ref(),
    )?);
    // A column whose name says nothing of its direction is maximised, as before objectives
    // had directions of their own.
    let goal = cfg.goal(Some(Direction::Maximize))?;
    let mut evaluator = TableEvaluator::new(table);
    evaluator.check_goal(&goal)?;
    let proposer = Proposer::build(&cfg, &goal, 0, None, args.worker_index.unwrap_or(0))?;
    let mut claim = Claim::take(&dir, &args)?;
    let (study, replayed) = open_study(
        &args,
        &dir,
        &cfg,
        &goal,
        space.as_ref(),
        quiet,
        0,
        proposer,
        None,
    )?;
    claim.start_workers(&dir, &cfg)?;
    let searched = run_study(study, replayed, &cfg, &goal, &mut evaluator, quiet, 0)?;
    if !claim.finish_workers(quiet)? {
        return Ok(());
    }
    summarize(&args, &dir, &cfg, &goal, &searched, start, None)
}

fn search_train(
    args: SearchArgs,
    dir: PathBuf,
    mut cfg: SearchConfig,
    start: Instant,
    quiet: bool,
) -> Result<()> {
    let device = pipeline::device(&cfg)?;
    let prepared: Prepared = pipeline::prepare_data(&cfg)?;
    let (space_name, space_params) = pipeline::space_for_data(&cfg, &prepared)?;
    pipeline::space_recipe(&mut cfg, &space_name);
    let task = prepared.data.task();
    // Resolve every default into the stored config so a resume never depends on new defaults.
    cfg.evaluator = Some("train".into());
    cfg.space = Some(space_name.clone());
    cfg.space_param = space_params.clone();
    if let Some(text) = &prepared.text {
        cfg.seq_len = Some(text.seq_len);
        cfg.tokens = Some(text.vocabulary.tokens.name().into());
        cfg.max_vocab.get_or_insert(pipeline::DEFAULT_MAX_VOCAB);
    }
    if cfg.scheduler.is_some() && (cfg.strategy.is_some() || cfg.stopper.is_some()) {
        return bad_input(
            "--scheduler chooses the archs and their epochs itself: drop --strategy and --stopper, or drop --scheduler",
        );
    }
    let one_shot = cfg.one_shot()?;
    if one_shot == Some(OneShot::Ofa) && cfg.objective.is_empty() {
        // Accuracy against each budget's metric: the front holds a pick for every budget.
        let first = pipeline::default_objective(task);
        cfg.objective = vec![first.into()];
        for b in cfg.budgets()? {
            let o = format!("{}:min", b.metric);
            if !cfg.objective.contains(&o) {
                cfg.objective.push(o);
            }
        }
    }
    if cfg.scheduler.is_none() && !one_shot.is_some_and(OneShot::relaxed) {
        let default = match one_shot {
            Some(OneShot::Rsps) => "random",
            _ => default_strategy(&cfg),
        };
        cfg.strategy.get_or_insert_with(|| default.into());
    }
    if matches!(cfg.strategy.as_deref(), Some("rea" | "mo-rea")) && cfg.strategy_param.is_empty() {
        cfg.strategy_param = vec!["population=10".into(), "sample_size=3".into()];
    }
    if cfg.objective.is_empty() {
        let first = pipeline::default_objective(task);
        cfg.objective = vec![first.into()];
    }
    if let Some(m) = one_shot {
        let epochs = *cfg.supernet_epochs.get_or_insert(DEFAULT_SUPERNET_EPOCHS);
        if m.relaxed() {
            cfg.arch_lr
                .get_or_insert(nasforge_nn::supernet::DEFAULT_ARCH_LR);
            if m == OneShot::Darts {
                cfg.collapse_guard
                    .get_or_insert_with(|| "beta-decay".into());
                cfg.darts_order.get_or_insert(1);
            }
            // At most one derived arch per epoch.
            cfg.trials.get_or_insert(epochs);
        }
    }
    // An arch scored with inherited weights costs a fraction of a second: many more trials.
    cfg.trials
        .get_or_insert(if one_shot.is_some() { 100 } else { 40 });
    cfg.seed.get_or_insert(0);
    cfg.target.get_or_insert_with(|| "label".into());
    let tc = pipeline::train_config(&cfg, false)?;
    tc.validate(prepared.split.train.len())?;
    let final_tc = pipeline::train_config(&cfg, true)?;
    final_tc.validate(prepared.split.train.len() + prepared.split.valid.len())?;
    let goal = cfg.goal(None)?;
    let space = build_space(&space_name, &space_params)?;
    // A one-shot method needs the space's supernet: checked before anything is written.
    let supernet = one_shot.map(|_| space.supernet()).transpose()?;
    if let (Some(OneShot::Darts), Some(sup)) = (one_shot, &supernet) {
        if !sup.weighable() {
            return bad_input(format!(
                "--method darts runs every candidate weighted, and the `{space_name}` space's supernet has skip projections chosen by the layers' channel counts, which no weight can mix; use --method spos, fairnas, rsps, gdas, enas or ofa there"
            ));
        }
    }
    if let (Some(OneShot::Ofa), Some(sup)) = (one_shot, &supernet) {
        if sup.elastic().iter().all(Option::is_none) {
            return bad_input(format!(
                "--method ofa shrinks elastic kernel sizes, widths and depths, and the `{space_name}` space has none; use --space mlp or macro"
            ));
        }
    }
    let mut evaluator = TrainingEvaluator::new(
        prepared.data.clone(),
        &prepared.split,
        tc.clone(),
        cfg.seed.unwrap_or(0),
        device,
    );
    if let Some(list) = &cfg.record_proxies {
        evaluator = evaluator.with_proxies(nasforge_nn::proxies::Proxy::parse_list(list)?)?;
    }
    if let Some(b) = cfg.latency_batch {
        evaluator = evaluator.with_latency_batch(b);
    }
    // A latency table predicts `latency_ms` before training; nothing is measured then.
    let pre_metrics: Option<study::PreMetrics> = match &cfg.latency_table {
        Some(path) => {
            let table = nasforge_nn::latency::LatencyTable::load(path)?;
            table.check_space(space.as_ref())?;
            let here = crate::report::run::host();
            if !quiet && table.host != here {
                eprintln!(
                    "note: {} was profiled on `{}`, not on this machine (`{here}`): latency_ms predicts that machine's latency",
                    path.display(),
                    table.host
                );
            }
            evaluator = evaluator.without_latency();
            let path = path.display().to_string();
            // The table's own predictions, not calibrated to the machine's speed of the moment
            // (`latency::Calibration`, as `latency check` reports it): the study judges latency
            // constraints before training and judges them again when a run is resumed, so a
            // prediction must be the same every time it is made.
            Some(Box::new(move |spec: &nasforge_core::netspec::NetSpec| {
                let ms = table.predict(spec).map_err(|u| {
                    nasforge_core::Error::invalid(format!(
                        "the latency table {path} has no time for the node `{}`; profile more archs (`nasforge latency profile --archs N`)",
                        u.0
                    ))
                })?;
                Ok(std::collections::BTreeMap::from([(
                    study::metric::LATENCY_MS.to_string(),
                    ms,
                )]))
            }))
        }
        None => None,
    };
    // Measured latency at batch 1 and this batch, unless a table predicts it.
    let latency_batch = cfg.latency_table.is_none().then(|| {
        cfg.latency_batch
            .unwrap_or(nasforge_nn::evaluator::LATENCY_BATCH)
    });
    let names = match &supernet {
        Some(_) => InheritedEvaluator::names(&prepared.data, latency_batch),
        None => evaluator.metric_names(),
    };
    check_goal(&cfg, &goal, names, evaluator.curve_metric())?;
    if prepared.split.test.is_empty() {
        return bad_input(format!(
            "{}: the test split is empty ({} rows × --test-fraction {}); final training scores the best arch on it",
            prepared.data.source,
            prepared.data.len(),
            cfg.test_fraction.unwrap_or(0.15)
        ));
    }
    // DARTS, GDAS and ENAS propose each epoch's derived arch: those of the epochs already stored
    // now (a resumed study replays its trials from them), the others once trained.
    let derived: Option<study::ArchList> =
        one_shot.filter(|m| m.relaxed()).map(|_| Default::default());
    let proposer = match (&derived, one_shot) {
        (Some(list), Some(m)) => {
            *list.lock().expect("not shared yet") = stored_derived(&dir, space.as_ref())?;
            Proposer {
                proposer: Box::new(study::ListProposer::new(m.name(), list.clone())),
                stopper: None,
            }
        }
        // Training rows only: nothing of the validation or test split reaches the search.
        _ => Proposer::build(
            &cfg,
            &goal,
            tc.epochs,
            Some((prepared.data.clone(), prepared.split.train.clone())),
            args.worker_index.unwrap_or(0),
        )?,
    };
    let mut claim = Claim::take(&dir, &args)?;
    if !quiet {
        eprintln!(
            "searching {} with {}{} on {} ({} train / {} valid rows held, {} test rows kept for the end)",
            space_name,
            proposer_name(&cfg, one_shot),
            one_shot
                .map(|m| if m.relaxed() {
                    " (each supernet epoch's derived arch scored with inherited weights)".to_string()
                } else {
                    format!(" on a {} supernet (archs scored with inherited weights)", m.name())
                })
                .unwrap_or_default(),
            prepared.data.source,
            prepared.split.train.len(),
            prepared.split.valid.len(),
            prepared.split.test.len()
        );
    }
    let (study, replayed) = open_study(
        &args,
        &dir,
        &cfg,
        &goal,
        space.as_ref(),
        quiet,
        tc.epochs,
        proposer,
        pre_metrics,
    )?;
    claim.start_workers(&dir, &cfg)?;
    let searched = match supernet {
        None => run_study(
            study,
            replayed,
            &cfg,
            &goal,
            &mut evaluator,
            quiet,
            tc.epochs,
        )?,
        Some(sup) => {
            let method = one_shot.expect("a supernet for a one-shot method");
            let (mut inherited, mut trained) = train_supernet(
                &dir,
                &cfg,
                method,
                sup,
                &prepared,
                device,
                latency_batch,
                quiet,
            )?;
            if let (Some(list), Some(st)) = (&derived, &trained.arch) {
                let archs = derived_archs(st, space.as_ref())?;
                trained.derived = archs.last().map(|a| space.format(a));
                *list.lock().unwrap_or_else(|e| e.into_inner()) = archs;
            }
            let mut searched = run_study(
                study,
                replayed,
                &cfg,
                &goal,
                &mut inherited,
                quiet,
                tc.epochs,
            )?;
            if method == OneShot::Ofa {
                trained.budgets = budget_picks(
                    &dir,
                    &cfg,
                    &goal,
                    &searched.trials,
                    space.as_ref(),
                    &inherited,
                    &prepared,
                    (&space_name, &space_params),
                    device,
                    quiet,
                )?;
            }
            searched.one_shot = Some(trained);
            searched
        }
    };
    if !claim.finish_workers(quiet)? {
        return Ok(());
    }
    let Some(best_trial) = searched.best.clone() else {
        return summarize(&args, &dir, &cfg, &goal, &searched, start, None);
    };
    let arch = space.parse_json(&best_trial.arch)?;
    let spec = space.decode(&arch)?;
    Activity::mark(&dir, "final training")?;
    let final_bar = super::progress_bar(quiet, 1, "final  {bar:30} {msg} [{elapsed} < {eta}]");
    let result = pipeline::final_training(
        &cfg,
        &prepared,
        (&space_name, &space_params),
        &space.format(&arch),
        &spec,
        &dir.join("best"),
        device,
        &final_bar,
    )?;
    final_bar.finish_and_clear();
    summarize(
        &args,
        &dir,
        &cfg,
        &goal,
        &searched,
        start,
        Some((result, task)),
    )
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &SearchArgs,
    dir: &std::path::Path,
    cfg: &SearchConfig,
    goal: &Goal,
    searched: &Searched,
    start: Instant,
    final_result: Option<(nasforge_nn::final_train::FinalResult, Task)>,
) -> Result<()> {
    Activity::mark(dir, "done")?;
    let trials = &searched.trials;
    let best = searched.best.as_ref();
    let (finished, replayed) = (searched.finished, searched.replayed);
    let complete = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    if best.is_none() && complete > 0 {
        anyhow::bail!(
            "no trial met the constraints {}: {complete} trials completed, none within them ({} is kept; `nasforge status {}` lists them). Loosen a constraint, or one that NetSpec judges (params, macs, peak_memory_mb) to skip such archs before training",
            goal.describe_constraints(),
            dir.display(),
            dir.display()
        );
    }
    if best.is_none() && !trials.is_empty() {
        // Every trial failed or stopped early: there is no result, and saying so with exit 0
        // would pass for one.
        let first = trials
            .iter()
            .filter(|t| !t.was_interrupted())
            .find_map(|t| t.error.as_deref());
        anyhow::bail!(
            "no trial completed: {} of {} trials failed{} ({} is kept; `nasforge status {}` lists them)",
            trials
                .iter()
                .filter(|t| t.state == TrialState::Failed && !t.was_interrupted())
                .count(),
            trials.iter().filter(|t| !t.was_interrupted()).count(),
            first
                .map(|e| format!(", the first because: {e}"))
                .unwrap_or_default(),
            dir.display(),
            dir.display()
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    let failed = trials
        .iter()
        .filter(|t| t.state == TrialState::Failed)
        .count();
    let arch = best.and_then(|b| b.arch["arch"].as_str().map(str::to_string));
    let pruned = trials
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .count();
    let epochs_trained: u64 = trials.iter().map(|t| u64::from(t.cost.epochs)).sum();
    let front = study::front_of(trials, goal);
    if args.json {
        let mut doc = serde_json::json!({
            "run_dir": dir,
            "space": cfg.space,
            "strategy": cfg.strategy,
            "scheduler": cfg.scheduler,
            "stopper": cfg.stopper,
            "objective": goal.objectives[0].metric,
            "skipped_infeasible": searched.skipped,
            "trials": finished,
            "failed": failed,
            "pruned": pruned,
            "epochs_trained": epochs_trained,
            "seconds": seconds,
            "arch": arch,
            "value": best.and_then(|b| b.value()),
            "best_trial": best.map(|b| b.number),
            "metrics": best.map(|b| &b.metrics),
            "resumed": {"replayed": replayed},
        });
        if let Some(o) = doc.as_object_mut() {
            o.extend(crate::report::run::goal_json(goal, Some(&front)));
        }
        doc["method"] = cfg.method.as_deref().unwrap_or("standard").into();
        if let Some(r) = &searched.one_shot {
            doc["supernet"] = serde_json::json!({
                "method": r.method.name(),
                "epochs": r.epochs.len(),
                "epochs_trained_now": r.trained_now,
                "seconds": r.seconds,
                "final_train_loss": r.epochs.last().map(|e| e.train_loss),
                "derived": r.derived,
                "checkpoint": dir.join(SUPERNET_DIR),
            });
            if r.method == OneShot::Ofa {
                doc["budgets"] = r.budgets.iter().map(BudgetPick::json).collect();
            }
        }
        if let Some((r, task)) = &final_result {
            doc["seeds"] = r.seeds.len().into();
            pipeline::write_test_score(&mut doc, *task, r);
            doc["model"] = dir.join("best").display().to_string().into();
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!("run        {}", dir.display());
    println!(
        "trials     {finished} finished ({failed} failed, {pruned} stopped early) in {seconds:.1} s; {epochs_trained} training epochs"
    );
    if let Some(r) = &searched.one_shot {
        println!(
            "supernet   {}: {} epochs ({} trained now) in {:.1} s, final training loss {:.4}; archs scored with inherited weights",
            r.method.name(),
            r.epochs.len(),
            r.trained_now,
            r.seconds,
            r.epochs.last().map_or(f64::NAN, |e| e.train_loss)
        );
        if let Some(d) = &r.derived {
            println!("derived    {d} (the last epoch's argmax α; every epoch's is a trial)");
        }
        for b in &r.budgets {
            match &b.pick {
                None => println!("budget     {}: no trial within it", b.budget),
                Some(p) => println!(
                    "budget     {}: trial {}, {} = {}; test {:.2} with inherited weights, {:.2} ± {:.2} from scratch ({} seeds; {})\n           {}",
                    b.budget,
                    p.trial.number,
                    b.budget.metric,
                    super::metric(p.trial.metrics[&b.budget.metric]),
                    p.inherited_test,
                    p.scratch.mean,
                    p.scratch.std,
                    p.scratch.seeds.len(),
                    p.model.display(),
                    p.arch
                ),
            }
        }
    }
    if goal.objectives.len() > 1 || !goal.constraints.is_empty() {
        println!(
            "goal       {}; constraints {}{}",
            goal.describe_objectives(),
            goal.describe_constraints(),
            if searched.skipped > 0 {
                format!(
                    " ({} skipped before training)",
                    super::plural(searched.skipped, "arch")
                )
            } else {
                String::new()
            }
        );
    }
    if goal.objectives.len() > 1 {
        println!(
            "front      {} not dominated by any other feasible trial:",
            super::plural(front.len(), "trial")
        );
        for t in &front {
            println!(
                "  trial {:<5} {}",
                t.number,
                super::objective_values(goal, &t.values)
            );
        }
    }
    match best {
        Some(b) => {
            println!(
                "best       trial {}: {} = {:.4}",
                b.number,
                goal.objectives[0].metric,
                b.value().unwrap_or(f64::NAN)
            );
            println!("arch       {}", arch.as_deref().unwrap_or(&b.arch_key));
            for (k, v) in &b.metrics {
                println!("  {k:<16} {}", super::metric(*v));
            }
        }
        None => println!("best       none: no trial completed"),
    }
    if let Some((r, task)) = final_result {
        let what = pipeline::test_score_names(task).1;
        let per_seed: Vec<String> = r
            .seeds
            .iter()
            .map(|s| match s.test {
                nasforge_nn::train::Metric::Accuracy(a) => format!("{a:.2}"),
                nasforge_nn::train::Metric::Regression { mse, .. } => format!("{mse:.4}"),
                nasforge_nn::train::Metric::BitsPerToken(b) => format!("{b:.4}"),
            })
            .collect();
        println!(
            "final      {what} {:.2} ± {:.2} over {} ({}), trained from scratch on train+valid",
            r.mean,
            r.std,
            super::plural(r.seeds.len(), "seed"),
            per_seed.join(", ")
        );
        println!("model      {}", dir.join("best").display());
    }
    Ok(())
}

/// The gradient-norm clipping of a supernet's steps when `--grad-clip` is not given, as the
/// supernet recipes of DARTS and NAS-Bench-201 clip: paths of one supernet differ in scale
/// (the macro space's sums of skip inputs through parameter-free layers reach logits a
/// hundred times another path's), and without it the default SPOS run on the macro space
/// diverged to NaN at epoch 15.
const SUPERNET_GRAD_CLIP: f64 = 5.0;

/// Supernet epochs of a one-shot method when `--supernet-epochs` is not given.
const DEFAULT_SUPERNET_EPOCHS: usize = 30;

/// What a one-shot method's supernet phase leaves for the summary.
struct OneShotRun {
    method: OneShot,
    epochs: Vec<nasforge_nn::train::EpochStats>,
    /// The architecture parameters of DARTS, GDAS or ENAS, with each epoch's derived arch.
    arch: Option<ArchState>,
    /// The last epoch's derived arch (DARTS, GDAS, ENAS), formatted.
    derived: Option<String>,
    /// Epochs trained by this process (the others were read from the checkpoint).
    trained_now: usize,
    seconds: f64,
    /// Once-for-all: the sub-network picked for each budget.
    budgets: Vec<BudgetPick>,
}

/// Once-for-all's sub-network for one budget: the best trial within it, scored on the test
/// split with the weights it inherits and trained from scratch.
struct BudgetPick {
    budget: study::Constraint,
    /// `None` when no trial fits the budget.
    pick: Option<Picked>,
}

struct Picked {
    trial: study::Trial,
    arch: String,
    /// Test accuracy (or MSE) with inherited weights, batch norms recalibrated.
    inherited_test: f64,
    /// The same arch trained from scratch on train + valid, `--final-seeds` seeds.
    scratch: nasforge_nn::final_train::FinalResult,
    model: PathBuf,
}

impl BudgetPick {
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "budget": self.budget.to_string(),
            "metric": self.budget.metric,
            "limit": self.budget.limit,
        });
        if let Some(p) = &self.pick {
            v["trial"] = p.trial.number.into();
            v["arch"] = p.arch.clone().into();
            v["metrics"] = serde_json::to_value(&p.trial.metrics).unwrap_or_default();
            v["inherited_test"] = p.inherited_test.into();
            v["scratch_test_mean"] = p.scratch.mean.into();
            v["scratch_test_std"] = p.scratch.std.into();
            v["scratch_seeds"] = p.scratch.seeds.len().into();
            v["model"] = p.model.display().to_string().into();
        }
        v
    }
}

/// For each `--budget`: the finished trial with the best first objective among those within
/// it, its test score with inherited weights, and the arch trained from scratch (final
/// recipe and seeds) into `RUN/budgets/<k>`.
#[allow(clippy::too_many_arguments)]
fn budget_picks(
    dir: &std::path::Path,
    cfg: &SearchConfig,
    goal: &Goal,
    trials: &[study::Trial],
    space: &dyn Space,
    inherited: &InheritedEvaluator,
    prepared: &Prepared,
    space_id: (&str, &[String]),
    device: nasforge_nn::device::DeviceKind,
    quiet: bool,
) -> Result<Vec<BudgetPick>> {
    let first = &goal.objectives[0];
    let mut out = Vec::new();
    for (k, budget) in cfg.budgets()?.into_iter().enumerate() {
        let within = trials.iter().filter(|t| {
            t.state == TrialState::Complete
                && t.violation.unwrap_or(0.0) == 0.0
                && t.metrics
                    .get(&budget.metric)
                    .is_some_and(|&v| budget.violation(v) == 0.0)
        });
        let best = within
            .filter_map(|t| t.metrics.get(&first.metric).map(|&v| (t, v)))
            .max_by(|a, b| {
                let (a, b) = match first.direction {
                    study::Direction::Maximize => (a.1, b.1),
                    study::Direction::Minimize => (b.1, a.1),
                };
                a.total_cmp(&b)
            })
            .map(|(t, _)| t.clone());
        let Some(trial) = best else {
            out.push(BudgetPick { budget, pick: None });
            continue;
        };
        let arch = space.parse_json(&trial.arch)?;
        let text = space.format(&arch);
        let inherited_test = inherited
            .score(arch.values(), &prepared.split.test)?
            .value();
        Activity::mark(dir, &format!("training the pick for {budget} from scratch"))?;
        let bar = super::progress_bar(quiet, 1, "budget {bar:30} {msg} [{elapsed} < {eta}]");
        let model = dir.join("budgets").join(k.to_string());
        let scratch = pipeline::final_training(
            cfg,
            prepared,
            space_id,
            &text,
            &space.decode(&arch)?,
            &model,
            device,
            &bar,
        )?;
        bar.finish_and_clear();
        out.push(BudgetPick {
            budget,
            pick: Some(Picked {
                trial,
                arch: text,
                inherited_test,
                scratch,
                model,
            }),
        });
    }
    Ok(out)
}

/// Trains the supernet of a one-shot method (or continues it from `RUN/supernet`, stored
/// after every epoch) and returns the evaluator that scores archs with its weights.
#[allow(clippy::too_many_arguments)]
fn train_supernet(
    dir: &std::path::Path,
    cfg: &SearchConfig,
    method: OneShot,
    sup: nasforge_core::netspec::supernet::SuperSpec,
    prepared: &Prepared,
    device: nasforge_nn::device::DeviceKind,
    latency_batch: Option<usize>,
    quiet: bool,
) -> Result<(InheritedEvaluator, OneShotRun)> {
    let start = Instant::now();
    let mut tc = pipeline::train_config(cfg, false)?;
    tc.epochs = cfg.supernet_epochs.expect("resolved");
    if cfg.grad_clip.is_none() {
        tc.grad_clip = Some(SUPERNET_GRAD_CLIP);
    }
    let seed = cfg.seed.unwrap_or(0);
    let checkpoint = Checkpoint::new(dir.join(SUPERNET_DIR));
    let stored = checkpoint.epochs()?.len();
    Activity::mark(dir, "training the supernet")?;
    let bar = super::progress_bar(
        quiet,
        tc.epochs as u64,
        "supernet {bar:30} epoch {pos}/{len} {msg} [{elapsed} < {eta}]",
    );
    bar.set_position(stored as u64);
    if !quiet && stored > 0 {
        eprintln!(
            "supernet: {stored} of {} epochs read from {}",
            tc.epochs,
            checkpoint.dir().display()
        );
    }
    let setup = nasforge_nn::train::TrainSetup {
        data: &prepared.data,
        train_rows: &prepared.split.train,
        // DARTS' and GDAS' architecture steps; single-path training reads none.
        valid_rows: &prepared.split.valid,
        config: &tc,
        device,
    };
    let mut on_epoch = |e: &nasforge_nn::train::EpochStats| {
        bar.set_position(e.epoch as u64);
        bar.set_message(format!("loss {:.3}", e.train_loss));
        nasforge_nn::train::Control::Continue
    };
    let supernet = Supernet::seeded(sup, &device.training_device(), seed);
    let trained = match arch_config(cfg, method) {
        Some(arch) => supernet
            .train_relaxed(setup, seed, arch, Some(&checkpoint), &mut on_epoch)
            .map(|(s, e, a)| (s, e, Some(a))),
        None if method == OneShot::Ofa => supernet
            .train_progressive(
                setup,
                seed,
                cfg.distill.unwrap_or(false),
                Some(&checkpoint),
                &mut on_epoch,
            )
            .map(|(s, e)| (s, e, None)),
        None => {
            let sampling = match method {
                OneShot::Fairnas => Sampling::Fair,
                _ => Sampling::Uniform,
            };
            supernet
                .train_single_path(sampling, setup, seed, Some(&checkpoint), &mut on_epoch)
                .map(|(s, e)| (s, e, None))
        }
    };
    let (supernet, epochs, arch) = trained.map_err(|e| match e {
        nasforge_nn::train::TrainError::Invalid(e) => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::anyhow!(
            "supernet training failed: {other} ({} keeps every finished epoch)",
            checkpoint.dir().display()
        ),
    })?;
    bar.finish_and_clear();
    let evaluator = InheritedEvaluator::new(
        supernet,
        prepared.data.clone(),
        &prepared.split,
        tc.batch_size,
        seed,
        device,
    )
    .with_latency(latency_batch);
    Ok((
        evaluator,
        OneShotRun {
            method,
            arch,
            derived: None,
            budgets: Vec::new(),
            trained_now: epochs.len() - stored,
            epochs,
            seconds: start.elapsed().as_secs_f64(),
        },
    ))
}

/// The architecture parameters' settings of DARTS, GDAS and ENAS (`None` for the other methods).
fn arch_config(cfg: &SearchConfig, method: OneShot) -> Option<ArchConfig> {
    let arch = match method {
        OneShot::Darts => {
            let guard = match cfg.collapse_guard.as_deref() {
                Some("none") => Guard::None,
                Some("aux-skip") => Guard::AuxSkip,
                _ => Guard::BetaDecay {
                    lambda: DEFAULT_BETA_DECAY,
                },
            };
            if cfg.darts_order == Some(2) {
                ArchConfig::darts_second_order(guard)
            } else {
                ArchConfig::darts(guard)
            }
        }
        OneShot::Gdas => ArchConfig::gdas(),
        OneShot::Enas => ArchConfig::enas(),
        OneShot::Spos | OneShot::Fairnas | OneShot::Rsps | OneShot::Ofa => return None,
    };
    Some(ArchConfig {
        lr: cfg.arch_lr.unwrap_or(arch.lr),
        ..arch
    })
}

/// The arch each finished epoch of `st` derived, in epoch order.
fn derived_archs(st: &ArchState, space: &dyn Space) -> nasforge_core::Result<Vec<Arch>> {
    st.history
        .iter()
        .map(|h| space.arch_from_values(&h.derived))
        .collect()
}

/// The archs derived by the epochs stored in the run's supernet checkpoint (none when nothing
/// is stored).
fn stored_derived(dir: &std::path::Path, space: &dyn Space) -> Result<Vec<Arch>> {
    let folder = dir.join(SUPERNET_DIR);
    let damaged = |e: nasforge_core::Error| BadInput(format!("{}: {e}", folder.display()));
    match Checkpoint::new(&folder)
        .arch()
        .map_err(|e| BadInput(e.to_string()))?
    {
        Some(st) => Ok(derived_archs(&st, space).map_err(damaged)?),
        None => Ok(Vec::new()),
    }
}

/// What proposes the archs, as runs and the progress line name it: a relaxed one-shot method
/// (it derives its archs itself), else the scheduler or the strategy.
fn proposer_name(cfg: &SearchConfig, one_shot: Option<OneShot>) -> &str {
    match one_shot {
        Some(m) if m.relaxed() => m.name(),
        _ => cfg
            .scheduler
            .as_deref()
            .or(cfg.strategy.as_deref())
            .unwrap_or("rea"),
    }
}

/// Regularized evolution, or its multi-objective form when the search has several objectives.
fn default_strategy(cfg: &SearchConfig) -> &'static str {
    if cfg.objective.len() > 1 {
        "mo-rea"
    } else {
        "rea"
    }
}

/// Where a worker keeps outcomes it cannot store (its database is gone) for the next worker
/// on this machine: `NASFORGE_SPOOL`, else `~/.cache/nasforge/unsent`.
fn spool_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NASFORGE_SPOOL") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/nasforge/unsent"),
        None => std::env::temp_dir().join("nasforge-unsent"),
    }
}

fn worker_id() -> String {
    format!("{}:{}", crate::report::run::host(), std::process::id())
}
