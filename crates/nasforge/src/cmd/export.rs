//! `nasforge export`: a run's trained model as ONNX, or its architecture as one JSON document.
//!
//! `--format onnx` writes a graph that takes raw input rows (as `nasforge predict` reads them)
//! and includes the normalisation; see `nasforge_nn::onnx`. `--format json` writes the space,
//! its parameters, the arch (text and choices), the NetSpec and its counts; `nasforge show` and
//! `nasforge train --arch` read that file back.

use super::config::SearchConfig;
use super::{bad_input, build_space};
use crate::report::run::{is_run, Run};
use anyhow::{Context, Result};
use clap::Args;
use nasforge_core::space::{Arch, Space};
use nasforge_nn::bundle::{self, ModelInfo};
use nasforge_nn::device::DeviceKind;
use std::path::{Path, PathBuf};

/// Export formats.
pub const FORMATS: &[&str] = &["onnx", "json"];

/// Arguments of `nasforge export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The run directory (from `nasforge search --run-dir` or `nasforge train --run-dir`).
    pub run: PathBuf,
    /// `onnx` (the trained model, normalisation included) or `json` (the architecture).
    #[arg(long)]
    pub format: String,
    /// Where to write [default: RUN/best/model.onnx or RUN/best/export.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `--json` prints one JSON object: `out`, `format`, `bytes`.
    #[command(flatten)]
    pub output: super::Output,
}

/// Runs `nasforge export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if !FORMATS.contains(&args.format.as_str()) {
        return bad_input(format!(
            "--format `{}` is not one of: {}",
            args.format,
            FORMATS.join(", ")
        ));
    }
    // A search on a benchmark table trains nothing, but its best arch exports as JSON (to train
    // it on data with `nasforge train --arch`).
    if args.format == "json"
        && is_run(&args.run)
        && !args.run.join("best").join("model.json").exists()
    {
        let run = Run::open(&args.run)?;
        let Some(best) = run.best() else {
            return bad_input(format!(
                "{} has no complete trial yet: nothing to export",
                args.run.display()
            ));
        };
        let space = build_space(&run.record.space, &run.config.space_param)?;
        let arch = space.parse_json(&best.arch)?;
        let doc = arch_json(
            space.as_ref(),
            &arch,
            &run.config.space_param,
            serde_json::json!({"trial": best.number, run.record.objective.clone(): best.value()}),
        )?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| args.run.join("export.json"));
        return write(
            &args,
            &out,
            format!("{}\n", serde_json::to_string_pretty(&doc)?).into_bytes(),
        );
    }
    let best = model_dir(&args.run)?;
    let (bytes, default_name) = match args.format.as_str() {
        "onnx" => {
            if !best.join("weights.bpk").exists() {
                return no_model(&args.run);
            }
            let (info, net) = bundle::load(&best, DeviceKind::Cpu)?;
            (nasforge_nn::onnx::export_model(&info, &net)?, "model.onnx")
        }
        _ => {
            let info = read_info(&best)?;
            let doc = arch_document(&info)?;
            let mut text = serde_json::to_string_pretty(&doc)?;
            text.push('\n');
            (text.into_bytes(), "export.json")
        }
    };
    let out = args.out.clone().unwrap_or_else(|| best.join(default_name));
    write(&args, &out, bytes)
}

fn write(args: &ExportArgs, out: &Path, bytes: Vec<u8>) -> Result<()> {
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    if args.output.json {
        let doc = serde_json::json!({"out": out, "format": args.format, "bytes": bytes.len()});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !args.output.quiet {
        println!("{} ({} bytes)", out.display(), bytes.len());
    }
    Ok(())
}

/// The run's `best/` folder, or a bad-input error that says what is wrong.
fn model_dir(run: &Path) -> Result<PathBuf> {
    if !run.is_dir() {
        return bad_input(format!(
            "{} does not exist or is not a directory; give the run directory of `nasforge search --run-dir` or `nasforge train --run-dir`",
            run.display()
        ));
    }
    let best = run.join("best");
    let is_run = run.join("config.toml").exists()
        || run.join("study.db").exists()
        || best.join("model.json").exists();
    if !is_run {
        return bad_input(format!(
            "{} is not a nasforge run (no config.toml, study.db or best/); give the directory passed to `nasforge search --run-dir`",
            run.display()
        ));
    }
    if !best.join("model.json").exists() {
        return no_model(run);
    }
    Ok(best)
}

fn no_model<T>(run: &Path) -> Result<T> {
    let table_search = SearchConfig::from_file(&run.join("config.toml"))
        .is_ok_and(|c| c.evaluator.as_deref() == Some("table"));
    if table_search {
        return bad_input(format!(
            "{} is a benchmark-table search: it looked its trials up and trained no network, so there is no model to export. \
             `nasforge export {} --format json` writes its best arch, which `nasforge train --arch FILE --data ...` trains",
            run.display(),
            run.display()
        ));
    }
    bad_input(format!(
        "{} has no trained model (no best/weights.bpk): run the search to the end (`nasforge search --resume --run-dir {}`), or train an arch with `nasforge train --arch ... --run-dir {}`",
        run.display(),
        run.display(),
        run.display()
    ))
}

fn read_info(best: &Path) -> Result<ModelInfo> {
    let path = best.join("model.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        super::BadInput(format!(
            "{}: not a nasforge model description: {e}",
            path.display()
        ))
        .into()
    })
}

/// The `--format json` document: what `show` and `train --arch` read back.
fn arch_document(info: &ModelInfo) -> Result<serde_json::Value> {
    let (space, arch) = info.space_and_arch()?;
    arch_json(
        space.as_ref(),
        &arch,
        &info.space_params,
        serde_json::json!({"task": info.task, "classes": info.classes}),
    )
}

/// The arch document: space, its parameters, the arch (text and choices), counts, NetSpec, and
/// the fields of `extra`.
fn arch_json(
    space: &dyn Space,
    arch: &Arch,
    space_params: &[String],
    extra: serde_json::Value,
) -> Result<serde_json::Value> {
    let spec = space.decode(arch)?;
    let mut doc = serde_json::json!({
        "space": space.name(),
        "space_params": space_params,
        "arch": space.format(arch),
        "choices": space.to_json(arch)["choices"],
        "params": spec.params(),
        "macs": spec.macs(),
        "input_shape": spec.input_shape(),
        "output_shape": spec.output_shape(),
        "netspec": spec,
    });
    if let (Some(d), serde_json::Value::Object(e)) = (doc.as_object_mut(), extra) {
        d.extend(e);
    }
    Ok(doc)
}
