use super::*;
use crate::rng::Rng;
use crate::space::{Nb201Space, Space};

/// A synthetic score with interactions: op quality per edge plus a bonus when two edges agree.
fn synthetic(space: &dyn Space, arch: &crate::space::Arch) -> f64 {
    let quality = [0.0, 1.0, 2.0, 3.0, 1.5];
    let mut s: f64 = arch.values().iter().map(|&v| quality[v as usize]).sum();
    if arch.values()[0] == arch.values()[5] {
        s += 2.0;
    }
    let _ = space;
    s
}

fn data(space: &dyn Space, n: usize, seed: u64, enc: Encoding) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let archs: Vec<_> = (0..n).map(|_| space.sample(&mut rng)).collect();
    (
        archs.iter().map(|a| enc.encode(space, a)).collect(),
        archs.iter().map(|a| synthetic(space, a)).collect(),
    )
}

#[test]
fn every_predictor_learns_a_synthetic_score() {
    let space = Nb201Space::new();
    let (x, y) = data(&space, 150, 1, Encoding::OneHot);
    let (tx, ty) = data(&space, 200, 2, Encoding::OneHot);
    for info in PREDICTORS {
        let mut p = build(info.name, 7).unwrap();
        p.fit(&x, &y);
        let pred: Vec<f64> = tx.iter().map(|r| p.predict(r).0).collect();
        let tau = crate::stats::kendall(&pred, &ty);
        assert!(tau > 0.6, "{}: Kendall τ {tau}", info.name);
        let (_, std) = p.predict(&tx[0]);
        assert!(std.is_finite() && std >= 0.0, "{}: std {std}", info.name);
    }
}

#[test]
fn predictors_are_deterministic_per_seed() {
    let space = Nb201Space::new();
    let (x, y) = data(&space, 40, 3, Encoding::Both);
    for info in PREDICTORS {
        let mut a = build(info.name, 5).unwrap();
        let mut b = build(info.name, 5).unwrap();
        a.fit(&x, &y);
        b.fit(&x, &y);
        assert_eq!(a.predict(&x[0]), b.predict(&x[0]), "{}", info.name);
    }
}

#[test]
fn gp_interpolates_noise_free_data() {
    let x: Vec<Vec<f64>> = (0..6).map(|i| vec![i as f64 * 0.5]).collect();
    let y: Vec<f64> = x.iter().map(|r| (r[0]).sin()).collect();
    let mut gp = GaussianProcess::new();
    gp.fit(&x, &y);
    let (m, s) = gp.predict(&x[2]);
    assert!((m - y[2]).abs() < 0.05, "{m} vs {}", y[2]);
    let (_, far) = gp.predict(&[40.0]);
    assert!(
        far > 5.0 * s,
        "uncertainty grows away from data: {far} vs {s}"
    );
}

#[test]
fn path_encoding_marks_paths_without_none() {
    let space = Nb201Space::new();
    let all_conv = space
        .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        .unwrap();
    let p = space.path_encoding(&all_conv).unwrap();
    assert_eq!(p.len(), 100);
    assert_eq!(p.iter().sum::<f32>(), 4.0);
    let only_direct = space
        .parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
        .unwrap();
    let p = space.path_encoding(&only_direct).unwrap();
    assert_eq!(p.iter().sum::<f32>(), 1.0);
    assert_eq!(p[0], 1.0, "skip on 0→3 is the first indicator");
}

#[test]
fn unknown_names_and_bad_sizes_are_rejected() {
    assert!(build("xgboost", 0)
        .err()
        .unwrap()
        .to_string()
        .contains("mlp, gp, forest"));
    assert!(Encoding::parse("adjacency").is_err());
}
