//! Transformer networks: counts equal PyTorch's, causal language models do not look ahead,
//! a classifier learns a task that needs attention across positions.

use burn::prelude::*;
use nasforge_core::netspec::NetSpec;
use nasforge_core::rng::Rng;
use nasforge_core::space::{Space, TransformerSpace};
use nasforge_core::Params;
use nasforge_nn::data::{Dataset, Targets};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::model::Network;
use nasforge_nn::train::{
    train, Control, OptimizerConfig, ScheduleConfig, TrainConfig, TrainSetup,
};

/// A Transformer of the space with uniform layers.
fn uniform(params: &[&str], depth: usize, width: usize, heads: usize, ratio: usize) -> NetSpec {
    let space = TransformerSpace::from_params(&Params::parse(params).unwrap()).unwrap();
    let arch = space.uniform(depth, width, heads, ratio).unwrap();
    space.decode(&arch).unwrap()
}

/// Parameter counts printed by PyTorch for the same three networks, built from `torch.nn`
/// modules by `benches/peer/transformer_params.py` (nanoGPT's block: LayerNorm, a `D -> 3D`
/// attention projection, `D -> D` output projection, Linear-GELU-Linear MLP, biases
/// everywhere, a head tied to the token embedding; a classifier ends in a mean over positions
/// and a Linear). Run it with `benches/peer/run_torch.sh` (NASFORGE_TORCH_SCRIPT set to it) to
/// see these figures again.
/// A reference network: name, depth, width, heads, MLP ratio, space parameters, PyTorch's count.
type Reference = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    &'static [&'static str],
    u64,
);

const TORCH: [Reference; 3] = [
    // nanoGPT's documented CPU configuration on Shakespeare's 65 characters: the 0.80M it
    // prints leaves out the 8,192 position parameters.
    (
        "nanoGPT CPU",
        4,
        128,
        4,
        4,
        &[
            "head=lm",
            "vocab=65",
            "input=64",
            "widths=128",
            "heads=4",
            "mlp_ratios=4",
        ],
        809_856,
    ),
    (
        "classifier",
        2,
        64,
        2,
        2,
        &[
            "vocab=256",
            "input=32",
            "classes=3",
            "widths=64",
            "heads=2",
            "mlp_ratios=2",
        ],
        85_699,
    ),
    (
        "wide lm",
        1,
        192,
        3,
        1,
        &[
            "head=lm",
            "vocab=1000",
            "input=16",
            "widths=192",
            "heads=3",
            "mlp_ratios=1",
        ],
        418_560,
    ),
];

#[test]
fn parameter_counts_equal_pytorchs() {
    let dev = DeviceKind::Cpu.device();
    for (name, depth, width, heads, ratio, params, torch) in TORCH {
        let spec = uniform(params, depth, width, heads, ratio);
        assert_eq!(spec.params(), torch, "{name}: NetSpec");
        let net = Network::new(&spec, &dev);
        assert_eq!(net.trainable_params() as u64, torch, "{name}: burn");
    }
}

fn logits(net: &Network, tokens: &[usize]) -> Vec<f32> {
    let x: Vec<f32> = tokens.iter().map(|&t| t as f32).collect();
    let dev = DeviceKind::Cpu.device();
    net.forward_flat(Tensor::<2>::from_data(
        TensorData::new(x, [1, tokens.len()]),
        &dev,
    ))
    .into_data()
    .convert::<f32>()
    .try_to_vec::<f32>()
    .unwrap()
}

#[test]
fn a_language_model_does_not_look_ahead() {
    let params = [
        "head=lm",
        "vocab=7",
        "input=8",
        "widths=16",
        "heads=2",
        "mixers=attention,conv",
        "kernel=3",
    ];
    let space = TransformerSpace::from_params(&Params::parse(&params).unwrap()).unwrap();
    let dev = DeviceKind::Cpu.device();
    let mut rng = Rng::new(5);
    for _ in 0..4 {
        let arch = space.sample(&mut rng);
        let net = Network::new(&space.decode(&arch).unwrap(), &dev);
        let a = [1, 2, 3, 4, 5, 6, 0, 1];
        let mut b = a;
        b[5] = 0;
        let (la, lb) = (logits(&net, &a), logits(&net, &b));
        // Positions 0..5 see the same prefix: the same logits; position 5 on see the change.
        let v = 7;
        for p in 0..8 {
            let same = la[p * v..(p + 1) * v]
                .iter()
                .zip(&lb[p * v..(p + 1) * v])
                .all(|(x, y)| (x - y).abs() < 1e-6);
            assert_eq!(same, p < 5, "{}: position {p}", space.format(&arch));
        }
    }
}

