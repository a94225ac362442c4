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

/// A file in `../shared`. Missing data is a test failure, never a skip.
pub fn shared(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing: the tests need ../shared beside the repository (see README)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// The NAS-Bench-201 table in `../shared`.
pub fn nb201_table() -> String {
    shared("benchmarks/nb201/cifar10.csv")
}
