//! Strategy comparison on a tabular benchmark: several strategies × seeds × query budgets,
//! the measure NAS papers report (best-found arch after N queries, averaged over seeds).
//!
//! Every run is a [`Study`] on in-memory storage with a [`TableEvaluator`]: the same loop as
//! `nasforge search`. A query is the first evaluation of an arch; strategies never re-propose
//! one, and an arch that breaks a NetSpec-judged constraint is never evaluated, so it is no
//! query either. At each budget the feasible arch with the best first objective so far is
//! "found", and its `report` value is what the result shows (searching on `valid_acc_12ep` and
//! reporting `test_acc_200ep` measures a search on a cheap, noisy signal). With several
//! objectives each result also has the normalised hypervolume of the feasible archs queried
//! (divided by the hypervolume of the table's true front) and the share of the true front found.

use crate::params::Params;
use crate::space::Space;
pub use crate::stats::mean_std;
use crate::strategy;
use crate::study::{
    self, Goal, MemoryStorage, Proposer, SchedulerProposer, StrategyProposer, Study, StudyRecord,
    TableEvaluator, Trial,
};
use crate::tabular::Table;
use crate::{Error, Result};
use serde::Serialize;
use std::sync::Arc;

/// What to compare.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Strategy names (each built fresh per seed).
    pub strategies: Vec<String>,
    /// Parameters passed to every strategy that reads them.
    pub strategy_params: Params,
    /// Seeds 0..seeds.
    pub seeds: u64,
    /// Query budgets to report, ascending.
    pub queries: Vec<usize>,
    /// What the strategies optimise: table columns or NetSpec metrics (params, macs,
    /// peak_memory_mb), and constraints. The first objective finds the reported arch.
    pub goal: Goal,
    /// The column reported for the arch found (compared in the first objective's direction).
    pub report: String,
    /// With several objectives: the hypervolume's reference point, one value per objective
    /// [default: each objective's worst value in the table].
    pub reference: Option<Vec<f64>>,
    /// Worker threads (seeds run in parallel).
    pub threads: usize,
}

/// One strategy at one budget, over all seeds.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Strategy name.
    pub strategy: String,
    /// Query budget.
    pub queries: usize,
    /// Number of seeds.
    pub seeds: u64,
    /// Mean reported value of the arch found.
    pub mean: f64,
    /// Population standard deviation over seeds (ddof = 0).
    pub std: f64,
    /// Distance of the mean from the table's best reported value.
    pub regret: f64,
    /// Fraction of seeds whose found arch is the table's best by the report column.
    pub optimum_found: f64,
    /// With several objectives: mean normalised hypervolume of the feasible archs queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervolume: Option<f64>,
    /// Its standard deviation over seeds (ddof = 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervolume_std: Option<f64>,
    /// With several objectives: mean share of the table's true front among the archs queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_share: Option<f64>,
}

/// One query of one run.
#[derive(Clone, Debug)]
pub struct Step {
    /// Table row of the arch queried.
    pub row: usize,
    /// Its objective values.
    pub values: Vec<f64>,
    /// Table row of the best feasible arch by the first objective after this query (`None`
    /// while no feasible arch was queried).
    pub best_row: Option<usize>,
}

/// Every query of one strategy and seed.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// Strategy name.
    pub strategy: String,
    /// Seed.
    pub seed: u64,
    /// Queries in order.
    pub steps: Vec<Step>,
}

/// Results for every strategy and budget, and the trajectories behind them.
#[derive(Debug)]
pub struct BenchReport {
    /// One entry per strategy and budget, in the order asked.
    pub results: Vec<BenchResult>,
    /// One per strategy and seed.
    pub trajectories: Vec<Trajectory>,
    /// The best reported value in the table.
    pub optimum: f64,
    /// With several objectives: the table's true front (rows) and its hypervolume.
    pub front: Option<TrueFront>,
}

