//! What `search` and `train` share: loading data per the config, sizing the space to it, the
//! training recipe, and final training with the model saved under `best/`.

use super::config::{parse_image, SearchConfig};
use super::{bad_input, BadInput};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use nasforge_core::netspec::NetSpec;
use nasforge_nn::bundle::{self, ModelInfo};
use nasforge_nn::data::{
    self, CsvOptions, Dataset, Impute, Imputer, Labels, Normalizer, Split, SplitFractions, Targets,
    Task, TextEncoding, Tokens,
};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::final_train::{final_train, FinalResult};
use nasforge_nn::train::{OptimizerConfig, ScheduleConfig, TrainConfig, TrainError};
use std::path::Path;
use std::sync::Arc;

/// Default space parameters for the embedded 8×8 digits: a 3-cell NAS-Bench-201 network.
pub const DIGITS_SPACE_PARAMS: &[&str] = &["channels=16", "cells=1"];

/// The most token ids a text vocabulary may hold unless `--max-vocab` says otherwise.
pub const DEFAULT_MAX_VOCAB: usize = 1024;

/// Loaded, split and normalised data.
pub struct Prepared {
    /// Normalised with training statistics (numbers and images), or token ids (text).
    pub data: Arc<Dataset>,
    /// The split from the run's seed.
    pub split: Split,
    /// The statistics (saved with the model); `None` for token ids, never normalised.
    pub normalizer: Option<Normalizer>,
    /// How passages became token ids (`--text-column`; saved with the model).
    pub text: Option<TextEncoding>,
    /// The fill values of missing features, with `--impute` (saved with the model).
    pub imputer: Option<Imputer>,
    /// The image shape the user gave, if any.
    pub image: Option<[usize; 3]>,
    /// The shape of rows as read (before any resize).
    pub input_shape: Vec<usize>,
    /// The `[H, W]` images were resized to after normalisation ([`Prepared::resized`]).
    pub resize: Option<[usize; 2]>,
}

impl Prepared {
    /// The same data with its images resized to `h × w` (resolution scaling): the split,
    /// statistics and fill values stay those of the rows as read.
    pub fn resized(&self, hw: [usize; 2]) -> Result<Prepared> {
        Ok(Prepared {
            data: Arc::new(self.data.resized(hw)?),
            split: self.split.clone(),
            normalizer: self.normalizer.clone(),
            imputer: self.imputer.clone(),
            text: self.text.clone(),
            image: self.image,
            input_shape: self.input_shape.clone(),
            resize: Some(hw),
        })
    }
}

/// Loads the data the config names (or the embedded digits), splits it from the seed, fills
/// missing features (`--impute`) and normalises, both with statistics of the training rows.
pub fn prepare_data(cfg: &SearchConfig) -> Result<Prepared> {
    if cfg.task.as_deref() == Some("lm") {
        return prepare_corpus(cfg);
    }
    if let Some(column) = &cfg.text_column {
        return prepare_text(cfg, column);
    }
    for (flag, given) in [
        ("--seq-len", cfg.seq_len.is_some()),
        ("--tokens", cfg.tokens.is_some()),
        ("--max-vocab", cfg.max_vocab.is_some()),
    ] {
        if given {
            return bad_input(format!(
                "{flag} sets how text is read; name the CSV column of passages with --text-column, or learn a plain-text file with --task lm"
            ));
        }
    }
    let mut image = cfg.image.as_deref().map(parse_image).transpose()?;
    if cfg.data.is_none() {
        // The embedded digits are 8x8 pixel rows; a model trained on them reads such CSVs.
        image = Some([8, 8, 1]);
    }
    let task = match cfg.task.as_deref() {
        None => None,
        Some("classification") => Some(Task::Classification),
        Some("regression") => Some(Task::Regression),
        Some(other) => {
            return bad_input(format!(
                "--task `{other}` is not `classification`, `regression` or `lm` (a language model of a plain-text file)"
            ))
        }
    };
    let impute = cfg.impute.as_deref().map(Impute::parse).transpose()?;
    let mut data = match &cfg.data {
        None => data::embedded_digits(),
        Some(path) => data::load(
            path,
            &CsvOptions {
                target: cfg.target.clone().unwrap_or_else(|| "label".into()),
                task,
                drop: cfg.drop.clone(),
                image,
                labels: cfg.labels.clone(),
                impute,
                features: Vec::new(),
            },
        )?,
    };
    data.validate()?;
    let split = split(cfg, &data.targets, &data.source)?;
    // After the split, so that validation and test rows never inform the fill values.
    let imputer = match impute {
        Some(method) => {
            let imputer = Imputer::fit(&data, &split.train, method)?;
            imputer.apply(&mut data)?;
            Some(imputer)
        }
        None => None,
    };
    let normalizer = Normalizer::fit(&data, &split.train);
    normalizer.apply(&mut data);
    Ok(Prepared {
        input_shape: data.shape.clone(),
        data: Arc::new(data),
        split,
        normalizer: Some(normalizer),
        text: None,
        imputer,
        image,
        resize: None,
    })
}

