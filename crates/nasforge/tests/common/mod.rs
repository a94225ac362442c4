//! Helpers shared by the end-to-end tests of the binary (each test file uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `nasforge` binary under test.
pub fn nasforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nasforge"))
        .args(args)
        .output()
        .expect("run nasforge")
}

/// Its stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Its stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout and stderr together (for messages that may go to either).
pub fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// The one JSON document a successful command printed.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("one JSON document on stdout")
}

/// A file shipped inside the project (`rel` from the workspace root): a clone alone passes its
/// tests, without `../shared`.
pub fn project_file(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    assert!(p.exists(), "{} is missing from the project", p.display());
    p.to_string_lossy().into_owned()
}

/// The NAS-Bench-201 CIFAR-10 table the binary has built in, as a `--table` file.
pub fn nb201_table() -> String {
    project_file("crates/nasforge-core/data/nb201_cifar10.csv.gz")
}

/// The text of the built-in NAS-Bench-201 table (CSV).
pub fn nb201_csv_text() -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(nb201_table()).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Fisher's iris (150 rows, 4 measurements, `species`).
pub fn iris() -> String {
    project_file("crates/nasforge/tests/data/iris.csv")
}

/// The 8x8 digits the binary embeds, as a CSV file (`p0..p63`, `label`).
pub fn digits_csv() -> String {
    project_file("crates/nasforge-nn/data/digits.csv.gz")
}

/// The Python with onnxruntime (`NASFORGE_ONNX_PYTHON`); unset skips the onnxruntime check
/// with a message, except under CI, where it is a failure.
pub fn onnx_python() -> Option<String> {
    match std::env::var("NASFORGE_ONNX_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("NASFORGE_ONNX_PYTHON is not set: CI must check the ONNX export against onnxruntime (.ci/run creates a venv)")
        }
        _ => {
            eprintln!("onnxruntime check skipped: set NASFORGE_ONNX_PYTHON to a Python with onnxruntime and numpy");
            None
        }
    }
}

pub fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Runs `model` in onnxruntime on `raw` (shape `shape`) through `onnx_check.py` and asserts
/// that its `output` is `expected` to 1e-4 (when `NASFORGE_ONNX_PYTHON` is set).
pub fn onnxruntime_agrees(
    tmp: &Path,
    name: &str,
    model: &Path,
    raw: &[f32],
    shape: &[usize],
    expected: &[f32],
) {
    let Some(python) = onnx_python() else {
        return;
    };
    let (input, want) = (tmp.join("in.f32"), tmp.join("out.f32"));
    write_f32(&input, raw);
    write_f32(&want, expected);
    let manifest = tmp.join("manifest.json");
    let case = serde_json::json!([{
        "name": name, "model": model, "input": input, "input_shape": shape,
        "expected": want, "expected_shape": [shape[0], expected.len() / shape[0]],
        "tol": 1e-4,
    }]);
    std::fs::write(&manifest, case.to_string()).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nasforge-nn/tests/onnx_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&manifest)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{said}");
    assert!(out.status.success(), "onnxruntime disagrees:\n{said}");
}

/// `nasforge search --resume --run-dir DIR EXTRA...`.
pub fn resume(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["search", "--resume", "--run-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    nasforge(&args)
}

/// Every trial of the run in `dir`, as `status --json` shows it, in trial-number order.
pub fn trials_of(dir: &Path) -> Vec<serde_json::Value> {
    let o = nasforge(&[
        "status",
        dir.to_str().unwrap(),
        "--json",
        "--last",
        "100000",
    ]);
    let mut trials = json(&o)["latest"].as_array().expect("trials").clone();
    trials.sort_by_key(|t| t["number"].as_u64());
    trials
}

/// `nasforge predict --model BEST --data DATA EXTRA...`.
pub fn predict(best: &Path, data: &str, extra: &[&str]) -> Output {
    let mut args = vec!["predict", "--model", best.to_str().unwrap(), "--data", data];
    args.extend_from_slice(extra);
    nasforge(&args)
}

/// Asserts exit code 2 (bad input) with every one of `needles` in stderr, and no panic.
pub fn bad(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{needles:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}
