//! Supernets: sub-networks extracted with inherited weights are the stand-alone networks, and
//! a supernet pass along one path or with one-hot weights computes what that network computes.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use nasforge_core::netspec::Op;
use nasforge_core::rng::Rng;
use nasforge_core::space::{self, Space};
use nasforge_core::Params;
use nasforge_nn::data::{embedded_digits, Dataset, Normalizer, Split, SplitFractions};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::model::Layer;
use nasforge_nn::supernet::{Path, Sampling, Supernet};

fn nb201() -> Box<dyn Space> {
    let params = Params::parse(&["channels=4", "cells=1", "input=8x8x1"]).unwrap();
    space::build("nb201", &params).unwrap()
}

fn rows(n: usize, d: usize, dev: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::<2>::from_data(TensorData::new(v, [n, d]), dev)
}

/// The embedded digits, split with seed 0 and normalised on the training rows.
fn normalised_digits() -> (Dataset, Split) {
    let mut data = embedded_digits();
    let split = Split::new(&data, SplitFractions::default(), 0).unwrap();
    Normalizer::fit(&data, &split.train).apply(&mut data);
    (data, split)
}

fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn an_extracted_sub_network_is_the_stand_alone_network_with_the_supernets_weights() {
    let space = nb201();
    let dev = DeviceKind::Cpu.training_device();
    // Seeded under the process-wide RNG turn, as every draw of this file's tests is (the tests
    // run concurrently and burn has one generator).
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 1);
    let other = Supernet::seeded(space.supernet().unwrap(), &dev, 2);
    let x = rows(6, 64, &dev);
    let mut rng = Rng::new(9);
    for _ in 0..8 {
        let arch = space.sample(&mut rng);
        let values = arch.values();
        let spec = space.decode(&arch).unwrap();
        let net = sn.extract(values).unwrap();
        assert_eq!(net.spec(), &spec, "{}", space.format(&arch));
        assert_eq!(net.trainable_params() as u64, spec.params());
        // The same computation, node for node (batch statistics in training mode).
        let alone = net.forward_flat(x.clone());
        let single = sn.forward(x.clone(), &Path::Single(values)).unwrap();
        assert!(max_diff(alone.clone(), single) <= 1e-5);
        // (A network of the same arch with weights of its own computes something else.)
        let fresh = other.extract(values).unwrap().forward_flat(x.clone());
        assert!(max_diff(alone.clone(), fresh) > 1e-3);
        // Weighted with one-hot weights: the other candidates times zero.
        let onehot: Vec<Tensor<1>> = values
            .iter()
            .map(|&v| {
                let mut w = vec![0f32; 5];
                w[v as usize] = 1.0;
                Tensor::<1>::from_data(TensorData::new(w, [5]), &dev)
            })
            .collect();
        let weighted = sn.forward(x.clone(), &Path::Weighted(&onehot)).unwrap();
        assert!(max_diff(alone, weighted) <= 1e-5, "{}", space.format(&arch));
    }
}

#[test]
fn an_mlp_sub_network_inherits_the_leading_slice_of_the_widest_layers() {
    let params = Params::parse(&["max_depth=3", "widths=4,8,16", "input=6", "classes=3"]).unwrap();
    let space = space::build("mlp", &params).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 4);
    let options = sn.spec().options().to_vec();
    let dropout = options.len() - 2;
    let x = rows(5, 6, &dev);
    let mut rng = Rng::new(11);
    let mut depths = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let mut arch = space.sample(&mut rng);
        // Dropout 0, so that the passes compare without random masks.
        let mut v = arch.values().to_vec();
        v[dropout] = 0;
        arch = space.arch_from_values(&v).unwrap();
        depths.insert(v[0]);
        let spec = space.decode(&arch).unwrap();
        let net = sn.extract(arch.values()).unwrap();
        assert_eq!(net.spec(), &spec, "{}", space.format(&arch));
        assert_eq!(net.trainable_params() as u64, spec.params());
        let alone = net.forward_flat(x.clone());
        let single = sn.forward(x.clone(), &Path::Single(arch.values())).unwrap();
        assert!(
            max_diff(alone.clone(), single) <= 1e-5,
            "{}",
            space.format(&arch)
        );
        let onehot: Vec<Tensor<1>> = arch
            .values()
            .iter()
            .zip(&options)
            .map(|(&v, &n)| {
                let mut w = vec![0f32; n];
                w[v as usize] = 1.0;
                Tensor::<1>::from_data(TensorData::new(w, [n]), &dev)
            })
            .collect();
        let weighted = sn.forward(x.clone(), &Path::Weighted(&onehot)).unwrap();
        assert!(max_diff(alone, weighted) <= 1e-5, "{}", space.format(&arch));
    }
    assert!(depths.len() > 1);
}

