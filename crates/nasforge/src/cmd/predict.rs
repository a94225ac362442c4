//! `nasforge predict`: predictions of a saved model on new data.
//!
//! CSV columns are matched by name against the model's feature columns (`model.json`), so
//! their order does not matter; the target column, when present, is used only to score the
//! predictions; a column that is neither (an id, a timestamp) is an error until it is named
//! with `--drop`, and a missing feature column is an error naming it. Missing cells are filled
//! as in training when the model was trained with `--impute`, and an error otherwise. A model
//! trained on text (`--text-column`) reads that column's passages and encodes them with its
//! saved vocabulary and sequence length.

use super::bad_input;
use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Args;
use nasforge_nn::bundle;
use nasforge_nn::data::{self, CsvOptions, Dataset, Labels, Targets, Task};
use nasforge_nn::device::DeviceKind;
use std::path::PathBuf;

/// Arguments of `nasforge predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The saved model: a run's `best/` folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The data: the same kind of file the model was trained on. CSV columns are matched by
    /// name (any order); the target column may be absent (with it, the predictions are scored).
    #[arg(long)]
    pub data: PathBuf,
    /// A CSV column to ignore (repeatable): a column the model does not read, such as an id,
    /// is an error without it.
    #[arg(long)]
    pub drop: Vec<String>,
    /// Print one JSON document instead of CSV: `predictions` (labels, or numbers for
    /// regression), `rows`, and with the target column `accuracy` (or `mse` and `mae`).
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success (errors still go to stderr; the exit code tells).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    /// Write the predictions CSV to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Predictions, in the data's row order.
enum Predictions {
    /// Class labels.
    Labels(Vec<String>),
    /// Regression values in the target's units.
    Values(Vec<f32>),
}

/// Runs `nasforge predict`.
pub fn run(args: PredictArgs) -> Result<()> {
    let device = DeviceKind::Cpu;
    let (info, model) = bundle::load(&args.model, device)?;
    // IDX files and image folders carry labels; a CSV is read by the model's column names
    // and may come without its target column.
    let opts = CsvOptions {
        target: info.target.clone(),
        task: Some(info.task),
        drop: args.drop.clone(),
        image: info.image,
        labels: None,
        impute: info.imputer.as_ref().map(|i| i.method),
        features: info.feature_names.clone(),
    };
    let mut d: Dataset = match &info.text {
        Some(text) => {
            let Some(column) = &text.column else {
                return no_language_models();
            };
            if !args.drop.is_empty() {
                return bad_input(format!(
                    "--drop: this model reads only the text column `{column}` (and `{}` to score), so no column needs dropping; leave it out",
                    info.target
                ));
            }
            let passages =
                data::read_text_csv(&args.data, column, Labels::IfPresent(&info.target))?;
            text.encode(&passages)?
        }
        None => data::read(&args.data, &opts)?,
    };
    if d.shape != info.input_shape {
        return bad_input(format!(
            "{}: rows have shape {:?} but the model takes {:?}",
            args.data.display(),
            d.shape,
            info.input_shape
        ));
    }
    let has_target = d.has_targets();
    // The truth in its own units, before normalisation standardises regression targets.
    let truth = match &d.targets {
        _ if !has_target => None,
        Targets::Classes { ids, names } => Some(Predictions::Labels(
            ids.iter().map(|&i| names[i as usize].clone()).collect(),
        )),
        Targets::Values(v) => Some(Predictions::Values(v.clone())),
        Targets::Tokens { .. } => return no_language_models(),
    };
    if let Some(imputer) = &info.imputer {
        imputer.apply(&mut d)?;
    }
    if let Some(normalizer) = &info.normalizer {
        normalizer.apply(&mut d);
    }
    if let Some(hw) = info.resize {
        d = d.resized(hw)?;
    }
    let dev = device.device();
    let n = d.len();
    let dlen = d.row_len();
    let mut outputs = Vec::with_capacity(n * info.classes.len().max(1));
    // Inside the thread pool, as training and evaluation run (`kernels::in_pool`).
    nasforge_nn::kernels::in_pool(|| {
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
    });
    let width = (outputs.len() / n.max(1)).max(1);
    let predictions = match info.task {
        Task::LanguageModel => return no_language_models(),
        Task::Classification => Predictions::Labels(
            outputs
                .chunks(width)
                .map(|row| {
                    let best = row
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    info.classes[best].clone()
                })
                .collect(),
        ),
        Task::Regression => {
            let (m, s) = info
                .normalizer
                .as_ref()
                .and_then(|n| n.target)
                .unwrap_or((0.0, 1.0));
            Predictions::Values(outputs.chunks(width).map(|row| row[0] * s + m).collect())
        }
    };
    let score = Score::of(&predictions, truth.as_ref());
    if args.json {
        let mut doc = serde_json::json!({"rows": n});
        doc["predictions"] = match &predictions {
            Predictions::Labels(l) => serde_json::json!(l),
            Predictions::Values(v) => serde_json::json!(v),
        };
        match score {
            Some(Score::Accuracy(a)) => doc["accuracy"] = a.into(),
            Some(Score::Errors { mse, mae }) => {
                doc["mse"] = mse.into();
                doc["mae"] = mae.into();
            }
            None => {}
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let cell = |p: &Predictions, i: usize| match p {
        Predictions::Labels(l) => l[i].clone(),
        Predictions::Values(v) => v[i].to_string(),
    };
    let mut csv = format!(
        "row,prediction{}\n",
        if truth.is_some() { ",target" } else { "" }
    );
    for i in 0..n {
        match &truth {
            Some(t) => csv.push_str(&format!("{i},{},{}\n", cell(&predictions, i), cell(t, i))),
            None => csv.push_str(&format!("{i},{}\n", cell(&predictions, i))),
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
    match score {
        Some(Score::Accuracy(a)) => eprintln!("accuracy {a:.2}% on {n} rows"),
        Some(Score::Errors { mse, mae }) => eprintln!("MSE {mse:.6}, MAE {mae:.6} on {n} rows"),
        None => {}
    }
    Ok(())
}

/// The refusal of a language model (`--task lm`), which labels nothing.
fn no_language_models() -> Result<()> {
    bad_input(
        "this model is a language model (--task lm): predict labels rows and passages, it does not generate text; its test bits per character are in final.json beside it",
    )
}

/// How the predictions compare with the data's targets.
#[derive(Clone, Copy, Debug)]
enum Score {
    /// Percent of labels right.
    Accuracy(f64),
    /// Mean squared and mean absolute error, in the target's units.
    Errors { mse: f64, mae: f64 },
}

impl Score {
    /// The score of `predictions` against `truth`, when the data had targets.
    fn of(predictions: &Predictions, truth: Option<&Predictions>) -> Option<Score> {
        match (predictions, truth?) {
            (Predictions::Labels(p), Predictions::Labels(t)) => {
                let right = p.iter().zip(t).filter(|(a, b)| a == b).count();
                Some(Score::Accuracy(
                    100.0 * right as f64 / p.len().max(1) as f64,
                ))
            }
            (Predictions::Values(p), Predictions::Values(t)) => {
                let n = p.len().max(1) as f64;
                let errors = p.iter().zip(t).map(|(a, b)| *a as f64 - *b as f64);
                Some(Score::Errors {
                    mse: errors.clone().map(|e| e * e).sum::<f64>() / n,
                    mae: errors.map(f64::abs).sum::<f64>() / n,
                })
            }
            _ => None,
        }
    }
}
