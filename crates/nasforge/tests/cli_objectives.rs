//! Several objectives and constraints end to end: table and training searches, bench, the
//! readers, bad input, and a study written by the version-1 schema.

mod common;
use common::{digits_csv, iris, json, nasforge, resume, stderr, stdout, text, trials_of};

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn a_table_search_with_two_objectives_and_a_constraint_never_queries_an_arch_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("mo");
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--objective",
        "test_acc_200ep",
        "--objective",
        "params:min",
        "--constraint",
        "params<=800000",
        "--trials",
        "60",
        "--run-dir",
        run.to_str().unwrap(),
        "--json",
    ]);
    let doc = json(&o);
    assert_eq!(
        doc["strategy"], "mo-rea",
        "several objectives default to mo-rea"
    );
    assert_eq!(doc["objectives"][1], "params:min");
    assert_eq!(doc["constraints"][0], "params<=800000");
    assert!(doc["skipped_infeasible"].as_u64().unwrap() > 0);
    let front = doc["front"].as_array().unwrap();
    assert!(!front.is_empty());
    let trials = trials_of(&run);
    assert_eq!(trials.len(), 60);
    for t in &trials {
        let p = t["metrics"]["params"].as_f64().unwrap();
        assert!(p <= 800_000.0, "trial {} has {p} parameters", t["number"]);
        assert_eq!(t["values"].as_array().unwrap().len(), 2);
    }
    // No front member is dominated by another complete trial.
    for f in front {
        let (a, p) = (
            f["values"][0].as_f64().unwrap(),
            f["values"][1].as_f64().unwrap(),
        );
        assert!(!trials.iter().any(|t| {
            let (ta, tp) = (
                t["values"][0].as_f64().unwrap(),
                t["values"][1].as_f64().unwrap(),
            );
            ta >= a && tp <= p && (ta > a || tp < p)
        }));
    }
    let s = nasforge(&["status", run.to_str().unwrap()]);
    let out = stdout(&s);
    assert!(out.contains("test_acc_200ep:max, params:min"), "{out}");
    assert!(
        out.contains("params<=800000") && out.contains("front"),
        "{out}"
    );
    let runs = stdout(&nasforge(&["runs", dir.path().to_str().unwrap()]));
    assert!(runs.contains("s.t. params<=800000"), "{runs}");
    let r = nasforge(&["report", run.to_str().unwrap()]);
    assert!(r.status.success(), "{}", stderr(&r));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"pareto_front\"") && html.contains("id=\"hypervolume\""));
    assert!(
        html.contains("Top trials by params"),
        "a top table per objective"
    );
    // Resuming with other objectives is refused; with the same ones it continues.
    let more = resume(&run, &["--trials", "70", "--quiet"]);
    assert!(more.status.success(), "{}", stderr(&more));
    assert_eq!(trials_of(&run).len(), 70);
}

