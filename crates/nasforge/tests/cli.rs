//! End-to-end tests of the `nasforge` binary.

mod common;
use common::{nasforge, nb201_table, stderr, stdout};

use std::process::Output;

const ALL_CONV: &str = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|";

#[test]
fn show_json_gives_published_nb201_counts() {
    let o = nasforge(&["show", ALL_CONV, "--space", "nb201", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["params"], 1_531_546);
    assert_eq!(v["macs"], 220_119_680); // 220.12 M, as published
    let none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&nasforge(&["show", none, "--json"]))).unwrap();
    assert_eq!(v["params"], 73_306);
    assert_eq!((v["macs"].as_f64().unwrap() / 1e4).round() / 100.0, 7.78);
}

#[test]
fn show_text_and_dot_draw_the_network() {
    let o = nasforge(&["show", ALL_CONV]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("1531546") && text.contains("conv2d 3x3/s1 p1 16->16"),
        "{text}"
    );
    let dot = stdout(&nasforge(&["show", ALL_CONV, "--dot"]));
    assert!(dot.starts_with("digraph") && dot.contains("->") && dot.contains("cluster_"));
}

#[test]
fn show_reads_arch_json_files_of_any_space() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.json");
    std::fs::write(
        &f,
        r#"{"space": "mlp", "choices": {"depth": "1", "width_1": "64", "activation": "gelu", "dropout": "0", "batch_norm": "off"}}"#,
    )
    .unwrap();
    let o = nasforge(&["show", f.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["space"], "mlp");
    assert_eq!(v["params"], 64 * 64 + 64 + 64 * 10 + 10);
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["show", "|bogus~0|"], "NAS-Bench-201"),
        (
            vec!["show", ALL_CONV, "--space-param", "chanels=8"],
            "chanels",
        ),
        (
            vec!["show", "Genotype(normal=[])", "--space", "darts"],
            "DARTS genotype",
        ),
        (
            vec!["bench", "nb201", "--table", "/nonexistent.csv"],
            "nonexistent",
        ),
        (
            vec![
                "search",
                "--evaluator",
                "table",
                "--space",
                "darts",
                "--trials",
                "5",
            ],
            "needs --table FILE",
        ),
        (
            vec!["search", "--resume", "--run-dir", "/nonexistent-run"],
            "not a nasforge run",
        ),
    ];
    for (args, needle) in cases {
        let o = nasforge(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}

#[test]
fn bench_prints_one_json_document_per_strategy_and_budget() {
    let table = nb201_table();
    let o = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--strategy",
        "rea,ls,random",
        "--queries",
        "50,100",
        "--seeds",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        for key in ["strategy", "queries", "seeds", "mean", "std", "regret"] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert_eq!(r["seeds"], 10);
        let mean = r["mean"].as_f64().unwrap();
        assert!((85.0..=94.3734).contains(&mean), "{r}");
        assert!((r["regret"].as_f64().unwrap() - (94.3733 - mean)).abs() < 1e-9);
    }
}

#[test]
fn bench_rejects_unknown_columns_and_strategies() {
    let table = nb201_table();
    let o = nasforge(&["bench", "nb201", "--table", &table, "--objective", "acc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("valid_acc_12ep"),
        "lists the columns: {}",
        stderr(&o)
    );
    let o = nasforge(&["bench", "nb201", "--table", &table, "--strategy", "tpe2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown strategy"));
}

#[test]
fn bench_writes_trajectories() {
    let table = nb201_table();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let o = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--strategy",
        "ls",
        "--queries",
        "20",
        "--seeds",
        "3",
        "--trajectories",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 3 * 20);
    assert!(text.starts_with("strategy,seed,query,arch,"));
}