#[test]
fn progressive_shrinking_trains_the_largest_mlp_first_then_every_width_then_every_depth() {
    use nasforge_nn::supernet::{shrinking_stage, ShrinkStage::*};
    use nasforge_nn::train::{Control, TrainConfig, TrainSetup};
    let stages = |n: usize, kernels: bool| {
        (1..=n)
            .map(|e| shrinking_stage(e, n, kernels))
            .collect::<Vec<_>>()
    };
    assert_eq!(stages(1, false), [Largest]);
    assert_eq!(stages(4, false), [Largest, Width, Width, Depth]);
    assert_eq!(
        stages(10, false),
        [Largest, Largest, Largest, Width, Width, Width, Depth, Depth, Depth, Depth]
    );
    // With elastic kernels, their stage comes second.
    assert_eq!(stages(4, true), [Largest, Kernel, Width, Depth]);
    assert_eq!(
        stages(10, true),
        [Largest, Largest, Largest, Kernel, Width, Width, Depth, Depth, Depth, Depth]
    );
    let (data, split) = normalised_digits();
    let params = Params::parse(&["max_depth=2", "widths=16,64", "input=64", "classes=10"]).unwrap();
    let space = space::build("mlp", &params).unwrap();
    let cfg = TrainConfig {
        epochs: 12,
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let (sn, epochs) = Supernet::seeded(space.supernet().unwrap(), &dev, 6)
        .train_progressive(setup, 6, true, None, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(epochs.len(), 12);
    // The largest network and the smallest (one layer of 16, batch norm, relu, no dropout)
    // both score far above the 10% of chance with the weights they inherit.
    let scores: Vec<f64> = [[1u16, 1, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1]]
        .iter()
        .map(|values| {
            sn.evaluate_inherited(
                values,
                &data,
                &split.train,
                &split.valid,
                64,
                DeviceKind::Cpu,
            )
            .unwrap()
            .score()
        })
        .collect();
    assert!(scores.iter().all(|&a| a > 50.0), "{scores:?}");
    // The NAS-Bench-201 supernet has nothing elastic to shrink.
    let e = Supernet::seeded(nb201().supernet().unwrap(), &dev, 6)
        .train_progressive(setup, 6, true, None, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(e.to_string().contains("elastic"), "{e}");
}

#[test]
fn a_darts_cell_sub_network_is_the_single_path_with_the_supernets_weights() {
    let params = Params::parse(&["channels=4", "layers=3", "input=8x8x1"]).unwrap();
    let space = space::build("darts", &params).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 7);
    let options = sn.spec().options().to_vec();
    let x = rows(4, 64, &dev);
    let mut rng = Rng::new(13);
    for _ in 0..4 {
        let arch = space.sample(&mut rng);
        let net = sn.extract(arch.values()).unwrap();
        assert_eq!(net.spec(), &space.decode(&arch).unwrap());
        let alone = net.forward_flat(x.clone());
        let single = sn.forward(x.clone(), &Path::Single(arch.values())).unwrap();
        assert!(
            max_diff(alone.clone(), single) <= 1e-5,
            "{}",
            space.format(&arch)
        );
        let onehot: Vec<Tensor<1>> = arch
            .values()
            .iter()
            .zip(&options)
            .map(|(&v, &n)| {
                let mut w = vec![0f32; n];
                w[v as usize] = 1.0;
                Tensor::<1>::from_data(TensorData::new(w, [n]), &dev)
            })
            .collect();
        let weighted = sn.forward(x.clone(), &Path::Weighted(&onehot)).unwrap();
        assert!(max_diff(alone, weighted) <= 1e-4, "{}", space.format(&arch));
    }
}

/// A macro space on the 8×8 digits with widths 8 and 16 from a stem of 4, sized by `params`,
/// and its supernet seeded with `seed`.
fn small_macro(params: &[&str], seed: u64) -> (Box<dyn Space>, Supernet) {
    let mut all = params.to_vec();
    all.extend(["widths=8,16", "stem=4", "input=8x8x1"]);
    let space = space::build("macro", &Params::parse(&all).unwrap()).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, seed);
    (space, sn)
}

/// Training with `config` on the first 256 training rows of `split`, on the CPU.
fn first_rows<'a>(
    data: &'a Dataset,
    split: &'a Split,
    config: &'a nasforge_nn::train::TrainConfig,
) -> nasforge_nn::train::TrainSetup<'a> {
    nasforge_nn::train::TrainSetup {
        data,
        train_rows: &split.train[..256],
        valid_rows: &[],
        config,
        device: DeviceKind::Cpu,
    }
}

