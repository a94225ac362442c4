//! Zero-cost proxies: finite, deterministic, ordered as expected, degenerate batches handled.

use nasforge_core::rng::Rng;
use nasforge_core::space::{self, Space};
use nasforge_core::Params;
use nasforge_nn::data::{Dataset, Targets};
use nasforge_nn::proxies::{self, Proxy, ProxyBatch};

fn small(name: &str) -> Box<dyn Space> {
    let params: &[&str] = match name {
        "nb201" => &["channels=4", "cells=1", "input=8x8x1"],
        "darts" => &["channels=4", "layers=3", "input=8x8x1"],
        "macro" => &["layers=4", "widths=4,8", "stem=4", "input=8x8x1"],
        _ => &["input=12", "widths=8,16", "max_depth=2"],
    };
    space::build(name, &Params::parse(params).unwrap()).unwrap()
}

fn noise_for(space: &dyn Space, arch_seed: u64) -> (nasforge_core::netspec::NetSpec, ProxyBatch) {
    let arch = space.sample(&mut Rng::new(arch_seed));
    let spec = space.decode(&arch).unwrap();
    let batch = ProxyBatch::noise_for(&spec, 8, 3);
    (spec, batch)
}

#[test]
fn every_proxy_is_finite_and_deterministic_on_every_space() {
    for name in space::SPACE_NAMES {
        let space = small(name);
        for arch_seed in 0..3 {
            let (spec, batch) = noise_for(space.as_ref(), arch_seed);
            // Synflow and jacob_cov do not cover networks of token ids: they say so.
            let all: Vec<Proxy> = if spec.reads_tokens() {
                for p in [Proxy::Synflow, Proxy::JacobCov] {
                    let err = proxies::score(&spec, &[p], &batch, 11).unwrap_err();
                    assert!(err.to_string().contains(p.name()), "{err}");
                }
                let covered = |p: &Proxy| !matches!(p, Proxy::Synflow | Proxy::JacobCov);
                Proxy::ALL.iter().copied().filter(covered).collect()
            } else {
                Proxy::ALL.to_vec()
            };
            let a = proxies::score(&spec, &all, &batch, 11).unwrap();
            let b = proxies::score(&spec, &all, &batch, 11).unwrap();
            assert_eq!(a, b, "{name}: same seed, same numbers");
            let has_relu = spec.op_counts().contains_key("relu");
            for (p, v) in all.iter().zip(&a) {
                if *p == Proxy::Naswot && !has_relu {
                    // No ReLU, no codes: K is zero, its log-determinant -inf.
                    assert_eq!(*v, f64::NEG_INFINITY, "{name}");
                } else {
                    assert!(v.is_finite(), "{name} {}: {v}", p.name());
                }
            }
            // One proxy alone gives the number it gives among all the others.
            for (i, &p) in all.iter().enumerate() {
                let alone = proxies::score(&spec, &[p], &batch, 11).unwrap();
                assert_eq!(alone[0], a[i], "{name} {}", p.name());
            }
            let snip = all.iter().position(|&p| p == Proxy::Snip).unwrap();
            let other = proxies::score(&spec, &[Proxy::Snip], &batch, 12).unwrap();
            assert_ne!(other[0], a[snip], "{name}: another seed, other weights");
        }
    }
}

