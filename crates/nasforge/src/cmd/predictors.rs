//! `nasforge predictors`: how well each performance predictor ranks held-out archs of a table.

use super::{build_space, parse_list, split_list};
use anyhow::Result;
use clap::Args;
use nasforge_core::predictor::{self, Encoding, PredictorBench, PREDICTORS};
use nasforge_core::space::SPACE_NAMES;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `nasforge predictors`.
#[derive(Args)]
pub struct PredictorsArgs {
    /// The space the table covers.
    #[arg(default_value = "nb201", value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: String,
    /// The benchmark table (CSV or .csv.gz with an `arch` column) [default: the built-in
    /// NAS-Bench-201 CIFAR-10 table].
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Training-set sizes.
    #[arg(long, default_value = "20,50,100,200,500")]
    pub train_sizes: String,
    /// Predictors to compare (`all` for every one: mlp, gp, forest).
    #[arg(long, default_value = "all")]
    pub predictors: String,
    /// The column to predict.
    #[arg(long, default_value = "test_acc_200ep")]
    pub objective: String,
    /// Held-out archs per seed.
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub test_size: usize,
    /// Seeds (each draws its own training and held-out archs).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = super::positive::<u64>)]
    pub seeds: u64,
    /// Arch encoding: onehot, path (NB201's path encoding; one-hot elsewhere) or both.
    #[arg(long, default_value = "onehot")]
    pub encoding: String,
    /// A space parameter `key=value` (repeatable).
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_params: Vec<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
}

/// Runs `nasforge predictors`.
pub fn run(args: PredictorsArgs) -> Result<()> {
    let start = Instant::now();
    let space = build_space(&args.space, &args.space_params)?;
    let predictors = if args.predictors == "all" {
        PREDICTORS.iter().map(|p| p.name.to_string()).collect()
    } else {
        split_list(&args.predictors)
    };
    for p in &predictors {
        predictor::build(p, 0)?;
    }
    let train_sizes = parse_list(
        "--train-sizes",
        &args.train_sizes,
        "a positive training-set size",
    )?;
    let encoding = Encoding::parse(&args.encoding)?;
    let (table, table_name) = super::table(args.table.as_deref(), space.as_ref())?;
    let cfg = PredictorBench {
        predictors,
        train_sizes,
        test_size: args.test_size,
        seeds: args.seeds,
        encoding,
    };
    let scores = predictor::evaluate_on_table(&table, space.as_ref(), &args.objective, &cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let doc = serde_json::json!({
            "table": table_name,
            "objective": args.objective,
            "test_size": args.test_size,
            "seeds": args.seeds,
            "seconds": seconds,
            "results": scores,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!(
        "{} on {}: Kendall τ on {} held-out archs by `{}`, {} encoding, mean ± std over {} seeds",
        args.space,
        table_name,
        args.test_size,
        args.objective,
        encoding.name(),
        args.seeds
    );
    println!(
        "{:<9} {:>6}  {:>16}  {:>10}  {:>9}",
        "predictor", "train", "Kendall τ", "Spearman ρ", "ms/fit"
    );
    for s in &scores {
        println!(
            "{:<9} {:>6}  {:>7.3} ± {:<6.3}  {:>10.3}  {:>9.1}",
            s.predictor, s.train_size, s.kendall, s.kendall_std, s.spearman, s.ms
        );
    }
    println!("{seconds:.2} s");
    Ok(())
}
