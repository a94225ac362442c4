//! ONNX export against real onnxruntime: every space's networks, run by nasforge and by
//! onnxruntime on the same raw inputs, agree to 1e-4.
//!
//! onnxruntime is driven through `tests/onnx_check.py` with the Python named by
//! `NASFORGE_ONNX_PYTHON` (a venv with onnxruntime, numpy and optionally onnx; `.ci/run` makes
//! one). Without it the test is skipped with a message, except under CI (`CI` set), where that
//! is a failure.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use nasforge_core::rng::Rng;
use nasforge_core::space;
use nasforge_core::Params;
use nasforge_nn::data::{Impute, Imputer, Normalizer, Task};
use nasforge_nn::device::DeviceKind;
use nasforge_nn::model::Network;
use nasforge_nn::onnx::{self, OnnxOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python to run `onnx_check.py` with, or `None` (after saying so) when the test should
/// be skipped.
fn onnx_python() -> Option<String> {
    match std::env::var("NASFORGE_ONNX_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!(
            "NASFORGE_ONNX_PYTHON is not set: CI must check the ONNX export against onnxruntime \
             (set it to a Python with onnxruntime and numpy; .ci/run creates one)"
        ),
        _ => {
            eprintln!(
                "skipped: set NASFORGE_ONNX_PYTHON to a Python with onnxruntime and numpy to \
                 check the ONNX export against onnxruntime"
            );
            None
        }
    }
}

/// Scales every vector parameter and buffer (biases, batch-norm scale, shift, running mean and
/// variance) by a random factor in [0.5, 1.5) and shifts it by [0, 0.3), so that none of them
/// keeps its initial value and running variances stay positive.
struct Perturb;

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 1 {
            return param;
        }
        param.map(|t| {
            let (shape, dev) = (t.shape(), t.device());
            t * Tensor::random(shape.clone(), Distribution::Uniform(0.5, 1.5), &dev)
                + Tensor::random(shape, Distribution::Uniform(0.0, 0.3), &dev)
        })
    }
}

/// One network to export and check.
struct Case {
    name: String,
    net: Network,
    opts: OnnxOptions,
}

fn raw_len(c: &Case) -> usize {
    c.opts.input_shape.iter().product()
}

/// flex draws random numbers from one process-wide generator: tests take turns so that each
/// network is the same from run to run.
static RNG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A network of `space` with `params` and the arch `arch` (or one sampled with `seed`), with
/// batch-norm statistics from a few training-mode passes and perturbed vector parameters.
fn case(space: &str, params: &[&str], arch: Option<&str>, seed: u64) -> (String, Network) {
    let _turn = RNG_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let s = space::build(space, &Params::parse(params).unwrap()).unwrap();
    let a = match arch {
        Some(t) => s.parse(t).unwrap(),
        None => s.sample(&mut Rng::new(seed)),
    };
    let spec = s.decode(&a).unwrap();
    let dev = DeviceKind::Cpu.training_device();
    dev.seed(seed);
    let net = Network::new(&spec, &dev);
    let d: usize = spec.input_shape().iter().product();
    for _ in 0..3 {
        let x = match spec.token_vocab() {
            Some(v) => {
                Tensor::<2>::random([8, d], Distribution::Uniform(0.0, v as f64), &dev).floor()
            }
            None => Tensor::<2>::random([8, d], Distribution::Normal(0.5, 2.0), &dev),
        };
        let _ = net.forward_flat(x);
    }
    let net = net.valid().map(&mut Perturb);
    (format!("{space} {}", s.format(&a)), net)
}

/// A normaliser with random statistics for inputs of `shape`, scaling regression targets.
fn normalizer(shape: &[usize], task: Task, rng: &mut Rng) -> Normalizer {
    let (groups, plane) = match *shape {
        [c, h, w] => (c, h * w),
        [f] => (f, 1),
        _ => unreachable!(),
    };
    Normalizer {
        mean: (0..groups)
            .map(|_| (rng.next_f64() * 4.0 - 2.0) as f32)
            .collect(),
        std: (0..groups)
            .map(|_| (0.5 + rng.next_f64() * 2.0) as f32)
            .collect(),
        plane,
        target: (task == Task::Regression).then_some((3.5, 2.25)),
    }
}

