//! Training-step time of a character-level GPT (nanoGPT's documented CPU configuration: 4
//! layers, 4 heads, width 128, block 64, batch 12, vocabulary 65), to compare with PyTorch
//! (`benches/peer/gpt_step.py` runs the same network and step).
//!
//! `cargo bench -p nasforge-nn --bench gpt_step -- [--threads 2] [--steps 30] [--warmup 5]
//! [--batch 12] [--block 64]`; one JSON line. A step: forward on token ids, cross-entropy of
//! the next token at every position, backward, AdamW (lr 1e-3, β 0.9/0.99, weight decay 0.1,
//! as nanoGPT's Shakespeare configuration; no gradient clipping on either side). The tokens
//! are fixed pseudo-random ids: the figure is time, not learning.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use nasforge_core::space::{Space, TransformerSpace};
use nasforge_core::Params;
use nasforge_nn::device::DeviceKind;
use nasforge_nn::kernels;
use nasforge_nn::model::Network;
use std::time::Instant;

mod common;
use common::{median, num, threads};

fn main() {
    let threads = threads();
    let (steps, warmup) = (num("--steps", 30), num("--warmup", 5));
    let (batch, block, vocab) = (num("--batch", 12), num("--block", 64), 65);
    let input = format!("input={block}");
    let params = [
        "head=lm",
        "vocab=65",
        &input,
        "widths=128",
        "heads=4",
        "mlp_ratios=4",
    ];
    let space = TransformerSpace::from_params(&Params::parse(&params).unwrap()).unwrap();
    let spec = space.decode(&space.uniform(4, 128, 4, 4).unwrap()).unwrap();
    let ids: Vec<usize> = (0..batch * (block + 1))
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    let x: Vec<f32> = (0..batch)
        .flat_map(|r| {
            ids[r * (block + 1)..r * (block + 1) + block]
                .iter()
                .map(|&t| t as f32)
        })
        .collect();
    let y: Vec<i64> = (0..batch)
        .flat_map(|r| {
            ids[r * (block + 1) + 1..(r + 1) * (block + 1)]
                .iter()
                .map(|&t| t as i64)
        })
        .collect();
    let run = || {
        let dev = DeviceKind::Cpu.training_device();
        dev.seed(0);
        let mut model = Network::new(&spec, &dev);
        let mut optim = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.99)
            .with_epsilon(1e-8)
            .with_weight_decay(0.1)
            .init();
        let ce = CrossEntropyLossConfig::new().init(&dev);
        let (mut times, mut fwd, mut bwd) = (Vec::new(), Vec::new(), Vec::new());
        let mut last_loss = f32::NAN;
        for i in 0..warmup + steps {
            let t = Instant::now();
            let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [batch, block]), &dev);
            let yb = Tensor::<1, Int>::from_data(TensorData::new(y.clone(), [batch * block]), &dev);
            let logits = model.forward_flat(xb).reshape([batch * block, vocab]);
            let loss = ce.forward(logits, yb);
            last_loss = loss.clone().into_scalar::<f32>();
            let t_fwd = t.elapsed();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let t_bwd = t.elapsed();
            model = optim.step(1e-3, model, grads);
            if i >= warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
                fwd.push(t_fwd.as_secs_f64() * 1e3);
                bwd.push((t_bwd - t_fwd).as_secs_f64() * 1e3);
            }
        }
        (times, fwd, bwd, last_loss)
    };
    let (times, fwd, bwd, last_loss) = kernels::in_pool(run);
    println!(
        "{{\"net\": \"gpt\", \"threads\": {threads}, \"batch\": {batch}, \"block\": {block}, \"params\": {}, \"train_step_ms_median\": {:.2}, \"forward_ms\": {:.2}, \"backward_ms\": {:.2}, \"last_loss\": {last_loss:.4}}}",
        spec.params(),
        median(times),
        median(fwd),
        median(bwd),
    );
}