/// The Pareto front of a whole table under a goal.
#[derive(Clone, Debug, Serialize)]
pub struct TrueFront {
    /// Rows on the front (feasible and non-dominated), ascending.
    pub rows: Vec<usize>,
    /// Its hypervolume against `reference`.
    pub hypervolume: f64,
    /// The reference point used (objective values, not sign-adjusted).
    pub reference: Vec<f64>,
}

/// Every row's objective values and constraint violation under `goal`: table columns, or the
/// NetSpec metrics of the row's arch.
fn table_values(
    table: &Table,
    space: &dyn Space,
    goal: &Goal,
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let needs_netspec = goal
        .objectives
        .iter()
        .map(|o| &o.metric)
        .chain(goal.constraints.iter().map(|c| &c.metric))
        .any(|m| table.column_index(m).is_err());
    let mut values = Vec::with_capacity(table.len());
    let mut violations = Vec::with_capacity(table.len());
    for row in 0..table.len() {
        let mut metrics: std::collections::BTreeMap<String, f64> = table
            .row_values(row)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if needs_netspec {
            metrics.extend(study::netspec_metrics(&space.decode(table.arch(row))?));
        }
        let judged = goal.judge(&metrics).map_err(Error::invalid)?;
        values.push(judged.values);
        violations.push(judged.violation);
    }
    Ok((values, violations))
}

/// One seeded run: a study of `proposer` on `table`, to `trials` finished trials or
/// `epoch_budget` epochs; returns its trials in order.
fn run_study(
    space: &dyn Space,
    goal: &Goal,
    proposer: Box<dyn Proposer>,
    evaluator: &mut TableEvaluator,
    trials: usize,
    epoch_budget: Option<u64>,
) -> Result<Vec<Trial>> {
    let record = StudyRecord::new(
        "bench",
        space.name(),
        space.params_json(),
        proposer.name().to_string(),
        goal.clone(),
        0,
        serde_json::Value::Null,
    );
    let (mut study, _) = Study::open(
        Box::new(MemoryStorage::new()),
        record,
        space,
        proposer,
        "bench",
    )?;
    if let Some(b) = epoch_budget {
        study.set_epoch_budget(b);
    }
    let mut out = Vec::new();
    study.optimize(evaluator, trials, |_, t| out.push(t.clone()))?;
    if let Some(t) = out.iter().find(|t| t.state == study::TrialState::Failed) {
        return Err(Error::invalid(format!(
            "trial {} failed: {}; a benchmark table must list every arch of the space",
            t.number,
            t.error.as_deref().unwrap_or("")
        )));
    }
    Ok(out)
}

/// The table row of a trial's arch.
fn trial_row(table: &Table, space: &dyn Space, t: &Trial) -> Result<usize> {
    let arch = space.parse_json(&t.arch)?;
    row_of(table, space, &arch)
}

/// Runs the comparison. Errors on an unknown strategy or column, an empty budget list, or a
/// table that lacks an arch a strategy proposes.
pub fn run(table: &Arc<Table>, space: &dyn Space, cfg: &BenchConfig) -> Result<BenchReport> {
    run_with(table, space, cfg, &|_| None)
}