/// The validation and test fractions of rows unless given.
const DEFAULT_FRACTION: f64 = 0.15;

/// `--valid-fraction` and `--test-fraction`, `default` each unless given.
fn fractions(cfg: &SearchConfig, default: f64) -> SplitFractions {
    SplitFractions {
        valid: cfg.valid_fraction.unwrap_or(default),
        test: cfg.test_fraction.unwrap_or(default),
    }
}

/// The run's split of rows with `targets`, from its seed and fractions, with validation rows.
fn split(cfg: &SearchConfig, targets: &Targets, source: &str) -> Result<Split> {
    let fractions = fractions(cfg, DEFAULT_FRACTION);
    let split = Split::of_targets(targets, fractions, cfg.seed.unwrap_or(0), source)?;
    if split.valid.is_empty() {
        return bad_input(format!(
            "{source}: the validation split is empty ({} rows × {}); the search needs validation rows",
            split.train.len() + split.test.len(),
            fractions.valid
        ));
    }
    Ok(split)
}

/// Labelled passages (`--text-column`) as token ids: split first, then the vocabulary and the
/// default sequence length from the training passages alone.
fn prepare_text(cfg: &SearchConfig, column: &str) -> Result<Prepared> {
    let Some(path) = &cfg.data else {
        return bad_input(
            "--text-column names a column of passages in a CSV; give the CSV with --data",
        );
    };
    refuse_for_text(cfg, "--text-column reads only the passages and the target")?;
    match cfg.task.as_deref() {
        None | Some("classification") => {}
        Some(other) => {
            return bad_input(format!(
                "--task `{other}` with --text-column: passages can only be classified (--task classification)"
            ))
        }
    }
    let tokens = tokens(cfg)?;
    let target = cfg.target.clone().unwrap_or_else(|| "label".into());
    let passages = data::read_text_csv(path, column, Labels::Required(&target))?;
    let split = split(cfg, &passages.targets, &passages.source)?;
    let train: Vec<&str> = split
        .train
        .iter()
        .map(|&i| passages.texts[i].as_str())
        .collect();
    let encoding = TextEncoding::fit(
        Some(column),
        &train,
        tokens,
        cfg.max_vocab.unwrap_or(DEFAULT_MAX_VOCAB),
        cfg.seq_len,
    )?;
    let data = encoding.encode(&passages)?;
    data.validate()?;
    Ok(Prepared {
        input_shape: data.shape.clone(),
        data: Arc::new(data),
        split,
        normalizer: None,
        text: Some(encoding),
        imputer: None,
        image: None,
        resize: None,
    })
}

/// The sequence length of a language model unless `--seq-len` says otherwise (nanoGPT's
/// block on a CPU).
pub const DEFAULT_LM_SEQ_LEN: usize = 64;

/// The validation and test fractions of a corpus unless given (train gets 90% of the text).
const DEFAULT_LM_FRACTION: f64 = 0.05;

/// `--tokens`, `char` unless given.
fn tokens(cfg: &SearchConfig) -> Result<Tokens> {
    Ok(Tokens::parse(cfg.tokens.as_deref().unwrap_or("char"))
        .map_err(|e| BadInput(format!("--{e}")))?)
}

