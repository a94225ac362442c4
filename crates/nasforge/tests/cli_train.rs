//! End-to-end tests of searching and training on real data.

mod common;
use common::{digits_csv, iris, json, nasforge, nb201_table};

use std::path::Path;
use std::process::Output;

/// A tiny search budget so the tests stay quick in debug builds.
const TINY: &[&str] = &[
    "--trials",
    "2",
    "--epochs",
    "1",
    "--final-seeds",
    "2",
    "--final-epochs",
    "1",
    "--space-param",
    "channels=4",
    "--space-param",
    "cells=1",
    "--json",
];

fn search(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["search", "--run-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    nasforge(&args)
}

#[test]
fn search_on_embedded_digits_trains_saves_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let v = json(&search(&run, TINY));
    assert_eq!(v["trials"], 2);
    assert_eq!(v["seeds"], 2);
    assert!(v["arch"].as_str().unwrap().starts_with('|'));
    let acc = v["test_accuracy_mean"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&acc));
    assert!(v["test_accuracy_std"].as_f64().unwrap() >= 0.0);
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    for f in ["model.json", "arch.json", "weights.bpk", "final.json"] {
        assert!(run.join("best").join(f).exists(), "best/{f} missing");
    }
    let best = run.join("best");
    let p = json(&nasforge(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--data",
        &digits_csv(),
        "--json",
    ]));
    assert_eq!(p["predictions"].as_array().unwrap().len(), 1797);
    assert!(
        p["accuracy"].as_f64().unwrap() > 20.0,
        "a trained model beats chance: {}",
        p["accuracy"]
    );
    // --out writes the CSV; --quiet says nothing.
    let csv = tmp.path().join("pred.csv");
    let o = nasforge(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--data",
        &digits_csv(),
        "--out",
        csv.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success() && o.stdout.is_empty() && o.stderr.is_empty());
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().count(), 1798);
    assert!(written.starts_with("row,prediction,target\n"));

    // Train the found arch again from its JSON.
    let arch = best.join("arch.json");
    let t = json(&nasforge(&[
        "train",
        "--arch",
        arch.to_str().unwrap(),
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--space-param",
        "channels=4",
        "--space-param",
        "cells=1",
        "--run-dir",
        tmp.path().join("t").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(t["seeds"], 1);
    assert_eq!(t["arch"], v["arch"]);
    assert!(t["test_accuracy_mean"].as_f64().is_some());

    // Resume extends the study without redoing trials.
    let more: Vec<&str> = vec!["--resume", "--trials", "3", "--json"];
    let r = json(&search(&run, &more));
    assert_eq!(r["trials"], 3);
    assert_eq!(r["resumed"]["replayed"], 2);
}

#[test]
fn idx_data_trains_and_predicts_with_its_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 60u32;
    let mut images = vec![0u8, 0, 8, 3];
    for d in [n, 4, 4] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    let mut labels = vec![0u8, 0, 8, 1];
    labels.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        let class = (i % 2) as u8;
        images.extend((0..16).map(|p| if class == 1 { 200 } else { (p * 3) as u8 }));
        labels.push(class);
    }
    let img = tmp.path().join("train-images-idx3-ubyte");
    std::fs::write(&img, images).unwrap();
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte"), labels).unwrap();
    let run = tmp.path().join("run");
    let mut args = vec!["--data", img.to_str().unwrap()];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--batch-size", "16"]);
    json(&search(&run, &args));
    let best = run.join("best");
    let p = json(&nasforge(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--data",
        img.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["predictions"].as_array().unwrap().len(), 60);
    assert!(
        p["accuracy"].as_f64().is_some(),
        "IDX labels are compared: {p}"
    );
}

#[test]
fn iris_searches_the_mlp_space() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json(&search(
        &tmp.path().join("iris"),
        &[
            "--data",
            &iris(),
            "--target",
            "species",
            "--trials",
            "2",
            "--epochs",
            "2",
            "--final-seeds",
            "1",
            "--final-epochs",
            "2",
            "--batch-size",
            "16",
            "--json",
        ],
    ));
    assert_eq!(v["space"], "mlp");
    assert!(v["arch"].as_str().unwrap().contains("depth="));
    assert!(v["test_accuracy_mean"].as_f64().is_some());
}

#[test]
fn regression_targets_report_mse() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("r.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..120 {
        let (a, b) = (i as f64 / 10.0, (i % 7) as f64);
        text.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 0.5));
    }
    std::fs::write(&csv, text).unwrap();
    let v = json(&search(
        &tmp.path().join("run"),
        &[
            "--data",
            csv.to_str().unwrap(),
            "--target",
            "y",
            "--trials",
            "2",
            "--epochs",
            "2",
            "--final-seeds",
            "1",
            "--final-epochs",
            "2",
            "--batch-size",
            "16",
            "--json",
        ],
    ));
    assert_eq!(v["objective"], "valid_mse");
    assert!(v["test_mse_mean"].as_f64().unwrap() >= 0.0);
}

