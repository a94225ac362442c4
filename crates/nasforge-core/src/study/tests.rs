use super::*;
use crate::params::Params;
use crate::space::{self, Space};
use crate::strategy;

/// Scores an arch by a fixed function of its values; fails for archs whose first value is 4.
struct FakeEvaluator {
    calls: usize,
}

impl Evaluator for FakeEvaluator {
    fn evaluate(
        &mut self,
        _space: &dyn Space,
        arch: &Arch,
        _fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError> {
        self.calls += 1;
        let v: f64 = arch
            .values()
            .iter()
            .enumerate()
            .map(|(i, &x)| ((x as f64 + 1.0) * (i as f64 + 0.3)).cos())
            .sum();
        if arch.values()[0] == 4 {
            return Err(EvalError::Failed("loss became NaN".into()));
        }
        let _ = report(1, v / 2.0);
        let _ = report(2, v);
        let mut metrics = BTreeMap::new();
        metrics.insert("double".into(), 2.0 * v);
        Ok(Evaluation { value: v, metrics })
    }
}

fn record(name: &str) -> StudyRecord {
    StudyRecord {
        name: name.into(),
        space: "nb201".into(),
        space_params: serde_json::json!({}),
        strategy: "rea".into(),
        objective: "score".into(),
        direction: Direction::Maximize,
        seed: 3,
        config: serde_json::json!({}),
        created_at: now(),
    }
}

fn strat() -> Box<dyn strategy::Strategy> {
    strategy::build(
        "rea",
        3,
        &Params::parse(&["population=5", "sample_size=2"]).unwrap(),
    )
    .unwrap()
}

#[test]
fn sqlite_study_stores_every_trial_with_metrics_and_curves() {
    let dir = tempfile::tempdir().unwrap();
    let space = space::build("nb201", &Params::new()).unwrap();
    let storage = SqliteStorage::open(&dir.path().join("study.db")).unwrap();
    let (mut study, resumed) = Study::open(
        Box::new(storage),
        record("s"),
        space.as_ref(),
        strat(),
        "w1",
    )
    .unwrap();
    assert_eq!(resumed, Resumed::default());
    let mut eval = FakeEvaluator { calls: 0 };
    study
        .optimize(&mut eval, 30, &Fidelity::default(), |_, _| {})
        .unwrap();
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 30);
    assert_eq!(eval.calls, 30);
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t.number, i as u64);
        assert!(t.finished_at.is_some() && t.started_at.is_some());
        assert_eq!(t.worker, "w1");
        match t.state {
            TrialState::Complete => {
                assert_eq!(t.intermediate.len(), 2);
                assert_eq!(t.metrics["double"], 2.0 * t.value.unwrap());
            }
            TrialState::Failed => assert_eq!(t.error.as_deref(), Some("loss became NaN")),
            s => panic!("unexpected state {s:?}"),
        }
    }
    assert!(
        trials.iter().any(|t| t.state == TrialState::Failed),
        "some archs start with op 4"
    );
    let best = study.best().unwrap().unwrap();
    let max = trials
        .iter()
        .filter_map(|t| t.value)
        .fold(f64::MIN, f64::max);
    assert_eq!(best.value, Some(max));
}

