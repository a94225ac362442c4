//! `nasforge runs` (every run in a folder) and `nasforge status` (one run's progress).

use super::Output;
use crate::report::page::facts;
use crate::report::run::{find_runs, find_studies, Run};
use anyhow::Result;
use clap::Args;
use nasforge_core::study::TrialState;
use std::path::PathBuf;

/// Arguments of `nasforge runs`.
#[derive(Args)]
pub struct RunsArgs {
    /// The folder holding run directories (or one run directory).
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
    /// List the studies of this PostgreSQL database instead (postgres://USER@HOST:PORT/DB).
    #[arg(long, conflicts_with = "dir")]
    pub storage: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

/// Arguments of `nasforge status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The run directory.
    #[arg(required_unless_present = "storage")]
    pub run: Option<PathBuf>,
    /// Instead of a run directory: a PostgreSQL database (postgres://USER@HOST:PORT/DB) ...
    #[arg(long, requires = "study", conflicts_with = "run")]
    pub storage: Option<String>,
    /// ... and the study in it (a study's progress and workers seen from any machine).
    #[arg(long, requires = "storage")]
    pub study: Option<String>,
    /// How many of the latest trials to list.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = super::non_negative::<usize>)]
    pub last: usize,
    #[command(flatten)]
    pub output: Output,
}

