//! One-shot methods end to end: a supernet trained once, archs scored with inherited weights
//! as trials of a normal study (a strategy's for SPOS / RSPS, each epoch's derived arch for
//! DARTS / GDAS), final training from scratch; the supernet checkpoint survives kill -9;
//! methods refused where they cannot work.

mod common;
use common::{iris, json, nasforge, resume, stderr, text, trials_of};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small one-shot search on the embedded digits, quick in a debug build.
fn one_shot(method: &str, supernet_epochs: &str, trials: &str) -> Vec<String> {
    [
        "--method",
        method,
        "--supernet-epochs",
        supernet_epochs,
        "--trials",
        trials,
        "--final-seeds",
        "1",
        "--final-epochs",
        "1",
        "--space-param",
        "channels=4",
        "--space-param",
        "cells=1",
    ]
    .map(String::from)
    .to_vec()
}

fn search(dir: &Path, args: &[String], extra: &[&str]) -> std::process::Output {
    let mut all = vec!["search", "--run-dir", dir.to_str().unwrap()];
    all.extend(args.iter().map(String::as_str));
    all.extend_from_slice(extra);
    nasforge(&all)
}

#[test]
fn spos_scores_archs_with_inherited_weights_and_a_resume_reuses_the_supernet() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let v = json(&search(&run, &one_shot("spos", "3", "6"), &["--json"]));
    assert_eq!(v["method"], "spos");
    assert_eq!(v["strategy"], "rea");
    assert_eq!(v["trials"], 6);
    assert_eq!(v["epochs_trained"], 0, "no candidate is trained alone");
    let sn = &v["supernet"];
    assert_eq!(sn["epochs"], 3);
    assert_eq!(sn["epochs_trained_now"], 3);
    assert!(sn["final_train_loss"].as_f64().unwrap().is_finite());
    // The supernet's steps clip the gradient norm at 5 when --grad-clip is not given.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("supernet/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["identity"]["recipe"]["grad_clip"], 5.0,
        "{}",
        state["identity"]
    );
    // Final training from scratch, scored on the test split, as every search.
    let acc = v["test_accuracy_mean"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&acc), "{acc}");
    assert!(run.join("best/weights.bpk").exists());
    let trials = trials_of(&run);
    assert_eq!(trials.len(), 6);
    for t in &trials {
        let m = &t["metrics"];
        let a = m["valid_accuracy"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&a), "{t}");
        assert!(m["latency_ms"].as_f64().unwrap() > 0.0, "{t}");
        assert!(m["params"].as_f64().unwrap() > 0.0, "{t}");
        // Beside the accuracy, the cross-entropy with inherited weights.
        assert!(m["valid_loss"].as_f64().unwrap() > 0.0, "{t}");
    }
    // Scores differ between archs: they come from the weights each arch inherits.
    let distinct: std::collections::BTreeSet<u64> = trials
        .iter()
        .map(|t| t["metrics"]["valid_accuracy"].as_f64().unwrap().to_bits())
        .collect();
    assert!(distinct.len() > 1, "{trials:?}");

    // A resume asking for more trials keeps the six, reads the supernet, trains no epoch.
    let o = resume(&run, &["--trials", "9", "--json"]);
    let again = json(&o);
    assert_eq!(again["trials"], 9);
    assert_eq!(again["resumed"]["replayed"], 6);
    assert_eq!(again["supernet"]["epochs"], 3);
    assert_eq!(again["supernet"]["epochs_trained_now"], 0);
    let after = trials_of(&run);
    assert_eq!(
        after[..6],
        trials[..],
        "finished trials are kept as they were"
    );
}

