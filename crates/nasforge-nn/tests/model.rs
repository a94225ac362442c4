//! NetSpec → burn: parameter counts and shapes for every space.

use burn::prelude::*;
use nasforge_core::rng::Rng;
use nasforge_core::space::{self, Space};
use nasforge_core::Params;
use nasforge_nn::device::DeviceKind;
use nasforge_nn::model::Network;

fn small(name: &str) -> Box<dyn Space> {
    let params: &[&str] = match name {
        "nb201" => &["channels=4", "cells=1", "input=8x8x1"],
        "darts" => &["channels=4", "layers=3", "input=8x8x1"],
        "macro" => &["layers=4", "widths=4,8", "stem=4", "input=8x8x1"],
        _ => &["input=64"],
    };
    space::build(name, &Params::parse(params).unwrap()).unwrap()
}

#[test]
fn trainable_parameters_equal_netspec_counts_for_every_space() {
    let dev = DeviceKind::Cpu.device();
    for name in space::SPACE_NAMES {
        let space = small(name);
        let mut rng = Rng::new(4);
        for _ in 0..8 {
            let arch = space.sample(&mut rng);
            let spec = space.decode(&arch).unwrap();
            let net = Network::new(&spec, &dev);
            assert_eq!(
                net.trainable_params() as u64,
                spec.params(),
                "{name}: {}",
                space.format(&arch)
            );
        }
    }
}

#[test]
fn full_size_nb201_matches_the_published_count() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let arch = space
        .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        .unwrap();
    let net = Network::new(&space.decode(&arch).unwrap(), &DeviceKind::Cpu.device());
    assert_eq!(net.trainable_params(), 1_531_546);
}

#[test]
fn forward_gives_one_row_of_logits_per_sample() {
    let dev = DeviceKind::Cpu.device();
    for name in space::SPACE_NAMES {
        let space = small(name);
        let arch = space.sample(&mut Rng::new(9));
        let spec = space.decode(&arch).unwrap();
        let net = Network::new(&spec, &dev);
        let d: usize = spec.input_shape().iter().product();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; 3 * d], [3, d]), &dev);
        let y = net.forward_flat(x);
        assert_eq!(y.dims(), [3, 10], "{name}");
        let v = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
    }
}

#[test]
fn an_all_none_cell_still_runs() {
    let space = small("nb201");
    let arch = space
        .parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        .unwrap();
    let dev = DeviceKind::Cpu.device();
    let net = Network::new(&space.decode(&arch).unwrap(), &dev);
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 2 * 64], [2, 64]), &dev);
    assert_eq!(net.forward_flat(x).dims(), [2, 10]);
}

#[test]
fn symbolic_zeros_match_real_zeros_through_batch_norm() {
    // An all-`none` cell feeds zeros into the head's batch norm, which shifts them: the output
    // must equal running the same network on a zero feature map, i.e. depend on the weights
    // only. Two different inputs must therefore give identical outputs.
    let space = small("nb201");
    let arch = space
        .parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        .unwrap();
    let dev = DeviceKind::Cpu.device();
    let net = Network::new(&space.decode(&arch).unwrap(), &dev);
    let a = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 64], [1, 64]), &dev);
    let b = Tensor::<2>::from_data(TensorData::new(vec![-3.0f32; 64], [1, 64]), &dev);
    let ya = net
        .forward_flat(a)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let yb = net
        .forward_flat(b)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(ya, yb);
}

#[test]
fn nodes_whose_value_never_reaches_the_output_are_not_computed() {
    use nasforge_core::netspec::Op;
    use nasforge_nn::model::Probe;
    /// Records the image nodes the forward pass computes.
    struct Seen(Vec<usize>);
    impl Probe for Seen {
        fn image(&mut self, node: usize, _: &Op, t: Tensor<4>) -> Tensor<4> {
            self.0.push(node);
            t
        }
    }
    // Cell node 2 = avg_pool(input) + avg_pool(node 1), read by node 3 only through `none`:
    // computing it on a training device left a graph that was never sent backward, and burn
    // keeps those (a search's RSS went from 37 MB to 508 MB on this one arch).
    let space = small("nb201");
    let arch = space
        .parse("|none~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|none~2|")
        .unwrap();
    let spec = space.decode(&arch).unwrap();
    let needed = spec.reaching_output(&[]);
    // The cell's three pools, and everything before the cell: its output is zeros whatever the
    // input, so not even the stem reaches the output.
    let dead_pools = (0..spec.nodes().len())
        .filter(|&i| matches!(spec.nodes()[i].op, Op::AvgPool(_)) && !needed[i])
        .count();
    assert!(dead_pools >= 3 && !needed[1], "{needed:?}");
    let dev = DeviceKind::Cpu.training_device();
    let net = Network::new(&spec, &dev);
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 2 * 64], [2, 64]), &dev);
    let mut seen = Seen(Vec::new());
    assert_eq!(net.forward_probed(x, &mut seen).dims(), [2, 10]);
    assert!(seen.0.iter().all(|&i| needed[i]), "computed {:?}", seen.0);
    // A cell whose every node reaches the output computes them all.
    let convs = space
        .parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|skip_connect~2|")
        .unwrap();
    assert!(space
        .decode(&convs)
        .unwrap()
        .reaching_output(&[])
        .iter()
        .all(|&n| n));
}
