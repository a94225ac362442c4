//! How well a weight-sharing supernet ranks archs (issue 13's "ranking quality, measured"):
//! trains a NAS-Bench-201-space supernet with uniform single-path training (SPOS), samples
//! distinct archs, scores each with the weights it inherits (batch norms recalibrated on
//! training rows) and trained alone from scratch, and prints Kendall τ and Spearman ρ between
//! the two (validation accuracy both ways; one JSON line per arch, then a summary line), and
//! the "sparse" τ over one arch per functional class (`space::cell_class`: cells that compute
//! the same function counted once).
//!
//! `cargo bench -p nasforge-nn --bench oneshot_rank -- [--data FILE.csv[.gz] --image 28x28x1]
//! [--channels 8] [--cells 1] [--supernet-epochs 30] [--supernet-lr 0.05] [--supernet-batch 64]
//! [--alone-epochs 10] [--alone-seeds 1] [--archs 50] [--cache FILE.jsonl] [--seed 0]
//! [--ceiling] [--finetune-epochs N] [--fair] [--supernet-seed S] [--split-choice C
//! [--split-epochs E]] [--supernet-augment] [--supernet-wd W] [--shard K/N] [--threads 2]`; without `--data`, the embedded 8×8 digits. `--cache` keeps every stand-alone result (matched by the data's file name and the network's settings), so that supernet settings are compared
//! on one ground truth. `--ceiling` trains each arch alone on one more seed and reports its
//! τ against the ground truth (the mean of the `--alone-seeds`): what a fresh run of the
//! ground truth's own recipe reaches, the noise ceiling of any estimator. `--finetune-epochs`
//! also scores each arch after that many epochs of training from its inherited weights,
//! beside as many epochs from scratch (the same cost without the supernet). `--fair` trains
//! the supernet with FairNAS' strictly fair sampling (`Sampling::Fair`); `--supernet-seed`
//! (default `--seed`) seeds the supernet alone, the split and the archs staying those of
//! `--seed`. `--split-choice C` is few-shot NAS: the trained supernet is split on choice `C`
//! (a copy per value, `Supernet::split`), each copy trained `--split-epochs` more (default the
//! supernet's epochs) with its value held, and each arch scored by its value's copy.
//! `--supernet-augment` trains the supernet on random crops, `--supernet-wd` sets its SGD
//! weight decay (default the recipe's); split copies train with the supernet's recipe.
//! `--shard K/N` trains no supernet: it runs only the K-th of every N stand-alone trainings
//! (the `--archs` × `--alone-seeds`, seed by seed) into `--cache` and stops, so that N
//! processes (on one machine or several, each with its own cache file, concatenated after)
//! build one ground truth.

