//! Strategy comparison on a tabular benchmark: several strategies × seeds × query budgets,
//! the measure NAS papers report (best-found arch after N queries, averaged over seeds).
//!
//! A query is the first evaluation of an arch; strategies never re-propose one, and the loop
//! counts distinct archs only, so a re-query would be free. At each budget the arch with the best
//! `objective` so far is "found", and its `report` value is what the result shows (searching on
//! `valid_acc_12ep` and reporting `test_acc_200ep` measures a search on a cheap, noisy signal).

use crate::params::Params;
use crate::space::Space;
pub use crate::stats::mean_std;
use crate::strategy::{self, History};
use crate::study::Direction;
use crate::tabular::Table;
use crate::{Error, Result};
use serde::Serialize;

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
    /// The column strategies optimise.
    pub objective: String,
    /// The column reported for the arch found.
    pub report: String,
    /// Whether the objective (and report) are maximised or minimised.
    pub direction: Direction,
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
}

/// One query of one run.
#[derive(Clone, Debug)]
pub struct Step {
    /// Table row of the arch queried.
    pub row: usize,
    /// Table row of the best-by-objective arch after this query.
    pub best_row: usize,
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
}

/// Runs the comparison. Errors on an unknown strategy or column, an empty budget list, or a
/// table that lacks an arch a strategy proposes.
pub fn run(table: &Table, space: &dyn Space, cfg: &BenchConfig) -> Result<BenchReport> {
    run_with(table, space, cfg, &|_| None)
}

/// Like [`run`], with extra proxies for the strategies' `warm_start` parameter.
pub fn run_with(
    table: &Table,
    space: &dyn Space,
    cfg: &BenchConfig,
    proxies: strategy::ProxyResolver,
) -> Result<BenchReport> {
    let obj = table.column(table.metric_index(&cfg.objective)?);
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
    let sign = cfg.direction.sign();
    let jobs: Vec<(String, u64)> = cfg
        .strategies
        .iter()
        .flat_map(|s| (0..cfg.seeds).map(move |seed| (s.clone(), seed)))
        .collect();
    let run_one = |name: &str, seed: u64| -> Result<Trajectory> {
        let mut strat = strategy::build_lenient(name, seed, &cfg.strategy_params, proxies)?;
        let steps = strategy_steps(table, space, strat.as_mut(), obj, sign, max_q)?;
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
            let found: Vec<usize> = trajectories
                .iter()
                .filter(|t| &t.strategy == name)
                .filter_map(|t| t.steps.get(q.min(t.steps.len()).saturating_sub(1)))
                .map(|s| s.best_row)
                .collect();
            let values: Vec<f64> = found.iter().map(|&r| rep[r]).collect();
            let (mean, std) = mean_std(&values);
            let hits = found.iter().filter(|&&r| rep[r] == optimum).count();
            results.push(BenchResult {
                strategy: name.clone(),
                queries: q,
                seeds: cfg.seeds,
                mean,
                std,
                regret: (sign * (optimum - mean)).max(0.0),
                optimum_found: hits as f64 / found.len().max(1) as f64,
            });
        }
    }
    Ok(BenchReport {
        results,
        trajectories,
        optimum,
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

/// Runs `strat` for up to `queries` distinct archs looked up in `obj` (scores are `sign * obj`),
/// recording each query and the best-by-objective row after it.
fn strategy_steps(
    table: &Table,
    space: &dyn Space,
    strat: &mut dyn strategy::Strategy,
    obj: &[f64],
    sign: f64,
    queries: usize,
) -> Result<Vec<Step>> {
    let mut history = History::new();
    let mut steps = Vec::with_capacity(queries);
    let mut best: Option<usize> = None;
    while steps.len() < queries {
        let Some(arch) = strat.ask(space, &history) else {
            break;
        };
        let row = row_of(table, space, &arch)?;
        let score = sign * obj[row];
        history.mark_asked(&arch);
        history.record(&arch, Some(score));
        strat.tell(space, &arch, Some(score), &history);
        if best.is_none_or(|b| score > sign * obj[b]) {
            best = Some(row);
        }
        steps.push(Step {
            row,
            best_row: best.expect("set above"),
        });
    }
    Ok(steps)
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
    /// The trajectories as CSV: `strategy,seed,query,arch,objective,report,best_arch,best_objective,best_report`.
    pub fn trajectories_csv(
        &self,
        table: &Table,
        space: &dyn Space,
        objective: &str,
        report: &str,
    ) -> Result<String> {
        let obj = table.column(table.metric_index(objective)?);
        let rep = table.column(table.metric_index(report)?);
        let mut out = String::from(
            "strategy,seed,query,arch,objective,report,best_arch,best_objective,best_report\n",
        );
        for t in &self.trajectories {
            for (q, s) in t.steps.iter().enumerate() {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{}\n",
                    t.strategy,
                    t.seed,
                    q + 1,
                    space.format(table.arch(s.row)),
                    obj[s.row],
                    rep[s.row],
                    space.format(table.arch(s.best_row)),
                    obj[s.best_row],
                    rep[s.best_row]
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
    pub direction: Direction,
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
    table: &Table,
    space: &dyn Space,
    cfg: &CostConfig,
    proxies: strategy::ProxyResolver,
) -> Result<(Vec<CostResult>, f64)> {
    if cfg.fidelities.is_empty() {
        return Err(Error::invalid(
            "--fidelities needs at least one EPOCHS=COLUMN pair, e.g. 12=valid_acc_12ep,200=test_acc_200ep",
        ));
    }
    let cols: Vec<&[f64]> = cfg
        .fidelities
        .iter()
        .map(|(_, c)| table.metric_index(c).map(|i| table.column(i)))
        .collect::<Result<_>>()?;
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
    let run_one = |name: &str, seed: u64| -> Result<Vec<(u64, usize)>> {
        let mut steps = Vec::new();
        if crate::scheduler::is_scheduler(name) {
            let mut spent = 0u64;
            let mut sched = crate::scheduler::build(name, seed, rungs.clone(), &cfg.params)?;
            // Best (score, row) per rung.
            let mut best: Vec<Option<(f64, usize)>> = vec![None; rungs.len()];
            while spent < max_budget {
                let Some(job) = sched.next(space) else { break };
                let row = row_of(table, space, &job.arch)?;
                let score = sign * cols[job.rung][row];
                spent += rungs.budgets()[job.rung] as u64;
                sched.report(space, &job, Some(score));
                let b = &mut best[job.rung];
                if b.is_none_or(|(s, _)| score > s) {
                    *b = Some((score, row));
                }
                let found = best.iter().rev().flatten().next().expect("just set").1;
                steps.push((spent, found));
            }
        } else {
            let mut strat = strategy::build_lenient(name, seed, &cfg.params, proxies)?;
            let cost = cfg.fidelities[obj_level].0 as u64;
            let queries = max_budget.div_ceil(cost) as usize;
            let found =
                strategy_steps(table, space, strat.as_mut(), cols[obj_level], sign, queries)?;
            steps.extend(
                found
                    .into_iter()
                    .enumerate()
                    .map(|(i, step)| ((i as u64 + 1) * cost, step.best_row)),
            );
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
