//! The training evaluator inside a study: reproducible, and blind to the test split.

use nasforge_core::space;
use nasforge_core::strategy;
use nasforge_core::study::{
    Direction, Goal, MemoryStorage, StrategyProposer, Study, StudyRecord, Trial,
};
use nasforge_core::Params;
use nasforge_nn::data::{embedded_digits, Dataset, Normalizer, Split, SplitFractions, Targets};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::evaluator::TrainingEvaluator;
use nasforge_nn::train::TrainConfig;
use std::sync::Arc;

fn run_search(data: Dataset, split: &Split) -> Vec<Trial> {
    let space = space::build(
        "nb201",
        &Params::parse(&["channels=4", "cells=1", "input=8x8x1"]).unwrap(),
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let mut ev =
        TrainingEvaluator::new(Arc::new(data), split, cfg, 3, DeviceKind::Cpu).without_latency();
    let record = StudyRecord::new(
        "s",
        "nb201",
        space.params_json(),
        "random",
        Goal::single("valid_accuracy", Direction::Maximize),
        3,
        serde_json::json!({}),
    );
    let strat = strategy::build("random", 3, &Params::new()).unwrap();
    let (mut study, _) = Study::open(
        Box::new(MemoryStorage::new()),
        record,
        space.as_ref(),
        StrategyProposer::boxed(strat, 1, 3),
        "t",
    )
    .unwrap();
    study.optimize(&mut ev, 3, |_, _| {}).unwrap();
    study.trials().unwrap()
}

/// Digits, a few hundred rows, split and normalised with training statistics.
fn small_digits() -> (Dataset, Split) {
    let full = embedded_digits();
    let rows: Vec<usize> = (0..600).collect();
    let d = full.subset(&rows);
    let s = Split::new(&d, SplitFractions::default(), 5).unwrap();
    (d, s)
}

fn normalised(mut d: Dataset, s: &Split) -> Dataset {
    Normalizer::fit(&d, &s.train).apply(&mut d);
    d
}

/// What must match between two runs: arch, objective value, learning curve.
type Outcome = (String, Option<f64>, Vec<(u64, f64)>);

fn comparable(trials: &[Trial]) -> Vec<Outcome> {
    trials
        .iter()
        .map(|t| (t.arch_key.clone(), t.value(), t.intermediate.clone()))
        .collect()
}

#[test]
fn the_same_seed_gives_identical_trials() {
    let (d, s) = small_digits();
    let a = run_search(normalised(d.clone(), &s), &s);
    let b = run_search(normalised(d, &s), &s);
    assert_eq!(comparable(&a), comparable(&b));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.metrics.get("train_loss"), y.metrics.get("train_loss"));
    }
}

#[test]
fn the_search_never_reads_the_test_split() {
    let (d, s) = small_digits();
    let clean = run_search(normalised(d.clone(), &s), &s);
    // Poison every test row: absurd pixels and shifted labels.
    let mut poisoned = d;
    let len = poisoned.row_len();
    for &r in &s.test {
        for v in &mut poisoned.features[r * len..(r + 1) * len] {
            *v = 1.0e6;
        }
    }
    if let Targets::Classes { ids, .. } = &mut poisoned.targets {
        for &r in &s.test {
            ids[r] = (ids[r] + 1) % 10;
        }
    }
    let dirty = run_search(normalised(poisoned, &s), &s);
    assert_eq!(comparable(&clean), comparable(&dirty));
}
