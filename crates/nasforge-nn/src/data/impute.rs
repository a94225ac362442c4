//! Missing feature values (`--impute median|mean`): per-feature fill values computed on the
//! training rows only, applied to every split, saved with the model, and applied again by
//! `nasforge predict` and by the exported ONNX graph.
//!
//! A CSV loaded with [`CsvOptions::impute`](super::CsvOptions::impute) set holds its empty and
//! `NaN` feature cells as `NaN`; [`Imputer::fit`] ignores them when it computes a column's
//! statistic, and [`Imputer::apply`] replaces them. Infinite values are never imputed: the
//! loader rejects them (they are an overflow or a division by zero upstream more often than a
//! missing measurement, and a median would hide that).

use super::Dataset;
use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How missing feature cells are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impute {
    /// The median of the column's present training values (robust to outliers).
    Median,
    /// The mean of the column's present training values.
    Mean,
}

impl Impute {
    /// Parses `median` or `mean` (the `--impute` flag).
    pub fn parse(s: &str) -> Result<Impute> {
        match s {
            "median" => Ok(Impute::Median),
            "mean" => Ok(Impute::Mean),
            other => Err(Error::invalid(format!(
                "--impute `{other}` is neither `median` nor `mean`"
            ))),
        }
    }

    /// The flag value: `median` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Impute::Median => "median",
            Impute::Mean => "mean",
        }
    }
}

/// One fill value per input element (per CSV feature column; per pixel for image rows, in the
/// network's `[C, H, W]` layout), from the training rows. Saved in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Imputer {
    /// The statistic the fill values are.
    pub method: Impute,
    /// The value a missing cell of each input element becomes.
    pub fill: Vec<f32>,
}

impl Imputer {
    /// The fill values of `data`'s rows `rows` (the training rows), ignoring missing (`NaN`)
    /// cells. A feature that is missing in every training row is an error naming it: there is
    /// nothing to fill it with, and the column carries no information.
    pub fn fit(data: &Dataset, rows: &[usize], method: Impute) -> Result<Imputer> {
        let d = data.row_len();
        let mut fill = Vec::with_capacity(d);
        let mut present: Vec<f32> = Vec::with_capacity(rows.len());
        for j in 0..d {
            present.clear();
            present.extend(
                rows.iter()
                    .map(|&r| data.features[r * d + j])
                    .filter(|v| !v.is_nan()),
            );
            if present.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: column `{}` has no value in any training row, so --impute {} has nothing to fill it with; remove it with --drop {}",
                    data.source,
                    feature_name(data, j),
                    method.name(),
                    feature_name(data, j)
                )));
            }
            fill.push(match method {
                Impute::Mean => {
                    (present.iter().map(|&v| v as f64).sum::<f64>() / present.len() as f64) as f32
                }
                Impute::Median => {
                    present.sort_by(f32::total_cmp);
                    let n = present.len();
                    if n % 2 == 1 {
                        present[n / 2]
                    } else {
                        ((present[n / 2 - 1] as f64 + present[n / 2] as f64) / 2.0) as f32
                    }
                }
            });
        }
        Ok(Imputer { method, fill })
    }

    /// Replaces every missing (`NaN`) feature of `data` with its fill value; returns how many
    /// cells it filled. Rows of another length than the fitted ones are an error.
    pub fn apply(&self, data: &mut Dataset) -> Result<usize> {
        let d = data.row_len();
        if d != self.fill.len() {
            return Err(Error::invalid(format!(
                "{}: rows have {d} values but the model fills missing values of {}",
                data.source,
                self.fill.len()
            )));
        }
        let mut filled = 0;
        for row in data.features.chunks_mut(d) {
            for (v, &f) in row.iter_mut().zip(&self.fill) {
                if v.is_nan() {
                    *v = f;
                    filled += 1;
                }
            }
        }
        Ok(filled)
    }
}

/// The CSV column of input element `j` (pixel CSVs are stored channel-major, their columns
/// are channels-last), or its index when the data has no column names.
fn feature_name(data: &Dataset, j: usize) -> String {
    let col = match data.shape[..] {
        [c, h, w] if c > 1 => (j % (h * w)) * c + j / (h * w),
        _ => j,
    };
    data.feature_names
        .get(col)
        .cloned()
        .unwrap_or_else(|| format!("#{}", col + 1))
}