/// Like [`run`], with extra proxies for the strategies' `warm_start` parameter.
pub fn run_with(
    table: &Arc<Table>,
    space: &dyn Space,
    cfg: &BenchConfig,
    proxies: strategy::ProxyResolver,
) -> Result<BenchReport> {
    TableEvaluator::new(table.clone()).check_goal(&cfg.goal)?;
    let rep = table.column(table.metric_index(&cfg.report)?);
    if cfg.queries.is_empty() || cfg.queries.contains(&0) {
        return Err(Error::invalid(
            "--queries needs positive budgets, for example 50,100,200",
        ));
    }
    if cfg.seeds == 0 {
        return Err(Error::invalid("--seeds must be at least 1"));
    }
    let max_q = *cfg.queries.iter().max().expect("non-empty");
    if max_q > table.len() {
        return Err(Error::invalid(format!(
            "a budget of {max_q} queries is more than the table's {} archs",
            table.len()
        )));
    }
    strategy::check(&cfg.strategies, &cfg.strategy_params, proxies)?;
    let goal = &cfg.goal;
    let n_obj = goal.objectives.len();
    let sign = goal.objectives[0].sign();
    // Several objectives: every row's values, the true front and the reference point.
    let multi = if n_obj > 1 {
        let (values, violations) = table_values(table, space, goal)?;
        let reference = match &cfg.reference {
            Some(r) if r.len() != n_obj => {
                return Err(Error::invalid(format!(
                    "--reference has {} values for {n_obj} objectives",
                    r.len()
                )))
            }
            Some(r) => r.clone(),
            None => (0..n_obj)
                .map(|k| {
                    let s = goal.objectives[k].sign();
                    values
                        .iter()
                        .map(|v| v[k])
                        .min_by(|a, b| (s * a).total_cmp(&(s * b)))
                        .expect("a table has rows")
                })
                .collect(),
        };
        let feasible: Vec<usize> = (0..table.len()).filter(|&r| violations[r] <= 0.0).collect();
        let points: Vec<Vec<f64>> = feasible.iter().map(|&r| goal.scores(&values[r])).collect();
        let ref_scores = goal.scores(&reference);
        let mut rows: Vec<usize> = crate::pareto::front(&points)
            .into_iter()
            .map(|i| feasible[i])
            .collect();
        rows.sort_unstable();
        let front_points: Vec<Vec<f64>> = rows.iter().map(|&r| goal.scores(&values[r])).collect();
        let hv = crate::pareto::hypervolume(&front_points, &ref_scores)?;
        if hv <= 0.0 {
            return Err(Error::invalid(format!(
                "no feasible arch of the table is better than the reference point {reference:?} in every objective; choose another --reference"
            )));
        }
        Some((
            values,
            violations,
            TrueFront {
                rows,
                hypervolume: hv,
                reference,
            },
        ))
    } else {
        None
    };
    let jobs: Vec<(String, u64)> = cfg
        .strategies
        .iter()
        .flat_map(|s| (0..cfg.seeds).map(move |seed| (s.clone(), seed)))
        .collect();
    let run_one = |name: &str, seed: u64| -> Result<Trajectory> {
        let strat = strategy::build_lenient(name, seed, &cfg.strategy_params, proxies)?;
        let proposer = StrategyProposer::boxed(strat, n_obj, seed);
        let mut evaluator = TableEvaluator::new(table.clone());
        let trials = run_study(space, goal, proposer, &mut evaluator, max_q, None)?;
        let mut steps = Vec::with_capacity(trials.len());
        let mut best: Option<(f64, usize)> = None;
        for t in &trials {
            let row = trial_row(table, space, t)?;
            if let Some(score) = t.is_feasible().then(|| sign * t.values[0]) {
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, row));
                }
            }
            steps.push(Step {
                row,
                values: t.values.clone(),
                best_row: best.map(|b| b.1),
            });
        }
        Ok(Trajectory {
            strategy: name.to_string(),
            seed,
            steps,
        })
    };
    let trajectories: Vec<Trajectory> =
        par_map(&jobs, cfg.threads, |(name, seed)| run_one(name, *seed))
            .into_iter()
            .collect::<Result<_>>()?;

    let optimum = best_value(rep, sign);
    let mut results = Vec::new();
    for name in &cfg.strategies {
        for &q in &cfg.queries {
            let runs: Vec<&Trajectory> = trajectories
                .iter()
                .filter(|t| &t.strategy == name)
                .collect();
            let found: Vec<usize> = runs
                .iter()
                .filter_map(|t| t.steps.get(q.min(t.steps.len()).saturating_sub(1)))
                .filter_map(|s| s.best_row)
                .collect();
            let values: Vec<f64> = found.iter().map(|&r| rep[r]).collect();
            let (mean, std) = mean_std(&values);
            let hits = found.iter().filter(|&&r| rep[r] == optimum).count();
            let (mut hypervolume, mut hypervolume_std, mut front_share) = (None, None, None);
            if let Some((vals, violations, front)) = &multi {
                let mut hvs = Vec::new();
                let mut shares = Vec::new();
                let ref_scores = goal.scores(&front.reference);
                for t in &runs {
                    let seen: Vec<usize> = t.steps.iter().take(q).map(|s| s.row).collect();
                    let pts: Vec<Vec<f64>> = seen
                        .iter()
                        .filter(|&&r| violations[r] <= 0.0)
                        .map(|&r| goal.scores(&vals[r]))
                        .collect();
                    hvs.push(crate::pareto::hypervolume(&pts, &ref_scores)? / front.hypervolume);
                    let on_front = seen
                        .iter()
                        .filter(|r| front.rows.binary_search(r).is_ok())
                        .count();
                    shares.push(on_front as f64 / front.rows.len() as f64);
                }
                let (m, s) = mean_std(&hvs);
                hypervolume = Some(m);
                hypervolume_std = Some(s);
                front_share = Some(mean_std(&shares).0);
            }
            results.push(BenchResult {
                strategy: name.clone(),
                queries: q,
                seeds: cfg.seeds,
                mean,
                std,
                regret: (sign * (optimum - mean)).max(0.0),
                optimum_found: hits as f64 / found.len().max(1) as f64,
                hypervolume,
                hypervolume_std,
                front_share,
            });
        }
    }
    Ok(BenchReport {
        results,
        trajectories,
        optimum,
        front: multi.map(|m| m.2),
    })
}