/// Checks `n` archs of the macro `space` drawn from a fixed seed: each sub-network of `sn` is
/// the arch's stand-alone network and computes what its single path does. Returns the
/// values of the space's last choice (its depth) that were drawn.
fn single_paths_are_sub_networks(
    space: &dyn Space,
    sn: &Supernet,
    n: usize,
) -> std::collections::BTreeSet<u16> {
    let dev = DeviceKind::Cpu.training_device();
    let x = rows(4, 64, &dev);
    let mut rng = Rng::new(21);
    let mut depths = std::collections::BTreeSet::new();
    for _ in 0..n {
        let arch = space.sample(&mut rng);
        depths.insert(arch.values()[space.choices().len() - 1]);
        let net = sn.extract(arch.values()).unwrap();
        let spec = space.decode(&arch).unwrap();
        assert_eq!(net.spec(), &spec);
        assert_eq!(net.trainable_params() as u64, spec.params());
        let alone = net.forward_flat(x.clone());
        let single = sn.forward(x.clone(), &Path::Single(arch.values())).unwrap();
        assert!(max_diff(alone, single) <= 1e-4, "{}", space.format(&arch));
    }
    depths
}

#[test]
fn a_macro_supernet_with_stage_depths_gives_each_arch_its_network() {
    // Two layers per stage, each stage keeping one or both; widths 8 and 16 from a stem of 4.
    let (space, sn) = small_macro(&["layers=6", "min_stage_layers=1"], 6);
    let last = single_paths_are_sub_networks(space.as_ref(), &sn, 12);
    assert_eq!(last.len(), 2, "the last stage's depth: {last:?}");
    // Once-for-all shrinks the stages' depths (each an elastic depth); its sub-networks stay
    // the single paths.
    use nasforge_nn::train::{Control, TrainConfig};
    let (data, split) = normalised_digits();
    let cfg = TrainConfig {
        epochs: 4,
        ..Default::default()
    };
    let setup = first_rows(&data, &split, &cfg);
    let (trained, epochs) = sn
        .train_progressive(setup, 3, false, None, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(epochs.len(), 4);
    assert!(epochs.iter().all(|e| e.train_loss.is_finite()));
    single_paths_are_sub_networks(space.as_ref(), &trained, 12);
}

#[test]
fn a_macro_sub_network_is_the_single_path_with_the_supernets_weights() {
    // Stem 4 and widths 8, 16: every layer of the supernet is 16 channels wide, and skip
    // inputs between layers of different widths go through a projection; 2 to 5 layers.
    let (space, sn) = small_macro(&["layers=5", "min_layers=2"], 5);
    let dev = DeviceKind::Cpu.training_device();
    let depths = single_paths_are_sub_networks(space.as_ref(), &sn, 12);
    assert!(depths.len() > 2, "{depths:?}");
    let x = rows(4, 64, &dev);
    // The 3x3 convolutions are the centres of the 5x5 ones (once-for-all's elastic kernel):
    // an arch of 3x3s inherits them, and its gradients reach them, the centres only.
    let op_value = |op: u16| -> Vec<u16> {
        let mut v = vec![0u16; space.choices().len()];
        for (i, c) in space.choices().iter().enumerate() {
            v[i] = match &c.name {
                n if n.ends_with("_op") => op,
                n if n.ends_with("_width") => 1,
                _ => 0,
            };
        }
        v
    };
    let (threes, fives) = (op_value(0), op_value(1));
    let first_conv = |net: &nasforge_nn::model::Network| -> Tensor<4> {
        let k = net
            .spec()
            .nodes()
            .iter()
            .position(|n| n.scope.starts_with("layer0/conv_"))
            .unwrap();
        match &net.layers()[k] {
            Layer::Conv(c) => c.weight.val(),
            _ => unreachable!("a convolution"),
        }
    };
    let three = first_conv(&sn.extract(&threes).unwrap());
    let five = first_conv(&sn.extract(&fives).unwrap());
    assert_eq!(three.dims(), [16, 4, 3, 3]);
    assert_eq!(five.dims(), [16, 4, 5, 5]);
    let centre = five.slice([0..16, 0..4, 1..4, 1..4]);
    assert_eq!(three.into_data(), centre.into_data());
    let grads = sn
        .forward(x.clone(), &Path::Single(&threes))
        .unwrap()
        .powi_scalar(2)
        .mean()
        .backward();
    let nodes = sn.spec().spec().nodes();
    let (small, large) = (0..nodes.len())
        .find_map(|k| {
            let s = sn.spec().shared()[k]?;
            (nodes[k].scope == "layer0/conv_3x3").then_some((k, s))
        })
        .filter(|&(k, _)| matches!(nodes[k].op, Op::Conv2d(_)))
        .unwrap();
    // Its map of the kernel positions (OFA's kernel transformation) learns too.
    let Layer::KernelMap(map) = &sn.network().layers()[small] else {
        unreachable!("a kernel map")
    };
    assert_eq!(map.dims(), [9, 9]);
    let g = map.grad(&grads).expect("the map gets a gradient");
    assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
    let Layer::Conv(conv) = &sn.network().layers()[large] else {
        unreachable!("a convolution")
    };
    let g = conv
        .weight
        .grad(&grads)
        .expect("the 5x5 kernels get the 3x3's gradient");
    let total = g.clone().abs().sum().into_scalar::<f32>();
    let inner = g
        .slice([0..16, 0..16, 1..4, 1..4])
        .abs()
        .sum()
        .into_scalar::<f32>();
    assert!(
        total > 0.0 && (total - inner).abs() <= 1e-6 * total,
        "{total} {inner}"
    );
    // Trained (maps no longer the identity), a sub-network still computes what its path does.
    let (data, split) = normalised_digits();
    let cfg = nasforge_nn::train::TrainConfig {
        epochs: 1,
        ..Default::default()
    };
    let setup = nasforge_nn::train::TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let (trained, _) = Supernet::seeded(space.supernet().unwrap(), &dev, 5)
        .train_single_path(Sampling::Uniform, setup, 5, None, &mut |_| {
            nasforge_nn::train::Control::Continue
        })
        .unwrap();
    let Layer::KernelMap(map) = &trained.network().layers()[small] else {
        unreachable!("a kernel map")
    };
    let eye = Tensor::<2>::eye(9, &map.val().device());
    assert!((map.val() - eye).abs().max().into_scalar::<f32>() > 1e-4);
    for arch in [&threes, &fives] {
        let alone = trained.extract(arch).unwrap().forward_flat(x.clone());
        let single = trained.forward(x.clone(), &Path::Single(arch)).unwrap();
        assert!(max_diff(alone, single) <= 1e-4);
    }
    // Its skip projections follow the layers' channel counts, which no weight mixes: DARTS'
    // weighted path is refused with a reason.
    let ones: Vec<Tensor<1>> = sn
        .spec()
        .options()
        .iter()
        .map(|&n| Tensor::<1>::ones([n], &dev))
        .collect();
    let e = sn
        .forward(x, &Path::Weighted(&ones))
        .unwrap_err()
        .to_string();
    assert!(e.contains("channel counts"), "{e}");
}

#[test]
fn weighted_passes_send_gradients_to_the_architecture_weights() {
    let space = nb201();
    let dev = DeviceKind::Cpu.training_device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 2);
    let alphas: Vec<Tensor<1>> = (0..6)
        .map(|k| {
            let a: Vec<f32> = (0..5).map(|o| 0.1 * ((k * 5 + o) % 7) as f32).collect();
            Tensor::<1>::from_data(TensorData::new(a, [5]), &dev).require_grad()
        })
        .collect();
    let weights: Vec<Tensor<1>> = alphas.iter().map(|a| softmax(a.clone(), 0)).collect();
    let loss = sn
        .forward(rows(4, 64, &dev), &Path::Weighted(&weights))
        .unwrap()
        .powi_scalar(2)
        .mean();
    let grads = loss.backward();
    for (k, a) in alphas.iter().enumerate() {
        let g = a.grad(&grads).expect("α gets a gradient");
        let norm = g.abs().sum().into_scalar::<f32>();
        assert!(norm.is_finite() && norm > 0.0, "choice {k}: |grad| {norm}");
    }
}