#[test]
fn one_shot_methods_search_the_mlp_space_of_a_table_and_train_the_sub_network_they_pick() {
    let tmp = tempfile::tempdir().unwrap();
    for method in ["spos", "darts"] {
        let run = tmp.path().join(method);
        let args = [
            "--data",
            &iris(),
            "--target",
            "species",
            "--space-param",
            "max_depth=2",
            "--space-param",
            "widths=8,16",
            "--json",
        ];
        // The digits' nb201 parameters left out.
        let flags = &one_shot(method, "2", "4")[..10];
        let v = json(&search(&run, flags, &args));
        assert_eq!(v["space"], "mlp", "{method}");
        assert_eq!(v["method"], method);
        assert_eq!(v["supernet"]["epochs"], 2);
        // The arch trained finally is an MLP of the space, scored on the test split.
        let arch = v["arch"].as_str().unwrap();
        assert!(arch.starts_with("depth="), "{arch}");
        let acc = v["test_accuracy_mean"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{acc}");
        assert!(run.join("best/weights.bpk").exists());
    }
}

#[test]
fn once_for_all_picks_a_sub_network_per_budget_and_trains_each_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("ofa");
    let args = [
        "--data",
        &iris(),
        "--target",
        "species",
        "--space-param",
        "max_depth=2",
        "--space-param",
        "widths=4,8,16",
        "--budget",
        "params<=100",
        "--budget",
        "params<=200",
        "--budget",
        "macs<=1000",
        "--json",
    ];
    let v = json(&search(&run, &one_shot("ofa", "3", "12")[..10], &args));
    assert_eq!(v["method"], "ofa");
    assert_eq!(v["strategy"], "mo-rea", "several objectives by default");
    let budgets = v["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 3);
    // The smallest MLP here has 35 parameters (4 features -> 4 -> 3 classes), the largest
    // 451: twelve trials may or may not include one under 100. Every pick is within its
    // budget and was scored both ways.
    for b in budgets {
        let metric = b["metric"].as_str().unwrap();
        let limit = b["limit"].as_f64().unwrap();
        let Some(arch) = b["arch"].as_str() else {
            continue;
        };
        assert!(arch.starts_with("depth="), "{arch}");
        assert!(b["metrics"][metric].as_f64().unwrap() <= limit, "{b}");
        for k in ["inherited_test", "scratch_test_mean"] {
            let acc = b[k].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&acc), "{k} {acc}");
        }
        assert!(Path::new(b["model"].as_str().unwrap())
            .join("weights.bpk")
            .exists());
    }
    assert!(budgets.iter().filter(|b| b["arch"].is_string()).count() >= 2);
}

