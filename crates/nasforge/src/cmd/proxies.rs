//! `nasforge proxies`: how well zero-cost proxies rank the archs of a benchmark table.

use super::config::parse_image;
use super::{bad_input, build_space};
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::rng::Rng;
use nasforge_core::space::SPACE_NAMES;
use nasforge_core::stats::{kendall, spearman};
use nasforge_nn::data::{self, CsvOptions, Normalizer};
use nasforge_nn::proxies::{self, Proxy, ProxyBatch, DEFAULT_BATCH};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `nasforge proxies`.
#[derive(Args)]
pub struct ProxiesArgs {
    /// The space the table covers (its `arch` column is read in this space's text form).
    #[arg(long, default_value = "nb201", value_parser = clap::builder::PossibleValuesParser::new(SPACE_NAMES))]
    pub space: String,
    /// The benchmark table: CSV (or .csv.gz) with an `arch` column and numeric columns
    /// [default: the built-in NAS-Bench-201 CIFAR-10 table].
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// How many distinct archs of the table to score (drawn from the seed).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub sample: usize,
    /// The table column the proxies are compared with.
    #[arg(long, default_value = "test_acc_200ep")]
    pub objective: String,
    /// Proxies to compute, comma separated, or `all`.
    #[arg(long, default_value = "all")]
    pub proxies: String,
    /// Data for the data-dependent proxies (CSV, IDX or image folder, as `search` reads);
    /// without it they read seeded Gaussian noise.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The target column of a CSV `--data`.
    #[arg(long, default_value = "label")]
    pub target: String,
    /// The `--data` CSV rows are pixels of an HxWxC image.
    #[arg(long)]
    pub image: Option<String>,
    /// Rows in the proxies' batch.
    #[arg(long, default_value_t = DEFAULT_BATCH, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub batch: usize,
    /// Seed of the sample, the networks' weights and the batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A space size parameter `key=value` (repeatable), e.g. `channels=4`.
    #[arg(long = "space-param", value_name = "KEY=VALUE")]
    pub space_params: Vec<String>,
    /// Write each scored arch (arch, objective, one column per proxy) to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
}

/// Runs `nasforge proxies`.
pub fn run(args: ProxiesArgs) -> Result<()> {
    let list = Proxy::parse_list(&args.proxies)?;
    let space = build_space(&args.space, &args.space_params)?;
    let (table, table_name) = super::table(args.table.as_deref(), space.as_ref())?;
    let col = table.metric_index(&args.objective)?;
    if args.sample == 0 || args.sample > table.len() {
        return bad_input(format!(
            "--sample {} must be between 1 and the table's {} archs",
            args.sample,
            table.len()
        ));
    }
    if args.batch == 0 {
        return bad_input("--batch must be at least 1");
    }
    let rows = Rng::new(args.seed).sample_indices(table.len(), args.sample);
    let first = space.decode(table.arch(rows[0]))?;
    let batch = match &args.data {
        Some(path) => {
            let mut d = data::load(
                path,
                &CsvOptions {
                    target: args.target.clone(),
                    task: None,
                    drop: Vec::new(),
                    image: args.image.as_deref().map(parse_image).transpose()?,
                    ..CsvOptions::default()
                },
            )?;
            let all: Vec<usize> = (0..d.len()).collect();
            Normalizer::fit(&d, &all).apply(&mut d);
            ProxyBatch::from_dataset(&d, args.batch, args.seed)?
        }
        None => ProxyBatch::noise_for(&first, args.batch, args.seed),
    };
    if list.iter().any(|p| p.needs_data()) {
        batch.check(&first)?;
        if !args.json && !args.quiet {
            eprintln!("data-dependent proxies read {}", batch.source);
        }
    }
    let bar = super::progress_bar(
        args.json || args.quiet,
        rows.len() as u64,
        "proxies {bar:30} {pos}/{len} [{elapsed} < {eta}]",
    );
    let mut scores = vec![Vec::with_capacity(rows.len()); list.len()];
    let mut millis = vec![0.0; list.len()];
    // Proxies are timed on their own (network build included), except that snip, grad_norm,
    // fisher and naswot share one loss pass: each of them is charged the whole pass.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let shared: Vec<usize> = (0..list.len())
        .filter(|&k| proxies::shares_loss_pass(list[k]))
        .collect();
    for (k, &p) in list.iter().enumerate() {
        if !proxies::shares_loss_pass(p) {
            groups.push(vec![k]);
        } else if shared[0] == k {
            groups.push(shared.clone());
        }
    }
    for &r in &rows {
        let spec = space.decode(table.arch(r))?;
        for group in &groups {
            let asked: Vec<Proxy> = group.iter().map(|&k| list[k]).collect();
            let t0 = Instant::now();
            let values = proxies::score(&spec, &asked, &batch, args.seed)?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            for (&k, v) in group.iter().zip(values) {
                millis[k] += ms;
                scores[k].push(v);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let objective: Vec<f64> = rows.iter().map(|&r| table.column(col)[r]).collect();
    if let Some(path) = &args.out {
        let mut csv = String::from("arch");
        write!(csv, ",{}", args.objective)?;
        for p in &list {
            write!(csv, ",{}", p.name())?;
        }
        csv.push('\n');
        for (i, &r) in rows.iter().enumerate() {
            write!(csv, "\"{}\",{}", space.format(table.arch(r)), objective[i])?;
            for s in &scores {
                write!(csv, ",{}", s[i])?;
            }
            csv.push('\n');
        }
        std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let n = rows.len() as f64;
    let results: Vec<(Proxy, f64, f64, f64)> = list
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            (
                p,
                spearman(&scores[k], &objective),
                kendall(&scores[k], &objective),
                millis[k] / n,
            )
        })
        .collect();
    if args.json {
        // NaN (a constant proxy) has no JSON number: it is written as null.
        let num = |v: f64| {
            if v.is_finite() {
                serde_json::json!(v)
            } else {
                serde_json::Value::Null
            }
        };
        let doc = serde_json::json!({
            "proxies": results.iter().map(|&(p, rho, tau, ms)| serde_json::json!({
                "name": p.name(),
                "spearman": num(rho),
                "kendall": num(tau),
                "ms_per_cell": ms,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    println!(
        "{} archs of {} ({} sampled, seed {}) against `{}`",
        rows.len(),
        table_name,
        args.space,
        args.seed,
        args.objective
    );
    println!(
        "{:<10} {:>10} {:>10} {:>12}",
        "proxy", "spearman", "kendall", "ms/cell"
    );
    for (p, rho, tau, ms) in results {
        println!("{:<10} {:>10.4} {:>10.4} {:>12.2}", p.name(), rho, tau, ms);
    }
    Ok(())
}
