//! Train / validation / test splits and normalisation.

use super::{Dataset, Targets};
use nasforge_core::rng::Rng;
use nasforge_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Fractions of the rows for validation and test; the rest is for training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Validation fraction (the search's signal).
    pub valid: f64,
    /// Test fraction (used once, by final training).
    pub test: f64,
}

impl SplitFractions {
    /// Each fraction in `[0, 1)`, and rows (or text) left for training.
    pub fn check(self) -> Result<()> {
        let SplitFractions { valid, test } = self;
        if !(0.0..1.0).contains(&valid) || !(0.0..1.0).contains(&test) || valid + test >= 1.0 {
            return Err(Error::invalid(format!(
                "split fractions valid={valid} and test={test} must be in [0, 1) and leave rows for training"
            )));
        }
        Ok(())
    }
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            valid: 0.15,
            test: 0.15,
        }
    }
}

/// Row indices of the three splits.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub valid: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

impl Split {
    /// A split from `seed`: stratified by class for classification (each class divided in the
    /// same proportions), shuffled for regression.
    pub fn new(data: &Dataset, fractions: SplitFractions, seed: u64) -> Result<Split> {
        Split::of_targets(&data.targets, fractions, seed, &data.source)
    }

    /// The split of rows with `targets` (as [`Split::new`]), before their features are ready:
    /// text is encoded with a vocabulary of the training rows.
    pub fn of_targets(
        targets: &Targets,
        fractions: SplitFractions,
        seed: u64,
        source: &str,
    ) -> Result<Split> {
        fractions.check()?;
        let SplitFractions { valid, test } = fractions;
        let mut rng = Rng::new(seed ^ 0x5157_u64);
        let groups: Vec<Vec<usize>> = match targets {
            Targets::Classes { ids, names } => {
                let mut g = vec![Vec::new(); names.len()];
                for (i, &c) in ids.iter().enumerate() {
                    g[c as usize].push(i);
                }
                g
            }
            Targets::Values(v) => vec![(0..v.len()).collect()],
            // Windows of one text, in order: contiguous blocks, so that no validation or test
            // text sits between training windows.
            Targets::Tokens { .. } => return Ok(Split::contiguous(targets.len(), fractions)),
        };
        let mut split = Split {
            train: Vec::new(),
            valid: Vec::new(),
            test: Vec::new(),
        };
        for mut g in groups {
            rng.shuffle(&mut g);
            let n = g.len() as f64;
            let n_test = (n * test).round() as usize;
            let n_valid = (n * valid).round() as usize;
            split.test.extend_from_slice(&g[..n_test]);
            split.valid.extend_from_slice(&g[n_test..n_test + n_valid]);
            split.train.extend_from_slice(&g[n_test + n_valid..]);
        }
        for part in [&mut split.train, &mut split.valid, &mut split.test] {
            rng.shuffle(part);
        }
        if split.train.is_empty() {
            return Err(Error::invalid(format!(
                "{source}: too few rows to leave any for training"
            )));
        }
        Ok(split)
    }

    /// Rows `0..rows` in order: the first for training, then validation, then test, in the
    /// proportions of `fractions` (checked: they leave rows for training).
    pub fn contiguous(rows: usize, fractions: SplitFractions) -> Split {
        let n_test = (rows as f64 * fractions.test).round() as usize;
        let n_valid = (rows as f64 * fractions.valid).round() as usize;
        Split::blocks([rows.saturating_sub(n_test + n_valid), n_valid, n_test])
    }

    /// Consecutive blocks of `[train, valid, test]` rows, in that order.
    pub fn blocks([train, valid, test]: [usize; 3]) -> Split {
        Split {
            train: (0..train).collect(),
            valid: (train..train + valid).collect(),
            test: (train + valid..train + valid + test).collect(),
        }
    }
}

/// Per-channel (images) or per-feature (vectors) mean and standard deviation, computed on the
/// training rows only and applied to every split (and saved with the model for prediction).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Mean per channel or feature.
    pub mean: Vec<f32>,
    /// Standard deviation per channel or feature (1 where it is 0).
    pub std: Vec<f32>,
    /// Values per channel (H*W for images, 1 for vectors).
    pub plane: usize,
    /// Mean and standard deviation of regression targets on the training rows.
    #[serde(default)]
    pub target: Option<(f32, f32)>,
}

impl Normalizer {
    /// The largest normalised feature magnitude, in training standard deviations.
    pub const CLIP: f32 = 10.0;

    /// Statistics of `data`'s rows `rows`.
    pub fn fit(data: &Dataset, rows: &[usize]) -> Normalizer {
        let (groups, plane) = if data.is_image() {
            (data.shape[0], data.shape[1] * data.shape[2])
        } else {
            (data.row_len(), 1)
        };
        let mut sum = vec![0f64; groups];
        let mut sq = vec![0f64; groups];
        for &r in rows {
            for (j, &v) in data.row(r).iter().enumerate() {
                let g = j / plane;
                sum[g] += v as f64;
                sq[g] += (v as f64) * (v as f64);
            }
        }
        let n = (rows.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| {
                let var = (q / n - (s / n).powi(2)).max(0.0);
                if var > 1e-12 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            })
            .collect();
        let target = match &data.targets {
            Targets::Values(v) if !rows.is_empty() => {
                let n = rows.len() as f64;
                let m = rows.iter().map(|&r| v[r] as f64).sum::<f64>() / n;
                let var = rows.iter().map(|&r| (v[r] as f64 - m).powi(2)).sum::<f64>() / n;
                Some((m as f32, if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }))
            }
            _ => None,
        };
        Normalizer {
            mean,
            std,
            plane,
            target,
        }
    }

    /// Normalises every row of `data` in place (z-scores clipped to ±[`Normalizer::CLIP`]), and
    /// standardises regression targets.
    ///
    /// The clip matters for features that barely vary on the training rows (an MNIST border
    /// pixel that is dark in all but one training image): without it a validation or test row
    /// can carry z-scores in the hundreds, and training on such rows (final training uses
    /// train + valid) is unstable.
    pub fn apply(&self, data: &mut Dataset) {
        if let (Some((m, s)), Targets::Values(v)) = (self.target, &mut data.targets) {
            for y in v.iter_mut() {
                *y = (*y - m) / s;
            }
            data.target_scale = Some((m, s));
        }
        let d = data.row_len();
        for row in data.features.chunks_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                let g = j / self.plane;
                *v = ((*v - self.mean[g]) / self.std[g]).clamp(-Self::CLIP, Self::CLIP);
            }
        }
    }
}