use nasforge_core::netspec::NetSpec;
use nasforge_core::rng::Rng;
use nasforge_core::space::{self, Arch, Space};
use nasforge_core::stats::{kendall, spearman};
use nasforge_core::Params;
use nasforge_nn::data::{self, CsvOptions, Dataset, Normalizer, Split, SplitFractions, Targets};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::supernet::{Sampling, Supernet};
use nasforge_nn::train::{
    cross_entropy, evaluate, train, train_network, Control, OptimizerConfig, TrainConfig,
    TrainSetup, Trained,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

mod common;
use common::{arg, flag, num, threads};

fn main() {
    threads();
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
    let (mut super_cfg, alone_cfg) = (
        recipe(num("--supernet-epochs", 30)),
        recipe(num("--alone-epochs", 10)),
    );
    // The supernet's recipe apart from the stand-alone one's (the defaults otherwise).
    if let Some(lr) = arg("--supernet-lr").and_then(|v| v.parse().ok()) {
        super_cfg.lr = lr;
    }
    super_cfg.batch_size = num("--supernet-batch", super_cfg.batch_size);
    // Regularising the supernet against fitting its training rows: random crops (no flips:
    // digits) and a stronger weight decay.
    super_cfg.augment = flag("--supernet-augment");
    if let (Some(wd), OptimizerConfig::Sgd { weight_decay, .. }) = (
        arg("--supernet-wd").and_then(|v| v.parse().ok()),
        &mut super_cfg.optimizer,
    ) {
        *weight_decay = wd;
    }
    let dev = DeviceKind::Cpu.training_device();
    let data_key = cache_key(&format!("{} {}", data.source, settings.join(" ")));
    let cache_path = arg("--cache");
    // (arch, seed, epochs, warm-up epochs) -> validation accuracy.
    let mut cache: BTreeMap<(String, u64, usize, usize), f64> = BTreeMap::new();
    if let Some(p) = &cache_path {
        for line in std::fs::read_to_string(p).unwrap_or_default().lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a cache line");
            if v["data"].as_str().map(cache_key).as_deref() == Some(data_key.as_str()) {
                let key = (
                    v["arch"].as_str().expect("arch").to_string(),
                    v["seed"].as_u64().expect("seed"),
                    v["epochs"].as_u64().expect("epochs") as usize,
                    v["warmup"].as_u64().unwrap_or(1) as usize,
                );
                cache.insert(key, v["alone"].as_f64().expect("alone"));
            }
        }
    }
    let finetune = num("--finetune-epochs", 0);
    // A short training (fine-tuning, or as many epochs from scratch) has no warm-up: one
    // epoch of warm-up would be the whole of it.
    let short_cfg = TrainConfig {
        warmup_epochs: 0,
        ..recipe(finetune)
    };
    // An arch's validation accuracy trained alone for `epochs` from `seed`, from the cache
    // or trained (and cached).
    let mut alone_of = |key: &str, spec: &NetSpec, seed: u64, cfg: &TrainConfig| -> f64 {
        let k = (key.to_string(), seed, cfg.epochs, cfg.warmup_epochs);
        if let Some(&a) = cache.get(&k) {
            return a;
        }
        let trained = train(spec, setup(&data, &split, cfg), seed, &mut |_| {
            Control::Continue
        })
        .expect("training");
        let a = last_valid(&trained);
        if let Some(p) = &cache_path {
            let line = serde_json::json!({
                "arch": key, "seed": seed, "epochs": cfg.epochs, "warmup": cfg.warmup_epochs,
                "alone": a, "data": data_key,
            });
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("a writable cache");
            writeln!(f, "{line}").expect("cache written");
        }
        cache.insert(k, a);
        a
    };
    let seeds = num("--alone-seeds", 1) as u64;
    let archs = sample_archs(space.as_ref(), seed, num("--archs", 50));
    // `--shard K/N`: only the K-th of every N stand-alone runs (seed-major over the archs),
    // into the cache, and no supernet: the ground truth spread over processes or machines.
    if let Some(shard) = arg("--shard") {
        let (k, n) = shard
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|&(k, n)| k < n)
            .expect("--shard K/N with K < N");
        let runs = (seed..seed + seeds).flat_map(|s| archs.iter().map(move |a| (s, a)));
        for (s, (arch, key)) in runs.skip(k).step_by(n) {
            let t = Instant::now();
            let a = alone_of(key, &space.decode(arch).unwrap(), s, &alone_cfg);
            println!(
                "{{\"arch\": \"{key}\", \"seed\": {s}, \"alone\": {a:.2}, \"seconds\": {:.0}}}",
                t.elapsed().as_secs_f64()
            );
        }
        return;
    }
    let t = Instant::now();
    let fair = flag("--fair");
    // The supernet's own seed apart from the split's and the archs' (its noise, measured).
    let super_seed = num("--supernet-seed", seed as usize) as u64;
    let supernet = Supernet::seeded(space.supernet().unwrap(), &dev, super_seed);
    let super_setup = setup(&data, &split, &super_cfg);
    let sampling = if fair {
        Sampling::Fair
    } else {
        Sampling::Uniform
    };
    let (sn, epochs) = supernet
        .train_single_path(sampling, super_setup, super_seed, None, &mut |_| {
            Control::Continue
        })
        .expect("supernet training");
    // Few-shot NAS: the trained supernet split on one choice, a copy per value trained
    // `--split-epochs` more with that value held; each arch is scored by its value's copy.
    let few_shot = arg("--split-choice").map(|c| {
        let c: usize = c.parse().expect("--split-choice N");
        // The supernet's recipe (rate, batch, crops, decay) for the split's epochs.
        let cfg = TrainConfig {
            epochs: num("--split-epochs", super_cfg.epochs),
            ..super_cfg.clone()
        };
        let subs: Vec<Supernet> = (0..sn.spec().options()[c] as u16)
            .map(|v| {
                sn.clone()
                    .split(c, v)
                    .expect("a choice of the supernet")
                    .train_single_path(
                        sampling,
                        setup(&data, &split, &cfg),
                        super_seed,
                        None,
                        &mut |_| Control::Continue,
                    )
                    .expect("a split's training")
                    .0
            })
            .collect();
        (c, cfg.epochs, subs)
    });
    let supernet_s = t.elapsed().as_secs_f64();
    let ceiling = flag("--ceiling");
    let (mut accuracy, mut neg_loss, mut alone, mut params) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Apart from the mean of the seeds: one more seed (the ground truth's own noise), and
    // the inherited weights fine-tuned for `--finetune-epochs` beside as many epochs from
    // scratch (the same cost without the supernet).
    let (mut fresh, mut tuned, mut short) = (Vec::new(), Vec::new(), Vec::new());
    // Per arch: whether it is the first of its functional class.
    let mut classes = BTreeSet::new();
    let mut first_of_class = Vec::new();
    let t = Instant::now();
    for (arch, key) in &archs {
        let scorer = match &few_shot {
            Some((c, _, subs)) => &subs[arch.values()[*c] as usize],
            None => &sn,
        };
        let net = scorer
            .inherited(arch.values(), &data, &split.train, 64, DeviceKind::Cpu)
            .expect("an arch of the space");
        let acc = evaluate(&net, &data, &split.valid, DeviceKind::Cpu).score();
        let nll = cross_entropy(&net, &data, &split.valid, DeviceKind::Cpu).expect("classes");
        let spec = space.decode(arch).unwrap();
        let own = (seed..seed + seeds)
            .map(|s| alone_of(key, &spec, s, &alone_cfg))
            .sum::<f64>()
            / seeds as f64;
        let mut line = format!(
            "{{\"arch\": \"{key}\", \"inherited\": {acc:.2}, \"inherited_loss\": {nll:.4}, \"alone\": {own:.2}"
        );
        if ceiling {
            let a = alone_of(key, &spec, seed + seeds, &alone_cfg);
            line += &format!(", \"fresh_seed\": {a:.2}");
            fresh.push(a);
        }
        if finetune > 0 {
            let net = scorer.extract(arch.values()).expect("an arch of the space");
            let trained = train_network(net, setup(&data, &split, &short_cfg), seed, &mut |_| {
                Control::Continue
            })
            .expect("fine-tuning");
            let (f, s) = (last_valid(&trained), alone_of(key, &spec, seed, &short_cfg));
            line += &format!(", \"finetuned\": {f:.2}, \"scratch_short\": {s:.2}");
            tuned.push(f);
            short.push(s);
        }
        println!("{line}}}");
        let values: [u16; 6] = arch.values().try_into().expect("six edges");
        first_of_class.push(classes.insert(space::cell_class(&values)));
        accuracy.push(acc);
        neg_loss.push(-nll);
        alone.push(own);
        params.push(spec.params() as f64);
    }
    let sparse = |xs: &[f64]| -> Vec<f64> {
        xs.iter()
            .zip(&first_of_class)
            .filter(|(_, &first)| first)
            .map(|(&x, _)| x)
            .collect()
    };
    // τ against the ground truth of each optional score, when measured.
    let tau_of = |name: &str, xs: &[f64]| match xs.len() {
        0 => String::new(),
        _ => format!(", \"kendall_tau_{name}\": {:.3}", kendall(xs, &alone)),
    };
    println!(
        "{{\"archs\": {}, \"classes\": {}, \"kendall_tau_sparse\": {:.3}, \"kendall_tau\": {:.3}, \"spearman_rho\": {:.3}, \"kendall_tau_loss\": {:.3}, \"spearman_rho_loss\": {:.3}, \"kendall_tau_params\": {:.3}{}{}{}, \"finetune_epochs\": {finetune}, \"fair\": {fair}, \"split\": {}, \"supernet_epochs\": {}, \"supernet_lr\": {}, \"supernet_batch\": {}, \"supernet_last_loss\": {:.3}, \"supernet_seconds\": {supernet_s:.0}, \"alone_epochs\": {}, \"alone_seeds\": {seeds}, \"scoring_seconds\": {:.0}, \"data\": \"{}\"}}",
        accuracy.len(),
        classes.len(),
        kendall(&sparse(&accuracy), &sparse(&alone)),
        kendall(&accuracy, &alone),
        spearman(&accuracy, &alone),
        kendall(&neg_loss, &alone),
        spearman(&neg_loss, &alone),
        kendall(&params, &alone),
        tau_of("fresh_seed", &fresh),
        tau_of("finetuned", &tuned),
        tau_of("scratch_short", &short),
        few_shot.as_ref().map_or("null".into(), |(c, e, _)| format!(
            "{{\"choice\": {c}, \"epochs\": {e}}}"
        )),
        super_cfg.epochs,
        super_cfg.lr,
        super_cfg.batch_size,
        epochs.last().map_or(f64::NAN, |e| e.train_loss),
        alone_cfg.epochs,
        t.elapsed().as_secs_f64(),
        data.source
    );
}