/// Refuses the settings of numbers and images that text has no use for.
fn refuse_for_text(cfg: &SearchConfig, why: &str) -> Result<()> {
    for (flag, given) in [
        ("--image", cfg.image.is_some()),
        ("--impute", cfg.impute.is_some()),
        ("--labels", cfg.labels.is_some()),
        ("--drop", !cfg.drop.is_empty()),
        ("--augment", cfg.augment == Some(true)),
    ] {
        if given {
            return bad_input(format!(
                "{flag} does not apply to text ({why}); leave it out"
            ));
        }
    }
    Ok(())
}

/// A plain-text corpus (`--task lm`) as next-token windows in three contiguous blocks, the
/// vocabulary from the training block.
fn prepare_corpus(cfg: &SearchConfig) -> Result<Prepared> {
    let Some(path) = &cfg.data else {
        return bad_input("--task lm learns a plain-text file; give it with --data");
    };
    if cfg.text_column.is_some() || cfg.target.is_some() {
        return bad_input(
            "--task lm reads a whole plain-text file, not CSV columns: leave out --text-column and --target (they classify passages of a CSV)",
        );
    }
    refuse_for_text(cfg, "--task lm reads the file as one text")?;
    let text = data::read_corpus(path)?;
    let corpus = data::Corpus::new(
        &text,
        &path.display().to_string(),
        tokens(cfg)?,
        cfg.max_vocab.unwrap_or(DEFAULT_MAX_VOCAB),
        cfg.seq_len.unwrap_or(DEFAULT_LM_SEQ_LEN),
        fractions(cfg, DEFAULT_LM_FRACTION),
    )?;
    Ok(Prepared {
        input_shape: corpus.data.shape.clone(),
        data: Arc::new(corpus.data),
        split: corpus.split,
        normalizer: None,
        text: Some(corpus.encoding),
        imputer: None,
        image: None,
        resize: None,
    })
}

/// The space name and its parameters, with `input` and `classes` (and a Transformer's
/// `vocab`) set from the data (an explicit value that disagrees with the data is an error).
pub fn space_for_data(cfg: &SearchConfig, prepared: &Prepared) -> Result<(String, Vec<String>)> {
    let data = &prepared.data;
    let name = cfg.space.clone().unwrap_or_else(|| {
        if prepared.text.is_some() {
            "transformer"
        } else if data.is_image() {
            "nb201"
        } else {
            "mlp"
        }
        .to_string()
    });
    let mut params = cfg.space_param.clone();
    if cfg.space.is_none() && cfg.data.is_none() && params.is_empty() {
        params = DIGITS_SPACE_PARAMS.iter().map(|s| s.to_string()).collect();
    }
    let classes = ("classes", data.outputs().to_string(), "leave it out");
    let from_data = match (&prepared.text, name.as_str()) {
        (Some(text), "transformer") => {
            let input = ("input", text.seq_len.to_string(), "set it with --seq-len");
            let vocab = ("vocab", text.vocabulary.len().to_string(), "leave it out");
            if data.task() == Task::LanguageModel {
                let head = ("head", "lm".to_string(), "--task lm trains head=lm");
                vec![input, vocab, head]
            } else {
                vec![input, vocab, classes]
            }
        }
        (Some(_), _) => {
            return bad_input(format!(
                "space `{name}` does not read text; passages (--text-column) are token ids for --space transformer"
            ))
        }
        (None, "transformer") => {
            return bad_input(format!(
                "space `transformer` reads token ids from text, and {} is {}; name a CSV column of passages with --text-column",
                data.source,
                if data.is_image() { "images" } else { "a table of numbers" }
            ))
        }
        (None, _) => {
            if data.is_image() && name == "mlp" {
                params.push(format!("input={}", data.row_len()));
            } else if !data.is_image() && name != "mlp" {
                return bad_input(format!(
                    "space `{name}` needs images, but {} is a table; use --space mlp, or --image HxWxC if the columns are pixels",
                    data.source
                ));
            }
            vec![("input", input_param(data), "leave it out"), classes]
        }
    };
    for (key, value, hint) in from_data {
        let given = params
            .iter()
            .find_map(|p| p.strip_prefix(&format!("{key}=")).map(str::to_string));
        match given {
            None => params.push(format!("{key}={value}")),
            Some(g) if key == "input" && name == "mlp" => {
                if g.parse::<usize>().ok() != Some(data.row_len()) {
                    return bad_input(format!(
                        "--space-param input={g} does not match the data's {} features",
                        data.row_len()
                    ));
                }
            }
            Some(g) if g != value => {
                return bad_input(format!(
                    "--space-param {key}={g} does not match the data ({key} {value}); {hint}"
                ));
            }
            Some(_) => {}
        }
    }
    Ok((name, params))
}

