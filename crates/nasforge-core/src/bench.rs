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
    let obj = table.column(table.column_index(&cfg.objective)?);
    let rep = table.column(table.column_index(&cfg.report)?);
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
    let threads = cfg.threads.max(1).min(jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let run_one = |name: &str, seed: u64| -> Result<Trajectory> {
        let mut strat = strategy::build_lenient(name, seed, &cfg.strategy_params, proxies)?;
        let mut history = History::new();
        let mut steps = Vec::with_capacity(max_q);
        let mut best: Option<usize> = None;
        while steps.len() < max_q {
            let Some(arch) = strat.ask(space, &history) else {
                break;
            };
            let row = table.row(&arch).ok_or_else(|| {
                Error::invalid(format!(
                    "the table has no row for {}; a benchmark table must list every arch of the space",
                    space.format(&arch)
                ))
            })?;
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
        Ok(Trajectory {
            strategy: name.to_string(),
            seed,
            steps,
        })
    };
    let mut trajectories: Vec<Option<Result<Trajectory>>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((name, seed)) = jobs.get(i) else {
                            break;
                        };
                        done.push((i, run_one(name, *seed)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            for (i, t) in h.join().expect("bench worker panicked") {
                trajectories[i] = Some(t);
            }
        }
    });
    let trajectories: Vec<Trajectory> = trajectories
        .into_iter()
        .map(|t| t.expect("every job ran"))
        .collect::<Result<_>>()?;

    let optimum_row = (0..table.len())
        .max_by(|&a, &b| (sign * rep[a]).total_cmp(&(sign * rep[b])))
        .expect("table is not empty");
    let optimum = rep[optimum_row];
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

impl BenchReport {
    /// The trajectories as CSV: `strategy,seed,query,arch,objective,report,best_arch,best_objective,best_report`.
    pub fn trajectories_csv(
        &self,
        table: &Table,
        space: &dyn Space,
        objective: &str,
        report: &str,
    ) -> Result<String> {
        let obj = table.column(table.column_index(objective)?);
        let rep = table.column(table.column_index(report)?);
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
