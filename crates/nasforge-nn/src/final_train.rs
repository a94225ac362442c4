//! Final training: the chosen arch from scratch on train + validation, several seeds, scored
//! once on the test rows the search never saw.

use crate::data::{Dataset, Split};
use crate::device::DeviceKind;
use crate::model::Network;
use crate::train::{
    evaluate, train, Control, EpochStats, Metric, TrainConfig, TrainError, TrainSetup,
};
use nasforge_core::bench::mean_std;
use nasforge_core::netspec::NetSpec;
use serde::Serialize;

/// One seed's result.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Test metric.
    pub test: Metric,
    /// Training time in seconds.
    pub seconds: f64,
}

/// All seeds, with mean and standard deviation of the test metric.
#[derive(Clone, Debug, Serialize)]
pub struct FinalResult {
    /// Per seed.
    pub seeds: Vec<SeedResult>,
    /// Mean test accuracy (%) or MSE.
    pub mean: f64,
    /// Population std over seeds.
    pub std: f64,
    /// Mean test MAE (regression).
    pub mae_mean: Option<f64>,
}

/// Trains `spec` on `split.train + split.valid` once per seed and evaluates on `split.test`.
/// Returns the results and the model of the first seed. `on_epoch(seed index, stats)` reports progress.
pub fn final_train(
    spec: &NetSpec,
    data: &Dataset,
    split: &Split,
    config: &TrainConfig,
    seeds: &[u64],
    device: DeviceKind,
    on_epoch: &mut dyn FnMut(usize, &EpochStats),
) -> Result<(FinalResult, Network), TrainError> {
    let rows: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
    let mut results = Vec::new();
    let mut first = None;
    for (k, &seed) in seeds.iter().enumerate() {
        let t = std::time::Instant::now();
        let setup = TrainSetup {
            data,
            train_rows: &rows,
            valid_rows: &[],
            config,
            device,
        };
        let trained = train(spec, setup, seed, &mut |e| {
            on_epoch(k, e);
            Control::Continue
        })?;
        let test = evaluate(&trained.model, data, &split.test, device);
        results.push(SeedResult {
            seed,
            test,
            seconds: t.elapsed().as_secs_f64(),
        });
        if first.is_none() {
            first = Some(trained.model);
        }
    }
    let values: Vec<f64> = results.iter().map(|r| r.test.value()).collect();
    let maes: Vec<f64> = results
        .iter()
        .filter_map(|r| match r.test {
            Metric::Regression { mae, .. } => Some(mae),
            _ => None,
        })
        .collect();
    let (mean, std) = mean_std(&values);
    Ok((
        FinalResult {
            seeds: results,
            mean,
            std,
            mae_mean: (!maes.is_empty()).then(|| mean_std(&maes).0),
        },
        first.expect("at least one seed"),
    ))
}
