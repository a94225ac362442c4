//! Performance predictors: models that guess an arch's score from its encoding.
//!
//! A [`Predictor`] is fitted on (encoding, score) pairs and predicts a mean and an uncertainty
//! for new encodings. Predictor-guided strategies (`bananas`, `gp`) use the uncertainty in their
//! acquisition functions; `nasforge predictors` measures how well each one ranks held-out archs.
//!
//! Encodings ([`Encoding`]): one-hot per choice (every space) or the BANANAS path encoding (spaces
//! that define one, such as `nb201`). All predictors standardise the scores they are fitted on,
//! so they work the same on accuracies in percent, fractions or losses.

mod forest;
mod gp;
mod mlp;

pub use forest::RandomForest;
pub use gp::GaussianProcess;
pub use mlp::MlpEnsemble;

use crate::space::{Arch, Space};
use crate::{Error, Result};

/// How archs become feature vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One-hot per choice ([`Space::encode`]).
    OneHot,
    /// The path encoding ([`Space::path_encoding`]) where the space has one, else one-hot.
    Path,
    /// Both, concatenated.
    Both,
}

impl Encoding {
    /// Parses `onehot`, `path` or `both`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "onehot" | "one-hot" => Ok(Encoding::OneHot),
            "path" => Ok(Encoding::Path),
            "both" => Ok(Encoding::Both),
            _ => Err(Error::invalid(format!(
                "unknown encoding `{s}`; choose onehot, path or both"
            ))),
        }
    }

    /// The encoding's name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::OneHot => "onehot",
            Encoding::Path => "path",
            Encoding::Both => "both",
        }
    }

    /// Encodes `arch`.
    pub fn encode(self, space: &dyn Space, arch: &Arch) -> Vec<f64> {
        let onehot = || space.encode(arch).into_iter().map(f64::from);
        let path = || {
            space
                .path_encoding(arch)
                .map(|p| p.into_iter().map(f64::from))
        };
        match self {
            Encoding::OneHot => onehot().collect(),
            Encoding::Path => match path() {
                Some(p) => p.collect(),
                None => onehot().collect(),
            },
            Encoding::Both => {
                let mut v: Vec<f64> = onehot().collect();
                if let Some(p) = path() {
                    v.extend(p);
                }
                v
            }
        }
    }
}

/// A regression model from encodings to scores, with an uncertainty.
pub trait Predictor: Send {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// Fits the model to `x` (rows of equal length) and `y`; at least two rows.
    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]);

    /// The predicted mean and standard deviation (the model's own uncertainty: ensemble spread,
    /// posterior standard deviation, or spread over trees) for `x`.
    fn predict(&self, x: &[f64]) -> (f64, f64);
}

/// A description of a registered predictor.
pub struct PredictorInfo {
    /// The name to ask for it by.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
}

/// Every registered predictor.
pub const PREDICTORS: &[PredictorInfo] = &[
    PredictorInfo {
        name: "mlp",
        summary: "ensemble of 5 small MLPs (3 × 32 ReLU, Adam), mean and spread over members",
    },
    PredictorInfo {
        name: "gp",
        summary: "Gaussian process, RBF kernel on the encoding, length scale and noise by marginal likelihood",
    },
    PredictorInfo {
        name: "forest",
        summary: "random forest of 100 regression trees (bootstrap, a third of the features per split)",
    },
];

