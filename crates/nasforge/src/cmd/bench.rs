//! `nasforge bench`: strategies × seeds × query budgets on a tabular benchmark.

use super::{bad_input, build_space, parse_list, split_list};
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::bench::{self, BenchConfig};
use nasforge_core::scheduler::SCHEDULERS;
use nasforge_core::space::SPACE_NAMES;
use nasforge_core::strategy::{ProxyFn, STRATEGIES};
use nasforge_core::study::Direction;
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `nasforge bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// The space the table covers (its `arch` column is read in this space's text form).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: String,
    /// The benchmark table: CSV (or .csv.gz) with an `arch` column and numeric columns
    /// [default: the built-in NAS-Bench-201 CIFAR-10 table].
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Strategies to compare, comma separated (`all` for every registered one).
    #[arg(long, default_value = "rea,ls,random")]
    pub strategy: String,
    /// Query budgets, comma separated.
    #[arg(long, default_value = "50,100,200")]
    pub queries: String,
    /// Seeds per strategy (0..N).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = super::positive::<u64>)]
    pub seeds: u64,
    /// What strategies optimise, `METRIC` or `METRIC:max|min`: a table column, or a NetSpec
    /// metric (params, macs, peak_memory_mb). Repeat it for a multi-objective comparison
    /// (normalised hypervolume and share of the true front) [default: test_acc_200ep].
    #[arg(long, value_name = "METRIC[:max|min]")]
    pub objective: Vec<String>,
    /// The column reported for the arch found (default: the first objective).
    #[arg(long)]
    pub report: Option<String>,
    /// Whether a single objective without `:max`/`:min` is maximised or minimised [default: from its name, else maximize].
    #[arg(long)]
    pub direction: Option<String>,
    /// A hard limit `METRIC<=LIMIT` or `METRIC>=LIMIT` (repeatable): an arch over a NetSpec
    /// limit is never queried.
    #[arg(long, value_name = "METRIC<=LIMIT")]
    pub constraint: Vec<String>,
    /// With several objectives: the hypervolume's reference point, one value per objective,
    /// e.g. `85,1.6e6` [default: each objective's worst value in the table].
    #[arg(long, value_name = "LIST")]
    pub reference: Option<String>,
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
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    /// Compare at equal total training epochs instead of queries: epoch budgets, e.g.
    /// `2000,5000,10000`. Schedulers (sh, hyperband, asha, bohb) join the comparison.
    #[arg(long, value_name = "LIST")]
    pub epochs: Option<String>,
    /// With `--epochs`: what one evaluation costs at each fidelity the table holds, as
    /// `EPOCHS=COLUMN` pairs (default for NAS-Bench-201 tables: `12=valid_acc_12ep,200=test_acc_200ep`).
    #[arg(long, value_name = "LIST")]
    pub fidelities: Option<String>,
    /// A CSV of proxy values per arch (`nasforge proxies --out`): its columns become proxies for
    /// the strategies' `warm_start` parameter.
    #[arg(long, value_name = "FILE")]
    pub proxy_file: Option<PathBuf>,
}

/// The `warm_start` proxies: each numeric column of a `--proxy-file` looked up by arch, else a
/// zero-cost proxy computed on the spot (slow for large pools: precompute with `nasforge proxies --out`).
fn proxy_resolver(
    path: Option<&PathBuf>,
    space: &dyn nasforge_core::space::Space,
) -> Result<impl Fn(&str) -> Option<ProxyFn> + Sync> {
    let table = match path {
        Some(p) => Some(Arc::new(Table::load(p, space)?)),
        None => None,
    };
    Ok(move |name: &str| -> Option<ProxyFn> {
        let table = table.clone()?;
        let col = table.column_index(name).ok()?;
        Some(Arc::new(
            move |_: &dyn nasforge_core::space::Space, arch: &nasforge_core::space::Arch| {
                table.row(arch).map(|r| table.column(col)[r])
            },
        ))
    })
}

/// Runs `nasforge bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let start = Instant::now();
    let space = build_space(&args.space, &args.space_params)?;
    let strategies = if args.strategy == "all" {
        let mut all: Vec<String> = STRATEGIES.iter().map(|s| s.name.to_string()).collect();
        if args.epochs.is_some() {
            all.extend(SCHEDULERS.iter().map(|s| s.name.to_string()));
        }
        all
    } else {
        split_list(&args.strategy)
    };
    if strategies.is_empty() {
        return bad_input("--strategy is empty; name at least one, e.g. --strategy rea,ls,random");
    }
    let mut queries: Vec<usize> =
        parse_list("--queries", &args.queries, "a positive number of queries")?;
    queries.dedup();
    let (table, table_name) = super::table(args.table.as_deref(), space.as_ref())?;
    let table = Arc::new(table);
    let proxies = proxy_resolver(args.proxy_file.as_ref(), space.as_ref())?;
    if let Some(epochs) = &args.epochs {
        return run_cost(
            &args,
            (&table, &table_name),
            space.as_ref(),
            strategies,
            epochs,
            &proxies,
            start,
        );
    }
    let goal = bench_goal(&args)?;
    let report_col = args
        .report
        .clone()
        .unwrap_or_else(|| goal.objectives[0].metric.clone());
    let reference = match &args.reference {
        Some(r) => Some(parse_list::<f64>(
            "--reference",
            r,
            "a number per objective",
        )?),
        None => None,
    };
    let cfg = BenchConfig {
        strategies,
        strategy_params: Params::parse(&args.strategy_params)?,
        seeds: args.seeds,
        queries,
        goal: goal.clone(),
        report: report_col.clone(),
        reference,
        threads: threads(args.threads),
    };
    let report = bench::run_with(&table, space.as_ref(), &cfg, &proxies)?;
    if let Some(path) = &args.trajectories {
        let csv = report.trajectories_csv(&table, space.as_ref(), &cfg.goal, &cfg.report)?;
        std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let multi = goal.objectives.len() > 1;
    if args.json {
        let mut doc = serde_json::json!({
            "table": table_name,
            "objective": goal.objectives[0].metric,
            "report": cfg.report,
            "optimum": report.optimum,
            "seconds": seconds,
            "results": report.results,
        });
        if let Some(o) = doc.as_object_mut() {
            o.extend(crate::report::run::goal_json(&goal, None));
        }
        if let Some(front) = &report.front {
            doc["reference"] = front.reference.clone().into();
            doc["true_front"] = serde_json::json!({
                "size": front.rows.len(),
                "hypervolume": front.hypervolume,
            });
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!(
        "{} on {} ({} archs): search on {}{}, report `{}` of the best found; {} seeds; table optimum {:.4}",
        args.space,
        table_name,
        table.len(),
        goal.describe_objectives(),
        if goal.constraints.is_empty() {
            String::new()
        } else {
            format!(" under {}", goal.describe_constraints())
        },
        cfg.report,
        cfg.seeds,
        report.optimum
    );
    if let Some(front) = &report.front {
        println!(
            "true front: {} archs; hypervolume {:.6e} against reference {:?} (the hypervolume below is divided by it)",
            front.rows.len(),
            front.hypervolume,
            front.reference
        );
    }
    if multi {
        println!(
            "{:<10} {:>7}  {:>18}  {:>18}  {:>11}",
            "strategy", "queries", "hypervolume", "best report", "front found"
        );
    } else {
        println!(
            "{:<10} {:>7}  {:>18}  {:>8}  {:>13}",
            "strategy", "queries", "mean ± std", "regret", "optimum found"
        );
    }
    for r in &report.results {
        match (r.hypervolume, r.hypervolume_std, r.front_share) {
            (Some(hv), Some(sd), Some(share)) => println!(
                "{:<10} {:>7}  {:>9.4} ± {:<6.4}  {:>9.3} ± {:<6.3}  {:>10.1}%",
                r.strategy,
                r.queries,
                hv,
                sd,
                r.mean,
                r.std,
                100.0 * share
            ),
            _ => println!(
                "{:<10} {:>7}  {:>9.3} ± {:<6.3}  {:>8.3}  {:>12.0}%",
                r.strategy,
                r.queries,
                r.mean,
                r.std,
                r.regret,
                100.0 * r.optimum_found
            ),
        }
    }
    println!("{seconds:.2} s");
    Ok(())
}

/// The bench's goal: `--objective` (default `test_acc_200ep`), `--direction`, `--constraint`.
fn bench_goal(args: &BenchArgs) -> Result<nasforge_core::study::Goal> {
    let objectives = if args.objective.is_empty() {
        vec!["test_acc_200ep".to_string()]
    } else {
        args.objective.clone()
    };
    super::config::parse_goal(
        &objectives,
        args.direction.as_deref(),
        &args.constraint,
        Some(Direction::Maximize),
    )
}

fn threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// `nasforge bench --epochs`: the cost-aware comparison.
fn run_cost(
    args: &BenchArgs,
    (table, table_name): (&Arc<Table>, &str),
    space: &dyn nasforge_core::space::Space,
    methods: Vec<String>,
    epochs: &str,
    proxies: &(dyn Fn(&str) -> Option<ProxyFn> + Sync),
    start: Instant,
) -> Result<()> {
    let budgets: Vec<u64> = parse_list("--epochs", epochs, "a positive number of epochs")?;
    let fidelities_text = match &args.fidelities {
        Some(f) => f.clone(),
        None if table.column_index("valid_acc_12ep").is_ok()
            && table.column_index("test_acc_200ep").is_ok() =>
        {
            "12=valid_acc_12ep,200=test_acc_200ep".to_string()
        }
        None => {
            return bad_input(
                "--epochs needs --fidelities EPOCHS=COLUMN,... to know what an evaluation costs (e.g. 12=valid_acc_12ep,200=test_acc_200ep)",
            )
        }
    };
    let mut fidelities = Vec::new();
    for pair in split_list(&fidelities_text) {
        let Some((e, col)) = pair.split_once('=') else {
            return bad_input(format!("--fidelities: `{pair}` is not EPOCHS=COLUMN"));
        };
        let Ok(e) = e.trim().parse::<u32>() else {
            return bad_input(format!("--fidelities: `{e}` is not a number of epochs"));
        };
        fidelities.push((e, col.trim().to_string()));
    }
    fidelities.sort_by_key(|f| f.0);
    let goal = bench_goal(args)?;
    if goal.objectives.len() > 1 || !goal.constraints.is_empty() {
        return bad_input(
            "--epochs compares at equal training epochs on one objective; drop the extra --objective and --constraint, or drop --epochs",
        );
    }
    let objective = goal.objectives[0].clone();
    let cfg = bench::CostConfig {
        methods,
        params: Params::parse(&args.strategy_params)?,
        seeds: args.seeds,
        budgets,
        fidelities,
        objective: objective.metric.clone(),
        report: args
            .report
            .clone()
            .unwrap_or_else(|| objective.metric.clone()),
        direction: objective.direction,
        threads: threads(args.threads),
    };
    let (results, optimum) = bench::run_cost(table, space, &cfg, proxies)?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let doc = serde_json::json!({
            "table": table_name,
            "objective": cfg.objective,
            "report": cfg.report,
            "fidelities": cfg.fidelities,
            "optimum": optimum,
            "seconds": seconds,
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!(
        "{} on {} ({} archs): equal training epochs; fidelities {}; strategies search on `{}`, schedulers on the fidelities; report `{}`; {} seeds; table optimum {:.4}",
        args.space,
        table_name,
        table.len(),
        cfg.fidelities.iter().map(|(e, c)| format!("{c} = {e} epochs")).collect::<Vec<_>>().join(", "),
        cfg.objective,
        cfg.report,
        cfg.seeds,
        optimum
    );
    println!(
        "{:<10} {:>8}  {:>18}  {:>8}  {:>13}  {:>11}",
        "method", "epochs", "mean ± std", "regret", "optimum found", "evaluations"
    );
    for r in &results {
        println!(
            "{:<10} {:>8}  {:>9.3} ± {:<6.3}  {:>8.3}  {:>12.0}%  {:>11.1}",
            r.method,
            r.epochs,
            r.mean,
            r.std,
            r.regret,
            100.0 * r.optimum_found,
            r.evaluations
        );
    }
    println!("{seconds:.2} s");
    Ok(())
}
