//! `nasforge train`: final training of one arch from scratch on several seeds.

use super::config::SearchConfig;
use super::pipeline;
use super::{bad_input, build_space};
use anyhow::Result;
use clap::Args;
use nasforge_core::space::read_arch;
use nasforge_nn::data::Task;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `nasforge train`. Data and training flags are those of `nasforge search`.
#[derive(Args)]
pub struct TrainArgs {
    /// The arch: the space's text form, inline JSON, or a `.json` file (e.g. RUN/best/arch.json).
    #[arg(long)]
    pub arch: String,
    /// Seeds to train (mean ± std is reported).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// A TOML configuration (see `nasforge init`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to save the model (`RUN_DIR/best/`) [default: runs/train-<time>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Print one JSON summary.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success: no progress, no summary (the run directory holds the results).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    #[command(flatten)]
    pub settings: SearchConfig,
}

/// Runs `nasforge train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let start = Instant::now();
    let mut cfg = match &args.config {
        Some(p) => SearchConfig::from_file(p)?.overlay(&args.settings),
        None => args.settings.clone(),
    };
    if args.seeds == 0 {
        return bad_input("--seeds must be at least 1");
    }
    let given = &args.settings;
    if given.scheduler.is_some()
        || given.stopper.is_some()
        || given.epoch_budget.is_some()
        || given.record_proxies.is_some()
    {
        return bad_input(
            "--scheduler, --stopper, --epoch-budget and --record-proxies belong to a search; `nasforge train` trains one arch for --final-epochs. Drop them, or use `nasforge search`",
        );
    }
    cfg.final_seeds = Some(args.seeds);
    if cfg.final_epochs.is_none() {
        cfg.final_epochs = cfg.epochs.or(Some(40));
    }
    if let Some(s) = super::json_space(&args.arch) {
        let space = cfg.space.get_or_insert(s.clone());
        // A JSON arch's size parameters come along unless given; input and classes come from
        // the data.
        if *space == s && cfg.space_param.is_empty() {
            cfg.space_param = super::json_space_params(&args.arch)
                .into_iter()
                .filter(|p| !p.starts_with("input=") && !p.starts_with("classes="))
                .collect();
        }
    }
    let device = pipeline::device(&cfg)?;
    let prepared = pipeline::prepare_data(&cfg)?;
    let (space_name, space_params) = pipeline::space_for_data(&cfg, &prepared.data)?;
    let space = build_space(&space_name, &space_params)?;
    let arch = read_arch(space.as_ref(), &args.arch)?;
    let spec = space.decode(&arch)?;
    let dir = args.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("train-{}", nasforge_core::study::now() as u64))
    });
    let best = dir.join("best");
    let quiet = args.quiet || args.json;
    let bar = super::progress_bar(quiet, 1, "train  {bar:30} {msg} [{elapsed} < {eta}]");
    let result = pipeline::final_training(
        &cfg,
        &prepared,
        (&space_name, &space_params),
        &space.format(&arch),
        &spec,
        &best,
        device,
        &bar,
    )?;
    bar.finish_and_clear();
    let regression = prepared.data.task() == Task::Regression;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let mut doc = serde_json::json!({
            "arch": space.format(&arch),
            "space": space_name,
            "seeds": result.seeds.len(),
            "trials": 0,
            "seconds": seconds,
            "params": spec.params(),
            "macs": spec.macs(),
            "model": best,
        });
        if regression {
            doc["test_mse_mean"] = result.mean.into();
            doc["test_mse_std"] = result.std.into();
            doc["test_mae_mean"] = result.mae_mean.into();
        } else {
            doc["test_accuracy_mean"] = result.mean.into();
            doc["test_accuracy_std"] = result.std.into();
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!("arch       {}", space.format(&arch));
    println!("params     {} · MACs {}", spec.params(), spec.macs());
    let what = if regression {
        "test MSE"
    } else {
        "test accuracy"
    };
    println!(
        "{what:<10} {:.2} ± {:.2} over {} seeds in {seconds:.1} s",
        result.mean,
        result.std,
        result.seeds.len()
    );
    println!("model      {}", best.display());
    Ok(())
}