/// The best value of a (non-empty) column, `sign` saying which way is better.
fn best_value(column: &[f64], sign: f64) -> f64 {
    column
        .iter()
        .copied()
        .max_by(|a, b| (sign * a).total_cmp(&(sign * b)))
        .expect("a table has rows")
}

/// The table row of `arch`; an error names the arch when the table lacks it.
fn row_of(table: &Table, space: &dyn Space, arch: &crate::space::Arch) -> Result<usize> {
    table.row(arch).ok_or_else(|| {
        Error::invalid(format!(
            "the table has no row for {}; a benchmark table must list every arch of the space",
            space.format(arch)
        ))
    })
}

/// `f` over `jobs` on up to `threads` threads; results in job order.
fn par_map<J: Sync, T: Send>(jobs: &[J], threads: usize, f: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let threads = threads.max(1).min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            break;
                        };
                        done.push((i, f(job)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            for (i, t) in h.join().expect("bench worker panicked") {
                out[i] = Some(t);
            }
        }
    });
    out.into_iter().map(|t| t.expect("every job ran")).collect()
}

impl BenchReport {
    /// The trajectories as CSV: `strategy,seed,query,arch,<one column per objective>,report,best_arch,best_report`
    /// (the best columns are empty while no feasible arch was queried).
    pub fn trajectories_csv(
        &self,
        table: &Table,
        space: &dyn Space,
        goal: &Goal,
        report: &str,
    ) -> Result<String> {
        let rep = table.column(table.metric_index(report)?);
        let names: Vec<&str> = goal.objectives.iter().map(|o| o.metric.as_str()).collect();
        let mut out = format!(
            "strategy,seed,query,arch,{},report,best_arch,best_report\n",
            names.join(",")
        );
        for t in &self.trajectories {
            for (q, s) in t.steps.iter().enumerate() {
                let values: Vec<String> = s.values.iter().map(|v| v.to_string()).collect();
                let (best_arch, best_rep) = match s.best_row {
                    Some(b) => (space.format(table.arch(b)), rep[b].to_string()),
                    None => (String::new(), String::new()),
                };
                out.push_str(&format!(
                    "{},{},{},{},{},{},{best_arch},{best_rep}\n",
                    t.strategy,
                    t.seed,
                    q + 1,
                    space.format(table.arch(s.row)),
                    values.join(","),
                    rep[s.row],
                ));
            }
        }
        Ok(out)
    }
}