#[test]
fn one_shot_methods_search_the_darts_cell_space() {
    let tmp = tempfile::tempdir().unwrap();
    for method in ["spos", "gdas"] {
        let run = tmp.path().join(method);
        let args = [
            "--space",
            "darts",
            "--space-param",
            "channels=4",
            "--space-param",
            "layers=3",
            "--json",
        ];
        let v = json(&search(&run, &one_shot(method, "1", "3")[..10], &args));
        assert_eq!(v["space"], "darts", "{method}");
        assert_eq!(v["supernet"]["epochs"], 1);
        // A DARTS genotype, trained from scratch and scored on the test split.
        let arch = v["arch"].as_str().unwrap();
        assert!(
            arch.contains("normal=[") && arch.contains("reduce=["),
            "{arch}"
        );
        let acc = v["test_accuracy_mean"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{acc}");
    }
}

#[test]
fn one_shot_methods_search_the_macro_space_and_once_for_all_shrinks_its_kernels_widths_and_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "--space",
        "macro",
        "--space-param",
        "layers=4",
        "--space-param",
        "widths=4,8",
        "--space-param",
        "stem=4",
    ];
    for method in ["spos", "gdas", "enas"] {
        let run = tmp.path().join(method);
        let mut args = small.to_vec();
        args.push("--json");
        let v = json(&search(&run, &one_shot(method, "1", "3")[..10], &args));
        assert_eq!(v["space"], "macro", "{method}");
        assert_eq!(v["supernet"]["epochs"], 1);
        let arch = v["arch"].as_str().unwrap();
        assert!(arch.contains("layer3_op="), "{arch}");
        let acc = v["test_accuracy_mean"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{acc}");
    }
    // Once-for-all: the kernel sizes, widths and (with min_layers) the depth are elastic; a
    // pick per budget, trained from scratch too; with in-place distillation.
    let run = tmp.path().join("ofa");
    let mut args = small.to_vec();
    args.extend([
        "--space-param",
        "min_layers=2",
        "--budget",
        "params<=2000",
        "--budget",
        "macs<=100000",
        "--distill",
        "true",
        "--json",
    ]);
    let v = json(&search(&run, &one_shot("ofa", "2", "8")[..10], &args));
    assert_eq!(v["method"], "ofa");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("supernet/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["identity"]["method"], "progressive_shrinking_kd");
    let budgets = v["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2);
    for b in budgets.iter().filter(|b| b["arch"].is_string()) {
        let metric = b["metric"].as_str().unwrap();
        assert!(b["metrics"][metric].as_f64().unwrap() <= b["limit"].as_f64().unwrap());
        let acc = b["inherited_test"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{acc}");
    }
}

#[test]
fn rsps_is_random_search_on_the_supernet() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let v = json(&search(&run, &one_shot("rsps", "1", "4"), &["--json"]));
    assert_eq!(v["method"], "rsps");
    assert_eq!(v["strategy"], "random");
    assert_eq!(v["trials"], 4);
}

#[test]
fn a_supernet_killed_mid_training_resumes_from_its_last_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args = vec![
        "search".to_string(),
        "--run-dir".into(),
        run.to_str().unwrap().into(),
        "--quiet".into(),
    ];
    args.extend(one_shot("spos", "8", "3"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nasforge"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = run.join("supernet/state.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !state.exists() {
        assert!(Instant::now() < deadline, "no supernet epoch was stored");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the search ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = resume(&run, &["--json"]);
    let v = json(&o);
    let now = v["supernet"]["epochs_trained_now"].as_u64().unwrap();
    assert_eq!(v["supernet"]["epochs"], 8);
    assert!(
        now < 8,
        "finished epochs are not trained again ({now} of 8)"
    );
    assert_eq!(v["trials"], 3);
    assert!(run.join("best/weights.bpk").exists());
    // Only the last epoch's files are left.
    let files = std::fs::read_dir(run.join("supernet")).unwrap().count();
    assert_eq!(files, 3);
}

#[test]
fn one_shot_methods_refuse_what_they_cannot_do_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            one_shot("bogus", "1", "2"),
            "is not standard, spos, fairnas, rsps, darts, gdas, enas or ofa",
        ),
        (
            ["--method", "darts", "--space", "macro"]
                .map(String::from)
                .to_vec(),
            "no weight can mix",
        ),
        (
            [
                one_shot("spos", "1", "2"),
                vec!["--evaluator".into(), "table".into()],
            ]
            .concat(),
            "no weights to share",
        ),
        (
            [
                one_shot("spos", "1", "2"),
                vec!["--scheduler".into(), "asha".into()],
            ]
            .concat(),
            "drop --scheduler",
        ),
        (
            [
                one_shot("rsps", "1", "2"),
                vec!["--strategy".into(), "rea".into()],
            ]
            .concat(),
            "random search on a supernet",
        ),
        (
            vec!["--supernet-epochs".into(), "3".into()],
            "add --method spos, fairnas, rsps, darts, gdas, enas or ofa",
        ),
        (one_shot("spos", "0", "2"), "--supernet-epochs"),
        (
            [
                one_shot("darts", "1", "2"),
                vec!["--strategy".into(), "rea".into()],
            ]
            .concat(),
            "derives its archs",
        ),
        (
            [
                one_shot("darts", "1", "2"),
                vec!["--collapse-guard".into(), "sometimes".into()],
            ]
            .concat(),
            "is not beta-decay, aux-skip or none",
        ),
        (
            [
                one_shot("gdas", "1", "2"),
                vec!["--collapse-guard".into(), "none".into()],
            ]
            .concat(),
            "drop --collapse-guard",
        ),
        (
            [
                one_shot("gdas", "1", "2"),
                vec!["--arch-lr".into(), "0".into()],
            ]
            .concat(),
            "--arch-lr must be a positive number",
        ),
        (
            [
                one_shot("spos", "1", "2"),
                vec!["--arch-lr".into(), "0.1".into()],
            ]
            .concat(),
            "has no architecture parameters",
        ),
        (vec!["--arch-lr".into(), "0.1".into()], "add one"),
        (
            [
                one_shot("darts", "1", "2"),
                vec!["--darts-order".into(), "3".into()],
            ]
            .concat(),
            "--darts-order is 1 or 2",
        ),
        (
            [
                one_shot("gdas", "1", "2"),
                vec!["--darts-order".into(), "2".into()],
            ]
            .concat(),
            "is not DARTS",
        ),
        (one_shot("ofa", "1", "2"), "give at least one --budget"),
        (
            [
                one_shot("ofa", "1", "2"),
                vec!["--budget".into(), "params<=5000".into()],
            ]
            .concat(),
            "has none; use --space mlp",
        ),
        (
            [
                one_shot("ofa", "1", "2"),
                vec!["--budget".into(), "valid_accuracy>=90".into()],
            ]
            .concat(),
            "METRIC params, macs or latency_ms",
        ),
        (
            [
                one_shot("spos", "1", "2"),
                vec!["--budget".into(), "params<=5000".into()],
            ]
            .concat(),
            "drop --budget",
        ),
        (
            vec!["--budget".into(), "params<=5000".into()],
            "add --method ofa",
        ),
        (
            [
                one_shot("spos", "1", "2"),
                vec!["--distill".into(), "true".into()],
            ]
            .concat(),
            "drop --distill",
        ),
        (vec!["--distill".into(), "true".into()], "add --method ofa"),
    ];
    for (k, (args, needle)) in cases.iter().enumerate() {
        let run = tmp.path().join(format!("run{k}"));
        let o = search(&run, args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!run.join("config.toml").exists(), "{args:?} wrote a run");
    }
}

#[test]
fn a_damaged_or_foreign_supernet_checkpoint_is_refused_on_resume_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    json(&search(&a, &one_shot("spos", "1", "2"), &["--json"]));
    json(&search(
        &b,
        &one_shot("spos", "1", "2"),
        &["--json", "--seed", "1"],
    ));
    // Run b's supernet in run a: another seed's weights never continue a's search.
    std::fs::remove_dir_all(a.join("supernet")).unwrap();
    copy_dir(&b.join("supernet"), &a.join("supernet"));
    let o = resume(&a, &["--trials", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("seed 1 here 0"), "{}", stderr(&o));
    // A damaged state file names the folder and what to do.
    std::fs::write(b.join("supernet/state.json"), "{ not json").unwrap();
    let o = resume(&b, &["--trials", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("cannot be read") && stderr(&o).contains("Move the folder away"),
        "{}",
        stderr(&o)
    );
    assert_eq!(trials_of(&b).len(), 2, "the finished trials are kept");
}

#[test]
fn fairnas_trains_its_own_supernet_which_an_spos_checkpoint_does_not_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let (fair, spos) = (tmp.path().join("fair"), tmp.path().join("spos"));
    // Searched for the lowest inherited validation loss.
    let v = json(&search(
        &fair,
        &one_shot("fairnas", "2", "3"),
        &["--json", "--objective", "valid_loss"],
    ));
    assert_eq!(v["method"], "fairnas");
    assert_eq!(v["strategy"], "rea", "searched by a strategy, as spos");
    assert_eq!(v["trials"], 3);
    assert_eq!(v["supernet"]["epochs"], 2);
    assert!(v["supernet"]["final_train_loss"]
        .as_f64()
        .unwrap()
        .is_finite());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fair.join("supernet/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["identity"]["method"], "fair_single_path");
    assert!(fair.join("best/weights.bpk").exists());
    let trials = trials_of(&fair);
    let lowest = trials
        .iter()
        .min_by(|a, b| {
            let loss = |t: &serde_json::Value| t["metrics"]["valid_loss"].as_f64().unwrap();
            loss(a).total_cmp(&loss(b))
        })
        .unwrap();
    assert_eq!(v["arch"], lowest["arch_key"], "{trials:?}");
    // A search that trains each candidate has no inherited loss to minimise.
    let o = search(
        &tmp.path().join("standard"),
        &one_shot("spos", "1", "1")[4..],
        &["--objective", "valid_loss"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("unknown objective `valid_loss`"),
        "{}",
        stderr(&o)
    );
    // The same seed and recipe trained by SPOS is another supernet: refused on resume, the
    // trials kept.
    json(&search(&spos, &one_shot("spos", "2", "3"), &["--json"]));
    std::fs::remove_dir_all(fair.join("supernet")).unwrap();
    copy_dir(&spos.join("supernet"), &fair.join("supernet"));
    let o = resume(&fair, &["--trials", "4"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("method single_path here fair_single_path"),
        "{}",
        stderr(&o)
    );
    assert_eq!(trials_of(&fair).len(), 3, "the finished trials are kept");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn gdas_enas_and_darts_make_each_epochs_derived_arch_a_trial_and_a_resume_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    for (method, guard) in [
        ("gdas", None),
        ("enas", None),
        ("darts", Some("none")),
        ("darts", None),
    ] {
        let run = tmp
            .path()
            .join(format!("{method}-{}", guard.unwrap_or("default")));
        let mut extra = vec!["--json"];
        if let Some(g) = guard {
            // Second order with no guard: the unrolled α step end to end.
            extra.extend(["--collapse-guard", g, "--darts-order", "2"]);
        }
        let v = json(&search(&run, &one_shot(method, "3", "10"), &extra));
        assert_eq!(v["method"], method);
        assert_eq!(v["epochs_trained"], 0, "no candidate is trained alone");
        let sn = &v["supernet"];
        assert_eq!(sn["epochs"], 3);
        let derived = sn["derived"].as_str().expect("the last epoch's arch");
        // One trial per distinct derived arch, at most one per epoch, in epoch order.
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("supernet/state.json")).unwrap(),
        )
        .unwrap();
        let history = state["arch"]["history"].as_array().expect("α history");
        assert_eq!(history.len(), 3);
        let trials = trials_of(&run);
        assert!((1..=3).contains(&trials.len()), "{trials:?}");
        assert_eq!(v["trials"], trials.len());
        assert!(
            trials.iter().any(|t| t["arch"]["arch"] == derived),
            "{derived} {trials:?}"
        );
        for t in &trials {
            let a = t["metrics"]["valid_accuracy"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&a), "{t}");
        }
        assert!(run.join("best/weights.bpk").exists());
        let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(cfg.contains("arch_lr = 0.003"), "{cfg}");
        if method == "darts" {
            let want = format!("collapse_guard = \"{}\"", guard.unwrap_or("beta-decay"));
            assert!(cfg.contains(&want), "{cfg}");
            let order = if guard.is_some() { 2 } else { 1 };
            assert!(cfg.contains(&format!("darts_order = {order}")), "{cfg}");
        }

        // The report plots the supernet's loss and, per edge, softmax(α) over epochs.
        let r = nasforge(&["report", run.to_str().unwrap(), "--quiet"]);
        assert!(r.status.success(), "{}", text(&r));
        let html = std::fs::read_to_string(run.join("report.html")).unwrap();
        assert!(html.contains("id=\"supernet_loss\""), "{method}");
        assert_eq!(html.matches("id=\"alpha_").count(), 6, "one plot per edge");

        // A resume reads the supernet and α, replays the trials, trains nothing.
        let again = json(&resume(&run, &["--json"]));
        assert_eq!(again["resumed"]["replayed"], trials.len());
        assert_eq!(again["supernet"]["epochs_trained_now"], 0);
        assert_eq!(again["supernet"]["derived"], derived);
        assert_eq!(trials_of(&run).len(), trials.len());
    }
}