/// The first objective of a search on data of `task` unless `--objective` says otherwise.
pub fn default_objective(task: Task) -> &'static str {
    match task {
        Task::Classification => nasforge_core::study::metric::VALID_ACCURACY,
        Task::Regression => nasforge_core::study::metric::VALID_MSE,
        Task::LanguageModel => nasforge_core::study::metric::VALID_BPC,
    }
}

/// A task's final test score: its JSON key stem and how it is named to a person.
pub fn test_score_names(task: Task) -> (&'static str, &'static str) {
    match task {
        Task::Classification => ("test_accuracy", "test accuracy"),
        Task::Regression => ("test_mse", "test MSE"),
        Task::LanguageModel => ("test_bpc", "test bits per token"),
    }
}

/// The final test score in a JSON document: `test_accuracy_mean`/`_std`, `test_mse_*` with
/// `test_mae_mean`, or `test_bpc_*`.
pub fn write_test_score(doc: &mut serde_json::Value, task: Task, r: &FinalResult) {
    let key = test_score_names(task).0;
    doc[format!("{key}_mean")] = r.mean.into();
    doc[format!("{key}_std")] = r.std.into();
    if task == Task::Regression {
        doc["test_mae_mean"] = r.mae_mean.into();
    }
}

/// The recipe defaults that depend on the space: a Transformer trains with AdamW (learning
/// rate 1e-3, weight decay 0.01) and its gradient norm clipped at 1, as nanoGPT and most
/// Transformer recipes do; SGD with Nesterov momentum (the general default) suits the
/// convolutional and MLP spaces. Only settings the user left unset change.
pub fn space_recipe(cfg: &mut SearchConfig, space: &str) {
    if space == "transformer" {
        cfg.optimizer.get_or_insert_with(|| "adamw".into());
        cfg.grad_clip.get_or_insert(1.0);
    }
}

/// The data's shape as a space's `input` parameter: `HxWxC` for images, the feature count
/// for tables.
pub fn input_param(data: &Dataset) -> String {
    match data.shape[..] {
        [c, h, w] => format!("{h}x{w}x{c}"),
        _ => data.row_len().to_string(),
    }
}

/// The training recipe from the config (`final_epochs` replaces `epochs` for final training).
pub fn train_config(cfg: &SearchConfig, final_training: bool) -> Result<TrainConfig> {
    let optimizer_name = cfg.optimizer.as_deref().unwrap_or("sgd");
    let optimizer = match optimizer_name {
        "sgd" => OptimizerConfig::Sgd {
            momentum: cfg.momentum.unwrap_or(0.9),
            nesterov: cfg.nesterov.unwrap_or(true),
            weight_decay: cfg.weight_decay.unwrap_or(5e-4),
        },
        "adam" => OptimizerConfig::Adam {
            weight_decay: cfg.weight_decay.unwrap_or(0.0),
        },
        "adamw" => OptimizerConfig::AdamW {
            weight_decay: cfg.weight_decay.unwrap_or(0.01),
        },
        other => return bad_input(format!("--optimizer `{other}` is not sgd, adam or adamw")),
    };
    let schedule = match cfg.schedule.as_deref().unwrap_or("cosine") {
        "cosine" => ScheduleConfig::Cosine,
        "constant" => ScheduleConfig::Constant,
        "step" => ScheduleConfig::Step {
            every: cfg.step_every.unwrap_or(10),
            gamma: cfg.step_gamma.unwrap_or(0.1),
        },
        other => {
            return bad_input(format!(
                "--schedule `{other}` is not cosine, step or constant"
            ))
        }
    };
    let epochs = if final_training {
        cfg.final_epochs.unwrap_or(40)
    } else {
        cfg.epochs.unwrap_or(10)
    };
    Ok(TrainConfig {
        epochs,
        batch_size: cfg.batch_size.unwrap_or(64),
        lr: cfg
            .lr
            .unwrap_or(if optimizer_name == "sgd" { 0.05 } else { 1e-3 }),
        optimizer,
        schedule,
        warmup_epochs: cfg.warmup_epochs.unwrap_or(1),
        label_smoothing: cfg.label_smoothing.unwrap_or(0.0),
        grad_clip: cfg.grad_clip.filter(|&c| c > 0.0),
        augment: cfg.augment.unwrap_or(false),
        flip: cfg.flip.unwrap_or(false),
    })
}

