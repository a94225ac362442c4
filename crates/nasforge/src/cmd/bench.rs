//! `nasforge bench`: strategies × seeds × query budgets on a tabular benchmark.

use super::{bad_input, build_space, split_list};
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::bench::{self, BenchConfig};
use nasforge_core::space::SPACE_NAMES;
use nasforge_core::strategy::STRATEGIES;
use nasforge_core::study::Direction;
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `nasforge bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// The space the table covers (its `arch` column is read in this space's text form).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: String,
    /// The benchmark table: CSV (or .csv.gz) with an `arch` column and numeric columns.
    #[arg(long)]
    pub table: PathBuf,
    /// Strategies to compare, comma separated (`all` for every registered one).
    #[arg(long, default_value = "rea,ls,random")]
    pub strategy: String,
    /// Query budgets, comma separated.
    #[arg(long, default_value = "50,100,200")]
    pub queries: String,
    /// Seeds per strategy (0..N).
    #[arg(long, default_value_t = 50)]
    pub seeds: u64,
    /// The column strategies optimise.
    #[arg(long, default_value = "test_acc_200ep")]
    pub objective: String,
    /// The column reported for the arch found (default: the objective).
    #[arg(long)]
    pub report: Option<String>,
    /// Whether the objective is maximised or minimised.
    #[arg(long, default_value = "maximize")]
    pub direction: String,
    /// A strategy parameter `key=value` (repeatable), e.g. `population=20`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    pub strategy_params: Vec<String>,
    /// A space size parameter `key=value` (repeatable).
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_params: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write every query of every run to this CSV file.
    #[arg(long)]
    pub trajectories: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `nasforge bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let start = Instant::now();
    let space = build_space(&args.space, &args.space_params)?;
    let strategies = if args.strategy == "all" {
        STRATEGIES.iter().map(|s| s.name.to_string()).collect()
    } else {
        split_list(&args.strategy)
    };
    if strategies.is_empty() {
        return bad_input("--strategy is empty; name at least one, e.g. --strategy rea,ls,random");
    }
    let mut queries = Vec::new();
    for q in split_list(&args.queries) {
        match q.parse::<usize>() {
            Ok(n) if n > 0 => queries.push(n),
            _ => {
                return bad_input(format!(
                    "--queries: `{q}` is not a positive number of queries"
                ))
            }
        }
    }
    queries.sort_unstable();
    queries.dedup();
    let table = Table::load(&args.table, space.as_ref())?;
    let report_col = args
        .report
        .clone()
        .unwrap_or_else(|| args.objective.clone());
    let cfg = BenchConfig {
        strategies,
        strategy_params: Params::parse(&args.strategy_params)?,
        seeds: args.seeds,
        queries,
        objective: args.objective.clone(),
        report: report_col.clone(),
        direction: Direction::parse(&args.direction)?,
        threads: args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
    };
    let report = bench::run(&table, space.as_ref(), &cfg)?;
    if let Some(path) = &args.trajectories {
        let csv = report.trajectories_csv(&table, space.as_ref(), &cfg.objective, &cfg.report)?;
        std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let doc = serde_json::json!({
            "table": args.table,
            "objective": cfg.objective,
            "report": cfg.report,
            "optimum": report.optimum,
            "seconds": seconds,
            "results": report.results,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{} on {} ({} archs): search on `{}`, report `{}` of the best found; {} seeds; table optimum {:.4}",
        args.space,
        args.table.display(),
        table.len(),
        cfg.objective,
        cfg.report,
        cfg.seeds,
        report.optimum
    );
    println!(
        "{:<10} {:>7}  {:>18}  {:>8}  {:>13}",
        "strategy", "queries", "mean ± std", "regret", "optimum found"
    );
    for r in &report.results {
        println!(
            "{:<10} {:>7}  {:>9.3} ± {:<6.3}  {:>8.3}  {:>12.0}%",
            r.strategy,
            r.queries,
            r.mean,
            r.std,
            r.regret,
            100.0 * r.optimum_found
        );
    }
    println!("{seconds:.2} s");
    Ok(())
}
