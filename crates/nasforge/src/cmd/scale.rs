//! `nasforge scale RUN --target params=2e6`: compound scaling (EfficientNet) of a run's best
//! arch. The arch stays; the space's width (channels, layer widths), depth (cells, layers) and,
//! for image data, input resolution (the images resized, bilinear) are multiplied over a small
//! grid, every scaled network's cost comes from NetSpec, and the scaled candidates closest to
//! the target from below are trained from scratch with the run's final recipe and scored on
//! its test split.

use super::config::SearchConfig;
use super::lock::RunLock;
use super::{bad_input, build_space, parse_list, pipeline, Output};
use crate::report::run::Run;
use anyhow::Result;
use clap::Args;
use nasforge_core::netspec::NetSpec;
use nasforge_core::study::{is_netspec_metric, metric, netspec_metrics};
use nasforge_nn::latency::measure_latency;
use nasforge_nn::model::Network;
use std::path::PathBuf;

/// Arguments of `nasforge scale`.
#[derive(Args)]
pub struct ScaleArgs {
    /// The run whose best arch is scaled (a search on data).
    pub run: PathBuf,
    /// The budget, `METRIC=LIMIT`: `params=2e6`, `macs=50e6`, `peak_memory_mb=4`, or
    /// `latency_ms=2` (batch-1 CPU latency, measured here on every scaled network: median of 10
    /// runs after 2 warm-ups, with the run's threads).
    #[arg(long, value_name = "METRIC=LIMIT")]
    pub target: String,
    /// Width multipliers (channels, layer widths), comma separated.
    #[arg(long, default_value = "0.5,0.75,1,1.25,1.5,2,3")]
    pub widths: String,
    /// Depth multipliers (NAS-Bench-201 cells per stage, DARTS layers), comma separated; the
    /// mlp and macro spaces keep their depth (it is part of the arch).
    #[arg(long, default_value = "1,2,3")]
    pub depths: String,
    /// Input resolution multipliers for image data, comma separated (e.g. 1,1.25,1.5): images
    /// are resized to round(H·r) × round(W·r) after normalisation, in training and in
    /// `predict`; MACs and activation memory grow with r², parameters of the image spaces not.
    #[arg(long, default_value = "1")]
    pub resolutions: String,
    /// How many scaled candidates to train: the ones with the largest cost within the target.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub train: usize,
    /// Training epochs [default: the run's final epochs].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub epochs: Option<usize>,
    /// Seeds per candidate [default: the run's final seeds].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive::<usize>)]
    pub seeds: Option<usize>,
    #[command(flatten)]
    pub output: Output,
}

/// The space's settings as `key=value` strings, from its `params_json`.
fn settings(params: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    params
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn times(v: &serde_json::Value, m: f64) -> serde_json::Value {
    let scale = |x: &serde_json::Value| {
        x.as_f64()
            .map(|f| serde_json::json!(((f * m).round() as u64).max(1)))
            .unwrap_or_else(|| x.clone())
    };
    match v {
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(scale).collect()),
        other => scale(other),
    }
}

/// The input's height and width at resolution `r`: `HxWxC` scaled, or `None` when the space's
/// input is not an image.
fn resolution(params: &serde_json::Value, r: f64) -> Option<[usize; 2]> {
    let text = params.get("input")?.as_str()?;
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    let &[h, w, _] = dims.as_slice() else {
        return None;
    };
    let at = |v: usize| ((v as f64 * r).round() as usize).max(1);
    Some([at(h), at(w)])
}

