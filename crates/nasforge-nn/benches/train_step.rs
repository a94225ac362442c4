//! Training-step and inference time of nasforge's burn models, to compare with PyTorch
//! (`benches/peer/torch_step.py` runs the same networks).
//!
//! `cargo bench -p nasforge-nn --bench train_step -- [--threads N] [--steps 30] [--warmup 5]
//! [--net nb201|digits] [--kernels ours|burn]` (figures in docs/BENCHMARKS.md); `--kernels burn`
//! runs burn flex's own convolution, batch-norm and pooling instead of ours (`nasforge_nn::kernels`),
//! for the before/after comparison. `--breakdown` times instead, for every convolution,
//! batch-norm and average-pooling shape of the network, one forward and one backward of that op
//! alone on its input shape, with our kernels and with burn's, times the number of nodes of that
//! shape (one JSON line per op shape). Networks:
//! - `nb201`: NAS-Bench-201's network (C=16, N=5, 32×32×3, 10 classes) for the cell
//!   `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`, batch 64;
//! - `digits`: the default digits search network (C=16, one cell per stage, 8×8×1) for the cell
//!   `nasforge search` found on the embedded digits, batch 64.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use nasforge_core::netspec::ops;
use nasforge_core::netspec::{NetSpec, Op};
use nasforge_core::space;
use nasforge_core::Params;
use nasforge_nn::device::DeviceKind;
use nasforge_nn::evaluator::measure_latency;
use nasforge_nn::kernels;
use nasforge_nn::model::{Layer, Network};
use std::collections::BTreeMap;
use std::time::Instant;

mod common;
use common::{arg, flag, median, num, threads};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The NB201-space network for `cell` under `space_params`, seeded, on the training device.
fn network(space_params: &[&str], cell: &str) -> (NetSpec, Network) {
    let space = space::build("nb201", &Params::parse(space_params).unwrap()).unwrap();
    let spec = space.decode(&space.parse(cell).unwrap()).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    dev.seed(0);
    let model = Network::new(&spec, &dev);
    (spec, model)
}

fn bench(name: &str, space_params: &[&str], cell: &str, batch: usize, steps: usize, warmup: usize) {
    let (spec, mut model) = network(space_params, cell);
    let dev = DeviceKind::Cpu.training_device();
    let d: usize = spec.input_shape().iter().product();
    let x: Vec<f32> = (0..batch * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let y: Vec<i64> = (0..batch).map(|i| (i % 10) as i64).collect();
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.0)
                .with_nesterov(true),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init();
    let ce = CrossEntropyLossConfig::new().init(&dev);
    let mut times = Vec::new();
    // Where a step's time goes: forward (to the loss value), backward, optimiser update.
    let (mut fwd, mut bwd, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warmup + steps {
        let t = Instant::now();
        let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [batch, d]), &dev);
        let yb = Tensor::<1, Int>::from_data(TensorData::new(y.clone(), [batch]), &dev);
        let loss = ce.forward(model.forward_flat(xb), yb);
        let _ = loss.clone().into_scalar::<f32>();
        let t_fwd = t.elapsed();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t_bwd = t.elapsed();
        model = optim.step(0.05, model, grads);
        if i >= warmup {
            let total = t.elapsed();
            times.push(total.as_secs_f64() * 1e3);
            fwd.push(t_fwd.as_secs_f64() * 1e3);
            bwd.push((t_bwd - t_fwd).as_secs_f64() * 1e3);
            upd.push((total - t_bwd).as_secs_f64() * 1e3);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let step = median(times);
    let infer = model.valid();
    let b64 = measure_latency(&infer, 64, 30, DeviceKind::Cpu);
    let b1 = measure_latency(&infer, 1, 30, DeviceKind::Cpu);
    println!(
        "{{\"net\": \"{name}\", \"kernels\": \"{}\", \"threads\": {}, \"batch\": {batch}, \"params\": {}, \"train_step_ms_median\": {step:.2}, \"train_step_ms_mean\": {mean:.2}, \"infer_b64_ms\": {b64:.2}, \"infer_b1_ms\": {b1:.3}, \"forward_ms\": {:.2}, \"backward_ms\": {:.2}, \"update_ms\": {:.2}, \"peak_rss_mib\": {:.0}}}",
        if nasforge_nn::kernels::enabled() { "ours" } else { "burn" },
        rayon::current_num_threads(),
        spec.params(),
        median(fwd),
        median(bwd),
        median(upd),
        peak_rss_mib()
    );
}

/// One op of the network on its input shape: forward and backward milliseconds (medians).
fn time_op(op: &dyn Fn(Tensor<4>) -> Tensor<4>, shape: [usize; 4], reps: usize) -> (f64, f64) {
    let dev = DeviceKind::Cpu.training_device();
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for i in 0..reps + 3 {
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &dev).require_grad();
        let t = Instant::now();
        let out = op(xt.clone());
        let t_fwd = t.elapsed();
        let loss = out.sum();
        let t = Instant::now();
        let grads = loss.backward();
        let t_bwd = t.elapsed();
        let _ = xt.grad(&grads);
        if i >= 3 {
            fwd.push(t_fwd.as_secs_f64() * 1e3);
            bwd.push(t_bwd.as_secs_f64() * 1e3);
        }
    }
    (median(fwd), median(bwd))
}

