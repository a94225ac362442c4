//! `nasforge predict`: predictions of a saved model on new data.

use super::bad_input;
use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use nasforge_nn::bundle;
use nasforge_nn::data::{self, CsvOptions, Dataset, Targets, Task};
use nasforge_nn::device::DeviceKind;
use std::path::PathBuf;

/// Arguments of `nasforge predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The saved model: a run's `best/` folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The data: the same kind of file the model was trained on (the target column may be absent).
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON document instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    /// Write the predictions CSV to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `nasforge predict`.
pub fn run(args: PredictArgs) -> Result<()> {
    let device = DeviceKind::Cpu;
    let (info, model) = bundle::load(&args.model, device)?;
    // A CSV may come without its target column; IDX files and image folders carry labels.
    let has_target = match data::DataKind::of(&args.data) {
        data::DataKind::Csv => data::csv_header(&args.data).is_ok_and(|h| h.contains(&info.target)),
        _ => true,
    };
    let opts = CsvOptions {
        target: if has_target {
            info.target.clone()
        } else {
            String::new()
        },
        task: Some(info.task),
        drop: Vec::new(),
        image: info.image,
        labels: None,
    };
    let mut d: Dataset = if has_target {
        data::read(&args.data, &opts)?
    } else {
        data::load_features(&args.data, &info.feature_names, info.image)?
    };
    if d.shape != info.input_shape {
        return bad_input(format!(
            "{}: rows have shape {:?} but the model takes {:?}",
            args.data.display(),
            d.shape,
            info.input_shape
        ));
    }
    info.normalizer.apply(&mut d);
    let dev = device.device();
    let n = d.len();
    let dlen = d.row_len();
    let mut outputs = Vec::with_capacity(n * info.classes.len().max(1));
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                d.features[start * dlen..end * dlen].to_vec(),
                [end - start, dlen],
            ),
            &dev,
        );
        outputs.extend(
            model
                .forward_flat(x)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("float output"),
        );
    }
    let width = outputs.len() / n.max(1);
    let predictions: Vec<String> = outputs
        .chunks(width.max(1))
        .map(|row| match info.task {
            Task::Classification => {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                info.classes[best].clone()
            }
            Task::Regression => {
                let (m, s) = info.normalizer.target.unwrap_or((0.0, 1.0));
                (row[0] * s + m).to_string()
            }
        })
        .collect();
    let truth: Option<Vec<String>> = match (&d.targets, has_target) {
        (Targets::Classes { ids, names }, true) => {
            Some(ids.iter().map(|&i| names[i as usize].clone()).collect())
        }
        (Targets::Values(v), true) => {
            let (m, s) = info.normalizer.target.unwrap_or((0.0, 1.0));
            Some(v.iter().map(|x| (x * s + m).to_string()).collect())
        }
        _ => None,
    };
    let accuracy = truth
        .as_ref()
        .filter(|_| info.task == Task::Classification)
        .map(|t| {
            100.0 * t.iter().zip(&predictions).filter(|(a, b)| a == b).count() as f64
                / n.max(1) as f64
        });
    if args.json {
        let doc = serde_json::json!({"predictions": predictions, "accuracy": accuracy, "rows": n});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let mut csv = format!(
        "row,prediction{}\n",
        if truth.is_some() { ",target" } else { "" }
    );
    for (i, p) in predictions.iter().enumerate() {
        match &truth {
            Some(t) => csv.push_str(&format!("{i},{p},{}\n", t[i])),
            None => csv.push_str(&format!("{i},{p}\n")),
        }
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?
        }
        None if !args.quiet => print!("{csv}"),
        None => {}
    }
    if args.quiet {
        return Ok(());
    }
    if let Some(path) = &args.out {
        println!("wrote {n} predictions to {}", path.display());
    }
    if let Some(a) = accuracy {
        eprintln!("accuracy {a:.2}% on {n} rows");
    }
    Ok(())
}
