//! End-to-end tests of `nasforge export`: a real (tiny) run exported as ONNX and checked
//! against `nasforge predict` and onnxruntime, as JSON read back by `show` and `train --arch`,
//! and the user errors.

mod common;
use common::{json, nasforge, onnxruntime_agrees};

use burn::prelude::*;
use nasforge_nn::bundle;
use nasforge_nn::data::{self, embedded_digits, CsvOptions, Dataset};
use nasforge_nn::device::DeviceKind;
use std::path::{Path, PathBuf};

/// The logits of the saved model in `best` on raw rows, computed as `nasforge predict` does
/// (normalise and clip with the saved statistics, run the network), and the labels they give.
fn reference(best: &Path, raw: &Dataset, n: usize) -> (Vec<f32>, Vec<String>) {
    let (info, net) = bundle::load(best, DeviceKind::Cpu).unwrap();
    let mut normalised = raw.clone();
    info.normalizer.as_ref().unwrap().apply(&mut normalised);
    let len = raw.row_len();
    let x = Tensor::<2>::from_data(
        TensorData::new(normalised.features[..n * len].to_vec(), [n, len]),
        &DeviceKind::Cpu.device(),
    );
    let logits = net
        .forward_flat(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let k = info.classes.len();
    let labels = logits
        .chunks(k)
        .map(|row| {
            let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            info.classes[best].clone()
        })
        .collect();
    (logits, labels)
}

/// A one-trial, one-epoch search on the embedded digits, with a model in `best/`.
fn tiny_run(dir: &Path) {
    json(&nasforge(&[
        "search",
        "--run-dir",
        dir.to_str().unwrap(),
        "--trials",
        "1",
        "--epochs",
        "1",
        "--final-seeds",
        "1",
        "--final-epochs",
        "1",
        "--space-param",
        "channels=4",
        "--space-param",
        "cells=1",
        "--json",
    ]));
}

#[test]
fn a_run_exports_to_onnx_that_agrees_with_predict_and_to_json_that_show_and_train_read() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    tiny_run(&run);
    let best = run.join("best");
    let r = run.to_str().unwrap();

    // ONNX, at the default place.
    let e = json(&nasforge(&["export", r, "--format", "onnx", "--json"]));
    let model = best.join("model.onnx");
    assert_eq!(e["format"], "onnx");
    assert_eq!(PathBuf::from(e["out"].as_str().unwrap()), model);
    let onnx_bytes = std::fs::read(&model).unwrap();
    assert_eq!(e["bytes"].as_u64().unwrap(), onnx_bytes.len() as u64);
    // --quiet prints nothing; --out chooses the file; the export is deterministic.
    let other = tmp.path().join("m.onnx");
    let q = nasforge(&[
        "export",
        r,
        "--format",
        "onnx",
        "--out",
        other.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    assert!(q.stdout.is_empty());
    assert_eq!(std::fs::read(&other).unwrap(), onnx_bytes);

    // What predict computes on 40 raw digit rows: its labels, and the logits behind them.
    let digits = embedded_digits();
    let n = 40;
    let len = digits.row_len();
    let raw = digits.features[..n * len].to_vec();
    let (info, _) = bundle::load(&best, DeviceKind::Cpu).unwrap();
    let csv = tmp.path().join("rows.csv");
    let mut text = digits.feature_names.join(",") + "\n";
    for row in raw.chunks(len) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text += &(cells.join(",") + "\n");
    }
    std::fs::write(&csv, text).unwrap();
    let p = json(&nasforge(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]));
    let (logits, labels) = reference(&best, &digits, n);
    assert_eq!(
        p["predictions"],
        serde_json::json!(labels),
        "the reference logits are predict's"
    );
    onnxruntime_agrees(
        tmp.path(),
        &format!("digits run {}", info.arch),
        &model,
        &raw,
        &[n, 1, 8, 8],
        &logits,
    );

    // JSON: the arch with its space parameters and NetSpec.
    let j = json(&nasforge(&["export", r, "--format", "json", "--json"]));
    let file = best.join("export.json");
    assert_eq!(PathBuf::from(j["out"].as_str().unwrap()), file);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["space"], "nb201");
    assert_eq!(doc["arch"], info.arch.as_str());
    let params = doc["space_params"].as_array().unwrap();
    assert!(params.contains(&"channels=4".into()), "{params:?}");
    assert_eq!(doc["input_shape"], serde_json::json!([1, 8, 8]));
    assert_eq!(doc["output_shape"], serde_json::json!([10]));
    assert!(doc["netspec"]["nodes"].as_array().unwrap().len() > 5);
    assert!(doc["choices"].as_object().unwrap().len() == 6);
    let f = file.to_str().unwrap();
    // show reads it back with its space parameters (the default nb201 has 16 channels and 5
    // cells per stage, so the counts would differ).
    let s = json(&nasforge(&["show", f, "--json"]));
    assert_eq!(s["arch"], doc["arch"]);
    assert_eq!(s["params"], doc["params"]);
    assert_eq!(s["macs"], doc["macs"]);
    assert_eq!(s["space_params"]["channels"], 4);
    // ... and so does train --arch.
    let t = json(&nasforge(&[
        "train",
        "--arch",
        f,
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--run-dir",
        tmp.path().join("t").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(t["arch"], doc["arch"]);
    assert_eq!(t["params"], doc["params"]);
}

#[test]
fn an_mlp_run_on_a_table_exports_raw_feature_input_and_its_space_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("iris");
    let iris = common::iris();
    let iris = iris.as_str();
    json(&nasforge(&[
        "search",
        "--run-dir",
        run.to_str().unwrap(),
        "--data",
        iris,
        "--target",
        "species",
        "--trials",
        "1",
        "--epochs",
        "2",
        "--final-seeds",
        "1",
        "--final-epochs",
        "2",
        "--batch-size",
        "16",
        "--json",
    ]));
    let r = run.to_str().unwrap();
    let best = run.join("best");
    json(&nasforge(&["export", r, "--format", "onnx", "--json"]));
    let raw = data::read(
        Path::new(iris),
        &CsvOptions {
            target: "species".into(),
            ..CsvOptions::default()
        },
    )
    .unwrap();
    let n = raw.len();
    let (logits, labels) = reference(&best, &raw, n);
    let p = json(&nasforge(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--data",
        iris,
        "--json",
    ]));
    assert_eq!(p["predictions"], serde_json::json!(labels));
    onnxruntime_agrees(
        tmp.path(),
        "iris mlp run",
        &best.join("model.onnx"),
        &raw.features,
        &[n, 4],
        &logits,
    );
    // The JSON export carries input=4 and classes=3: show builds the same network (the
    // default MLP space reads 64 features into 10 classes).
    let out = tmp.path().join("arch.json");
    let o = out.to_str().unwrap();
    json(&nasforge(&[
        "export", r, "--format", "json", "--out", o, "--json",
    ]));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let s = json(&nasforge(&["show", o, "--json"]));
    assert_eq!(s["params"], doc["params"]);
    assert_eq!(s["input_shape"], serde_json::json!([4]));
    assert_eq!(s["output_shape"], serde_json::json!([3]));
}

