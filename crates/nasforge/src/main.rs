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
    /// CPU inference latency: profile a space's ops into a lookup table, check its error.
    Latency(cmd::latency::LatencyArgs),
    /// Join a study kept in PostgreSQL as one more worker (`search --storage URL --study NAME`).
    Worker(cmd::worker::WorkerArgs),
    /// Compound scaling of a run's best arch: width and depth under a params/MACs budget, trained.
    Scale(cmd::scale::ScaleArgs),
}

/// Exit codes (README): 0 ok, 1 failure, 2 bad input.
fn main() -> ExitCode {
    nasforge_nn::kernels::keep_freed_memory();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Dashboard(_)) {
        end_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Search(a) => cmd::search::run(a),
        Command::Worker(a) => cmd::worker::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Latency(a) => cmd::latency::run(a),
        Command::Scale(a) => cmd::scale::run(a),
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
            eprintln!("error: {}", error_text(&e));
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

/// The error and its causes on one line, each cause once: a cause whose text the message
/// already holds (an OS error a library quoted) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// `nasforge status RUN | head -1`: writing to a pipe whose reader has gone ends the process
/// quietly, as `ls` does, instead of a panic in `println!` (Rust ignores SIGPIPE by default).
/// Not for the dashboard, which must outlive browsers that close their sockets.
fn end_quietly_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to the default is async-signal-safe and done
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