#[test]
fn bad_data_is_a_clear_error_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let ragged = write("ragged.csv", b"a,b,label\n1,2,0\n3,1\n");
    let rows: String = (0..40)
        .map(|i| format!("{i},{},{}\n", i % 3, i % 2))
        .collect();
    let table = write("table.csv", format!("a,b,label\n{rows}").as_bytes());
    let text = write("text.csv", b"a,b,label\n1,x,0\n3,4,1\n");
    let empty = write("empty.csv", b"");
    let single = write("single.csv", b"a,label\n1,0\n2,0\n3,0\n");
    let pixels = write("pixels.csv", b"p0,p1,p2,label\n1,2,3,0\n4,5,6,1\n");
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 2];
    idx.extend_from_slice(&[1, 2, 3]);
    let truncated = write("t-images-idx3-ubyte", &idx);
    write(
        "t-labels-idx1-ubyte",
        &[0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5],
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--data", &ragged], "row 3 has 2 fields"),
        (vec!["--data", &text], "not a number"),
        (
            vec!["--data", &text, "--target", "nope"],
            "no column `nope`",
        ),
        (vec!["--data", &empty], "empty"),
        (
            vec!["--data", &pixels, "--image", "2x2x1"],
            "needs 4 pixel columns",
        ),
        (vec!["--data", &truncated], "truncated"),
        (vec!["--data", &single], "single class"),
        (vec!["--batch-size", "5000"], "batch size 5000"),
        (vec!["--optimizer", "lion"], "--optimizer"),
        (vec!["--space", "darts", "--data", &table], "needs images"),
        (
            vec!["--space", "transformer", "--data", &table],
            "name a CSV column of passages with --text-column",
        ),
    ];
    for (i, (args, needle)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("run{i}"));
        let o = search(&dir, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let o = nasforge(&[
        "predict",
        "--model",
        tmp.path().to_str().unwrap(),
        "--data",
        &text,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a saved model"));
}

#[test]
fn init_writes_a_config_that_search_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.toml");
    let o = nasforge(&["init", "--out", cfg.to_str().unwrap()]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# epochs = 10"));
    // A config with a typo is rejected, naming the key.
    std::fs::write(&cfg, "epoch = 3\n").unwrap();
    let o = search(&tmp.path().join("r"), &["--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("epoch"));
    // A valid config drives the run; flags override it.
    std::fs::write(&cfg, "trials = 1\nepochs = 1\nfinal_seeds = 1\nfinal_epochs = 1\nspace_param = [\"channels=4\", \"cells=1\"]\n").unwrap();
    let v = json(&search(
        &tmp.path().join("ok"),
        &["--config", cfg.to_str().unwrap(), "--trials", "2", "--json"],
    ));
    assert_eq!(v["trials"], 2);
    assert_eq!(v["seeds"], 1);
}

#[test]
fn hyperband_on_iris_stays_within_its_epoch_budget_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("hb");
    let iris = iris();
    let args = |budget: &str| {
        vec![
            "--data".to_string(),
            iris.clone(),
            "--target".into(),
            "species".into(),
            "--scheduler".into(),
            "hyperband".into(),
            "--epochs".into(),
            "9".into(),
            "--trials".into(),
            "1000".into(),
            "--epoch-budget".into(),
            budget.into(),
            "--final-seeds".into(),
            "1".into(),
            "--final-epochs".into(),
            "2".into(),
            "--batch-size".into(),
            "16".into(),
            "--json".into(),
        ]
    };
    let first: Vec<String> = args("20");
    let v = json(&search(
        &run,
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let epochs = v["epochs_trained"].as_f64().unwrap();
    assert!((12.0..=20.0).contains(&epochs), "trained {epochs} epochs");
    assert_eq!(v["scheduler"], "hyperband");
    // Rungs 1, 3, 9: the first bracket runs 9 archs for one epoch before any promotion.
    assert!(v["trials"].as_u64().unwrap() >= 9);
    let v2 = json(&search(
        &run,
        &["--resume", "--epoch-budget", "40", "--json"],
    ));
    assert_eq!(v2["resumed"]["replayed"], v["trials"]);
    let e2 = v2["epochs_trained"].as_f64().unwrap();
    assert!(e2 > epochs && e2 <= 40.0, "{e2}");
}

#[test]
fn stoppers_prune_and_bad_fidelity_requests_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = iris();
    let base = [
        "--data",
        &iris,
        "--target",
        "species",
        "--trials",
        "8",
        "--epochs",
        "6",
        "--final-seeds",
        "1",
        "--final-epochs",
        "1",
        "--batch-size",
        "16",
        "--json",
    ];
    let mut a = base.to_vec();
    a.extend(["--stopper", "median", "--stopper-param", "min_trials=2"]);
    let v = json(&search(&tmp.path().join("median"), &a));
    assert_eq!(v["stopper"], "median");
    assert!(v["epochs_trained"].as_f64().unwrap() <= 8.0 * 6.0);

    let table = nb201_table();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--table", &table, "--scheduler", "asha"],
            "training evaluator",
        ),
        (
            vec!["--scheduler", "asha", "--strategy", "rea"],
            "drop --strategy",
        ),
        (vec!["--scheduler", "hyperband2"], "unknown scheduler"),
        (vec!["--stopper", "patience"], "unknown stopper"),
        (
            vec!["--scheduler", "sh", "--min-epochs", "20", "--epochs", "5"],
            "min",
        ),
        (
            vec!["--strategy-param", "warm_start=accuracy"],
            "unknown warm-start proxy",
        ),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let o = search(&tmp.path().join(format!("bad{i}")), extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}

#[test]
fn a_zero_cost_warm_start_puts_the_proxys_best_first() {
    let tmp = tempfile::tempdir().unwrap();
    let iris = iris();
    let v = json(&search(
        &tmp.path().join("warm"),
        &[
            "--data",
            &iris,
            "--target",
            "species",
            "--strategy",
            "random",
            "--trials",
            "2",
            "--epochs",
            "1",
            "--final-seeds",
            "1",
            "--final-epochs",
            "1",
            "--batch-size",
            "16",
            "--strategy-param",
            "warm_start=params",
            "--strategy-param",
            "warm_pool=50",
            "--strategy-param",
            "warm_top=2",
            "--json",
        ],
    ));
    // Both trials are the 2 largest of 50 random MLPs, far above a typical random MLP's size.
    assert!(v["metrics"]["params"].as_f64().unwrap() > 100_000.0, "{v}");
}