#[test]
fn search_stores_a_study_and_resume_extends_it_without_redoing_trials() {
    let table = nb201_table();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let o = nasforge(&[
        "search",
        "--space",
        "nb201",
        "--evaluator",
        "table",
        "--table",
        &table,
        "--objective",
        "valid_acc_12ep",
        "--trials",
        "20",
        "--run-dir",
        run_s,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(first["trials"], 20);
    assert!(run.join("study.db").exists() && run.join("config.toml").exists());

    // A second run into the same directory without --resume is refused.
    let o = nasforge(&["search", "--table", &table, "--run-dir", run_s]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"));
    // Resume with a conflicting flag is refused.
    let o = nasforge(&[
        "search",
        "--resume",
        "--run-dir",
        run_s,
        "--objective",
        "test_acc_200ep",
    ]);
    assert_eq!(o.status.code(), Some(2));

    let o = nasforge(&[
        "search",
        "--resume",
        "--run-dir",
        run_s,
        "--trials",
        "35",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let second: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(second["trials"], 35);
    assert_eq!(second["resumed"]["replayed"], 20);
    assert!(second["value"].as_f64().unwrap() >= first["value"].as_f64().unwrap());

    // The same config in a fresh directory gives the same 35 trials.
    let fresh = dir.path().join("fresh");
    let o = nasforge(&[
        "search",
        "--table",
        &table,
        "--objective",
        "valid_acc_12ep",
        "--trials",
        "35",
        "--run-dir",
        fresh.to_str().unwrap(),
        "--json",
    ]);
    let third: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(third["arch"], second["arch"]);
    assert_eq!(third["value"], second["value"]);
}

fn proxies(extra: &[&str]) -> Output {
    let table = nb201_table();
    let mut args = vec![
        "proxies",
        "--space",
        "nb201",
        "--table",
        &table,
        "--space-param",
        "channels=4",
        "--space-param",
        "cells=1",
        "--batch",
        "8",
    ];
    args.extend_from_slice(extra);
    nasforge(&args)
}

#[test]
fn proxies_json_reports_every_proxy_and_the_csv_has_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cells.csv");
    let out_s = out.to_string_lossy().into_owned();
    let args = ["--sample", "5", "--seed", "3", "--json", "--out", &out_s];
    let o = proxies(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    let list = v["proxies"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "synflow",
            "snip",
            "grad_norm",
            "fisher",
            "jacob_cov",
            "naswot",
            "params",
            "macs"
        ]
    );
    for p in list {
        let rho = p["spearman"].as_f64().unwrap();
        let tau = p["kendall"].as_f64().unwrap();
        assert!(
            (-1.0..=1.0).contains(&rho) && (-1.0..=1.0).contains(&tau),
            "{p}"
        );
        assert!(p["ms_per_cell"].as_f64().unwrap() >= 0.0);
    }
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(
        lines[0].starts_with("arch,test_acc_200ep,synflow,snip"),
        "{csv}"
    );
    assert!(lines[1].starts_with("\"|"), "{csv}");
    // Same seed, same numbers.
    let again = proxies(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    let csv2 = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv, csv2);
}

#[test]
fn proxies_table_output_names_the_noise_batch() {
    let o = proxies(&["--sample", "3", "--proxies", "synflow,naswot"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Gaussian noise"), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("synflow") && out.contains("naswot") && !out.contains("snip"),
        "{out}"
    );
}

#[test]
fn proxies_bad_input_exits_2_with_a_clear_message() {
    let iris = common::iris();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--sample", "2", "--proxies", "synflow,zen"],
            "jacob_cov",
        ),
        (vec!["--sample", "0"], "must be at least 1, got 0"),
        (vec!["--sample", "99999999"], "--sample 99999999"),
        (
            vec!["--sample", "2", "--objective", "nope"],
            "no column `nope`",
        ),
        (
            vec![
                "--sample",
                "2",
                "--proxies",
                "snip",
                "--data",
                &iris,
                "--target",
                "species",
            ],
            "network takes [3, 32, 32]",
        ),
    ];
    for (args, want) in cases {
        let o = proxies(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn predictors_rank_held_out_cells_better_than_chance() {
    let table = nb201_table();
    let o = nasforge(&[
        "predictors",
        "nb201",
        "--table",
        &table,
        "--train-sizes",
        "50,200",
        "--predictors",
        "gp,forest",
        "--test-size",
        "200",
        "--seeds",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        let tau = r["kendall"].as_f64().unwrap();
        assert!(tau > 0.25 && tau <= 1.0, "{r}");
    }
    for (args, needle) in [
        (vec!["--train-sizes", "20000"], "more than the table"),
        (vec!["--predictors", "xgboost"], "unknown predictor"),
        (vec!["--encoding", "adjacency"], "unknown encoding"),
        (vec!["--train-sizes", "0"], "--train-sizes"),
    ] {
        let mut a = vec!["predictors", "nb201", "--table", &table];
        a.extend(args);
        let o = nasforge(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{a:?}: {}", stderr(&o));
    }
}

#[test]
fn bench_compares_strategies_and_schedulers_at_equal_epochs() {
    let table = nb201_table();
    let o = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--strategy",
        "rea,hyperband,asha,bohb",
        "--objective",
        "valid_acc_12ep",
        "--report",
        "test_acc_200ep",
        "--epochs",
        "1200,2400",
        "--seeds",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for r in results {
        let evals = r["evaluations"].as_f64().unwrap();
        let epochs = r["epochs"].as_f64().unwrap();
        // Each evaluation costs 12 or 200 epochs: a strategy on valid_acc_12ep makes
        // epochs/12 of them, a scheduler fewer.
        assert!(evals * 12.0 <= epochs + 1e-9, "{r}");
        if r["method"] == "rea" {
            assert_eq!(evals, epochs / 12.0);
        }
    }
    let o = nasforge(&["bench", "nb201", "--table", &table, "--epochs", "100"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at least 200"), "{}", stderr(&o));
    let o = nasforge(&[
        "bench",
        "nb201",
        "--table",
        &table,
        "--epochs",
        "1000",
        "--fidelities",
        "12=nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn every_registered_strategy_runs_on_the_table_with_and_without_warm_start() {
    let table = nb201_table();
    for extra in [None, Some("warm_start=params")] {
        let mut a = vec![
            "bench",
            "nb201",
            "--table",
            &table,
            "--strategy",
            "all",
            "--queries",
            "30",
            "--seeds",
            "2",
            "--json",
        ];
        if let Some(e) = extra {
            a.extend(["--strategy-param", e]);
        }
        let o = nasforge(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let names: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["strategy"].as_str().unwrap())
            .collect();
        for s in [
            "random",
            "grid",
            "rea",
            "ls",
            "bananas",
            "gp",
            "tpe",
            "reinforce",
        ] {
            assert!(names.contains(&s), "{s} missing from {names:?}");
        }
    }
}

/// `--quiet` prints nothing on success and `--json` prints one JSON document, on every command
/// that prints results (the ones that train are covered in cli_train.rs and report.rs).
#[test]
fn quiet_prints_nothing_and_json_is_one_document() {
    let tmp = tempfile::tempdir().unwrap();
    let table = nb201_table();
    let init_out = tmp.path().join("run.toml");
    let init_out = init_out.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["show", ALL_CONV],
        vec![
            "bench",
            "nb201",
            "--table",
            &table,
            "--strategy",
            "random",
            "--queries",
            "5",
            "--seeds",
            "2",
        ],
        vec![
            "proxies",
            "--table",
            &table,
            "--sample",
            "5",
            "--proxies",
            "params,macs",
        ],
        vec![
            "predictors",
            "--table",
            &table,
            "--train-sizes",
            "20",
            "--predictors",
            "forest",
            "--seeds",
            "1",
            "--test-size",
            "50",
        ],
        vec!["init", "--out", init_out, "--force"],
        vec!["runs", tmp.path().to_str().unwrap()],
    ];
    for args in cases {
        let mut quiet = args.clone();
        quiet.push("--quiet");
        let o = nasforge(&quiet);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "{args:?} --quiet printed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let mut json = args.clone();
        json.push("--json");
        let o = nasforge(&json);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?} --json: {e}: {}", stdout(&o)));
    }
}
