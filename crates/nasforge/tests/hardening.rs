//! What must never give a wrong answer in silence: one writer per run, bad settings refused
//! before anything is written, a lost study never taken for a fresh start, closed pipes, a
//! search where every trial failed, the built-in benchmark.

mod common;

use common::{nasforge, nb201_table, resume, stderr, stdout, text};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A finished table search of `trials` trials in `dir` (fast: look-ups, no training).
fn table_run(dir: &Path, trials: usize) {
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--trials",
        &trials.to_string(),
        "--run-dir",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_second_writer_is_refused_while_the_first_runs_and_admitted_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    // A training search long enough to be caught in the act.
    let mut first = Command::new(env!("CARGO_BIN_EXE_nasforge"))
        .args([
            "search",
            "--trials",
            "40",
            "--epochs",
            "3",
            "--final-seeds",
            "1",
            "--final-epochs",
            "1",
            "--run-dir",
            r,
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run.join("activity.json").exists() {
        assert!(Instant::now() < deadline, "the search never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = resume(&run, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains(&format!("pid {}", first.id())) && msg.contains("one writer"),
        "{msg}"
    );
    // A reader is never refused.
    let o = nasforge(&["status", r]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("searching"), "{}", stdout(&o));

    // kill -9 leaves no stale lock: the kernel released it with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let before = common::json(&nasforge(&["status", r, "--json"]));
    let done = before["trials_finished"].as_u64().unwrap();
    let target = (done + 1).to_string();
    let o = resume(&run, &["--trials", &target, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["seeds"], 1, "{v}");
    // The trial the kill interrupted ran again; readers count trial slots, not rows.
    let after = common::json(&nasforge(&["status", r, "--json"]));
    assert_eq!(after["trials_finished"], done + 1, "{after}");
    assert_eq!(after["trials_failed"], 0, "{after}");
    let o = nasforge(&["status", r]);
    assert!(
        stdout(&o).contains(&format!("{} of {} finished", done + 1, done + 1)),
        "{}",
        stdout(&o)
    );
}

#[test]
fn train_on_a_run_arch_uses_the_run_data_and_refuses_foreign_archs_on_digits() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("iris");
    let iris = common::iris();
    let o = nasforge(&[
        "search",
        "--data",
        &iris,
        "--target",
        "species",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--final-seeds",
        "1",
        "--final-epochs",
        "1",
        "--run-dir",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let arch = run.join("best").join("arch.json");
    let out = tmp.path().join("again");
    let o = nasforge(&[
        "train",
        "--arch",
        arch.to_str().unwrap(),
        "--seeds",
        "1",
        "--final-epochs",
        "1",
        "--run-dir",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("iris.csv"), "{}", stderr(&o));
    let model = std::fs::read_to_string(out.join("best").join("model.json")).unwrap();
    assert!(
        model.contains("sepal_length"),
        "trained on other data: {model}"
    );

    // The same arch and model moved away from their run: no data to find, so refused.
    let alone = tmp.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    for f in ["arch.json", "model.json"] {
        std::fs::copy(run.join("best").join(f), alone.join(f)).unwrap();
    }
    let o = nasforge(&[
        "train",
        "--arch",
        alone.join("arch.json").to_str().unwrap(),
        "--seeds",
        "1",
        "--final-epochs",
        "1",
        "--run-dir",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--data"), "{}", stderr(&o));
}

#[test]
fn bad_settings_are_refused_before_the_run_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--evaluator", "table", "--strategy-param", "population=0"],
            "population",
        ),
        (
            vec!["--evaluator", "table", "--strategy-param", "bogus=1"],
            "bogus",
        ),
        (
            vec!["--scheduler", "asha", "--min-epochs", "5", "--epochs", "2"],
            "--min-epochs 5 is more than --epochs 2",
        ),
        (vec!["--final-seeds", "0"], "must be at least 1, got 0"),
        (
            vec!["--test-fraction", "0"],
            "--test-fraction must be in (0, 1)",
        ),
        (vec!["--epoch-budget", "0"], "must be at least 1, got 0"),
        (vec!["--trials", "-1"], "must be at least 1, got -1"),
        (vec!["--epochs", "-3"], "must be at least 1, got -3"),
        (vec!["--lr", "-0.1"], "--lr must be above 0, got -0.1"),
        (
            vec![
                "--evaluator",
                "table",
                "--stopper",
                "median",
                "--stopper-param",
                "k=1",
            ],
            "stopper",
        ),
        (vec!["--scheduler", "nope"], "unknown scheduler `nope`"),
        (vec!["--device", "tpu"], "unknown device `tpu`"),
    ];
    // A GPU device this build lacks names the cargo feature that builds it.
    if !cfg!(feature = "cuda") {
        cases.push((vec!["--device", "cuda"], "--features cuda"));
    }
    // The same checks on a config file's values.
    let toml = tmp.path().join("bad.toml");
    std::fs::write(&toml, "final_seeds = 0\n").unwrap();
    let toml_case = vec!["--config", toml.to_str().unwrap()];
    cases.push((toml_case, "--final-seeds must be at least 1, got 0"));
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let run = tmp.path().join(format!("run{i}"));
        let mut args = vec!["search", "--run-dir", run.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        let o = nasforge(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{extra:?}: {}", text(&o));
        assert!(!run.exists(), "{extra:?} left {} behind", run.display());
    }
}

#[test]
fn a_lost_or_damaged_study_is_never_resumed_as_a_fresh_start() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    table_run(&run, 60);
    let db = run.join("study.db");
    let good = std::fs::read(&db).unwrap();

    // Sound: resumed, nothing redone.
    let o = resume(&run, &["--json"]);
    assert!(o.status.success(), "{}", text(&o));

    let damaged: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("deleted", None, "is missing"),
        ("empty", Some(Vec::new()), "is empty (0 bytes)"),
        (
            "garbage",
            Some(b"these are not the bytes of a database".repeat(200)),
            "cannot be read as a nasforge study",
        ),
        (
            "truncated",
            Some(good[..good.len() / 2].to_vec()),
            "cannot be read as a nasforge study",
        ),
    ];
    for (what, bytes, expected) in damaged {
        let _ = std::fs::remove_file(&db);
        if let Some(b) = &bytes {
            std::fs::write(&db, b).unwrap();
        }
        let o = resume(&run, &[]);
        let msg = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {msg}");
        assert!(msg.contains(expected), "{what}: {msg}");
        assert!(msg.contains("--run-dir NEW_DIR"), "{what}: {msg}");
        assert!(!msg.contains("kept"), "{what} was resumed: {msg}");
        // Nothing was written over what was there.
        match &bytes {
            None => assert!(!db.exists(), "{what}: a new study.db was created"),
            Some(b) => assert_eq!(&std::fs::read(&db).unwrap(), b, "{what}: study.db changed"),
        }
        // The message says each thing once.
        let first = msg.lines().next().unwrap_or("");
        assert!(
            first.matches(expected).count() == 1,
            "{what}: repeated: {msg}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    table_run(&run, 30);
    let r = run.to_str().unwrap();
    for args in [
        vec!["status", r, "--last", "30"],
        vec!["runs", tmp.path().to_str().unwrap()],
        vec![
            "bench",
            "nb201",
            "--strategy",
            "random",
            "--queries",
            "5",
            "--seeds",
            "2",
            "--json",
        ],
    ] {
        for _ in 0..3 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_nasforge"))
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The reader goes away before the first line is written (`| head -0`).
            drop(child.stdout.take());
            let o = child.wait_with_output().unwrap();
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_search_where_every_trial_failed_exits_non_zero_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    // A two-row table: nearly every arch a strategy proposes has no row, so its trial fails.
    let table = tmp.path().join("tiny.csv");
    std::fs::write(
        &table,
        "arch,acc\n\
         |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|,90\n\
         |none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10\n",
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = nasforge(&[
        "search",
        "--table",
        table.to_str().unwrap(),
        "--objective",
        "acc",
        "--strategy",
        "random",
        "--trials",
        "3",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("no trial completed: 3 of 3 trials failed")
            && msg.contains("the table has no row for"),
        "{msg}"
    );
    // The failed trials are kept for the user to read.
    let o = nasforge(&["status", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("3 failed"), "{}", stdout(&o));
}

#[test]
fn the_built_in_benchmark_needs_no_table_file() {
    let o = nasforge(&[
        "bench",
        "nb201",
        "--strategy",
        "rea",
        "--queries",
        "20",
        "--seeds",
        "2",
        "--json",
    ]);
    let v = common::json(&o);
    assert_eq!(v["table"], "built-in NAS-Bench-201 CIFAR-10");
    // The same numbers as the shipped file read with --table.
    let table = nb201_table();
    let o = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--strategy",
        "rea",
        "--queries",
        "20",
        "--seeds",
        "2",
        "--json",
    ]);
    let w = common::json(&o);
    assert_eq!(v["results"], w["results"]);
    assert_eq!(v["optimum"], w["optimum"]);

    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--trials",
        "10",
        "--run-dir",
        run.to_str().unwrap(),
        "--json",
    ]);
    let v = common::json(&o);
    assert_eq!(v["trials"], 10);
    assert!(v["value"].as_f64().unwrap() > 50.0, "{v}");
    // It resumes on the same built-in table.
    let o = resume(&run, &["--trials", "12", "--json"]);
    let v = common::json(&o);
    assert_eq!(v["trials"], 12);
    assert_eq!(v["resumed"]["replayed"], 10);
}

#[test]
fn help_and_init_list_every_registered_strategy() {
    let o = nasforge(&["search", "--help"]);
    let help = stdout(&o);
    for name in [
        "random",
        "grid",
        "rea",
        "ls",
        "tpe",
        "gp",
        "bananas",
        "reinforce",
        "hyperband",
        "asha",
        "bohb",
        "curve",
    ] {
        assert!(help.contains(name), "--help lacks {name}: {help}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run.toml");
    let o = nasforge(&["init", "--out", out.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = std::fs::read_to_string(&out).unwrap();
    assert!(
        t.contains("bananas") && t.contains("reinforce") && t.contains("bohb"),
        "{t}"
    );
}