/// A cost-aware comparison: strategies and multi-fidelity schedulers at equal total epochs.
#[derive(Clone, Debug)]
pub struct CostConfig {
    /// Strategy or scheduler names.
    pub methods: Vec<String>,
    /// Parameters passed to every method that reads them.
    pub params: Params,
    /// Seeds 0..seeds.
    pub seeds: u64,
    /// Epoch budgets to report, ascending.
    pub budgets: Vec<u64>,
    /// The fidelities the table holds: (epochs one evaluation costs, column), cheapest first.
    pub fidelities: Vec<(u32, String)>,
    /// The column single-fidelity strategies search on (one of the fidelity columns).
    pub objective: String,
    /// The column reported for the arch found.
    pub report: String,
    /// Whether higher or lower is better.
    pub direction: study::Direction,
    /// Worker threads.
    pub threads: usize,
}

/// One method at one epoch budget, over all seeds.
#[derive(Clone, Debug, Serialize)]
pub struct CostResult {
    /// Strategy or scheduler name.
    pub method: String,
    /// Epoch budget.
    pub epochs: u64,
    /// Number of seeds.
    pub seeds: u64,
    /// Mean reported value of the arch found.
    pub mean: f64,
    /// Its standard deviation over seeds (ddof = 0).
    pub std: f64,
    /// Distance of the mean from the table's best reported value.
    pub regret: f64,
    /// Fraction of seeds whose found arch is the table's best.
    pub optimum_found: f64,
    /// Mean number of evaluations within the budget.
    pub evaluations: f64,
}

