//! `nasforge worker`: one more worker on a study kept in a PostgreSQL database.
//!
//! `nasforge search --storage URL --study NAME` creates the study, searches as its first
//! worker, and trains the best arch once every trial has finished. A worker started anywhere
//! that reaches the database joins it: it reads the search's configuration from the study,
//! takes trials until the study holds its number of trials, and leaves final training to the
//! search (docs/WORKERS.md).

use super::bad_input;
use super::config::SearchConfig;
use super::search::{self, SearchArgs};
use anyhow::Result;
use nasforge_core::study::{PostgresStorage, Storage};

/// `nasforge worker` arguments.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The database of the study: postgres://USER:PASSWORD@HOST:PORT/DATABASE (the password
    /// may come from PGPASSWORD instead).
    #[arg(long)]
    pub storage: String,
    /// The study to join (made by `nasforge search --storage URL --study NAME`).
    #[arg(long)]
    pub study: String,
    /// This worker's index: it draws its proposals from the study's seed + INDEX. Give each
    /// worker its own (the search is 0) [default: JOB_COMPLETION_INDEX + 1 (Kubernetes) or
    /// SLURM_ARRAY_TASK_ID + 1 (Slurm) when set, else the process id].
    #[arg(long)]
    pub index: Option<usize>,
    /// CPU threads for training (0 = all cores) [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = super::non_negative::<usize>)]
    pub threads: Option<usize>,
    /// Print nothing on success.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The index a worker takes when `--index` is not given.
fn default_index() -> usize {
    ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<usize>().ok())
        .map_or(std::process::id() as usize, |k| k + 1)
}

/// Runs `nasforge worker`.
pub fn run(args: WorkerArgs) -> Result<()> {
    let storage = PostgresStorage::open(&args.storage)?;
    let Some(record) = storage.study(&args.study)? else {
        return bad_input(format!(
            "there is no study `{}` in {} ({}); start it with `nasforge search --storage URL --study {}`, then start workers",
            args.study,
            storage.shown(),
            crate::report::run::held_studies(&storage),
            args.study
        ));
    };
    drop(storage);
    let mut cfg: SearchConfig = serde_json::from_value(record.config.clone()).map_err(|e| {
        super::BadInput(format!(
            "study `{}` holds a configuration this nasforge cannot read ({e}); run the workers with the nasforge that started the search",
            args.study
        ))
    })?;
    // This machine's own share: its cores, no workers of its own; the study is the same.
    cfg.workers = None;
    cfg.threads = args.threads;
    cfg.storage = Some(args.storage);
    cfg.study = Some(args.study);
    let index = args.index.unwrap_or_else(default_index);
    if !args.quiet {
        eprintln!(
            "worker {index} joining study `{}` ({} on {}, {} trials)",
            record.name,
            record.strategy,
            record.space,
            cfg.trials.unwrap_or(0)
        );
    }
    search::run(SearchArgs {
        config: None,
        run_dir: None,
        resume: false,
        json: false,
        quiet: args.quiet,
        worker_index: Some(index),
        standalone: true,
        settings: cfg,
    })
}