#[test]
fn a_path_that_does_not_fit_the_choices_is_an_error() {
    let space = nb201();
    let dev = DeviceKind::Cpu.device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 3);
    let x = rows(2, 64, &dev);
    assert!(sn.forward(x.clone(), &Path::Single(&[0; 5])).is_err());
    assert!(sn.forward(x.clone(), &Path::Single(&[5; 6])).is_err());
    let short: Vec<Tensor<1>> = (0..6).map(|_| Tensor::<1>::ones([4], &dev)).collect();
    assert!(sn.forward(x, &Path::Weighted(&short)).is_err());
    assert!(sn.extract(&[1; 7]).is_err());
}

#[test]
fn single_path_training_gives_weights_that_score_sub_networks_deterministically() {
    use nasforge_nn::train::{Control, EpochStats, TrainConfig, TrainSetup};
    let (data, split) = normalised_digits();
    let space = nb201();
    // SPOS shares weights among 5^6 paths: it needs more epochs than one network (a measured
    // run: 3 epochs gave 9-35% with inherited weights, 10 epochs 16-70%, where each arch
    // trained alone for 3 epochs reaches 89-95%).
    let cfg = TrainConfig {
        epochs: 8,
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let run = || {
        Supernet::seeded(space.supernet().unwrap(), &dev, 5)
            .train_single_path(Sampling::Uniform, setup, 5, None, &mut |_| {
                Control::Continue
            })
            .unwrap()
    };
    let (sn, epochs) = run();
    assert_eq!(epochs.len(), 8);
    assert!(epochs.iter().all(|e| e.valid.is_none()));
    assert!(
        epochs[7].train_loss < 0.8 * epochs[0].train_loss,
        "{epochs:?}"
    );
    // Archs without a dead cell, scored with the weights they inherit after recalibrating
    // their batch norms on training rows: well above the 10% of chance on held-out rows.
    let archs = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|",
    ];
    let scores = |sn: &Supernet| -> Vec<f64> {
        archs
            .iter()
            .map(|a| {
                let arch = space.parse(a).unwrap();
                sn.evaluate_inherited(
                    arch.values(),
                    &data,
                    &split.train,
                    &split.valid,
                    64,
                    DeviceKind::Cpu,
                )
                .unwrap()
                .score()
            })
            .collect()
    };
    let first = scores(&sn);
    let mean = first.iter().sum::<f64>() / first.len() as f64;
    assert!(mean > 30.0, "{first:?}");
    // Scoring does not change the supernet, and the same seed gives the same supernet.
    assert_eq!(scores(&sn), first);
    let (again, epochs_again) = run();
    let losses = |e: &[EpochStats]| e.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&epochs), losses(&epochs_again));
    assert_eq!(scores(&again), first);
}

