//! Data sets: what `nasforge search`, `train` and `predict` read, and how they are split.
//!
//! Every loader produces a [`Dataset`]: rows of `f32` features laid out as the network input
//! expects (`[C, H, W]` images, channel-major, or `[F]` vectors), plus targets (class ids with
//! their names, or regression values). Loaders check what users get wrong (ragged rows, text in
//! a feature column, missing, `NaN` or infinite values, a header naming a column twice, an
//! image shape that does not fit the row) and say where. With `--impute`, missing feature cells
//! are kept as `NaN` for an [`Imputer`] fitted on the training rows.

mod csv;
mod folder;
mod idx;
mod impute;
mod resize;
mod split;
mod text;

pub use self::csv::{csv_header, load_csv, CsvOptions};
pub use folder::load_image_folder;
pub use idx::load_idx;
pub use impute::{Impute, Imputer};
pub use resize::bilinear;
pub use split::{Normalizer, Split, SplitFractions};
pub use text::{
    read_corpus, read_text_csv, Corpus, Labels, TextColumn, TextEncoding, Tokens, Vocabulary,
    DEFAULT_MAX_SEQ_LEN, PAD, UNKNOWN,
};

use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Classification or regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Predict one of several classes; reported as accuracy.
    Classification,
    /// Predict a number; reported as MSE and MAE.
    Regression,
    /// Predict the next token at every position of a text window; reported as bits per
    /// token (`--task lm`).
    #[serde(rename = "lm")]
    LanguageModel,
}

/// The targets of a data set.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class ids (`0..names.len()`) and the label each id stands for.
    Classes {
        /// One id per row.
        ids: Vec<u32>,
        /// The original label of each id, in id order (saved with the model).
        names: Vec<String>,
    },
    /// One value per row.
    Values(Vec<f32>),
    /// The next token at every position (a language model's rows): `per_row` ids per row,
    /// each below `vocab`.
    Tokens {
        /// Row-major ids, `len() * per_row`.
        ids: Vec<u32>,
        /// Positions per row (the sequence length).
        per_row: usize,
        /// Ids in the vocabulary.
        vocab: usize,
    },
}

