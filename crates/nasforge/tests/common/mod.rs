//! Helpers shared by the end-to-end tests of the binary (each test file uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;
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

/// Fisher's iris (150 rows, 4 measurements, `species`).
pub fn iris() -> String {
    project_file("crates/nasforge/tests/data/iris.csv")
}

/// The 8x8 digits the binary embeds, as a CSV file (`p0..p63`, `label`).
pub fn digits_csv() -> String {
    project_file("crates/nasforge-nn/data/digits.csv.gz")
}
