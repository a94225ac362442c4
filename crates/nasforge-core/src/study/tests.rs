use super::*;
use crate::params::Params;
use crate::space::{self, Space};
use crate::strategy;

/// Scores an arch by a fixed function of its values; fails for archs whose first value is 4.
struct FakeEvaluator {
    calls: usize,
}

impl Evaluator for FakeEvaluator {
    fn metric_names(&self) -> Vec<String> {
        vec!["score".into(), "double".into()]
    }

    fn evaluate(
        &mut self,
        _space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
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
        let metrics = BTreeMap::from([("score".to_string(), v), ("double".to_string(), 2.0 * v)]);
        Ok(Evaluation {
            metrics,
            cost: Cost {
                epochs: fidelity.epochs.unwrap_or(2),
                seconds: 0.0,
            },
        })
    }
}

fn record(name: &str) -> StudyRecord {
    record_for(name, Goal::single("score", Direction::Maximize))
}

fn record_for(name: &str, goal: Goal) -> StudyRecord {
    StudyRecord::new(
        name,
        "nb201",
        serde_json::json!({}),
        "rea",
        goal,
        3,
        serde_json::json!({}),
    )
}

fn strat() -> Box<dyn Proposer> {
    StrategyProposer::boxed(
        strategy::build(
            "rea",
            3,
            &Params::parse(&["population=5", "sample_size=2"]).unwrap(),
        )
        .unwrap(),
        1,
        3,
    )
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
    study.optimize(&mut eval, 30, |_, _| {}).unwrap();
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
                assert_eq!(t.metrics["double"], 2.0 * t.value().unwrap());
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
        .filter_map(|t| t.value())
        .fold(f64::MIN, f64::max);
    assert_eq!(best.value(), Some(max));
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
    full.optimize(&mut FakeEvaluator { calls: 0 }, 40, |_, _| {})
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
        s.optimize(&mut FakeEvaluator { calls: 0 }, 15, |_, _| {})
            .unwrap();
        let ask = s.ask().unwrap().unwrap();
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
    s.optimize(&mut eval, 40, |_, _| {}).unwrap();
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
    let other = record_for("s", Goal::single("loss", Direction::Minimize));
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
fn table_evaluator_reads_every_column_and_its_fidelities() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let a = space.sample(&mut crate::rng::Rng::new(1));
    let csv = format!("arch,acc,loss\n\"{}\",91.5,0.3\n", space.format(&a));
    let table = std::sync::Arc::new(crate::tabular::Table::from_csv(&csv, space.as_ref()).unwrap());
    let mut ev = TableEvaluator::new(table.clone());
    assert_eq!(ev.metric_names(), vec!["acc", "loss"]);
    let got = ev
        .evaluate(space.as_ref(), &a, &Fidelity::default(), &mut |_, _| true)
        .unwrap();
    assert_eq!(got.metrics["acc"], 91.5);
    assert_eq!(got.metrics["loss"], 0.3);
    assert_eq!(got.cost, Cost::default());
    let half = Fidelity {
        epochs: Some(6),
        data_fraction: None,
    };
    assert!(matches!(
        ev.evaluate(space.as_ref(), &a, &half, &mut |_, _| true),
        Err(EvalError::Failed(_))
    ));
    let mut multi = TableEvaluator::new(table.clone())
        .with_fidelities(&[(6, "loss".into()), (12, "acc".into())], 12)
        .unwrap();
    let got = multi
        .evaluate(space.as_ref(), &a, &half, &mut |_, _| true)
        .unwrap();
    assert_eq!((got.metrics[FIDELITY_VALUE], got.cost.epochs), (0.3, 6));
    assert!(TableEvaluator::new(table)
        .with_fidelities(&[(6, "nope".into())], 6)
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
    let err = table.metric_index("acc").unwrap_err().to_string();
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

/// The NB201 table study of every strategy with one objective proposes exactly the archs it
/// proposed before the study loop was rebuilt for several objectives (seed 11, 30 trials).
#[test]
fn one_objective_gives_the_trials_it_gave_before_the_rebuilt_loop() {
    let pinned = include_str!("../../tests/data/pinned_trials_nb201_seed11.txt");
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = std::sync::Arc::new(crate::tabular::Table::builtin(space.as_ref()).unwrap());
    for line in pinned.lines() {
        let (name, keys) = line.split_once(' ').unwrap();
        let strat = strategy::build(name, 11, &Params::new()).unwrap();
        let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
        let (mut study, _) = Study::open(
            Box::new(MemoryStorage::new()),
            record_for("s", goal),
            space.as_ref(),
            StrategyProposer::boxed(strat, 1, 11),
            "w",
        )
        .unwrap();
        let mut ev = TableEvaluator::new(table.clone());
        study.optimize(&mut ev, 30, |_, _| {}).unwrap();
        let got: Vec<String> = study
            .trials()
            .unwrap()
            .into_iter()
            .map(|t| t.arch_key)
            .collect();
        assert_eq!(got.join(" "), keys, "{name}");
    }
}

/// Scores an arch and reports its parameters as "measured" latency (1 ms per 100k).
struct Costly {
    calls: usize,
}

impl Evaluator for Costly {
    fn metric_names(&self) -> Vec<String> {
        vec!["score".into(), metric::LATENCY_MS.into()]
    }

    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        _: &Fidelity,
        _: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError> {
        self.calls += 1;
        let params = space.decode(arch).unwrap().params() as f64;
        let score = arch.values().iter().map(|&v| v as f64).sum::<f64>();
        Ok(Evaluation {
            metrics: BTreeMap::from([
                ("score".to_string(), score),
                (metric::LATENCY_MS.to_string(), params / 1e5),
            ]),
            cost: Cost::default(),
        })
    }
}

fn two_objectives(constraints: &[&str]) -> Goal {
    Goal {
        objectives: vec![
            Objective::new("score", Direction::Maximize),
            Objective::new(metric::PARAMS, Direction::Minimize),
        ],
        constraints: constraints
            .iter()
            .map(|c| Constraint::parse(c).unwrap())
            .collect(),
    }
}

#[test]
fn an_arch_over_a_netspec_constraint_is_never_evaluated_nor_stored() {
    let space = space::build("nb201", &Params::new()).unwrap();
    for name in ["random", "rea", "tpe", "nsga2", "mo-rea", "mo-tpe"] {
        let goal = two_objectives(&["params<=400000", "latency_ms<=3"]);
        let strat = strategy::build(name, 5, &Params::new()).unwrap();
        let (mut study, _) = Study::open(
            Box::new(MemoryStorage::new()),
            record_for("s", goal),
            space.as_ref(),
            StrategyProposer::boxed(strat, 2, 5),
            "w",
        )
        .unwrap();
        let mut ev = Costly { calls: 0 };
        study.optimize(&mut ev, 60, |_, _| {}).unwrap();
        let trials = study.trials().unwrap();
        assert_eq!((trials.len(), ev.calls), (60, 60), "{name}");
        assert!(
            study.skipped_infeasible() > 0,
            "{name}: the constraint cuts the space"
        );
        for t in &trials {
            assert!(
                t.metrics[metric::PARAMS] <= 400_000.0,
                "{name}: trial {} was trained",
                t.number
            );
            assert_eq!(t.values.len(), 2);
            assert_eq!(t.values[1], t.metrics[metric::PARAMS]);
            // Latency is measured: it is judged after the evaluation.
            assert_eq!(
                t.is_feasible(),
                t.metrics[metric::LATENCY_MS] <= 3.0,
                "{name}"
            );
        }
        let front = front_of(&trials, study.goal());
        assert!(!front.is_empty());
        assert!(front.iter().all(|t| t.is_feasible()));
    }
}

#[test]
fn a_constraint_nothing_satisfies_is_an_error_after_many_proposals() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let (mut study, _) = Study::open(
        Box::new(MemoryStorage::new()),
        record_for("s", two_objectives(&["params<=10"])),
        space.as_ref(),
        strat(),
        "w",
    )
    .unwrap();
    study.set_max_infeasible(50);
    let err = study
        .optimize(&mut Costly { calls: 0 }, 5, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("50 proposals in a row broke the constraints params<=10"),
        "{err}"
    );
    assert!(
        err.contains("params="),
        "names the closest arch's value: {err}"
    );
    assert!(study.trials().unwrap().is_empty());
}

#[test]
fn a_multi_objective_study_resumes_like_an_uninterrupted_run() {
    let space = space::build("nb201", &Params::new()).unwrap();
    for name in ["nsga2", "rea", "mo-tpe"] {
        let open = |storage: Box<dyn Storage>| {
            let strat = strategy::build(name, 2, &Params::new()).unwrap();
            Study::open(
                storage,
                record_for("s", two_objectives(&["params<=600000"])),
                space.as_ref(),
                StrategyProposer::boxed(strat, 2, 2),
                "w",
            )
            .unwrap()
            .0
        };
        let mut full = open(Box::new(MemoryStorage::new()));
        full.optimize(&mut Costly { calls: 0 }, 70, |_, _| {})
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("study.db");
        let mut part = open(Box::new(SqliteStorage::open(&db).unwrap()));
        part.optimize(&mut Costly { calls: 0 }, 33, |_, _| {})
            .unwrap();
        drop(part);
        let mut rest = open(Box::new(SqliteStorage::open(&db).unwrap()));
        rest.optimize(&mut Costly { calls: 0 }, 70, |_, _| {})
            .unwrap();
        let keys = |s: &Study| -> Vec<String> {
            s.trials()
                .unwrap()
                .into_iter()
                .map(|t| t.arch_key)
                .collect()
        };
        assert_eq!(keys(&rest), keys(&full), "{name}");
    }
}

/// The version-1 schema and one finished trial, as nasforge wrote them before several objectives.
const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
CREATE TABLE trials (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL, arch_key TEXT NOT NULL, arch TEXT NOT NULL, fidelity TEXT NOT NULL,
    state TEXT NOT NULL, value REAL, metrics TEXT NOT NULL DEFAULT '{}', error TEXT,
    worker TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, heartbeat_at REAL,
    finished_at REAL, UNIQUE (study_id, number));
CREATE INDEX trials_by_key ON trials (study_id, arch_key);
CREATE TABLE intermediate (trial_id INTEGER NOT NULL REFERENCES trials(id), step INTEGER NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (trial_id, step));
";

fn write_v1(db: &std::path::Path, space: &dyn Space, arch: &Arch) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(V1).unwrap();
    let rec = serde_json::json!({"name": "s", "space": "nb201", "space_params": {}, "strategy": "rea",
        "objective": "score", "direction": "maximize", "seed": 3, "config": {}, "created_at": 0.0});
    conn.execute(
        "INSERT INTO studies (name, record) VALUES ('s', ?1)",
        [rec.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO trials (study_id, number, arch_key, arch, fidelity, state, value, metrics, worker, created_at)
         VALUES (1, 0, ?1, ?2, '{}', 'complete', 1.5, '{\"epochs\":4,\"train_seconds\":2.5,\"latency_ms_b1\":0.7}', 'w', 0)",
        [space.key(arch), space.to_json(arch).to_string()],
    )
    .unwrap();
}

#[test]
fn a_version_1_study_is_read_as_it_is_and_migrated_by_a_writer() {
    let space = space::build("nb201", &Params::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    // The first arch rea proposes, so the replay matches.
    let first = {
        let mut p = strat();
        p.propose(space.as_ref(), &crate::strategy::History::new())
            .unwrap()
            .arch
    };
    write_v1(&db, space.as_ref(), &first);
    let reader = SqliteStorage::open_existing(&db).unwrap();
    let t = reader.trial("s", 0).unwrap();
    assert_eq!(
        (t.values.clone(), t.violation, t.cost.epochs),
        (vec![1.5], Some(0.0), 4)
    );
    assert_eq!(t.metrics[metric::LATENCY_MS], 0.7);
    drop(reader);
    let (mut study, resumed) = Study::open(
        Box::new(SqliteStorage::open(&db).unwrap()),
        record("s"),
        space.as_ref(),
        strat(),
        "w",
    )
    .unwrap();
    assert_eq!(resumed.replayed, 1);
    study
        .optimize(&mut FakeEvaluator { calls: 0 }, 3, |_, _| {})
        .unwrap();
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[0].values, vec![1.5]);
    assert_eq!(trials[0].cost.seconds, 2.5);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, "2");
}