/// Builds a registered predictor.
pub fn build(name: &str, seed: u64) -> Result<Box<dyn Predictor>> {
    Ok(match name {
        "mlp" => Box::new(MlpEnsemble::new(seed, 5)),
        "gp" => Box::new(GaussianProcess::new()),
        "forest" => Box::new(RandomForest::new(seed, 100)),
        _ => {
            return Err(Error::invalid(format!(
                "unknown predictor `{name}`; choose one of: {}",
                PREDICTORS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    })
}

/// Standardisation of fitted scores: `(y - mean) / scale`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Standard {
    mean: f64,
    scale: f64,
}

impl Standard {
    pub(crate) fn of(y: &[f64]) -> Self {
        let (mean, std) = crate::stats::mean_std(y);
        Standard {
            mean,
            scale: if std > 1e-12 { std } else { 1.0 },
        }
    }

    pub(crate) fn apply(&self, y: &[f64]) -> Vec<f64> {
        y.iter().map(|v| (v - self.mean) / self.scale).collect()
    }

    pub(crate) fn undo(&self, mean: f64, std: f64) -> (f64, f64) {
        (mean * self.scale + self.mean, std * self.scale)
    }
}

#[cfg(test)]
mod tests;

/// One predictor at one training-set size, over seeds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PredictorScore {
    /// Predictor name.
    pub predictor: String,
    /// Encoding used.
    pub encoding: String,
    /// Training-set size.
    pub train_size: usize,
    /// Mean Kendall τ between predictions and the column on the held-out archs.
    pub kendall: f64,
    /// Its standard deviation over seeds.
    pub kendall_std: f64,
    /// Mean Spearman ρ on the held-out archs.
    pub spearman: f64,
    /// Mean time to fit and predict, in milliseconds.
    pub ms: f64,
}

/// What [`evaluate_on_table`] compares.
#[derive(Clone, Debug)]
pub struct PredictorBench {
    /// Predictor names.
    pub predictors: Vec<String>,
    /// Training-set sizes.
    pub train_sizes: Vec<usize>,
    /// Held-out archs per seed (disjoint from the training archs).
    pub test_size: usize,
    /// Seeds 0..seeds: each draws its own training and test archs.
    pub seeds: u64,
    /// The encoding.
    pub encoding: Encoding,
}

/// Fits every predictor on random training sets of every size drawn from `table` and measures
/// how it ranks held-out archs by `column`.
pub fn evaluate_on_table(
    table: &crate::tabular::Table,
    space: &dyn Space,
    column: &str,
    cfg: &PredictorBench,
) -> Result<Vec<PredictorScore>> {
    let y = table.column(table.metric_index(column)?);
    for name in &cfg.predictors {
        build(name, 0)?;
    }
    if cfg.train_sizes.is_empty() || cfg.train_sizes.contains(&0) || cfg.train_sizes.contains(&1) {
        return Err(Error::invalid(
            "--train-sizes needs sizes of at least 2, for example 20,50,100",
        ));
    }
    if cfg.seeds == 0 || cfg.test_size < 2 {
        return Err(Error::invalid(
            "--seeds must be at least 1 and --test-size at least 2",
        ));
    }
    let largest = *cfg.train_sizes.iter().max().expect("non-empty");
    if largest + cfg.test_size > table.len() {
        return Err(Error::invalid(format!(
            "a training set of {largest} plus {} held-out archs is more than the table's {} rows; lower --train-sizes or --test-size",
            cfg.test_size,
            table.len()
        )));
    }
    let encoded: Vec<Vec<f64>> = (0..table.len())
        .map(|r| cfg.encoding.encode(space, table.arch(r)))
        .collect();
    let mut out = Vec::new();
    for name in &cfg.predictors {
        for &size in &cfg.train_sizes {
            let (mut taus, mut rhos, mut ms) = (Vec::new(), Vec::new(), 0.0);
            for seed in 0..cfg.seeds {
                let mut rng = crate::rng::Rng::new(seed);
                let rows = rng.sample_indices(table.len(), largest + cfg.test_size);
                let (test, train) = rows.split_at(cfg.test_size);
                let train = &train[..size];
                let x: Vec<Vec<f64>> = train.iter().map(|&r| encoded[r].clone()).collect();
                let ty: Vec<f64> = train.iter().map(|&r| y[r]).collect();
                let start = std::time::Instant::now();
                let mut p = build(name, seed)?;
                p.fit(&x, &ty);
                let pred: Vec<f64> = test.iter().map(|&r| p.predict(&encoded[r]).0).collect();
                ms += start.elapsed().as_secs_f64() * 1e3;
                let truth: Vec<f64> = test.iter().map(|&r| y[r]).collect();
                taus.push(crate::stats::kendall(&pred, &truth));
                rhos.push(crate::stats::spearman(&pred, &truth));
            }
            let (kendall, kendall_std) = crate::stats::mean_std(&taus);
            out.push(PredictorScore {
                predictor: name.clone(),
                encoding: cfg.encoding.name().into(),
                train_size: size,
                kendall,
                kendall_std,
                spearman: crate::stats::mean_std(&rhos).0,
                ms: ms / cfg.seeds as f64,
            });
        }
    }
    Ok(out)
}