#[test]
fn a_macro_once_for_all_training_resumes_with_its_kernel_maps() {
    use nasforge_nn::supernet::Checkpoint;
    use nasforge_nn::train::{Control, TrainConfig};
    let (data, split) = normalised_digits();
    let params = Params::parse(&[
        "layers=3",
        "min_layers=2",
        "widths=4,8",
        "stem=4",
        "input=8x8x1",
    ])
    .unwrap();
    let space = space::build("macro", &params).unwrap();
    let cfg = TrainConfig {
        epochs: 4,
        ..Default::default()
    };
    let setup = first_rows(&data, &split, &cfg);
    let dev = DeviceKind::Cpu.training_device();
    let fresh = |seed| Supernet::seeded(space.supernet().unwrap(), &dev, seed);
    let (whole, _) = fresh(3)
        .train_progressive(setup, 3, true, None, &mut |_| Control::Continue)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::new(dir.path().join("supernet"));
    fresh(3)
        .train_progressive(setup, 3, true, Some(&ckpt), &mut |e| match e.epoch {
            2 => Control::Stop,
            _ => Control::Continue,
        })
        .unwrap();
    let (resumed, all) = fresh(4)
        .train_progressive(setup, 3, true, Some(&ckpt), &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(all.len(), 4);
    // Without distillation it is another training.
    let err = fresh(3)
        .train_progressive(setup, 3, false, Some(&ckpt), &mut |_| Control::Continue)
        .expect_err("not distilled");
    assert!(
        err.to_string()
            .contains("method progressive_shrinking_kd here progressive_shrinking"),
        "{err}"
    );
    let (plain, _) = fresh(3)
        .train_progressive(setup, 3, false, None, &mut |_| Control::Continue)
        .unwrap();
    // Every op a 3x3 convolution (computed through the maps), at each depth.
    let x = rows(5, 64, &dev);
    for depth in [0u16, 1] {
        let mut v = vec![0u16; space.choices().len()];
        *v.last_mut().unwrap() = depth;
        let a = whole.forward(x.clone(), &Path::Single(&v)).unwrap();
        let b = resumed.forward(x.clone(), &Path::Single(&v)).unwrap();
        assert_eq!(max_diff(a.clone(), b), 0.0, "depth option {depth}");
        // The distilled training's smaller paths learnt something else.
        let c = plain.forward(x.clone(), &Path::Single(&v)).unwrap();
        assert!(max_diff(a, c) > 0.0, "depth option {depth}");
    }
}

#[test]
fn a_supernet_training_stopped_after_an_epoch_continues_from_its_checkpoint_to_the_same_weights() {
    use nasforge_nn::supernet::Checkpoint;
    use nasforge_nn::train::{Control, EpochStats, TrainConfig, TrainSetup};
    let (data, split) = normalised_digits();
    let space = nb201();
    let cfg = TrainConfig {
        epochs: 4,
        ..Default::default()
    };
    let train = &split.train[..300];
    let setup = TrainSetup {
        data: &data,
        train_rows: train,
        valid_rows: &[],
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let fresh = |seed| Supernet::seeded(space.supernet().unwrap(), &dev, seed);
    let losses = |e: &[EpochStats]| e.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    let (whole, whole_epochs) = fresh(7)
        .train_single_path(Sampling::Uniform, setup, 7, None, &mut |_| {
            Control::Continue
        })
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::new(dir.path().join("supernet"));
    // Killed after epoch 2 (as far as the checkpoint knows).
    let (_, first) = fresh(7)
        .train_single_path(Sampling::Uniform, setup, 7, Some(&ckpt), &mut |e| {
            if e.epoch == 2 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(ckpt.epochs().unwrap().len(), 2);
    // Continued by a supernet with other initial weights: the stored ones replace them.
    let mut seen = Vec::new();
    let (resumed, all) = fresh(8)
        .train_single_path(Sampling::Uniform, setup, 7, Some(&ckpt), &mut |e| {
            seen.push(e.epoch);
            Control::Continue
        })
        .unwrap();
    assert_eq!(seen, [3, 4], "only the missing epochs run");
    assert_eq!(losses(&all), losses(&whole_epochs));
    let x = rows(5, 64, &dev);
    for values in [[0u16, 1, 2, 3, 4, 0], [3; 6]] {
        let a = whole.forward(x.clone(), &Path::Single(&values)).unwrap();
        let b = resumed.forward(x.clone(), &Path::Single(&values)).unwrap();
        assert_eq!(max_diff(a, b), 0.0, "{values:?}");
    }
    // Only the last epoch's files are kept.
    let mut names: Vec<String> = std::fs::read_dir(ckpt.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["epoch-4.bpk", "epoch-4.optim.bpk", "state.json"]);

    // Another seed or recipe does not continue this training.
    let err = fresh(7)
        .train_single_path(Sampling::Uniform, setup, 9, Some(&ckpt), &mut |_| {
            Control::Continue
        })
        .expect_err("another seed");
    assert!(err.to_string().contains("seed 7 here 9"), "{err}");
    // Damaged files are named, never a panic.
    std::fs::write(ckpt.dir().join("epoch-4.bpk"), b"not weights").unwrap();
    let err = fresh(7)
        .train_single_path(Sampling::Uniform, setup, 7, Some(&ckpt), &mut |_| {
            Control::Continue
        })
        .expect_err("damaged weights");
    assert!(err.to_string().contains("epoch-4.bpk"), "{err}");
    std::fs::write(ckpt.dir().join("state.json"), b"{").unwrap();
    let err = fresh(7)
        .train_single_path(Sampling::Uniform, setup, 7, Some(&ckpt), &mut |_| {
            Control::Continue
        })
        .expect_err("damaged state");
    assert!(err.to_string().contains("cannot be read"), "{err}");
}

#[test]
fn a_sampled_path_with_straight_through_weights_computes_the_single_path() {
    let space = nb201();
    let dev = DeviceKind::Cpu.training_device();
    let sn = Supernet::seeded(space.supernet().unwrap(), &dev, 3);
    let x = rows(4, 64, &dev);
    let values = [1u16, 3, 0, 2, 4, 1];
    // One-hot in value (y - y + onehot), as GDAS' hard sample.
    let w: Vec<Tensor<1>> = values
        .iter()
        .map(|&v| {
            let y = softmax(
                Tensor::<1>::from_data([0.3f32, 0.1, 0.2, 0.5, 0.4], &dev),
                0,
            );
            let mut h = vec![0f32; 5];
            h[v as usize] = 1.0;
            y.clone() - y.detach() + Tensor::<1>::from_data(TensorData::new(h, [5]), &dev)
        })
        .collect();
    let single = sn.forward(x.clone(), &Path::Single(&values)).unwrap();
    let sampled = sn.forward(x, &Path::Sampled(&values, &w)).unwrap();
    assert!(max_diff(single, sampled) <= 1e-5);
}

/// Digits with 300 training and 200 validation rows.
fn small_digits() -> (Dataset, Split) {
    let (data, mut split) = normalised_digits();
    split.train.truncate(300);
    split.valid.truncate(200);
    (data, split)
}

#[test]
fn darts_gdas_and_enas_learn_alpha_record_each_epochs_arch_and_resume_to_the_same_alpha() {
    use nasforge_nn::supernet::{ArchConfig, Checkpoint, Guard};
    use nasforge_nn::train::{Control, TrainConfig, TrainSetup};
    let (data, split) = small_digits();
    let space = nb201();
    let cfg = TrainConfig {
        epochs: 3,
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let fresh = || Supernet::seeded(space.supernet().unwrap(), &dev, 4);
    for arch in [
        ArchConfig::darts(Guard::AuxSkip),
        ArchConfig::gdas(),
        ArchConfig::enas(),
    ] {
        let (_, epochs, st) = fresh()
            .train_relaxed(setup, 4, arch, None, &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(epochs.len(), 3);
        // 300 rows / 64 = 5 steps per epoch, one α step before each.
        assert_eq!(st.steps, 15, "{}", arch.method());
        assert_eq!(st.history.len(), 3);
        for h in &st.history {
            assert_eq!(h.derived.len(), 6);
            space.arch_from_values(&h.derived).unwrap();
            for p in &h.probs {
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            }
        }
        assert_eq!(st.history[2].derived, st.derived());
        // α left their 1e-3 start: the validation loss moved them (Adam: ≈ lr per step).
        let moved = st.alpha.iter().flatten().fold(0f32, |m, a| m.max(a.abs()));
        assert!(moved > 0.01, "{} {:?}", arch.method(), st.alpha);

        // Stopped after epoch 1, continued from the checkpoint: the same α and history.
        let dir = tempfile::tempdir().unwrap();
        let ckpt = Checkpoint::new(dir.path().join("supernet"));
        fresh()
            .train_relaxed(setup, 4, arch, Some(&ckpt), &mut |e| {
                if e.epoch == 1 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        assert_eq!(ckpt.arch().unwrap().unwrap().history.len(), 1);
        let (_, all, resumed) = fresh()
            .train_relaxed(setup, 4, arch, Some(&ckpt), &mut |_| Control::Continue)
            .unwrap();
        let losses = |e: &[nasforge_nn::train::EpochStats]| {
            e.iter().map(|e| e.train_loss).collect::<Vec<_>>()
        };
        assert_eq!(losses(&all), losses(&epochs), "{}", arch.method());
        assert_eq!(resumed, st, "{}", arch.method());
        // The other method's settings do not continue this checkpoint.
        let other = if arch.method() == "darts" {
            ArchConfig::gdas()
        } else {
            ArchConfig::darts(Guard::AuxSkip)
        };
        let err = fresh()
            .train_relaxed(setup, 4, other, Some(&ckpt), &mut |_| Control::Continue)
            .expect_err("another method");
        assert!(err.to_string().contains("method"), "{err}");
    }
}

#[test]
fn alpha_that_become_nan_stop_the_training_with_an_error_that_says_so() {
    use nasforge_nn::supernet::{ArchConfig, Guard};
    use nasforge_nn::train::{Control, TrainConfig, TrainError, TrainSetup};
    let (mut data, split) = small_digits();
    // A validation row with a NaN pixel: the α step's loss, and so α, become NaN.
    let d = data.row_len();
    data.features[split.valid[0] * d] = f32::NAN;
    let cfg = TrainConfig {
        epochs: 2,
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid[..1].repeat(2),
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let space = nb201();
    for arch in [
        ArchConfig::darts(Guard::None),
        ArchConfig::gdas(),
        ArchConfig::enas(),
    ] {
        let err = Supernet::seeded(space.supernet().unwrap(), &dev, 1)
            .train_relaxed(setup, 1, arch, None, &mut |_| Control::Continue)
            .expect_err("NaN α");
        assert!(
            matches!(err, TrainError::ArchDiverged { epoch: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("architecture parameters"), "{err}");
    }
    // Without validation rows there is nothing to take α steps on.
    let err = Supernet::seeded(space.supernet().unwrap(), &dev, 1)
        .train_relaxed(
            TrainSetup {
                valid_rows: &[],
                ..setup
            },
            1,
            ArchConfig::gdas(),
            None,
            &mut |_| Control::Continue,
        )
        .expect_err("no validation rows");
    assert!(err.to_string().contains("validation"), "{err}");
}

#[test]
fn second_order_darts_trains_and_its_alpha_differ_from_the_first_orders() {
    use nasforge_nn::supernet::{ArchConfig, Guard};
    use nasforge_nn::train::{Control, TrainConfig, TrainSetup};
    let (data, split) = small_digits();
    let space = nb201();
    let cfg = TrainConfig {
        epochs: 1,
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let run = |arch| {
        Supernet::seeded(space.supernet().unwrap(), &dev, 2)
            .train_relaxed(setup, 2, arch, None, &mut |_| Control::Continue)
            .unwrap()
    };
    let (_, e2, second) = run(ArchConfig::darts_second_order(Guard::None));
    let (_, _, first) = run(ArchConfig::darts(Guard::None));
    assert!(e2[0].train_loss.is_finite());
    assert_eq!(second.steps, first.steps);
    assert!(second.alpha.iter().flatten().all(|a| a.is_finite()));
    let apart = second
        .alpha
        .iter()
        .flatten()
        .zip(first.alpha.iter().flatten())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(apart > 1e-4, "the unrolled term changes α ({apart})");
}

#[test]
fn a_fair_step_trains_every_op_of_every_edge_and_a_few_shot_split_only_its_own() {
    use nasforge_nn::supernet::{ArchConfig, Checkpoint};
    use nasforge_nn::train::{Control, OptimizerConfig, TrainConfig, TrainSetup};
    let (data, split) = normalised_digits();
    let space = nb201();
    let sup = space.supernet().unwrap();
    // One step: as many training rows as the batch, without momentum or weight decay (a
    // parameter moves only if a path through it had a gradient).
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        warmup_epochs: 0,
        optimizer: OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
        ..Default::default()
    };
    let setup = TrainSetup {
        data: &data,
        train_rows: &split.train[..32],
        valid_rows: &split.valid,
        config: &cfg,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let convs = |sn: &Supernet| -> Vec<Option<Vec<f32>>> {
        sn.network()
            .layers()
            .iter()
            .map(|l| match l {
                Layer::Conv(c) => Some(c.weight.val().into_data().try_to_vec::<f32>().unwrap()),
                _ => None,
            })
            .collect()
    };
    let fresh = || Supernet::seeded(sup.clone(), &dev, 3);
    let before = convs(&fresh());
    // Per mixed module: the options whose candidate has a convolution, and whether it moved.
    let moved = |after: &Supernet| -> Vec<Vec<(usize, bool)>> {
        let after = convs(after);
        sup.mixed()
            .iter()
            .map(|m| {
                (m.candidates.iter().enumerate())
                    .filter(|(_, c)| c.nodes.clone().any(|n| before[n].is_some()))
                    .map(|(o, c)| (o, c.nodes.clone().any(|n| before[n] != after[n])))
                    .collect()
            })
            .collect()
    };
    let count = |v: &[(usize, bool)]| v.iter().filter(|(_, m)| *m).count();
    let train = |sn: Supernet, sampling| {
        sn.train_single_path(sampling, setup, 3, None, &mut |_| Control::Continue)
            .unwrap()
            .0
    };
    let fair = moved(&train(fresh(), Sampling::Fair));
    // Every op of every edge ran on one of the step's five paths, and those whose output
    // reached the logits on it moved: on each cell's edge 0->3 (input to output: choice 3
    // of 0->1, 0->2, 1->2, 0->3, 1->3, 2->3) always both convolutions (1x1, 3x3). Elsewhere a
    // path may leave a convolution dead (its input or output cut by `none` edges).
    assert_eq!(fair.len(), 18, "three cells of six edges");
    assert!(fair.iter().all(|m| m.len() == 2));
    let to_output: Vec<usize> = (0..18).filter(|&m| sup.mixed()[m].choice == 3).collect();
    assert_eq!(to_output, [3, 9, 15]);
    assert!(to_output.iter().all(|&m| count(&fair[m]) == 2), "{fair:?}");
    // A single path runs one op per edge.
    let single = moved(&train(fresh(), Sampling::Uniform));
    assert!(single.iter().all(|m| count(m) <= 1), "{single:?}");
    let total = |v: &[Vec<(usize, bool)>]| v.iter().map(|m| count(m)).sum::<usize>();
    assert!(total(&fair) > 2 * total(&single), "{fair:?} {single:?}");

    // Few-shot: split on edge 0->3 at nor_conv_1x1 (option 2), even fair steps never run
    // that edge's 3x3 convolution (option 3), and still run the others' ops.
    let held = fresh().split(3, 2).unwrap();
    assert_eq!(held.held(), [(3, 2)]);
    let split_moved = moved(&train(held, Sampling::Fair));
    for &m in &to_output {
        assert_eq!(split_moved[m], [(2, true), (3, false)], "module {m}");
    }
    assert!(total(&split_moved) > total(&single), "{split_moved:?}");
    // What cannot be split, and a split's checkpoint, which the whole supernet's training
    // does not continue.
    for (choice, value, says) in [(6, 0, "6 choices"), (3, 5, "5 options")] {
        let err = fresh().split(choice, value).expect_err("out of range");
        assert!(err.to_string().contains(says), "{err}");
    }
    let err = fresh().split(3, 2).unwrap().split(3, 1).expect_err("held");
    assert!(err.to_string().contains("held at 2 already"), "{err}");
    let err = fresh()
        .split(0, 1)
        .unwrap()
        .train_relaxed(setup, 3, ArchConfig::gdas(), None, &mut |_| {
            Control::Continue
        })
        .expect_err("a relaxed method on a split");
    assert!(err.to_string().contains("single-path"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::new(dir.path().join("supernet"));
    fresh()
        .split(3, 2)
        .unwrap()
        .train_single_path(Sampling::Fair, setup, 3, Some(&ckpt), &mut |_| {
            Control::Continue
        })
        .unwrap();
    let err = fresh()
        .train_single_path(Sampling::Fair, setup, 3, Some(&ckpt), &mut |_| {
            Control::Continue
        })
        .expect_err("the whole supernet");
    assert!(err.to_string().contains("a split holding"), "{err}");
}