/// The device, and the CPU thread pool sized as asked, or to this worker's share of the
/// cores (once per process).
pub fn device(cfg: &SearchConfig) -> Result<DeviceKind> {
    let kind = DeviceKind::parse(cfg.device.as_deref().unwrap_or("cpu"))?;
    // Several workers share the cores unless told how many each takes.
    let share = (cfg.workers() > 1).then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / cfg.workers()).max(1)
    });
    if let Some(n) = cfg.threads.filter(|&n| n > 0).or(share) {
        // Fails only if the pool was already built, which keeps the first setting.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(kind)
}

/// Final training of `spec` on several seeds, then the first seed's model saved in `best`.
#[allow(clippy::too_many_arguments)]
pub fn final_training(
    cfg: &SearchConfig,
    prepared: &Prepared,
    space: (&str, &[String]),
    arch_text: &str,
    spec: &NetSpec,
    best: &Path,
    device: DeviceKind,
    bar: &ProgressBar,
) -> Result<FinalResult> {
    let tc = train_config(cfg, true)?;
    let seeds: Vec<u64> = (0..cfg.final_seeds.unwrap_or(3) as u64)
        .map(|k| cfg.seed.unwrap_or(0).wrapping_add(1000 + k))
        .collect();
    if seeds.is_empty() {
        return bad_input("--final-seeds must be at least 1");
    }
    bar.set_length((seeds.len() * tc.epochs) as u64);
    bar.set_position(0);
    let (result, model) = final_train(
        spec,
        &prepared.data,
        &prepared.split,
        &tc,
        &seeds,
        device,
        &mut |k, e| {
            bar.set_position((k * tc.epochs + e.epoch) as u64);
            bar.set_message(format!(
                "final training, seed {}/{} epoch {}/{}",
                k + 1,
                seeds.len(),
                e.epoch,
                tc.epochs
            ));
        },
    )
    .map_err(|e| match e {
        TrainError::Invalid(e) => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::anyhow!("final training failed: {other}"),
    })?;
    let data = &prepared.data;
    let info = ModelInfo {
        space: space.0.to_string(),
        space_params: space.1.to_vec(),
        arch: arch_text.to_string(),
        task: data.task(),
        input_shape: prepared.input_shape.clone(),
        classes: match &data.targets {
            Targets::Classes { names, .. } => names.clone(),
            Targets::Values(_) | Targets::Tokens { .. } => Vec::new(),
        },
        feature_names: data.feature_names.clone(),
        target: cfg.target.clone().unwrap_or_else(|| "label".into()),
        image: prepared.image,
        normalizer: prepared.normalizer.clone(),
        text: prepared.text.clone(),
        imputer: prepared.imputer.clone(),
        resize: prepared.resize,
    };
    bundle::save(best, &info, &model)?;
    let doc = serde_json::json!({
        "arch": arch_text,
        "seeds": result.seeds,
        "mean": result.mean,
        "std": result.std,
        "mae_mean": result.mae_mean,
        "task": data.task(),
        "epochs": tc.epochs,
    });
    std::fs::write(best.join("final.json"), serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", best.join("final.json").display()))?;
    Ok(result)
}