/// `--breakdown`: every conv / batch-norm / avg-pool shape of the network, ours against burn's.
fn breakdown(name: &str, space_params: &[&str], cell: &str, batch: usize, reps: usize) {
    let (spec, model) = network(space_params, cell);
    let nodes = spec.nodes();
    // label -> (node count, a representative node)
    let mut shapes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(&input) = node.inputs.first() else {
            continue;
        };
        let s = &nodes[input].shape;
        if s.len() != 3 {
            continue;
        }
        let label = match node.op {
            Op::Conv2d(ops::Conv2d {
                out_channels,
                kernel,
                stride,
                ..
            }) => {
                format!(
                    "conv {kernel}x{kernel} s{stride} {}->{out_channels} @{}x{}",
                    s[0], s[1], s[2]
                )
            }
            Op::BatchNorm(_) => {
                format!("batch_norm {} @{}x{}", s[0], s[1], s[2])
            }
            Op::AvgPool(ops::AvgPool { kernel, stride, .. }) => {
                format!(
                    "avg_pool {kernel}x{kernel} s{stride} {} @{}x{}",
                    s[0], s[1], s[2]
                )
            }
            _ => continue,
        };
        shapes.entry(label).or_insert((0, i)).0 += 1;
    }
    let (mut ours_total, mut burn_total) = (0.0, 0.0);
    for (label, (count, i)) in shapes {
        let s = &nodes[nodes[i].inputs[0]].shape;
        let shape = [batch, s[0], s[1], s[2]];
        let mut row = Vec::new();
        for on in [true, false] {
            kernels::set_enabled(on);
            let (f, b) = match (&nodes[i].op, &model.layers()[i]) {
                (Op::Conv2d(_), Layer::Conv(c)) => time_op(&|x| kernels::conv2d(c, x), shape, reps),
                (Op::BatchNorm(_), Layer::Norm(bn)) => {
                    time_op(&|x| kernels::batch_norm(bn, x), shape, reps)
                }
                (
                    &Op::AvgPool(ops::AvgPool {
                        kernel,
                        stride,
                        padding,
                        count_include_pad,
                    }),
                    _,
                ) => time_op(
                    &|x| kernels::avg_pool2d(x, kernel, stride, padding, count_include_pad),
                    shape,
                    reps,
                ),
                _ => unreachable!("labelled above"),
            };
            row.push((f, b));
        }
        let [(of, ob), (bf, bb)] = [row[0], row[1]];
        ours_total += (of + ob) * count as f64;
        burn_total += (bf + bb) * count as f64;
        println!(
            "{{\"net\": \"{name}\", \"op\": \"{label}\", \"count\": {count}, \"ours_fwd_ms\": {of:.3}, \"ours_bwd_ms\": {ob:.3}, \"burn_fwd_ms\": {bf:.3}, \"burn_bwd_ms\": {bb:.3}, \"ours_total_ms\": {:.2}, \"burn_total_ms\": {:.2}}}",
            (of + ob) * count as f64,
            (bf + bb) * count as f64
        );
    }
    println!(
        "{{\"net\": \"{name}\", \"op\": \"all\", \"ours_total_ms\": {ours_total:.1}, \"burn_total_ms\": {burn_total:.1}}}"
    );
    kernels::set_enabled(true);
}

fn main() {
    threads();
    let steps = num("--steps", 30);
    let warmup = num("--warmup", 5);
    let only = arg("--net");
    let kernels = arg("--kernels").unwrap_or_else(|| "ours".into());
    match kernels.as_str() {
        "ours" => nasforge_nn::kernels::set_enabled(true),
        "burn" => nasforge_nn::kernels::set_enabled(false),
        other => panic!("--kernels takes `ours` or `burn`, got `{other}`"),
    }
    type Run = fn(&str, &[&str], &str, usize, usize, usize);
    let run: Run = if flag("--breakdown") {
        |name: &str, p: &[&str], cell: &str, batch: usize, steps: usize, _warmup: usize| {
            breakdown(name, p, cell, batch, steps)
        }
    } else {
        bench
    };
    // Inside the thread pool, as nasforge's trainer runs (`kernels::in_pool`).
    let run = move |a: &str, b: &[&str], c: &str, d: usize, e: usize, f: usize| {
        kernels::in_pool(|| run(a, b, c, d, e, f))
    };
    if only.as_deref().is_none_or(|n| n == "nb201") {
        run(
            "nb201",
            &[],
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            64,
            steps,
            warmup,
        );
    }
    if only.as_deref().is_none_or(|n| n == "digits") {
        run(
            "digits",
            &["channels=16", "cells=1", "input=8x8x1"],
            "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
            64,
            steps,
            warmup,
        );
    }
}