/// Runs a cost-aware comparison. A single-fidelity strategy pays the epochs of its objective's
/// fidelity per query and finds the best arch by its objective. A scheduler evaluates at the
/// fidelities as rungs, pays each evaluation's epochs (a promotion retrains from scratch, so it
/// pays the full higher budget), and finds the best arch among those evaluated at the highest
/// rung reached so far.
pub fn run_cost(
    table: &Arc<Table>,
    space: &dyn Space,
    cfg: &CostConfig,
    proxies: strategy::ProxyResolver,
) -> Result<(Vec<CostResult>, f64)> {
    if cfg.fidelities.is_empty() {
        return Err(Error::invalid(
            "--fidelities needs at least one EPOCHS=COLUMN pair, e.g. 12=valid_acc_12ep,200=test_acc_200ep",
        ));
    }
    for (_, c) in &cfg.fidelities {
        table.metric_index(c)?;
    }
    let rungs = crate::scheduler::Rungs::explicit(cfg.fidelities.iter().map(|f| f.0).collect())?;
    let rep = table.column(table.metric_index(&cfg.report)?);
    let obj_level = cfg
        .fidelities
        .iter()
        .position(|(_, c)| *c == cfg.objective)
        .ok_or_else(|| {
            Error::invalid(format!(
                "the objective `{}` is not one of the fidelity columns ({}); single-fidelity strategies need to know what a query costs",
                cfg.objective,
                cfg.fidelities.iter().map(|f| f.1.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
    let top_cost = cfg.fidelities.last().expect("non-empty").0 as u64;
    if cfg.budgets.is_empty() || cfg.budgets[0] < top_cost {
        return Err(Error::invalid(format!(
            "--epochs needs budgets of at least {top_cost} (one evaluation at the highest fidelity)"
        )));
    }
    if cfg.seeds == 0 {
        return Err(Error::invalid("--seeds must be at least 1"));
    }
    let (strategies, schedulers): (Vec<String>, Vec<String>) = cfg
        .methods
        .iter()
        .cloned()
        .partition(|m| !crate::scheduler::is_scheduler(m));
    for s in &strategies {
        strategy::build_lenient(s, 0, &cfg.params, proxies)?;
    }
    for s in &schedulers {
        crate::scheduler::build(s, 0, rungs.clone(), &cfg.params)?;
    }
    cfg.params.finish(&cfg.methods.join(", "))?;
    let sign = cfg.direction.sign();
    let max_budget = *cfg.budgets.iter().max().expect("non-empty");
    let jobs: Vec<(String, u64)> = cfg
        .methods
        .iter()
        .flat_map(|s| (0..cfg.seeds).map(move |seed| (s.clone(), seed)))
        .collect();
    // Per run: (cumulative epochs after each evaluation, found row after it).
    let obj_epochs = cfg.fidelities[obj_level].0;
    let run_one = |name: &str, seed: u64| -> Result<Vec<(u64, usize)>> {
        let mut evaluator =
            TableEvaluator::new(table.clone()).with_fidelities(&cfg.fidelities, obj_epochs)?;
        let scheduled = crate::scheduler::is_scheduler(name);
        // A scheduler ranks each rung on that rung's column; a strategy on its objective.
        let (proposer, goal): (Box<dyn Proposer>, Goal) = if scheduled {
            let sched = crate::scheduler::build(name, seed, rungs.clone(), &cfg.params)?;
            (
                SchedulerProposer::boxed(sched),
                Goal::single(study::FIDELITY_VALUE, cfg.direction),
            )
        } else {
            let strat = strategy::build_lenient(name, seed, &cfg.params, proxies)?;
            (
                StrategyProposer::boxed(strat, 1, seed),
                Goal::single(cfg.objective.clone(), cfg.direction),
            )
        };
        let trials = run_study(
            space,
            &goal,
            proposer,
            &mut evaluator,
            usize::MAX,
            Some(max_budget),
        )?;
        // Found: the best arch among those evaluated at the highest rung reached so far.
        let mut steps = Vec::with_capacity(trials.len());
        let mut spent = 0u64;
        let mut best: Vec<Option<(f64, usize)>> = vec![None; rungs.len()];
        for t in &trials {
            spent += u64::from(t.cost.epochs);
            let level = match t.fidelity.epochs {
                Some(e) => rungs.budgets().iter().position(|&b| b == e).unwrap_or(0),
                None => 0,
            };
            let row = trial_row(table, space, t)?;
            if let Some(score) = t.score(sign) {
                let b = &mut best[level];
                if b.is_none_or(|(s, _)| score > s) {
                    *b = Some((score, row));
                }
            }
            if let Some(found) = best.iter().rev().flatten().next() {
                steps.push((spent, found.1));
            }
        }
        Ok(steps)
    };
    let runs: Vec<Vec<(u64, usize)>> =
        par_map(&jobs, cfg.threads, |(name, seed)| run_one(name, *seed))
            .into_iter()
            .collect::<Result<_>>()?;
    let optimum = best_value(rep, sign);
    let mut results = Vec::new();
    for name in &cfg.methods {
        for &budget in &cfg.budgets {
            let mut values = Vec::new();
            let mut evals = 0usize;
            for ((m, _), steps) in jobs.iter().zip(&runs) {
                if m != name {
                    continue;
                }
                let within = steps.iter().take_while(|(c, _)| *c <= budget).count();
                evals += within;
                if let Some(&(_, row)) = steps[..within].last() {
                    values.push(rep[row]);
                }
            }
            let (mean, std) = mean_std(&values);
            results.push(CostResult {
                method: name.clone(),
                epochs: budget,
                seeds: cfg.seeds,
                mean,
                std,
                regret: (sign * (optimum - mean)).max(0.0),
                optimum_found: values.iter().filter(|&&v| v == optimum).count() as f64
                    / values.len().max(1) as f64,
                evaluations: evals as f64 / cfg.seeds as f64,
            });
        }
    }
    Ok((results, optimum))
}