impl Targets {
    /// Rows they are the targets of.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { ids, .. } => ids.len(),
            Targets::Values(v) => v.len(),
            Targets::Tokens { ids, per_row, .. } => ids.len() / (*per_row).max(1),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows of features and their targets.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Row-major features, `len() * row_len()` values.
    pub features: Vec<f32>,
    /// Shape of one row as the network sees it: `[C, H, W]` or `[F]`.
    pub shape: Vec<usize>,
    /// Targets, one per row.
    pub targets: Targets,
    /// Feature names (CSV columns), when the source has them.
    pub feature_names: Vec<String>,
    /// Where the data came from, for messages and records.
    pub source: String,
    /// Regression targets are stored standardised as `(y - mean) / std`; this is `(mean, std)`
    /// so errors and predictions can be reported in the original units.
    pub target_scale: Option<(f32, f32)>,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// One row's features.
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.row_len();
        &self.features[i * d..(i + 1) * d]
    }

    /// The task the targets imply.
    pub fn task(&self) -> Task {
        match self.targets {
            Targets::Classes { .. } => Task::Classification,
            Targets::Values(_) => Task::Regression,
            Targets::Tokens { .. } => Task::LanguageModel,
        }
    }

    /// Number of classes (1 output for regression; the vocabulary for a language model,
    /// at every position).
    pub fn outputs(&self) -> usize {
        match &self.targets {
            Targets::Classes { names, .. } => names.len(),
            Targets::Values(_) => 1,
            Targets::Tokens { vocab, .. } => *vocab,
        }
    }

    /// Whether the targets are known: false for rows read without their target column (the
    /// input of `predict`), whose targets are `NaN` values. Loaded regression targets are never
    /// `NaN` (the loader rejects them).
    pub fn has_targets(&self) -> bool {
        match &self.targets {
            Targets::Classes { .. } | Targets::Tokens { .. } => true,
            Targets::Values(v) => !v.iter().all(|y| y.is_nan()),
        }
    }

    /// Whether rows are images (`[C, H, W]`).
    pub fn is_image(&self) -> bool {
        self.shape.len() == 3
    }

    /// The rows `idx`, in that order, as a new data set.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(idx.len() * self.row_len());
        for &i in idx {
            features.extend_from_slice(self.row(i));
        }
        let targets = match &self.targets {
            Targets::Classes { ids, names } => Targets::Classes {
                ids: idx.iter().map(|&i| ids[i]).collect(),
                names: names.clone(),
            },
            Targets::Values(v) => Targets::Values(idx.iter().map(|&i| v[i]).collect()),
            Targets::Tokens {
                ids,
                per_row,
                vocab,
            } => Targets::Tokens {
                ids: idx
                    .iter()
                    .flat_map(|&i| &ids[i * per_row..(i + 1) * per_row])
                    .copied()
                    .collect(),
                per_row: *per_row,
                vocab: *vocab,
            },
        };
        Dataset {
            features,
            shape: self.shape.clone(),
            targets,
            feature_names: self.feature_names.clone(),
            source: self.source.clone(),
            target_scale: self.target_scale,
        }
    }

    /// Checks what every search and training run needs: rows, and at least two classes.
    pub fn validate(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::invalid(format!(
                "{}: the data set has no rows",
                self.source
            )));
        }
        if let Targets::Classes { ids, names } = &self.targets {
            let mut seen = vec![false; names.len()];
            for &i in ids {
                seen[i as usize] = true;
            }
            let present = seen.iter().filter(|&&s| s).count();
            if present < 2 {
                return Err(Error::invalid(format!(
                    "{}: the target has a single class ({}); classification needs at least two. \
                     For a numeric target use --task regression",
                    self.source,
                    names.first().map(String::as_str).unwrap_or("none")
                )));
            }
        }
        Ok(())
    }
}

/// The 8×8 handwritten digits (1,797 rows, 10 classes; UCI, as shipped by scikit-learn),
/// compiled into the binary: the data `nasforge search` uses when given none.
pub fn embedded_digits() -> Dataset {
    const DIGITS: &[u8] = include_bytes!("../../data/digits.csv.gz");
    let opts = CsvOptions {
        target: "label".into(),
        image: Some([8, 8, 1]),
        ..CsvOptions::default()
    };
    let mut d = self::csv::parse_csv(
        &self::csv::gunzip(DIGITS, "embedded digits").expect("embedded data is valid"),
        &opts,
        "embedded digits",
    )
    .expect("embedded data is valid");
    d.source = "embedded digits (8x8, 1,797 rows)".into();
    d
}

/// Reads a file or folder by its kind (see [`read`]) and checks it is fit for training: rows,
/// and two classes or more.
pub fn load(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    let d = read(path, opts)?;
    d.validate()?;
    Ok(d)
}

/// Reads a file or folder by its kind: a folder of class subfolders (images), an IDX file
/// (MNIST), or a CSV (`.csv`, `.csv.gz`, anything else).
pub fn read(path: &Path, opts: &CsvOptions) -> Result<Dataset> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    match DataKind::of(path) {
        DataKind::ImageFolder => load_image_folder(path, opts.image),
        DataKind::Idx => load_idx(path, opts.labels.as_deref()),
        DataKind::Csv => load_csv(path, opts),
    }
}

/// What kind of data a path holds, by how it is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// A folder of class subfolders.
    ImageFolder,
    /// An IDX images file (its labels file beside it).
    Idx,
    /// A CSV file (plain or `.gz`).
    Csv,
}

impl DataKind {
    /// The kind of `path`: a directory, a name with `-idx` / `.idx`, or anything else (CSV).
    pub fn of(path: &Path) -> DataKind {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            DataKind::ImageFolder
        } else if name.contains("-idx") || name.ends_with(".idx") || name.ends_with(".idx.gz") {
            DataKind::Idx
        } else {
            DataKind::Csv
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