#[test]
fn synflow_grows_with_convolutions() {
    let params = Params::parse(&["channels=8", "cells=2", "input=16x16x3"]).unwrap();
    let space = space::build("nb201", &params).unwrap();
    let score = |arch: &str| {
        let spec = space.decode(&space.parse(arch).unwrap()).unwrap();
        let batch = ProxyBatch::noise(spec.input_shape(), 10, 2, 0);
        proxies::score(&spec, &[Proxy::Synflow], &batch, 5).unwrap()[0]
    };
    let skips = score("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|");
    let convs = score("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|");
    let dead = score("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
    assert!(skips > 0.0 && skips.is_finite(), "{skips}");
    assert!(convs > 1e6 * skips, "convs {convs} vs skips {skips}");
    // A cell of `none` edges cuts the network: only the classifier after it could score,
    // and its input is zero.
    assert_eq!(dead, 0.0);
}

#[test]
fn naswot_of_identical_rows_is_minus_infinity_not_nan() {
    let space = small("nb201");
    let (spec, mut batch) = noise_for(space.as_ref(), 1);
    let row = batch.x[..64].to_vec();
    for chunk in batch.x.chunks_mut(64) {
        chunk.copy_from_slice(&row);
    }
    let v = proxies::score(
        &spec,
        &[Proxy::Naswot, Proxy::JacobCov, Proxy::Snip],
        &batch,
        1,
    )
    .unwrap();
    assert_eq!(v[0], f64::NEG_INFINITY, "identical codes make K singular");
    assert!(!v[1].is_nan() && !v[2].is_nan(), "{v:?}");
}

#[test]
fn a_batch_that_does_not_fit_the_network_is_an_error() {
    let space = small("nb201");
    let (spec, _) = noise_for(space.as_ref(), 0);
    let wrong = ProxyBatch::noise(&[1, 4, 4], 10, 4, 0);
    let e = proxies::score(&spec, &[Proxy::Snip], &wrong, 0).unwrap_err();
    assert!(e.to_string().contains("[1, 4, 4]"), "{e}");
    // Data-free proxies do not read the batch.
    assert!(proxies::score(&spec, &[Proxy::Synflow, Proxy::Params], &wrong, 0).is_ok());
    let data = Dataset {
        features: vec![0.5; 3 * 64],
        shape: vec![1, 8, 8],
        targets: Targets::Classes {
            ids: vec![0, 11, 2],
            names: (0..12).map(|i| i.to_string()).collect(),
        },
        feature_names: Vec::new(),
        source: "three rows".into(),
        target_scale: None,
    };
    let batch = ProxyBatch::from_dataset(&data, 64, 0).unwrap();
    assert_eq!(batch.rows(), 3);
    let e = proxies::score(&spec, &[Proxy::Fisher], &batch, 0).unwrap_err();
    assert!(e.to_string().contains("class id 11"), "{e}");
}

#[test]
fn proxy_names_parse_and_unknown_ones_list_the_known() {
    assert_eq!(Proxy::parse_list("all").unwrap(), Proxy::ALL.to_vec());
    assert_eq!(
        Proxy::parse_list("synflow, snip,synflow").unwrap(),
        vec![Proxy::Synflow, Proxy::Snip]
    );
    let e = Proxy::parse_list("synflow,zen").unwrap_err().to_string();
    assert!(e.contains("`zen`") && e.contains("jacob_cov"), "{e}");
}

#[test]
fn gradient_proxies_see_a_transformers_attention_and_embeddings() {
    // A language model: no image or vector op at all, every gate sits on a sequence.
    let params = Params::parse(&["input=8", "vocab=12", "widths=16", "heads=2", "head=lm"]);
    let space = space::build("transformer", &params.unwrap()).unwrap();
    let spec = space.decode(&space.sample(&mut Rng::new(2))).unwrap();
    let batch = ProxyBatch::noise_for(&spec, 8, 1);
    let v = proxies::score(
        &spec,
        &[Proxy::Snip, Proxy::GradNorm, Proxy::Fisher],
        &batch,
        3,
    )
    .unwrap();
    // Fisher's gates sit on sequence outputs (linear layers, attention): without them it is 0.
    assert!(v.iter().all(|x| x.is_finite() && *x > 0.0), "{v:?}");
    // Token ids outside the vocabulary are refused, not looked up.
    let mut bad = batch.clone();
    bad.x[3] = 12.0;
    let err = proxies::score(&spec, &[Proxy::Snip], &bad, 3).unwrap_err();
    assert!(err.to_string().contains("not a token id"), "{err}");
}