/// Raw rows around the normaliser's statistics, a few far enough out to be clipped.
fn raw_inputs(n: usize, norm: &Normalizer, len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n * len)
        .map(|k| {
            let g = (k % len) / norm.plane;
            let z = if rng.below(50) == 0 {
                if rng.below(2) == 0 {
                    40.0
                } else {
                    -40.0
                }
            } else {
                rng.normal() * 2.0
            };
            norm.mean[g] + norm.std[g] * z as f32
        })
        .collect()
}

/// What `nasforge predict` computes: fill missing values, normalise, clip, run, un-scale
/// regression outputs.
fn expected(c: &Case, raw: &[f32], n: usize) -> Vec<f32> {
    let len = raw_len(c);
    let x: Vec<f32> = match c.opts.normalizer.as_ref() {
        // Token ids go in as they are.
        None => raw.to_vec(),
        Some(norm) => raw
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let v = match &c.opts.imputer {
                    Some(imp) if v.is_nan() => imp.fill[k % len],
                    _ => v,
                };
                let g = (k % len) / norm.plane;
                ((v - norm.mean[g]) / norm.std[g]).clamp(-Normalizer::CLIP, Normalizer::CLIP)
            })
            .collect(),
    };
    let dev = DeviceKind::Cpu.device();
    let y = c
        .net
        .forward_flat(Tensor::<2>::from_data(TensorData::new(x, [n, len]), &dev))
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    match (
        c.opts.task,
        c.opts.normalizer.as_ref().and_then(|n| n.target),
    ) {
        (Task::Regression, Some((m, s))) => y.iter().map(|v| v * s + m).collect(),
        _ => y,
    }
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Exports every case, writes inputs and nasforge's outputs, and runs `onnx_check.py` on them;
/// first checks that the cases use every op kind in `kinds`.
fn check_against_onnxruntime(python: &str, cases: Vec<Case>, kinds: &[&str]) {
    let used: std::collections::BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.net.spec().op_counts().into_keys())
        .collect();
    for k in kinds {
        assert!(used.contains(k), "no case uses {k}: {used:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    let n = 5;
    let mut manifest = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let bytes = onnx::export(&c.net, &c.opts).unwrap();
        let model = dir.path().join(format!("case{k}.onnx"));
        std::fs::write(&model, bytes).unwrap();
        let len = raw_len(c);
        let mut raw = match (c.opts.normalizer.as_ref(), c.net.spec().token_vocab()) {
            (Some(norm), _) => raw_inputs(n, norm, len, &mut rng),
            (None, Some(vocab)) => (0..n * len).map(|_| rng.below(vocab) as f32).collect(),
            (None, None) => unreachable!("cases of vectors and images have normalisers"),
        };
        if c.opts.imputer.is_some() {
            // Every fifth value missing, every row and input element touched.
            for v in raw.iter_mut().step_by(5) {
                *v = f32::NAN;
            }
        }
        let want = expected(c, &raw, n);
        let (input, exp) = (
            dir.path().join(format!("case{k}.in.f32")),
            dir.path().join(format!("case{k}.out.f32")),
        );
        write_f32(&input, &raw);
        write_f32(&exp, &want);
        let mut input_shape = vec![n];
        input_shape.extend(&c.opts.input_shape);
        manifest.push(serde_json::json!({
            "name": c.name, "model": model, "input": input, "input_shape": input_shape,
            "expected": exp, "expected_shape": [n, want.len() / n], "tol": 1e-4,
            // A language model's probabilities: a softmax per position, over the vocabulary.
            "softmax_groups": c.net.spec().output_shape().last(),
        }));
    }
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&manifest_path)
        .output()
        .expect("NASFORGE_ONNX_PYTHON runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "onnxruntime disagrees:\n{text}");
}

