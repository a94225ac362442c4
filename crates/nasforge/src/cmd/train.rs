//! `nasforge train`: final training of one arch from scratch on several seeds.

use super::config::SearchConfig;
use super::pipeline;
use super::{bad_input, build_space};
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::space::read_arch;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `nasforge train`. Data and training flags are those of `nasforge search`.
#[derive(Args)]
pub struct TrainArgs {
    /// The arch: the space's text form, inline JSON, or a `.json` file (e.g. RUN/best/arch.json).
    #[arg(long)]
    pub arch: String,
    /// Seeds to train (mean ± std is reported).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
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
    let quiet = args.quiet || args.json;
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
    cfg.validate()?;
    let from_run = if cfg.data.is_none() {
        adopt_run_data(&mut cfg, &args.arch)?
    } else {
        None
    };
    let device = pipeline::device(&cfg)?;
    let prepared = pipeline::prepare_data(&cfg)?;
    if cfg.data.is_none() && from_run.is_none() {
        refuse_foreign_arch_on_digits(&args.arch, &prepared.data)?;
    }
    if let (Some(run_config), false) = (&from_run, quiet) {
        eprintln!(
            "training on the data of its run: {} (from {}; --data overrides)",
            prepared.data.source,
            run_config.display()
        );
    }
    let (space_name, space_params) = pipeline::space_for_data(&cfg, &prepared)?;
    pipeline::space_recipe(&mut cfg, &space_name);
    let space = build_space(&space_name, &space_params)?;
    let arch = read_arch(space.as_ref(), &args.arch)?;
    let spec = space.decode(&arch)?;
    let dir = args.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("train-{}", nasforge_core::study::now() as u64))
    });
    let best = dir.join("best");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = super::lock::RunLock::acquire(&dir, "train")?;
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
    let task = prepared.data.task();
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
        pipeline::write_test_score(&mut doc, task, &result);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!("arch       {}", space.format(&arch));
    println!("params     {} · MACs {}", spec.params(), spec.macs());
    let what = pipeline::test_score_names(task).1;
    println!(
        "{what:<10} {:.2} ± {:.2} over {} in {seconds:.1} s",
        result.mean,
        result.std,
        super::plural(result.seeds.len(), "seed")
    );
    println!("model      {}", best.display());
    Ok(())
}

/// An arch file inside a search run (`RUN/best/arch.json`, `RUN/export.json`) trains on the
/// data that run searched on, not on the built-in digits: the run's data settings are copied
/// into `cfg` (flags given on the command line win). Returns the run's `config.toml` when used.
fn adopt_run_data(cfg: &mut SearchConfig, arch: &str) -> Result<Option<PathBuf>> {
    let path = std::path::Path::new(arch.trim());
    if !path.is_file() {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let Some(config) = [dir.join("config.toml"), dir.join("..").join("config.toml")]
        .into_iter()
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    let run = SearchConfig::from_file(&config)?;
    if run.evaluator.as_deref() == Some("table") {
        return Ok(None);
    }
    let data_settings = SearchConfig {
        data: run.data,
        target: run.target,
        task: run.task,
        image: run.image,
        drop: run.drop,
        labels: run.labels,
        impute: run.impute,
        text_column: run.text_column,
        seq_len: run.seq_len,
        tokens: run.tokens,
        max_vocab: run.max_vocab,
        valid_fraction: run.valid_fraction,
        test_fraction: run.test_fraction,
        seed: run.seed,
        ..SearchConfig::default()
    };
    *cfg = data_settings.overlay(cfg);
    Ok(Some(config))
}

/// Without `--data` an arch trains on the built-in digits. A JSON arch made for other data
/// (its `space_params` name another input or class count) would train there in silence and
/// score something meaningless, so it is refused.
fn refuse_foreign_arch_on_digits(arch: &str, data: &nasforge_nn::data::Dataset) -> Result<()> {
    let input = pipeline::input_param(data);
    let classes = data.outputs().to_string();
    // A saved model beside the arch (a `train` run's best/) says what data it was made for.
    let model = std::path::Path::new(arch.trim())
        .parent()
        .map(|d| d.join("model.json"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    if let Some(m) = model {
        let shape = serde_json::json!(data.shape);
        let model_classes = m["classes"].as_array().map_or(0, Vec::len).max(1);
        if m["input_shape"] != shape || model_classes.to_string() != classes {
            return bad_input(format!(
                "the arch belongs to a model trained on rows of shape {} with {model_classes} output(s), and no --data is given, \
                 so it would train on the built-in digits (shape {shape}, {classes} classes); pass its data with --data (and --target)",
                m["input_shape"]
            ));
        }
    }
    for p in super::json_space_params(arch) {
        let differs = match p.split_once('=') {
            Some(("input", v)) => v != input && v != data.row_len().to_string(),
            Some(("classes", v)) => v != classes,
            _ => false,
        };
        if differs {
            return bad_input(format!(
                "the arch was made for other data ({p}) and no --data is given, so it would train on the built-in digits \
                 (input {input}, {classes} classes); pass the data it belongs to with --data (and --target)"
            ));
        }
    }
    Ok(())
}
