//! Supernets: sub-networks extracted with inherited weights are the stand-alone networks, and
//! a supernet pass along one path or with one-hot weights computes what that network computes.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use nasforge_core::rng::Rng;
use nasforge_core::space::{self, Space};
use nasforge_core::Params;
use nasforge_nn::device::DeviceKind;
use nasforge_nn::supernet::{Path, Supernet};

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

fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn an_extracted_sub_network_is_the_stand_alone_network_with_the_supernets_weights() {
    let space = nb201();
    let dev = DeviceKind::Cpu.training_device();
    dev.seed(1);
    let sn = Supernet::new(space.supernet().unwrap(), &dev);
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
        let fresh = nasforge_nn::model::Network::new(&spec, &dev).forward_flat(x.clone());
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
fn weighted_passes_send_gradients_to_the_architecture_weights() {
    let space = nb201();
    let dev = DeviceKind::Cpu.training_device();
    dev.seed(2);
    let sn = Supernet::new(space.supernet().unwrap(), &dev);
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
    let sn = Supernet::new(space.supernet().unwrap(), &dev);
    let x = rows(2, 64, &dev);
    assert!(sn.forward(x.clone(), &Path::Single(&[0; 5])).is_err());
    assert!(sn.forward(x.clone(), &Path::Single(&[5; 6])).is_err());
    let short: Vec<Tensor<1>> = (0..6).map(|_| Tensor::<1>::ones([4], &dev)).collect();
    assert!(sn.forward(x, &Path::Weighted(&short)).is_err());
    assert!(sn.extract(&[1; 7]).is_err());
}
