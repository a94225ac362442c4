//! `search --workers N`: several processes on one run's study.

mod common;
use common::*;
use nasforge_core::study::{SqliteStorage, Storage, Trial, TrialState};
use std::collections::BTreeSet;
use std::path::Path;

fn iris_search(dir: &Path, extra: &[&str]) -> std::process::Output {
    let iris = iris();
    let mut args = vec![
        "search",
        "--data",
        &iris,
        "--target",
        "species",
        "--epochs",
        "3",
        "--final-seeds",
        "1",
        "--final-epochs",
        "2",
        "--batch-size",
        "16",
        "--run-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    nasforge(&args)
}

/// The trials of the run that count (not interrupted or failed as stale).
fn counted(dir: &Path) -> Vec<Trial> {
    SqliteStorage::open_existing(&dir.join("study.db"))
        .unwrap()
        .trials("search")
        .unwrap()
        .into_iter()
        .filter(|t| !t.was_interrupted())
        .collect()
}

#[test]
fn two_workers_share_one_search_without_repeating_an_arch_and_a_resume_extends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let v = json(&iris_search(
        &run,
        &["--workers", "2", "--trials", "10", "--json"],
    ));
    assert_eq!(v["trials"], 10);
    assert!(
        v["test_accuracy_mean"].as_f64().is_some(),
        "final training ran"
    );
    let trials = counted(&run);
    assert_eq!(trials.len(), 10);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    let keys: BTreeSet<&str> = trials.iter().map(|t| t.arch_key.as_str()).collect();
    assert_eq!(keys.len(), 10, "no arch trained twice");
    let workers: BTreeSet<&str> = trials.iter().map(|t| t.worker.as_str()).collect();
    assert_eq!(
        workers.len(),
        2,
        "both processes trained trials: {workers:?}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("workers = 2"), "{config}");

    let o = resume(&run, &["--trials", "14", "--json"]);
    assert_eq!(json(&o)["trials"], 14);
    let again = counted(&run);
    assert_eq!(again.len(), 14);
    let keys: BTreeSet<&str> = again.iter().map(|t| t.arch_key.as_str()).collect();
    assert_eq!(keys.len(), 14);
}

#[test]
fn settings_one_process_needs_are_refused_with_workers_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (vec!["--method", "spos"], "one-shot"),
        (vec!["--scheduler", "hyperband"], "asha"),
        (vec!["--epoch-budget", "10"], "--epoch-budget"),
    ] {
        let run = tmp.path().join(extra[1]);
        let mut args = vec!["--workers", "2"];
        args.extend(extra.iter().copied());
        let o = iris_search(&run, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
        assert!(!run.join("study.db").exists(), "{extra:?}: nothing written");
    }
    let run = tmp.path().join("many");
    let o = iris_search(&run, &["--workers", "65"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_worker_without_its_search_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = iris_search(&run, &["--workers", "2", "--trials", "2", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = counted(&run).len();
    let o = resume(&run, &["--worker-index", "1", "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no longer running"), "{}", stderr(&o));
    assert_eq!(counted(&run).len(), before, "nothing written");
}