/// A cache line's data and settings with the data's directory left out, so that a cache
/// built on another machine (or with a relative path) is read here.
fn cache_key(data: &str) -> String {
    let (path, settings) = data.split_once(' ').unwrap_or((data, ""));
    let name = std::path::Path::new(path)
        .file_name()
        .map_or(path.into(), |n| n.to_string_lossy());
    format!("{name} {settings}")
}

/// `n` distinct archs of `space` drawn from `seed`, each with its formatted key.
fn sample_archs(space: &dyn Space, seed: u64, n: usize) -> Vec<(Arch, String)> {
    let mut rng = Rng::new(seed ^ 0xA5C4);
    let (mut seen, mut archs) = (BTreeSet::new(), Vec::new());
    while archs.len() < n {
        let arch = space.sample(&mut rng);
        let key = space.format(&arch);
        if seen.insert(key.clone()) {
            archs.push((arch, key));
        }
    }
    archs
}

/// Training on `split`'s rows of `data` with `config`, on the CPU.
fn setup<'a>(data: &'a Dataset, split: &'a Split, config: &'a TrainConfig) -> TrainSetup<'a> {
    TrainSetup {
        data,
        train_rows: &split.train,
        valid_rows: &split.valid,
        config,
        device: DeviceKind::Cpu,
    }
}

/// The validation accuracy after a training's last epoch.
fn last_valid(trained: &Trained) -> f64 {
    trained
        .epochs
        .last()
        .and_then(|e| e.valid)
        .expect("validation rows")
        .score()
}