#[test]
fn export_errors_exit_2_and_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |args: &[&str], want: &str| {
        let o = nasforge(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: `{want}` not in {err}");
    };
    let missing = tmp.path().join("nope");
    check(
        &["export", missing.to_str().unwrap(), "--format", "onnx"],
        "does not exist",
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    check(
        &["export", empty.to_str().unwrap(), "--format", "onnx"],
        "is not a nasforge run",
    );
    // A run stopped before final training: config and study, no model.
    let unfinished = tmp.path().join("unfinished");
    std::fs::create_dir(&unfinished).unwrap();
    std::fs::write(unfinished.join("config.toml"), "").unwrap();
    std::fs::write(unfinished.join("study.db"), "").unwrap();
    let u = unfinished.to_str().unwrap();
    check(&["export", u, "--format", "onnx"], "no trained model");
    check(&["export", u, "--format", "onnx"], "nasforge train");
    // A model description without weights.
    std::fs::create_dir(unfinished.join("best")).unwrap();
    std::fs::write(unfinished.join("best/model.json"), "{}").unwrap();
    check(&["export", u, "--format", "onnx"], "no best/weights.bpk");
    check(&["export", u, "--format", "json"], "not a nasforge model");
    check(
        &["export", u, "--format", "tflite"],
        "`tflite` is not one of: onnx, json",
    );
}