/// Runs `nasforge runs`.
pub fn runs(args: RunsArgs) -> Result<()> {
    let found = match &args.storage {
        Some(url) => find_studies(url)?,
        None => find_runs(&args.dir)?,
    };
    if args.output.json {
        let docs: Vec<serde_json::Value> = found
            .iter()
            .map(|(dir, r)| match r {
                Ok(run) => run.summary_json(),
                Err(e) => serde_json::json!({"dir": dir, "error": format!("{e:#}")}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(());
    }
    if args.output.quiet {
        return Ok(());
    }
    if found.is_empty() {
        match &args.storage {
            Some(_) => println!("no studies in that database"),
            None => println!("no runs in {}", args.dir.display()),
        }
        return Ok(());
    }
    // Columns as wide as their widest cell, so long names and objectives never shift them.
    let rows: Vec<[String; 7]> = found
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|run| {
            [
                run.name(),
                run.record.space.clone(),
                run.strategy().to_string(),
                format!("{}/{}", run.finished(), run.total()),
                run.best()
                    .map(|b| format!("{:.4}", b.value().unwrap_or(f64::NAN)))
                    .unwrap_or_else(|| "—".into()),
                {
                    let goal = run.record.goal();
                    if goal.constraints.is_empty() {
                        goal.describe_objectives()
                    } else {
                        format!(
                            "{} s.t. {}",
                            goal.describe_objectives(),
                            goal.describe_constraints()
                        )
                    }
                },
                run.state.as_str().to_string(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "SPACE",
        "STRATEGY",
        "TRIALS",
        "BEST",
        "OBJECTIVE",
        "STATE",
    ]
    .map(str::to_string);
    let mut width = [0usize; 7];
    for row in rows.iter().chain(std::iter::once(&header)) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 7]| {
        let cells: Vec<String> = row
            .iter()
            .zip(width)
            .enumerate()
            .map(|(i, (cell, w))| {
                // Numbers right-aligned, words left-aligned.
                if i == 3 || i == 4 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    };
    line(&header);
    let mut rows = rows.iter();
    for (dir, r) in &found {
        match r {
            Ok(_) => line(rows.next().expect("one row per readable run")),
            Err(e) => println!("{}  error: {e:#}", dir.display()),
        }
    }
    Ok(())
}

/// Runs `nasforge status`.
pub fn status(args: StatusArgs) -> Result<()> {
    let run = match (&args.run, &args.storage, &args.study) {
        (Some(dir), _, _) => Run::open(dir)?,
        (None, Some(url), Some(name)) => Run::from_study(url, name)?,
        _ => return super::bad_input("give a run directory, or --storage URL --study NAME"),
    };
    let mut latest: Vec<&nasforge_core::study::Trial> = run.trials.iter().collect();
    latest.sort_by_key(|t| std::cmp::Reverse(t.number));
    latest.truncate(args.last);
    let epochs: u64 = run.trials.iter().map(|t| u64::from(t.cost.epochs)).sum();
    let workers = workers(&run.trials);
    if args.output.json {
        let mut doc = run.summary_json();
        doc["epochs_trained"] = epochs.into();
        doc["workers"] = serde_json::to_value(&workers)?;
        doc["latest"] = serde_json::to_value(&latest)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.output.quiet {
        return Ok(());
    }
    for (k, v) in facts(&run) {
        println!("{k:<15} {v}");
    }
    if epochs > 0 {
        println!("{:<15} {epochs}", "epochs trained");
    }
    let goal = run.record.goal();
    if goal.objectives.len() > 1 {
        let front = nasforge_core::study::front_of(&run.trials, &goal);
        println!("{:<15} {}", "front", super::plural(front.len(), "trial"));
        for t in front {
            println!(
                "{:<15} trial {:<5} {}",
                "",
                t.number,
                super::objective_values(&goal, &t.values)
            );
        }
    }
    for t in run.trials.iter().filter(|t| t.state == TrialState::Running) {
        let last = t
            .intermediate
            .last()
            .map(|(s, v)| format!(", epoch {s}: {v:.4}"))
            .unwrap_or_default();
        println!(
            "{:<15} trial {}{last}{}",
            "running",
            t.number,
            if run.state.is_live() {
                ""
            } else {
                " (left by the interrupted process)"
            }
        );
    }
    if workers.len() > 1 || run.config.storage.is_some() {
        for w in &workers {
            let running = match (w.running, w.heartbeat_age) {
                (Some(n), Some(age)) => format!(", running trial {n} (heartbeat {age:.0} s ago)"),
                (Some(n), None) => format!(", running trial {n}"),
                _ => String::new(),
            };
            println!(
                "{:<15} {}: {} finished{running}",
                "worker", w.worker, w.finished
            );
        }
    }
    if run.has_model() {
        println!("{:<15} {}", "model", run.dir.join("best").display());
    }
    if !latest.is_empty() {
        println!("\nlatest trials");
        for t in latest {
            let value = t
                .value()
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "—".into());
            let arch = t.arch.get("arch").and_then(|a| a.as_str()).unwrap_or("");
            println!(
                "  {:>4}  {:<9} {:>10}  {}{}",
                t.number,
                t.state.as_str(),
                value,
                arch,
                t.error
                    .as_ref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    if run.state == crate::report::run::RunState::Interrupted && args.storage.is_some() {
        println!(
            "\ncontinue it with: nasforge worker --storage URL --study {}",
            run.record.name
        );
    } else if run.state == crate::report::run::RunState::Interrupted {
        println!(
            "\ncontinue it with: nasforge search --resume --run-dir {}",
            run.dir.display()
        );
    }
    Ok(())
}

/// What one worker of a study did.
#[derive(serde::Serialize, Debug, PartialEq)]
struct WorkerSummary {
    worker: String,
    /// Trials it finished (complete, stopped early or failed).
    finished: usize,
    /// The trial it is running, if any.
    running: Option<u64>,
    /// Seconds since that trial's last heartbeat.
    heartbeat_age: Option<f64>,
}

/// The workers of `trials`, in the order they first took a trial (queued trials nobody has
/// taken yet have no worker).
fn workers(trials: &[nasforge_core::study::Trial]) -> Vec<WorkerSummary> {
    let now = nasforge_core::study::now();
    let mut out: Vec<WorkerSummary> = Vec::new();
    for t in trials.iter().filter(|t| !t.worker.is_empty()) {
        let at = match out.iter().position(|w| w.worker == t.worker) {
            Some(i) => i,
            None => {
                out.push(WorkerSummary {
                    worker: t.worker.clone(),
                    finished: 0,
                    running: None,
                    heartbeat_age: None,
                });
                out.len() - 1
            }
        };
        let w = &mut out[at];
        if t.state == TrialState::Running {
            w.running = Some(t.number);
            w.heartbeat_age = t.heartbeat_at.map(|h| (now - h).max(0.0));
        } else if t.state.is_finished() && !t.was_interrupted() {
            w.finished += 1;
        }
    }
    out
}
