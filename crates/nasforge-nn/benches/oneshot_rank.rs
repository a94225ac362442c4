//! How well a weight-sharing supernet ranks archs (issue 13's "ranking quality, measured"):
//! trains a NAS-Bench-201-space supernet with uniform single-path training (SPOS), samples
//! distinct archs, scores each with the weights it inherits (batch norms recalibrated on
//! training rows) and trained alone from scratch, and prints Kendall τ and Spearman ρ between
//! the two (validation accuracy both ways; one JSON line per arch, then a summary line).
//!
//! `cargo bench -p nasforge-nn --bench oneshot_rank -- [--data FILE.csv[.gz] --image 28x28x1]
//! [--channels 8] [--cells 1] [--supernet-epochs 30] [--alone-epochs 10] [--archs 50]
//! [--seed 0] [--threads 2]`; without `--data`, the embedded 8×8 digits.

use nasforge_core::rng::Rng;
use nasforge_core::space;
use nasforge_core::stats::{kendall, spearman};
use nasforge_core::Params;
use nasforge_nn::data::{self, CsvOptions, Normalizer, Split, SplitFractions, Targets};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::supernet::Supernet;
use nasforge_nn::train::{train, Control, TrainConfig, TrainSetup};
use std::collections::BTreeSet;
use std::time::Instant;

mod common;
use common::{arg, num};

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(num("--threads", 2))
        .build_global()
        .expect("first pool");
    let seed = num("--seed", 0) as u64;
    let image = arg("--image").map(|s| {
        let d: Vec<usize> = s
            .split('x')
            .map(|v| v.parse().expect("--image HxWxC"))
            .collect();
        [d[0], d[1], d[2]]
    });
    let mut data = match arg("--data") {
        Some(path) => data::load(
            std::path::Path::new(&path),
            &CsvOptions {
                target: "label".into(),
                task: None,
                drop: Vec::new(),
                image,
                labels: None,
                impute: None,
                features: Vec::new(),
            },
        )
        .expect("readable data"),
        None => data::embedded_digits(),
    };
    let split = Split::new(&data, SplitFractions::default(), seed).expect("split");
    Normalizer::fit(&data, &split.train).apply(&mut data);
    let [c, h, w] = data.shape[..] else {
        panic!("image data needed, got rows of shape {:?}", data.shape)
    };
    let Targets::Classes { names, .. } = &data.targets else {
        panic!("classification data needed")
    };
    let settings = [
        format!("channels={}", num("--channels", 8)),
        format!("cells={}", num("--cells", 1)),
        format!("input={h}x{w}x{c}"),
        format!("classes={}", names.len()),
    ];
    let space = space::build("nb201", &Params::parse(&settings).expect("settings")).unwrap();
    let recipe = |epochs: usize| TrainConfig {
        epochs,
        ..Default::default()
    };
    let (super_cfg, alone_cfg) = (
        recipe(num("--supernet-epochs", 30)),
        recipe(num("--alone-epochs", 10)),
    );
    let setup = |config| TrainSetup {
        data: &data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config,
        device: DeviceKind::Cpu,
    };
    let dev = DeviceKind::Cpu.training_device();
    let t = Instant::now();
    let (sn, epochs) = Supernet::seeded(space.supernet().unwrap(), &dev, seed)
        .train_single_path(setup(&super_cfg), seed, None, &mut |_| Control::Continue)
        .expect("supernet training");
    let supernet_s = t.elapsed().as_secs_f64();
    let mut rng = Rng::new(seed ^ 0xA5C4);
    let mut seen = BTreeSet::new();
    let (mut inherited, mut alone) = (Vec::new(), Vec::new());
    let t = Instant::now();
    while inherited.len() < num("--archs", 50) {
        let arch = space.sample(&mut rng);
        if !seen.insert(space.format(&arch)) {
            continue;
        }
        let shared = sn
            .evaluate_inherited(
                arch.values(),
                &data,
                &split.train,
                &split.valid,
                64,
                DeviceKind::Cpu,
            )
            .expect("an arch of the space")
            .score();
        let spec = space.decode(&arch).unwrap();
        let trained =
            train(&spec, setup(&alone_cfg), seed, &mut |_| Control::Continue).expect("training");
        let own = trained
            .epochs
            .last()
            .and_then(|e| e.valid)
            .expect("validation rows")
            .score();
        println!(
            "{{\"arch\": \"{}\", \"inherited\": {shared:.2}, \"alone\": {own:.2}}}",
            space.format(&arch)
        );
        inherited.push(shared);
        alone.push(own);
    }
    println!(
        "{{\"archs\": {}, \"kendall_tau\": {:.3}, \"spearman_rho\": {:.3}, \"supernet_epochs\": {}, \"supernet_last_loss\": {:.3}, \"supernet_seconds\": {supernet_s:.0}, \"alone_epochs\": {}, \"scoring_seconds\": {:.0}, \"data\": \"{}\"}}",
        inherited.len(),
        kendall(&inherited, &alone),
        spearman(&inherited, &alone),
        super_cfg.epochs,
        epochs.last().map_or(f64::NAN, |e| e.train_loss),
        alone_cfg.epochs,
        t.elapsed().as_secs_f64(),
        data.source
    );
}
