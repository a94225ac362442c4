//! Training-step and inference time of nasforge's burn models, to compare with PyTorch
//! (`benches/peer/torch_step.py` runs the same networks).
//!
//! `cargo bench -p nasforge-nn --bench train_step -- [--threads N] [--steps 30] [--warmup 5]`
//! (figures in docs/BENCHMARKS.md). Networks:
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
use nasforge_core::space;
use nasforge_core::Params;
use nasforge_nn::device::DeviceKind;
use nasforge_nn::evaluator::measure_latency;
use nasforge_nn::model::Network;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(name: &str, space_params: &[&str], cell: &str, batch: usize, steps: usize, warmup: usize) {
    let space = space::build("nb201", &Params::parse(space_params).unwrap()).unwrap();
    let spec = space.decode(&space.parse(cell).unwrap()).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    dev.seed(0);
    let mut model = Network::new(&spec, &dev);
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
        "{{\"net\": \"{name}\", \"threads\": {}, \"batch\": {batch}, \"params\": {}, \"train_step_ms_median\": {step:.2}, \"train_step_ms_mean\": {mean:.2}, \"infer_b64_ms\": {b64:.2}, \"infer_b1_ms\": {b1:.3}, \"forward_ms\": {:.2}, \"backward_ms\": {:.2}, \"update_ms\": {:.2}, \"peak_rss_mib\": {:.0}}}",
        rayon::current_num_threads(),
        spec.params(),
        median(fwd),
        median(bwd),
        median(upd),
        peak_rss_mib()
    );
}

fn main() {
    let threads = arg("--threads", 2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("first pool");
    let steps = arg("--steps", 30);
    let warmup = arg("--warmup", 5);
    let only: Option<String> = {
        let a: Vec<String> = std::env::args().collect();
        a.iter()
            .position(|x| x == "--net")
            .and_then(|i| a.get(i + 1))
            .cloned()
    };
    if only.as_deref().is_none_or(|n| n == "nb201") {
        bench(
            "nb201",
            &[],
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            64,
            steps,
            warmup,
        );
    }
    if only.as_deref().is_none_or(|n| n == "digits") {
        bench(
            "digits",
            &["channels=16", "cells=1", "input=8x8x1"],
            "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
            64,
            steps,
            warmup,
        );
    }
}
