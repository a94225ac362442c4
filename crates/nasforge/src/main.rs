//! `nasforge`: neural architecture search from the command line.

mod cmd;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Neural architecture search: search spaces, strategies, and tabular benchmarks.
#[derive(Parser)]
#[command(name = "nasforge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search for an architecture: on data (default: the embedded digits) or a benchmark table.
    Search(cmd::search::SearchArgs),
    /// Train one architecture from scratch on several seeds and save the model.
    Train(cmd::train::TrainArgs),
    /// Predict with a saved model (a run's best/ folder).
    Predict(cmd::predict::PredictArgs),
    /// Write a commented configuration file to start from.
    Init(cmd::init::InitArgs),
    /// Compare strategies on a tabular benchmark over many seeds.
    Bench(cmd::bench::BenchArgs),
    /// Rank a benchmark table's archs by zero-cost proxies and compare with a column.
    Proxies(cmd::proxies::ProxiesArgs),
    /// Show an architecture: parameters, MACs, op counts and a diagram.
    Show(cmd::show::ShowArgs),
    /// List the runs in a folder (default runs/): space, strategy, trials, best, state.
    Runs(cmd::runs::RunsArgs),
    /// One run's progress: state, trials, best so far, the latest trials.
    Status(cmd::runs::StatusArgs),
    /// Write a run's report: one self-contained HTML page with SVG plots, or Markdown.
    Report(cmd::report::ReportArgs),
    /// Serve a live, read-only web page on a run (127.0.0.1 unless --host says otherwise).
    Dashboard(cmd::dashboard::DashboardArgs),
    /// Measure how well performance predictors rank held-out archs of a benchmark table.
    Predictors(cmd::predictors::PredictorsArgs),
    /// Export a run's trained model as ONNX, or its architecture as JSON.
    Export(cmd::export::ExportArgs),
}

/// Exit codes (README): 0 ok, 1 failure, 2 bad input.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Search(a) => cmd::search::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Predictors(a) => cmd::predictors::run(a),
        Command::Proxies(a) => cmd::proxies::run(a),
        Command::Runs(a) => cmd::runs::runs(a),
        Command::Status(a) => cmd::runs::status(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Dashboard(a) => cmd::dashboard::run(a),
        Command::Export(a) => cmd::export::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<nasforge_core::Error>(),
                    Some(nasforge_core::Error::Invalid(_)) | Some(nasforge_core::Error::Io { .. })
                ) || c.downcast_ref::<cmd::BadInput>().is_some()
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