/// The space settings scaled by width `w`, depth `d` and resolution `r`; `None` when the space
/// cannot scale its depth, or its input is not an image and `r` is not 1.
fn scaled(space: &str, params: &serde_json::Value, w: f64, d: f64, r: f64) -> Option<Vec<String>> {
    let (width_keys, depth_keys): (&[&str], &[&str]) = match space {
        "nb201" => (&["channels"], &["cells"]),
        "darts" => (&["channels"], &["layers"]),
        "macro" => (&["widths", "stem"], &[]),
        "mlp" => (&["widths"], &[]),
        _ => return None,
    };
    if depth_keys.is_empty() && d != 1.0 {
        return None;
    }
    let hw = if r == 1.0 {
        None
    } else {
        Some(resolution(params, r)?)
    };
    Some(
        settings(params)
            .into_iter()
            .map(|(k, v)| {
                let v = if width_keys.contains(&k.as_str()) {
                    times(&v, w)
                } else if depth_keys.contains(&k.as_str()) {
                    times(&v, d)
                } else if let (Some([h, w]), "input", Some(c)) = (
                    hw,
                    k.as_str(),
                    v.as_str().and_then(|t| t.rsplit('x').next()),
                ) {
                    serde_json::json!(format!("{h}x{w}x{c}"))
                } else {
                    v
                };
                format!("{k}={}", text(&v))
            })
            .collect(),
    )
}

/// One network of the grid.
struct Scaled {
    width: f64,
    depth: f64,
    resolution: f64,
    /// The images' `[H, W]` when the resolution is not 1.
    resize: Option<[usize; 2]>,
    settings: Vec<String>,
    arch: String,
    spec: NetSpec,
    /// Its value of the target's metric.
    cost: f64,
}

