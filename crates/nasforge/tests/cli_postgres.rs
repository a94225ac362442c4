//! A study in PostgreSQL: `search --storage URL --study NAME` with `nasforge worker`s joining
//! it, and what goes wrong. Needs the server `source .ci/postgres` starts; without one these
//! tests are skipped, or fail under CI.

mod common;
#[path = "../../nasforge-core/tests/common/db.rs"]
mod db;
use common::*;
use db::Db;
use nasforge_core::study::{PostgresStorage, Storage, TrialState};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_nasforge");

#[test]
fn a_search_and_two_workers_share_one_postgres_study() {
    let Some(db) = Db::postgres("cli_share") else {
        return;
    };
    let url = db.url();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let iris = iris();
    let search = Command::new(EXE)
        .args(["search", "--data", &iris, "--target", "species"])
        .args(["--epochs", "4", "--batch-size", "16", "--trials", "16"])
        .args(["--final-seeds", "1", "--final-epochs", "2", "--json"])
        .args(["--storage", &url, "--study", "iris"])
        .arg("--run-dir")
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Workers join once the search has made the study.
    let start = Instant::now();
    loop {
        let made = PostgresStorage::open(&url)
            .ok()
            .and_then(|s| s.study("iris").ok().flatten())
            .is_some();
        if made {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no study made");
        std::thread::sleep(Duration::from_millis(50));
    }
    let workers: Vec<_> = (1..=2)
        .map(|k| {
            Command::new(EXE)
                .args(["worker", "--storage", &url, "--study", "iris", "--quiet"])
                .args(["--index", &k.to_string(), "--threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "worker: {}", stderr(&o));
    }
    let o = search.wait_with_output().unwrap();
    assert!(o.status.success(), "search: {}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["trials"], 16);
    assert!(
        v["test_accuracy_mean"].as_f64().is_some(),
        "final training ran"
    );
    let trials = PostgresStorage::open(&url).unwrap().trials("iris").unwrap();
    let counted: Vec<_> = trials.iter().filter(|t| !t.was_interrupted()).collect();
    assert_eq!(counted.len(), 16, "exactly the trials asked for");
    assert!(counted.iter().all(|t| t.state == TrialState::Complete));
    let keys: BTreeSet<&str> = counted.iter().map(|t| t.arch_key.as_str()).collect();
    assert_eq!(keys.len(), 16, "no arch trained twice");
    let by: BTreeSet<&str> = counted.iter().map(|t| t.worker.as_str()).collect();
    eprintln!("trials by {} worker(s): {by:?}", by.len());
    // The run directory reads the study from the database.
    let status = json(&nasforge(&["status", run.to_str().unwrap(), "--json"]));
    assert_eq!(status["trials_finished"], 16, "{status}");
    let listed = status["workers"].as_array().unwrap();
    assert_eq!(listed.len(), by.len(), "{status}");
    let o = nasforge(&["runs", tmp.path().to_str().unwrap()]);
    assert!(stdout(&o).contains("16/16"), "{}", stdout(&o));
    // And from any machine, without the run directory.
    let remote = json(&nasforge(&[
        "status",
        "--storage",
        &url,
        "--study",
        "iris",
        "--json",
    ]));
    assert_eq!(remote["trials_finished"], 16, "{remote}");
    assert_eq!(remote["state"], "done", "{remote}");
    assert_eq!(remote["workers"].as_array().unwrap().len(), by.len());
    let o = nasforge(&["runs", "--storage", &url]);
    assert!(
        stdout(&o).contains("iris") && stdout(&o).contains("16/16"),
        "{}",
        stdout(&o)
    );
    let o = nasforge(&["status", "--storage", &url, "--study", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("it holds iris"), "{}", stderr(&o));
}

#[test]
fn bad_storage_study_names_passwords_and_configs_are_clear_errors() {
    let Some(db) = Db::postgres("cli_bad") else {
        return;
    };
    let url = db.url();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let table = |extra: &[&str], run: &str| {
        let mut args = vec![
            "search",
            "--evaluator",
            "table",
            "--trials",
            "5",
            "--quiet",
            "--run-dir",
        ];
        let run = dir(run);
        args.push(&run);
        args.extend_from_slice(extra);
        nasforge(&args)
    };
    // A worker for a study nobody made.
    let o = nasforge(&["worker", "--storage", &url, "--study", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("there is no study `nope`"),
        "{}",
        stderr(&o)
    );
    // A wrong password: a non-zero exit that says so, without the password.
    let config: postgres::Config = url.parse().unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    let wrong = url.replacen(&format!(":{password}@"), ":wrong-password@", 1);
    let o = nasforge(&["worker", "--storage", &wrong, "--study", "a"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("password authentication failed"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("wrong-password"), "{}", stderr(&o));
    // --storage needs --study; it takes a PostgreSQL URL; it shares the study, so what needs
    // one process is refused, before anything is written.
    for (extra, says) in [
        (vec!["--storage", url.as_str()], "--storage needs --study"),
        (vec!["--study", "a"], "without --storage"),
        (
            vec!["--storage", "/tmp/study.db", "--study", "a"],
            "takes a PostgreSQL URL",
        ),
    ] {
        let o = table(&extra, "refused");
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
        assert!(!tmp.path().join("refused").exists());
    }
    let o = nasforge(&[
        "search",
        "--method",
        "spos",
        "--storage",
        &url,
        "--study",
        "a",
        "--run-dir",
        &dir("spos"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--storage shares the search"),
        "{}",
        stderr(&o)
    );
    // Two configurations under one study name: the second is refused, the study kept.
    let o = table(&["--storage", &url, "--study", "a"], "first");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = table(
        &["--storage", &url, "--study", "a", "--strategy", "random"],
        "second",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another configuration"),
        "{}",
        stderr(&o)
    );
    let kept = PostgresStorage::open(&url).unwrap().trials("a").unwrap();
    assert_eq!(kept.len(), 5);
}

#[test]
fn a_resume_that_raises_trials_reaches_workers_that_join_later() {
    let Some(db) = Db::postgres("cli_resume") else {
        return;
    };
    let url = db.url();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let run = run.to_str().unwrap();
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--trials",
        "5",
        "--quiet",
        "--storage",
        &url,
        "--study",
        "r",
        "--run-dir",
        run,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nasforge(&[
        "search",
        "--resume",
        "--run-dir",
        run,
        "--trials",
        "9",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let storage = PostgresStorage::open(&url).unwrap();
    assert_eq!(storage.study("r").unwrap().unwrap().config["trials"], 9);
    assert_eq!(storage.trials("r").unwrap().len(), 9);
    // A worker joining now reads 9: the study is full, it ends at once, adding nothing.
    let o = nasforge(&["worker", "--storage", &url, "--study", "r", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(storage.trials("r").unwrap().len(), 9);
    // A Kubernetes Indexed Job's pod and a Slurm array task take their index from the
    // environment (+1: the search is 0).
    for (var, value, index) in [
        ("JOB_COMPLETION_INDEX", "3", "worker 4 "),
        ("SLURM_ARRAY_TASK_ID", "7", "worker 8 "),
    ] {
        let o = Command::new(EXE)
            .args(["worker", "--storage", &url, "--study", "r"])
            .env(var, value)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains(index), "{var}: {}", stderr(&o));
    }
}