#[test]
fn a_database_newer_than_this_nasforge_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    drop(SqliteStorage::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    for err in [
        SqliteStorage::open(&db).err().unwrap().to_string(),
        SqliteStorage::open_existing(&db).err().unwrap().to_string(),
    ] {
        assert!(err.contains("version 9 is newer than the 2"), "{err}");
    }
}

#[test]
fn a_scheduler_drives_the_same_loop_and_replays_its_jobs() {
    use crate::scheduler::{self, Rungs};
    let space = space::build("nb201", &Params::new()).unwrap();
    let sched = || {
        SchedulerProposer::boxed(
            scheduler::build(
                "asha",
                1,
                Rungs::geometric(1, 9, 3).unwrap(),
                &Params::new(),
            )
            .unwrap(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    let (mut s, _) = Study::open(
        Box::new(SqliteStorage::open(&db).unwrap()),
        record("s"),
        space.as_ref(),
        sched(),
        "w",
    )
    .unwrap();
    s.set_epoch_budget(40);
    s.optimize(&mut FakeEvaluator { calls: 0 }, 1000, |_, _| {})
        .unwrap();
    let before = s.trials().unwrap();
    assert!(before.iter().all(|t| t.fidelity.epochs.is_some()));
    assert!(s.epochs_spent() <= 40);
    drop(s);
    let (mut s, resumed) = Study::open(
        Box::new(SqliteStorage::open(&db).unwrap()),
        record("s"),
        space.as_ref(),
        sched(),
        "w",
    )
    .unwrap();
    assert_eq!(resumed.replayed, before.len());
    s.set_epoch_budget(80);
    s.optimize(&mut FakeEvaluator { calls: 0 }, 1000, |_, _| {})
        .unwrap();
    assert!(s.trials().unwrap().len() > before.len());
    // Another seed hands out other jobs: the replay says so.
    let other = SchedulerProposer::boxed(
        scheduler::build(
            "asha",
            2,
            Rungs::geometric(1, 9, 3).unwrap(),
            &Params::new(),
        )
        .unwrap(),
    );
    let err = Study::open(
        Box::new(SqliteStorage::open(&db).unwrap()),
        record("s"),
        space.as_ref(),
        other,
        "w",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("seed"), "{err}");
}

/// Every registered strategy on every space in a two-objective study: the single-objective
/// ones through the random scalarisation, NSGA-II and mo-rea natively; none repeats an arch.
#[test]
fn every_strategy_runs_multi_objective_on_every_space_without_repeats() {
    for space_name in space::SPACE_NAMES {
        let space = space::build(space_name, &Params::new()).unwrap();
        for info in strategy::STRATEGIES {
            let strat = strategy::build(info.name, 4, &Params::new()).unwrap();
            let (mut study, _) = Study::open(
                Box::new(MemoryStorage::new()),
                record_for("s", two_objectives(&[])),
                space.as_ref(),
                StrategyProposer::boxed(strat, 2, 4),
                "w",
            )
            .unwrap();
            study
                .optimize(&mut Costly { calls: 0 }, 40, |_, _| {})
                .unwrap();
            let trials = study.trials().unwrap();
            assert_eq!(trials.len(), 40, "{} on {space_name}", info.name);
            let unique: std::collections::HashSet<&str> =
                trials.iter().map(|t| t.arch_key.as_str()).collect();
            assert_eq!(unique.len(), 40, "{} on {space_name}", info.name);
            assert!(!front_of(&trials, study.goal()).is_empty());
        }
    }
}