fn image_case(space: &str, params: &[&str], arch: Option<&str>, seed: u64) -> Case {
    let (name, net) = case(space, params, arch, seed);
    let shape = net.spec().input_shape().to_vec();
    let norm = normalizer(&shape, Task::Classification, &mut Rng::new(seed));
    Case {
        name,
        net,
        opts: OnnxOptions {
            input_shape: shape,
            imputer: None,
            normalizer: Some(norm),
            task: Task::Classification,
            classes: (0..10).map(|c| c.to_string()).collect(),
        },
    }
}

#[test]
fn cell_spaces_match_onnxruntime() {
    let Some(python) = onnx_python() else {
        return;
    };
    let nb201 = ["channels=4", "cells=1", "input=8x8x3"];
    let darts = ["channels=4", "layers=3", "input=8x8x3"];
    let cases = vec![
        image_case(
            "nb201",
            &nb201,
            Some("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"),
            1,
        ),
        image_case(
            "nb201",
            &nb201,
            Some("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
            2,
        ),
        image_case("nb201", &nb201, None, 3),
        image_case("darts", &darts, None, 4),
        image_case("darts", &darts, None, 5),
    ];
    let kinds = [
        "conv2d",
        "batch_norm",
        "relu",
        "avg_pool",
        "max_pool",
        "zero",
        "identity",
        "add",
        "crop",
        "concat",
        "global_avg_pool",
        "linear",
    ];
    check_against_onnxruntime(&python, cases, &kinds);
}

#[test]
fn macro_and_mlp_spaces_match_onnxruntime() {
    let Some(python) = onnx_python() else {
        return;
    };
    let macro_params = ["layers=4", "widths=4,8", "stem=4", "input=8x8x3"];
    let mut cases = vec![
        image_case("macro", &macro_params, None, 6),
        image_case("macro", &macro_params, None, 7),
    ];
    let mlp = ["input=12", "widths=8,16", "max_depth=3", "dropouts=0,0.3"];
    for (k, act) in ["relu", "gelu", "tanh", "silu"].into_iter().enumerate() {
        let arch = format!(
            "depth=3,width_1=16,width_2=8,width_3=16,activation={act},dropout=0.3,batch_norm={}",
            if k % 2 == 0 { "on" } else { "off" }
        );
        let task = if act == "tanh" {
            Task::Regression
        } else {
            Task::Classification
        };
        let classes = if task == Task::Regression { 1 } else { 3 };
        let classes_param = format!("classes={classes}");
        let mut params = mlp.to_vec();
        params.push(&classes_param);
        let (name, net) = case("mlp", &params, Some(&arch), 20 + k as u64);
        let norm = normalizer(&[12], task, &mut Rng::new(k as u64));
        cases.push(Case {
            name,
            net,
            opts: OnnxOptions {
                input_shape: vec![12],
                imputer: None,
                normalizer: Some(norm),
                task,
                classes: (0..classes).map(|c| c.to_string()).collect(),
            },
        });
    }
    // An MLP reading image rows: per-channel normalisation, then a flatten into the network.
    let (name, net) = case(
        "mlp",
        &["input=48", "widths=8", "max_depth=1", "classes=4"],
        Some("depth=1,width_1=8,activation=gelu,dropout=0,batch_norm=on"),
        30,
    );
    let norm = normalizer(&[3, 4, 4], Task::Classification, &mut Rng::new(30));
    cases.push(Case {
        name: format!("{name} on 4x4x3 images"),
        net,
        opts: OnnxOptions {
            input_shape: vec![3, 4, 4],
            imputer: None,
            normalizer: Some(norm),
            task: Task::Classification,
            classes: (0..4).map(|c| c.to_string()).collect(),
        },
    });
    let kinds = [
        "conv2d",
        "max_pool",
        "avg_pool",
        "identity",
        "add",
        "gelu",
        "tanh",
        "silu",
        "relu",
        "dropout",
        "batch_norm",
        "linear",
    ];
    check_against_onnxruntime(&python, cases, &kinds);
}

/// `case` with an imputer holding a distinct fill value per input element.
fn with_imputer(mut c: Case, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    c.opts.imputer = Some(Imputer {
        method: Impute::Median,
        fill: (0..raw_len(&c))
            .map(|_| (rng.next_f64() * 6.0 - 3.0) as f32)
            .collect(),
    });
    c.name += " with missing inputs";
    c
}

#[test]
fn missing_inputs_are_filled_in_the_graph_as_predict_fills_them() {
    let Some(python) = onnx_python() else {
        return;
    };
    let (name, net) = case(
        "mlp",
        &["input=12", "widths=8", "max_depth=2", "classes=1"],
        Some("depth=2,width_1=8,width_2=8,activation=relu,dropout=0,batch_norm=on"),
        40,
    );
    let norm = normalizer(&[12], Task::Regression, &mut Rng::new(40));
    let table = Case {
        name,
        net,
        opts: OnnxOptions {
            input_shape: vec![12],
            imputer: None,
            normalizer: Some(norm),
            task: Task::Regression,
            classes: Vec::new(),
        },
    };
    let cases = vec![
        with_imputer(table, 41),
        with_imputer(
            image_case(
                "macro",
                &["layers=2", "widths=4", "stem=4", "input=8x8x3"],
                None,
                42,
            ),
            43,
        ),
    ];
    check_against_onnxruntime(&python, cases, &["linear", "conv2d"]);
}

#[test]
fn export_rejects_an_imputer_that_does_not_fit() {
    let (_, net) = case("mlp", &["input=12"], None, 1);
    let opts = OnnxOptions {
        input_shape: vec![12],
        imputer: Some(Imputer {
            method: Impute::Mean,
            fill: vec![0.0; 11],
        }),
        normalizer: None,
        task: Task::Classification,
        classes: Vec::new(),
    };
    let err = onnx::export(&net, &opts).unwrap_err().to_string();
    assert!(err.contains("imputer"), "{err}");
}

#[test]
fn export_rejects_an_input_shape_that_does_not_fit() {
    let (_, net) = case("mlp", &["input=12"], None, 1);
    let opts = OnnxOptions {
        input_shape: vec![13],
        imputer: None,
        normalizer: None,
        task: Task::Classification,
        classes: Vec::new(),
    };
    let err = onnx::export(&net, &opts).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
}

fn token_case(params: &[&str], seed: u64) -> Case {
    let (name, net) = case("transformer", params, None, seed);
    let outputs = net.spec().output_shape().iter().product::<usize>();
    Case {
        name,
        opts: OnnxOptions {
            input_shape: net.spec().input_shape().to_vec(),
            imputer: None,
            normalizer: None,
            task: Task::Classification,
            classes: (0..outputs).map(|c| c.to_string()).collect(),
        },
        net,
    }
}

#[test]
fn transformer_space_matches_onnxruntime() {
    let Some(python) = onnx_python() else {
        return;
    };
    let base = [
        "input=6",
        "vocab=11",
        "widths=8,12",
        "heads=1,2,4",
        "max_depth=3",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    let mixers = with(&["mixers=attention,conv,identity", "classes=3"]);
    let lm = with(&["head=lm", "mixers=attention,conv", "kernel=2"]);
    let sinusoidal = with(&["positions=sinusoidal", "dropout=0.1", "classes=4"]);
    let mut cases: Vec<Case> = (0..4).map(|s| token_case(&mixers, s)).collect();
    cases.extend((0..3).map(|s| token_case(&lm, 10 + s)));
    cases.push(token_case(&sinusoidal, 20));
    check_against_onnxruntime(
        &python,
        cases,
        &[
            "embedding",
            "position",
            "layer_norm",
            "attention",
            "seq_conv",
            "seq_pool",
            "lm_head",
            "linear",
            "gelu",
        ],
    );
}
