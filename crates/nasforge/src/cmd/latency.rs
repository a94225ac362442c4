//! `nasforge latency profile|check`: a per-op latency table of a space on this machine, and its
//! error against measured latency.

use super::config::SearchConfig;
use super::{build_space, pipeline, Output};
use anyhow::Result;
use clap::{Args, Subcommand};
use nasforge_nn::latency::{self, LatencyTable};
use std::path::PathBuf;

/// Arguments of `nasforge latency`.
#[derive(Args)]
pub struct LatencyArgs {
    #[command(subcommand)]
    pub action: LatencyAction,
}

/// What `nasforge latency` does.
#[derive(Subcommand)]
pub enum LatencyAction {
    /// Time every node kind (op, input shapes) that random archs of a space contain, at
    /// batch 1 on this machine, and write the lookup table (`search --latency-table` reads it).
    Profile(ProfileArgs),
    /// Compare the table's predictions with measured latency on other random archs.
    Check(CheckArgs),
}

/// Arguments of `nasforge latency profile`.
#[derive(Args)]
pub struct ProfileArgs {
    /// The space [default: what `search` uses for the data: nb201 for images, mlp for tables].
    #[arg(long)]
    pub space: Option<String>,
    /// A space size parameter `key=value` (repeatable).
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_param: Vec<String>,
    /// Data whose shape sizes the space, as `search --data` [default: the embedded digits].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target column of a CSV [default: label].
    #[arg(long)]
    pub target: Option<String>,
    /// The CSV's features are an HxWxC image.
    #[arg(long)]
    pub image: Option<String>,
    /// `lm` to size a Transformer language model to the plain-text file --data (as `search
    /// --task lm`).
    #[arg(long)]
    pub task: Option<String>,
    /// The CSV column of passages, as `search --text-column` (sizes the transformer space).
    #[arg(long, value_name = "COLUMN")]
    pub text_column: Option<String>,
    /// Tokens per passage or window, as `search --seq-len`.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub seq_len: Option<usize>,
    /// `char` or `byte`, as `search --tokens`.
    #[arg(long, value_name = "char|byte")]
    pub tokens: Option<String>,
    /// Random archs to profile.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub archs: usize,
    /// Timed forward passes per arch (after 2 warm-ups); each node's time is their median.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub repeats: usize,
    /// Seed of the random archs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0 = all cores); use what the search will use.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to write the table.
    #[arg(long, default_value = "latency.json")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output: Output,
}

/// Arguments of `nasforge latency check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The table `nasforge latency profile` wrote.
    pub table: PathBuf,
    /// Random archs to measure.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub archs: usize,
    /// Timed runs per measurement (after 2 warm-ups), as the search's 10.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub repeats: usize,
    /// Seed of the random archs (other than the profile's, so they are new archs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// CPU threads (0 = all cores) [default: the table's].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub output: Output,
}

/// Runs `nasforge latency`.
pub fn run(args: LatencyArgs) -> Result<()> {
    match args.action {
        LatencyAction::Profile(a) => profile(a),
        LatencyAction::Check(a) => check(a),
    }
}

fn profile(args: ProfileArgs) -> Result<()> {
    let cfg = SearchConfig {
        space: args.space.clone(),
        space_param: args.space_param.clone(),
        data: args.data.clone(),
        target: args.target.clone(),
        image: args.image.clone(),
        task: args.task.clone(),
        text_column: args.text_column.clone(),
        seq_len: args.seq_len,
        tokens: args.tokens.clone(),
        threads: Some(args.threads),
        ..Default::default()
    };
    let device = pipeline::device(&cfg)?;
    let prepared = pipeline::prepare_data(&cfg)?;
    let (name, settings) = pipeline::space_for_data(&cfg, &prepared)?;
    let space = build_space(&name, &settings)?;
    let bar = super::progress_bar(
        args.output.quiet || args.output.json,
        args.archs as u64,
        "profile {bar:30} arch {pos}/{len} [{elapsed} < {eta}]",
    );
    let mut table = latency::profile(
        space.as_ref(),
        args.archs,
        args.repeats,
        args.seed,
        device,
        args.threads,
        |k| bar.set_position(k as u64),
    )?;
    bar.finish_and_clear();
    table.space_settings = settings;
    table.host = crate::report::run::host();
    table.save(&args.out)?;
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "table": args.out,
                "space": table.space,
                "space_params": table.space_params,
                "archs": table.archs,
                "node_kinds": table.ops.len(),
                "overhead_ms": table.overhead_ms,
            }))?
        );
    } else if !args.output.quiet {
        println!(
            "{}: {} node kinds of {} {} from {} archs, forward-pass overhead {:.4} ms",
            args.out.display(),
            table.ops.len(),
            table.space,
            table.space_params,
            table.archs,
            table.overhead_ms
        );
    }
    Ok(())
}

fn check(args: CheckArgs) -> Result<()> {
    let table = LatencyTable::load(&args.table)?;
    let cfg = SearchConfig {
        threads: Some(args.threads.unwrap_or(table.threads)),
        ..Default::default()
    };
    let device = pipeline::device(&cfg)?;
    let space = build_space(&table.space, &table.space_settings)?;
    let bar = super::progress_bar(
        args.output.quiet || args.output.json,
        args.archs as u64,
        "check   {bar:30} arch {pos}/{len} [{elapsed} < {eta}]",
    );
    let result = latency::check(
        &table,
        space.as_ref(),
        args.archs,
        args.repeats,
        args.seed,
        device,
        |k| bar.set_position(k as u64),
    )?;
    bar.finish_and_clear();
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else if !args.output.quiet {
        println!(
            "{} archs of {} (seed {}): measured {:.4} ms on average; RMSE {:.4} ms; mean |error| {:.1}%; {:.0}% within ±10% (a second measurement of the same arch is within ±10% of the first for {:.0}%){}{}",
            result.archs,
            table.space,
            args.seed,
            result.mean_measured_ms,
            result.rmse_ms,
            100.0 * result.mean_abs_rel_error,
            100.0 * result.within_10pct,
            100.0 * result.remeasured_within_10pct,
            calibration_text(&result),
            if result.uncovered > 0 {
                format!(
                    "; {} archs left out (a node kind the profile never saw)",
                    result.uncovered
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// What `check` says of the calibration it applied.
fn calibration_text(result: &latency::CheckResult) -> String {
    let mut f = result.calibration.clone();
    if f.is_empty() {
        return "; the table has no reference archs, so predictions are not calibrated (profile it again)".into();
    }
    f.sort_by(f64::total_cmp);
    format!(
        "; calibrated by the reference archs measured before each arch (now / at profile time: median {:.2}, {:.2}-{:.2}); uncalibrated {:.0}% within ±10%",
        f[f.len() / 2],
        f[0],
        f[f.len() - 1],
        100.0 * result.uncalibrated_within_10pct
    )
}