/// Sequences of random tokens; the class says whether token 1 comes before token 2 (both
/// appear once): no single position and no bag of tokens answers it, so the network must
/// learn from token and position together (gradients through embeddings, positions, layer
/// norms and attention).
fn order_task(rows: usize, len: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let (mut features, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        let mut row: Vec<usize> = (0..len).map(|_| 3 + rng.below(5)).collect();
        let i = rng.below(len);
        let mut j = rng.below(len - 1);
        if j >= i {
            j += 1;
        }
        row[i] = 1;
        row[j] = 2;
        ids.push(u32::from(i < j));
        features.extend(row.iter().map(|&t| t as f32));
    }
    Dataset {
        features,
        shape: vec![len],
        targets: Targets::Classes {
            ids,
            names: vec!["after".into(), "before".into()],
        },
        feature_names: Vec::new(),
        source: "order task".into(),
        target_scale: None,
    }
}

#[test]
fn a_classifier_learns_which_token_comes_first() {
    let data = order_task(600, 8, 3);
    let spec = uniform(
        &[
            "vocab=8",
            "input=8",
            "classes=2",
            "widths=32",
            "heads=2",
            "mlp_ratios=2",
        ],
        2,
        32,
        2,
        2,
    );
    let rows: Vec<usize> = (0..600).collect();
    let cfg = TrainConfig {
        epochs: 12,
        batch_size: 32,
        lr: 0.003,
        optimizer: OptimizerConfig::AdamW { weight_decay: 0.0 },
        schedule: ScheduleConfig::Constant,
        ..TrainConfig::default()
    };
    let mut best = 0.0f64;
    train(
        &spec,
        TrainSetup {
            data: &data,
            train_rows: &rows[..480],
            valid_rows: &rows[480..],
            config: &cfg,
            device: DeviceKind::Cpu,
        },
        1,
        &mut |e| {
            best = best.max(e.valid.unwrap().score());
            Control::Continue
        },
    )
    .unwrap();
    // Chance is 50%.
    assert!(best > 85.0, "validation accuracy {best}");
}

/// Every float parameter's shape and values.
struct Collect(Vec<(Vec<usize>, Vec<f32>)>);

impl burn::module::ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        let t = p.val();
        self.0.push((
            t.dims().to_vec(),
            t.into_data().try_to_vec::<f32>().unwrap(),
        ));
    }
}

#[test]
fn transformers_start_from_gpt2_initialisation() {
    use burn::module::Module;
    let spec = uniform(TORCH[0].5, 4, 128, 4, 4);
    let net = Network::new(&spec, &DeviceKind::Cpu.device());
    let mut all = Collect(Vec::new());
    net.visit(&mut all);
    let std = |v: &[f32]| {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let stds = |shape: &[usize]| -> Vec<f64> {
        all.0
            .iter()
            .filter(|(s, _)| s == shape)
            .map(|(_, v)| std(v))
            .collect()
    };
    // nanoGPT: 0.02 everywhere, 0.02 / sqrt(2 * 4 layers) for the two residual projections
    // of each block (attention's output [128, 128], the MLP's second linear [512, 128]).
    let residual = 0.02 / 8f64.sqrt();
    for (shape, want, count) in [
        (vec![128, 384], 0.02, 4),
        (vec![128, 512], 0.02, 4),
        (vec![128, 128], residual, 4),
        (vec![512, 128], residual, 4),
        (vec![65, 128], 0.02, 1),
    ] {
        let got = stds(&shape);
        assert_eq!(got.len(), count, "{shape:?}");
        for s in got {
            assert!(
                (s - want).abs() < 0.1 * want,
                "{shape:?}: std {s}, not {want}"
            );
        }
    }
    // Linear biases start at zero (layer norms' shifts too; their scales at one).
    for (shape, v) in &all.0 {
        if shape.len() == 1 && [384, 512].contains(&shape[0]) {
            assert!(v.iter().all(|&x| x == 0.0), "bias {shape:?}");
        }
    }
}