#[test]
fn bad_objectives_and_constraints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--objective", "widgets"], "unknown objective `widgets`"),
        (
            &["--objective", "params:smallest"],
            "unknown direction `smallest`",
        ),
        (
            &["--objective", "test_acc_200ep", "--objective", "widgets"],
            "widgets:max or widgets:min",
        ),
        (&["--constraint", "nope<=5"], "unknown metric `nope`"),
        (
            &["--constraint", "params<=abc"],
            "the limit `abc` is not a number",
        ),
        (
            &["--constraint", "params=>5"],
            "malformed constraint `params=>5`",
        ),
        (
            &[
                "--objective",
                "test_acc_200ep",
                "--objective",
                "params:min",
                "--direction",
                "max",
            ],
            "--direction applies to a single objective",
        ),
        (
            &["--objective", "params:min", "--objective", "params:min"],
            "given twice",
        ),
        (
            &["--constraint", "params<=10"],
            "proposals in a row broke the constraints params<=10",
        ),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let run = dir.path().join(format!("bad{i}"));
        let mut args = vec!["search", "--evaluator", "table", "--trials", "5"];
        args.extend_from_slice(flags);
        args.extend(["--run-dir", run.to_str().unwrap()]);
        let o = nasforge(&args);
        assert_eq!(code(&o), Some(2), "{flags:?}: {}", text(&o));
        assert!(stderr(&o).contains(expected), "{flags:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn bench_reports_normalised_hypervolume_and_the_true_front() {
    let o = nasforge(&[
        "bench",
        "nb201",
        "--objective",
        "test_acc_200ep",
        "--objective",
        "params:min",
        "--reference",
        "85,1.6e6",
        "--strategy",
        "nsga2,random",
        "--seeds",
        "3",
        "--queries",
        "20,60",
        "--json",
    ]);
    let doc = json(&o);
    assert_eq!(doc["reference"], serde_json::json!([85.0, 1.6e6]));
    let front = doc["true_front"]["size"].as_u64().unwrap();
    assert!(front > 1);
    for r in doc["results"].as_array().unwrap() {
        let hv = r["hypervolume"].as_f64().unwrap();
        assert!(hv > 0.0 && hv <= 1.0 + 1e-12, "{r}");
        let share = r["front_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share));
    }
    let bad = nasforge(&[
        "bench",
        "nb201",
        "--objective",
        "test_acc_200ep",
        "--objective",
        "params:min",
        "--reference",
        "85",
        "--seeds",
        "1",
    ]);
    assert_eq!(code(&bad), Some(2));
    assert!(
        stderr(&bad).contains("--reference has 1 values for 2 objectives"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_training_search_never_trains_an_arch_over_its_parameter_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("digits");
    let o = nasforge(&[
        "search",
        "--objective",
        "valid_accuracy",
        "--objective",
        "latency_ms:min",
        "--constraint",
        "params<=9000",
        "--latency-batch",
        "8",
        "--space-param",
        "channels=4",
        "--space-param",
        "cells=1",
        "--trials",
        "4",
        "--epochs",
        "1",
        "--final-epochs",
        "1",
        "--final-seeds",
        "1",
        "--run-dir",
        run.to_str().unwrap(),
        "--json",
    ]);
    let doc = json(&o);
    assert!(doc["test_accuracy_mean"].as_f64().is_some());
    for t in trials_of(&run) {
        assert!(t["metrics"]["params"].as_f64().unwrap() <= 9000.0);
        assert!(t["metrics"]["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(t["metrics"]["latency_ms_b8"].as_f64().unwrap() > 0.0);
        assert!(t["metrics"]["latency_threads"].as_f64().unwrap() >= 1.0);
    }
    // A scheduler ranks on one objective.
    let s = nasforge(&[
        "search",
        "--objective",
        "valid_accuracy",
        "--objective",
        "params:min",
        "--scheduler",
        "asha",
        "--run-dir",
        dir.path().join("sched").to_str().unwrap(),
    ]);
    assert_eq!(code(&s), Some(2), "{}", text(&s));
    assert!(
        stderr(&s).contains("--scheduler ranks trials on one objective"),
        "{}",
        stderr(&s)
    );
}

/// A run written before several objectives (schema version 1, `objective` a string in
/// config.toml) is read by `status` and continued by `--resume`, which migrates it.
#[test]
fn a_version_1_run_is_read_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("old");
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--trials",
        "12",
        "--run-dir",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before: Vec<String> = trials_of(&run)
        .iter()
        .map(|t| t["arch_key"].as_str().unwrap().to_string())
        .collect();
    // Turn the run back into what version 1 wrote.
    let db = run.join("study.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TABLE objective_values;
         ALTER TABLE trials DROP COLUMN violation;
         ALTER TABLE trials DROP COLUMN cost;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';
         UPDATE studies SET record = json_remove(record, '$.goal');",
    )
    .unwrap();
    drop(conn);
    let cfg = run.join("config.toml");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let old = text_cfg.replace(
        "objective = [\"test_acc_200ep\"]",
        "objective = \"test_acc_200ep\"",
    );
    assert_ne!(old, text_cfg, "config.toml holds the objective list");
    std::fs::write(&cfg, old).unwrap();
    let s = nasforge(&["status", run.to_str().unwrap(), "--json"]);
    assert_eq!(json(&s)["trials_complete"], 12);
    let r = resume(&run, &["--trials", "20", "--json"]);
    let doc = json(&r);
    assert_eq!(doc["resumed"]["replayed"], 12);
    let after: Vec<String> = trials_of(&run)
        .iter()
        .map(|t| t["arch_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after.len(), 20);
    assert_eq!(after[..12], before[..]);
}

#[test]
fn a_latency_table_predicts_before_training_and_checks_against_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("latency.json");
    let small = ["--space-param", "channels=4", "--space-param", "cells=1"];
    let mut args = vec![
        "latency",
        "profile",
        "--archs",
        "12",
        "--repeats",
        "3",
        "--out",
    ];
    args.push(table.to_str().unwrap());
    args.extend(small);
    args.push("--json");
    let doc = json(&nasforge(&args));
    assert!(doc["node_kinds"].as_u64().unwrap() > 3, "{doc}");
    let check = json(&nasforge(&[
        "latency",
        "check",
        table.to_str().unwrap(),
        "--archs",
        "6",
        "--seed",
        "0",
        "--json",
    ]));
    // The profiled archs themselves (seed 0) are all covered.
    assert_eq!(check["uncovered"], 0, "{check}");
    // The table keeps five reference archs measured whole; check scales every prediction by
    // their latency now over then, measured right before the arch.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).unwrap()).unwrap();
    assert_eq!(written["reference"].as_array().unwrap().len(), 5);
    let factors = check["calibration"].as_array().unwrap();
    assert_eq!(factors.len() as u64, check["archs"].as_u64().unwrap());
    assert!(factors.iter().all(|f| f.as_f64().unwrap() > 0.0));
    assert!(check["uncalibrated_within_10pct"].as_f64().is_some());
    let mut predicted: Vec<f64> = check["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert!(predicted.iter().all(|&p| p > 0.0 && p.is_finite()));
    assert!(check["rmse_ms"].as_f64().unwrap().is_finite());
    predicted.sort_by(f64::total_cmp);
    let limit = format!("latency_ms<={}", predicted[predicted.len() / 2]);
    // A search whose space the table covers (same sizes), constrained on predicted latency.
    let run = dir.path().join("fast");
    let mut args = vec![
        "search",
        "--objective",
        "valid_accuracy",
        "--objective",
        "latency_ms:min",
        "--constraint",
        &limit,
        "--latency-table",
        table.to_str().unwrap(),
        "--strategy-param",
        "population=4",
        "--strategy-param",
        "sample_size=2",
        "--trials",
        "3",
        "--epochs",
        "1",
        "--final-epochs",
        "1",
        "--final-seeds",
        "1",
        "--run-dir",
        run.to_str().unwrap(),
        "--json",
    ];
    args.extend(small);
    let o = nasforge(&args);
    // Every arch of the space may have a node kind the small profile missed: that is a clear error.
    if !o.status.success() {
        assert!(stderr(&o).contains("profile more archs"), "{}", stderr(&o));
        return;
    }
    let bound: f64 = limit.trim_start_matches("latency_ms<=").parse().unwrap();
    for t in trials_of(&run) {
        let l = t["metrics"]["latency_ms"].as_f64().unwrap();
        assert!(l <= bound, "trial {} predicted {l} ms", t["number"]);
        assert!(
            t["metrics"].get("latency_ms_b64").is_none(),
            "nothing is measured"
        );
    }
    // Resuming replays the study and judges the latency constraint again: the predictions
    // must be the ones made the first time (the raw table's, not scaled to the moment), or
    // the replay would not find its stored trials.
    let before = trials_of(&run);
    let o = resume(&run, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&o)["resumed"]["replayed"].as_u64(),
        Some(before.len() as u64),
        "{}",
        stdout(&o)
    );
    assert_eq!(trials_of(&run), before);
    // Another space's table is refused.
    let other = nasforge(&[
        "search",
        "--latency-table",
        table.to_str().unwrap(),
        "--objective",
        "latency_ms:min",
        "--run-dir",
        dir.path().join("other").to_str().unwrap(),
    ]);
    assert_eq!(code(&other), Some(2), "{}", text(&other));
    assert!(
        stderr(&other).contains("was profiled on space"),
        "{}",
        stderr(&other)
    );
}

#[test]
fn scale_trains_the_best_arch_wider_and_deeper_within_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    // A two-trial search of one epoch each, on `data` (the embedded digits when empty).
    let search = |run: &std::path::Path, data: &[&str]| {
        let mut args = vec![
            "search",
            "--trials",
            "2",
            "--epochs",
            "1",
            "--final-epochs",
            "1",
            "--final-seeds",
            "1",
            "--run-dir",
            run.to_str().unwrap(),
            "--quiet",
        ];
        args.extend(data);
        let o = nasforge(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let run = dir.path().join("small");
    search(
        &run,
        &["--space-param", "channels=4", "--space-param", "cells=1"],
    );
    let r = run.to_str().unwrap();
    let doc = json(&nasforge(&[
        "scale",
        r,
        "--target",
        "params=40000",
        "--train",
        "2",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--json",
    ]));
    let base = doc["base"]["params"].as_f64().unwrap();
    let scaled = doc["scaled"].as_array().unwrap();
    assert_eq!(scaled.len(), 2, "{doc}");
    for s in scaled {
        let p = s["params"].as_f64().unwrap();
        assert!(
            p <= 40_000.0 && s["test_mean"].as_f64().unwrap() > 0.0,
            "{s}"
        );
        assert!(std::path::Path::new(s["model"].as_str().unwrap())
            .join("model.json")
            .is_file());
    }
    // The largest within the budget comes first, and scaling up made it bigger than the arch.
    assert!(scaled[0]["params"].as_f64().unwrap() >= scaled[1]["params"].as_f64().unwrap());
    assert!(scaled[0]["params"].as_f64().unwrap() > base, "{doc}");
    for (target, expected) in [
        ("params=abc", "is not a number"),
        (
            "widgets=5",
            "use params, macs, peak_memory_mb or latency_ms",
        ),
        ("params", "is not METRIC=LIMIT"),
        ("params=10", "no scaled network is within params=10"),
    ] {
        let o = nasforge(&["scale", r, "--target", target]);
        assert_eq!(code(&o), Some(2), "{target}: {}", text(&o));
        assert!(stderr(&o).contains(expected), "{target}: {}", stderr(&o));
    }
    // Resolution: the 8x8 images resized to 12x12; MACs grow about 2.25x, the parameters
    // (global pooling before the classifier) not at all.
    let doc = json(&nasforge(&[
        "scale",
        r,
        "--target",
        "macs=1e9",
        "--widths",
        "1",
        "--depths",
        "1",
        "--resolutions",
        "1,1.5",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--json",
    ]));
    let scaled = doc["scaled"].as_array().unwrap();
    assert_eq!(scaled.len(), 2, "{doc}");
    let (big, one) = (&scaled[0], &scaled[1]);
    assert_eq!(big["resolution"], 1.5, "{doc}");
    assert_eq!(big["input"], serde_json::json!([1, 12, 12]), "{doc}");
    assert_eq!(one["input"], serde_json::json!([1, 8, 8]), "{doc}");
    assert_eq!(big["params"], one["params"], "{doc}");
    assert!(big["macs"].as_f64().unwrap() > 2.0 * one["macs"].as_f64().unwrap());
    // `predict` reads 8x8 rows and resizes them as training did; the model says so.
    let model = big["model"].as_str().unwrap();
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(model).join("model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["resize"], serde_json::json!([12, 12]));
    let digits = digits_csv();
    let p = json(&nasforge(&[
        "predict", "--model", model, "--data", &digits, "--json",
    ]));
    assert!(p["accuracy"].as_f64().unwrap() > 20.0, "{p}");
    assert_eq!(p["predictions"].as_array().unwrap().len(), 1797);
    // A latency budget: every scaled network is measured, and the one trained is within it
    // (which of the two widths is slower on a tiny network is up to the machine's noise).
    let doc = json(&nasforge(&[
        "scale",
        r,
        "--target",
        "latency_ms=1000",
        "--widths",
        "1,2",
        "--depths",
        "1",
        "--train",
        "1",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--json",
    ]));
    let base = doc["base"]["latency_ms"].as_f64().unwrap();
    let s = &doc["scaled"][0];
    let l = s["latency_ms"].as_f64().unwrap();
    assert!(base > 0.0 && l > 0.0 && l <= 1000.0, "{doc}");
    // Tabular data has no resolution.
    let tab = dir.path().join("iris");
    search(&tab, &["--data", &iris(), "--target", "species"]);
    let o = nasforge(&[
        "scale",
        tab.to_str().unwrap(),
        "--target",
        "params=1e6",
        "--resolutions",
        "1,2",
    ]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("not images"), "{}", stderr(&o));
    let o = nasforge(&["scale", r, "--target", "macs=1e9", "--resolutions", "0"]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
}