/// Runs `nasforge scale`.
pub fn run(args: ScaleArgs) -> Result<()> {
    let Some((metric, limit)) = args.target.split_once('=') else {
        return bad_input(format!(
            "--target `{}` is not METRIC=LIMIT, e.g. params=2e6",
            args.target
        ));
    };
    let metric = metric.trim();
    let measured = metric == metric::LATENCY_MS;
    if !is_netspec_metric(metric) && !measured {
        return bad_input(format!(
            "--target `{metric}`: scale judges a budget from the network's description or its measured latency; use params, macs, peak_memory_mb or latency_ms"
        ));
    }
    let Ok(limit) = limit.trim().parse::<f64>() else {
        return bad_input(format!("--target: the limit `{limit}` is not a number"));
    };
    let widths: Vec<f64> = parse_list("--widths", &args.widths, "a positive multiplier")?;
    let depths: Vec<f64> = parse_list("--depths", &args.depths, "a positive multiplier")?;
    let resolutions: Vec<f64> =
        parse_list("--resolutions", &args.resolutions, "a positive multiplier")?;
    if widths
        .iter()
        .chain(&depths)
        .chain(&resolutions)
        .any(|&m| !(m > 0.0 && m.is_finite()))
    {
        return bad_input(
            "--widths, --depths and --resolutions take positive multipliers, e.g. 0.5,1,2",
        );
    }
    let run = Run::open(&args.run)?;
    let mut cfg: SearchConfig = run.config.clone();
    if cfg.evaluator.as_deref() == Some("table") {
        return bad_input(format!(
            "{} searched a benchmark table: scale trains the scaled networks on the run's data, and a table run has none",
            args.run.display()
        ));
    }
    let Some(best) = run.best().cloned() else {
        return bad_input(format!(
            "{} has no complete trial to scale",
            args.run.display()
        ));
    };
    let space_name = run.record.space.clone();
    let base = build_space(&space_name, &cfg.space_param)?;
    let arch = base.parse_json(&best.arch)?;
    let base_params = base.params_json();
    if resolutions.iter().any(|&r| r != 1.0) && resolution(&base_params, 1.0).is_none() {
        return bad_input(format!(
            "--resolutions: space `{space_name}` of {} reads {} rows, not images; only image data has a resolution to scale",
            args.run.display(),
            base_params.get("input").map(text).unwrap_or_default()
        ));
    }
    let device = pipeline::device(&cfg)?;
    // A network's cost: from its description, or its latency measured on this machine (the
    // weights do not matter for that).
    let cost_of = |spec: &NetSpec| -> f64 {
        if measured {
            let model = Network::new(spec, &device.device());
            measure_latency(&model, 1, 10, device)
        } else {
            netspec_metrics(spec)[metric]
        }
    };
    // Every scaled space the grid gives, with its cost.
    let mut candidates = Vec::new();
    for &r in &resolutions {
        for &d in &depths {
            for &w in &widths {
                let Some(settings) = scaled(&space_name, &base_params, w, d, r) else {
                    continue;
                };
                let Ok(space) = build_space(&space_name, &settings) else {
                    continue;
                };
                let Ok(a) = space.arch_from_values(arch.values()) else {
                    continue;
                };
                let Ok(spec) = space.decode(&a) else { continue };
                candidates.push(Scaled {
                    width: w,
                    depth: d,
                    resolution: r,
                    resize: (r != 1.0).then(|| resolution(&base_params, r)).flatten(),
                    settings,
                    arch: space.format(&a),
                    cost: cost_of(&spec),
                    spec,
                });
            }
        }
    }
    let base_cost = cost_of(&base.decode(&arch)?);
    candidates.retain(|c| c.cost <= limit);
    if candidates.is_empty() {
        return bad_input(format!(
            "no scaled network is within {metric}={limit}: the arch has {base_cost} at width, depth and resolution 1; lower --widths (e.g. 0.25,0.5) or raise the target"
        ));
    }
    candidates.sort_by(|a, b| b.cost.total_cmp(&a.cost));
    candidates.truncate(args.train);
    if let Some(e) = args.epochs {
        cfg.final_epochs = Some(e);
    }
    if let Some(s) = args.seeds {
        cfg.final_seeds = Some(s);
    }
    let _lock = RunLock::acquire(&args.run, "scale")?;
    let prepared = pipeline::prepare_data(&cfg)?;
    let quiet = args.output.quiet || args.output.json;
    let mut rows = Vec::new();
    for Scaled {
        width: w,
        depth: d,
        resolution: r,
        resize: hw,
        settings,
        arch: arch_text,
        spec,
        cost,
    } in &candidates
    {
        let out = args.run.join("scaled").join(if *r == 1.0 {
            format!("w{w}-d{d}")
        } else {
            format!("w{w}-d{d}-r{r}")
        });
        let bar = super::progress_bar(quiet, 1, "scale  {bar:30} {msg} [{elapsed} < {eta}]");
        let resized = hw.map(|hw| prepared.resized(hw)).transpose()?;
        let result = pipeline::final_training(
            &cfg,
            resized.as_ref().unwrap_or(&prepared),
            (&space_name, settings),
            arch_text,
            spec,
            &out,
            device,
            &bar,
        )?;
        bar.finish_and_clear();
        rows.push(serde_json::json!({
            "width": w,
            "depth": d,
            "resolution": r,
            "input": spec.input_shape(),
            "space_params": settings,
            "params": spec.params(),
            "macs": spec.macs(),
            "peak_memory_mb": spec.peak_memory_mb(),
            "latency_ms": measured.then_some(cost),
            "test_mean": result.mean,
            "test_std": result.std,
            "seeds": result.seeds.len(),
            "model": out,
        }));
    }
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": args.run,
                "trial": best.number,
                "target": {"metric": metric, "limit": limit},
                "base": {metric: base_cost},
                "scaled": rows,
            }))?
        );
        return Ok(());
    }
    if args.output.quiet {
        return Ok(());
    }
    println!(
        "scaled trial {} of {} within {metric}<={limit} (it has {} at width, depth and resolution 1); trained from scratch on train+valid, scored on test:",
        best.number,
        args.run.display(),
        super::metric(base_cost)
    );
    println!(
        "{:>6} {:>6} {:>6} {:>12} {:>14} {:>11} {:>18}  model",
        "width", "depth", "res", "params", "MACs", "latency ms", "test mean ± std"
    );
    let num = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    for r in &rows {
        let latency = r["latency_ms"]
            .as_f64()
            .map_or("-".to_string(), |l| format!("{l:.3}"));
        println!(
            "{:>6} {:>6} {:>6} {:>12} {:>14} {:>11} {:>11.2} ± {:<5.2}  {}",
            super::metric(num(r, "width")),
            super::metric(num(r, "depth")),
            super::metric(num(r, "resolution")),
            super::metric(num(r, "params")),
            super::metric(num(r, "macs")),
            latency,
            num(r, "test_mean"),
            num(r, "test_std"),
            r["model"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