#[test]
fn resume_keeps_finished_trials_and_continues_like_an_uninterrupted_run() {
    let space = space::build("nb201", &Params::new()).unwrap();
    // Uninterrupted: 40 trials.
    let (mut full, _) = Study::open(
        Box::new(MemoryStorage::new()),
        record("s"),
        space.as_ref(),
        strat(),
        "w",
    )
    .unwrap();
    full.optimize(
        &mut FakeEvaluator { calls: 0 },
        40,
        &Fidelity::default(),
        |_, _| {},
    )
    .unwrap();
    let full_keys: Vec<String> = full
        .trials()
        .unwrap()
        .into_iter()
        .map(|t| t.arch_key)
        .collect();

    // Interrupted after 15 finished trials and one left running, then resumed.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    {
        let storage = SqliteStorage::open(&db).unwrap();
        let (mut s, _) =
            Study::open(Box::new(storage), record("s"), space.as_ref(), strat(), "w").unwrap();
        s.optimize(
            &mut FakeEvaluator { calls: 0 },
            15,
            &Fidelity::default(),
            |_, _| {},
        )
        .unwrap();
        let ask = s.ask(Fidelity::default()).unwrap().unwrap();
        s.report(ask.number, 1, 0.5).unwrap();
        // The process dies here: trial 15 stays `running`.
    }
    let storage = SqliteStorage::open(&db).unwrap();
    let (mut s, resumed) =
        Study::open(Box::new(storage), record("s"), space.as_ref(), strat(), "w").unwrap();
    assert_eq!(
        resumed,
        Resumed {
            replayed: 15,
            interrupted: 1
        }
    );
    let mut eval = FakeEvaluator { calls: 0 };
    s.optimize(&mut eval, 40, &Fidelity::default(), |_, _| {})
        .unwrap();
    assert_eq!(eval.calls, 25, "finished trials are not evaluated again");
    let trials = s.trials().unwrap();
    assert_eq!(trials[15].state, TrialState::Failed);
    assert!(trials[15]
        .error
        .as_deref()
        .unwrap()
        .starts_with("interrupted"));
    let resumed_keys: Vec<String> = trials
        .into_iter()
        .filter(|t| {
            !t.error
                .as_deref()
                .is_some_and(|e| e.starts_with("interrupted"))
        })
        .map(|t| t.arch_key)
        .collect();
    assert_eq!(
        resumed_keys, full_keys,
        "the resumed run proposes what the uninterrupted run did"
    );
}

#[test]
fn reopening_with_another_objective_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    let space = space::build("nb201", &Params::new()).unwrap();
    drop(
        Study::open(
            Box::new(SqliteStorage::open(&db).unwrap()),
            record("s"),
            space.as_ref(),
            strat(),
            "w",
        )
        .unwrap(),
    );
    let mut other = record("s");
    other.objective = "loss".into();
    let err = Study::open(
        Box::new(SqliteStorage::open(&db).unwrap()),
        other,
        space.as_ref(),
        strat(),
        "w",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("objective"), "{err}");
}

#[test]
fn table_evaluator_reads_the_objective_and_rejects_other_fidelities() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let a = space.sample(&mut crate::rng::Rng::new(1));
    let csv = format!("arch,acc,loss\n\"{}\",91.5,0.3\n", space.format(&a));
    let table = std::sync::Arc::new(crate::tabular::Table::from_csv(&csv, space.as_ref()).unwrap());
    let mut ev = TableEvaluator::new(table.clone(), "acc").unwrap();
    let got = ev
        .evaluate(space.as_ref(), &a, &Fidelity::default(), &mut |_, _| true)
        .unwrap();
    assert_eq!(got.value, 91.5);
    assert_eq!(got.metrics["loss"], 0.3);
    assert!(got.metrics["params"] > 0.0);
    let half = Fidelity {
        epochs: Some(6),
        data_fraction: None,
    };
    assert!(matches!(
        ev.evaluate(space.as_ref(), &a, &half, &mut |_, _| true),
        Err(EvalError::Failed(_))
    ));
    assert!(TableEvaluator::new(table, "nope")
        .err()
        .unwrap()
        .to_string()
        .contains("acc, loss"));
}

#[test]
fn a_non_finite_objective_is_an_error_naming_its_row_and_a_repeated_column_too() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let mut rng = crate::rng::Rng::new(3);
    let (a, b) = (space.sample(&mut rng), space.sample(&mut rng));
    let csv = format!(
        "arch,acc,loss\n\"{}\",91.5,NaN\n\"{}\",inf,0.2\n",
        space.format(&a),
        space.format(&b)
    );
    let table = std::sync::Arc::new(crate::tabular::Table::from_csv(&csv, space.as_ref()).unwrap());
    let err = TableEvaluator::new(table.clone(), "acc")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("row 3, column `acc` holds `inf`"), "{err}");
    let err = table.metric_index("loss").unwrap_err().to_string();
    assert!(err.contains("row 2, column `loss` holds `NaN`"), "{err}");
    assert_eq!(
        table.column_index("loss").unwrap(),
        1,
        "the column still loads"
    );
    let dup = format!("arch,acc,acc\n\"{}\",1,2\n", space.format(&a));
    let err = crate::tabular::Table::from_csv(&dup, space.as_ref())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`acc` twice (columns 2 and 3)"), "{err}");
}
