//! Training: learning, determinism, divergence.

use nasforge_core::space;
use nasforge_core::Params;
use nasforge_nn::data::{embedded_digits, Normalizer, Split, SplitFractions};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::train::{train, Control, Metric, TrainConfig, TrainError, TrainSetup};

fn digits_small() -> (nasforge_nn::data::Dataset, Split) {
    let mut d = embedded_digits();
    let s = Split::new(&d, SplitFractions::default(), 0).unwrap();
    // A few hundred rows keep the test quick in debug builds.
    let keep: Vec<usize> = s.train.iter().take(300).copied().collect();
    let valid: Vec<usize> = s.valid.iter().take(150).copied().collect();
    Normalizer::fit(&d, &keep).apply(&mut d);
    (
        d,
        Split {
            train: keep,
            valid,
            test: s.test,
        },
    )
}

fn spec() -> nasforge_core::netspec::NetSpec {
    let space = space::build(
        "nb201",
        &Params::parse(&["channels=4", "cells=1", "input=8x8x1"]).unwrap(),
    )
    .unwrap();
    let arch = space
        .parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|")
        .unwrap();
    space.decode(&arch).unwrap()
}

#[test]
fn training_learns_digits_and_is_deterministic() {
    let (d, s) = digits_small();
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 0.1,
        ..TrainConfig::default()
    };
    let run = || {
        let mut curve = Vec::new();
        let t = train(
            &spec(),
            TrainSetup {
                data: &d,
                train_rows: &s.train,
                valid_rows: &s.valid,
                config: &cfg,
                device: DeviceKind::Cpu,
            },
            7,
            &mut |e| {
                curve.push(e.valid.unwrap().score());
                Control::Continue
            },
        )
        .unwrap();
        (
            curve,
            t.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
        )
    };
    let (a, la) = run();
    let (b, lb) = run();
    assert_eq!(a, b, "same seed, same validation curve");
    assert_eq!(la, lb, "same seed, same losses");
    assert!(
        a[2] > 50.0,
        "3 epochs on digits should beat 50% accuracy, got {a:?}"
    );
}

#[test]
fn a_diverging_loss_is_reported_not_panicked() {
    let (d, s) = digits_small();
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 1e12,
        grad_clip: None,
        warmup_epochs: 0,
        ..TrainConfig::default()
    };
    match train(
        &spec(),
        TrainSetup {
            data: &d,
            train_rows: &s.train,
            valid_rows: &s.valid,
            config: &cfg,
            device: DeviceKind::Cpu,
        },
        1,
        &mut |_| Control::Continue,
    ) {
        Err(TrainError::Diverged { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(t) => panic!(
            "expected divergence, got {:?}",
            t.epochs.last().map(|e| e.train_loss)
        ),
    }
}

#[test]
fn a_callback_can_stop_training_and_batch_size_is_checked() {
    let (d, s) = digits_small();
    let cfg = TrainConfig {
        epochs: 5,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let t = train(
        &spec(),
        TrainSetup {
            data: &d,
            train_rows: &s.train,
            valid_rows: &s.valid,
            config: &cfg,
            device: DeviceKind::Cpu,
        },
        1,
        &mut |e| {
            if e.epoch == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    )
    .unwrap();
    assert!(t.stopped);
    assert_eq!(t.epochs.len(), 2);
    let big = TrainConfig {
        batch_size: 10_000,
        ..TrainConfig::default()
    };
    let err = train(
        &spec(),
        TrainSetup {
            data: &d,
            train_rows: &s.train,
            valid_rows: &s.valid,
            config: &big,
            device: DeviceKind::Cpu,
        },
        1,
        &mut |_| Control::Continue,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("batch size"));
    let _ = Metric::Accuracy(1.0);
}
