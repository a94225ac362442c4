//! Several workers on one study (`Study::join`): threads with their own connection, as
//! separate processes would have. Every test runs on SQLite and on PostgreSQL (the latter
//! needs the server `source .ci/postgres` starts; without it, it is skipped, or fails under CI).

#[path = "common/db.rs"]
mod db;
use db::Db;

use nasforge_core::scheduler::{self, Rungs};
use nasforge_core::space;
use nasforge_core::strategy;
use nasforge_core::study::{
    Created, Direction, Evaluator, Fidelity, FinishedTrial, Goal, NewTrial, Proposer,
    SchedulerProposer, Sharing, StrategyProposer, Study, StudyRecord, TableEvaluator, Told, Trial,
    TrialState, FIDELITY_VALUE,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::collections::BTreeSet;
use std::sync::Arc;

fn record(strategy: &str, goal: Goal) -> StudyRecord {
    StudyRecord::new(
        "shared",
        "nb201",
        serde_json::json!({}),
        strategy,
        goal,
        7,
        serde_json::json!({ "strategy": strategy }),
    )
}

fn quick() -> Sharing {
    Sharing {
        grace: 0.6,
        max_retry: 2,
        heartbeat: 0.1,
    }
}

/// Sharing for the throughput tests: no trial should go stale there, even on a loaded machine.
fn steady() -> Sharing {
    Sharing {
        grace: 10.0,
        max_retry: 2,
        heartbeat: 0.5,
    }
}

/// The trials that count: every one not failed as interrupted or stale.
fn counting(trials: &[Trial]) -> Vec<&Trial> {
    trials.iter().filter(|t| !t.was_interrupted()).collect()
}

/// Asserts that no arch was evaluated twice at one fidelity among the trials that count.
fn assert_no_duplicates(trials: &[Trial]) {
    let mut seen = BTreeSet::new();
    for t in counting(trials) {
        let fidelity = serde_json::to_string(&t.fidelity).unwrap();
        assert!(
            seen.insert((t.arch_key.clone(), fidelity)),
            "trial {} repeats {} at {:?}",
            t.number,
            t.arch_key,
            t.fidelity
        );
    }
}

/// Runs `workers` threads on the study in `db`, each with its proposer from `make`, until the
/// study holds `trials` trials.
fn run_workers(
    db: &Db,
    workers: usize,
    trials: usize,
    goal: &Goal,
    strategy: &str,
    make: impl Fn(usize) -> (Box<dyn Proposer>, TableEvaluator) + Sync,
) {
    let space = space::build("nb201", &Params::new()).unwrap();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (space, make, goal) = (space.as_ref(), &make, goal.clone());
            s.spawn(move || {
                let (proposer, mut ev) = make(w);
                let storage = db.open();
                let mut study = Study::join(
                    storage,
                    record(strategy, goal),
                    space,
                    proposer,
                    &format!("w{w}"),
                    steady(),
                )
                .unwrap();
                study.optimize(&mut ev, trials, |_, _| {}).unwrap();
            });
        }
    });
}

fn eight_workers_fill_one_study_with_distinct_archs_and_nothing_lost_or_doubled(
    new_db: &dyn Fn(&str) -> Db,
) {
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    for strat in ["random", "rea"] {
        let db = new_db(strat);
        let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
        run_workers(&db, 8, 240, &goal, strat, |w| {
            let s = strategy::build(strat, 100 + w as u64, &Params::new()).unwrap();
            (
                StrategyProposer::boxed(s, 1, 100 + w as u64),
                TableEvaluator::new(table.clone()),
            )
        });
        let trials = db.open().trials("shared").unwrap();
        assert_eq!(
            trials.len(),
            240,
            "{strat}: exactly the limit, no overshoot"
        );
        assert!(
            trials.iter().all(|t| t.state == TrialState::Complete),
            "{strat}"
        );
        assert_no_duplicates(&trials);
        let workers: BTreeSet<&str> = trials.iter().map(|t| t.worker.as_str()).collect();
        assert!(
            workers.len() > 1,
            "{strat}: trials spread over workers: {workers:?}"
        );
    }
}

fn asha_promotes_across_workers_without_running_a_rung_twice(new_db: &dyn Fn(&str) -> Db) {
    let db = new_db("asha");
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let fidelities = [
        (12, "valid_acc_12ep".to_string()),
        (200, "test_acc_200ep".to_string()),
    ];
    let goal = Goal::single(FIDELITY_VALUE, Direction::Maximize);
    run_workers(&db, 4, 120, &goal, "asha", |w| {
        let rungs = Rungs::explicit(vec![12, 200]).unwrap();
        let sched = scheduler::build("asha", 5 + w as u64, rungs, &Params::new()).unwrap();
        let ev = TableEvaluator::new(table.clone())
            .with_fidelities(&fidelities, 200)
            .unwrap();
        (SchedulerProposer::boxed(sched), ev)
    });
    let trials = db.open().trials("shared").unwrap();
    assert_eq!(counting(&trials).len(), 120);
    assert_no_duplicates(&trials);
    let top: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.fidelity.epochs == Some(200))
        .collect();
    assert!(!top.is_empty(), "some archs were promoted");
    for t in &top {
        assert!(
            trials
                .iter()
                .any(|b| b.arch_key == t.arch_key && b.fidelity.epochs == Some(12)),
            "a promoted arch ran the lower rung first"
        );
    }
}

fn a_silent_workers_trial_is_rerun_once_and_its_late_result_cannot_overwrite(
    new_db: &dyn Fn(&str) -> Db,
) {
    let db = new_db("stale");
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
    let join = |w: &str, seed: u64| {
        let s = strategy::build("random", seed, &Params::new()).unwrap();
        Study::join(
            db.open(),
            record("random", goal.clone()),
            space.as_ref(),
            StrategyProposer::boxed(s, 1, seed),
            w,
            quick(),
        )
        .unwrap()
    };
    // The slow worker takes a trial and then says nothing for longer than the grace period.
    let mut slow = join("slow", 1);
    let ask = slow.ask().unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_secs_f64(quick().grace + 0.2));
    let mut fast = join("fast", 2);
    let mut ev = TableEvaluator::new(table.clone());
    fast.optimize(&mut ev, 12, |_, _| {}).unwrap();
    let trials = db.open().trials("shared").unwrap();
    let first = &trials[ask.number as usize];
    assert_eq!(first.state, TrialState::Failed);
    assert!(
        first.error.as_deref().unwrap().starts_with("stale"),
        "{first:?}"
    );
    let reruns: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.arch_key == first.arch_key && t.number != first.number)
        .collect();
    assert_eq!(reruns.len(), 1, "queued again once");
    assert_eq!(reruns[0].state, TrialState::Complete);
    assert_eq!(reruns[0].worker, "fast");
    assert_eq!(counting(&trials).len(), 12);
    assert!(counting(&trials)
        .iter()
        .all(|t| t.state == TrialState::Complete));
    // The slow worker finally tells: its trial is no longer its own, so nothing changes.
    let outcome = TableEvaluator::new(table).evaluate(
        space.as_ref(),
        &ask.arch,
        &ask.fidelity,
        &mut |_, _| true,
    );
    slow.tell(ask.number, outcome).unwrap();
    assert_eq!(slow.lost(), 1);
    let after = db.open().trials("shared").unwrap();
    assert_eq!(after, trials, "the late tell changed nothing");
}

fn a_repeated_tell_is_a_no_op_and_a_taken_arch_is_not_created_twice(new_db: &dyn Fn(&str) -> Db) {
    let db = new_db("tell");
    let mut s = db.open();
    s.create_study(&record("random", Goal::single("x", Direction::Maximize)))
        .unwrap();
    let new = NewTrial {
        arch_key: "a".into(),
        arch: serde_json::json!({}),
        fidelity: Fidelity::default(),
        state: TrialState::Running,
        worker: "w0".into(),
    };
    assert_eq!(
        s.create_trial_if("shared", &new, Some(2)).unwrap(),
        Created::Number(0)
    );
    assert_eq!(
        s.create_trial_if("shared", &new, Some(2)).unwrap(),
        Created::Taken
    );
    let other = NewTrial {
        arch_key: "b".into(),
        ..new.clone()
    };
    assert_eq!(
        s.create_trial_if("shared", &other, Some(1)).unwrap(),
        Created::Full
    );
    let end = FinishedTrial {
        state: TrialState::Complete,
        values: vec![0.5],
        violation: Some(0.0),
        metrics: Default::default(),
        cost: Default::default(),
        error: None,
    };
    assert_eq!(s.finish_owned("shared", 0, "w1", &end).unwrap(), Told::Lost);
    assert_eq!(
        s.finish_owned("shared", 0, "w0", &end).unwrap(),
        Told::Stored
    );
    assert_eq!(
        s.finish_owned("shared", 0, "w0", &end).unwrap(),
        Told::Repeated
    );
    let other_value = FinishedTrial {
        values: vec![0.7],
        ..end
    };
    assert_eq!(
        s.finish_owned("shared", 0, "w0", &other_value).unwrap(),
        Told::Lost
    );
    assert_eq!(s.trial("shared", 0).unwrap().values, [0.5]);
}

fn joining_with_another_configuration_or_a_synchronous_scheduler_is_refused(
    new_db: &dyn Fn(&str) -> Db,
) {
    let db = new_db("join");
    let space = space::build("nb201", &Params::new()).unwrap();
    let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
    let random =
        || StrategyProposer::boxed(strategy::build("random", 1, &Params::new()).unwrap(), 1, 1);
    let open = || db.open();
    let _first = Study::join(
        open(),
        record("random", goal.clone()),
        space.as_ref(),
        random(),
        "a",
        quick(),
    )
    .unwrap();
    let e = Study::join(
        open(),
        record("rea", goal.clone()),
        space.as_ref(),
        random(),
        "b",
        quick(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("another configuration"), "{e}");
    let sh = scheduler::build(
        "sh",
        1,
        Rungs::explicit(vec![12, 200]).unwrap(),
        &Params::new(),
    )
    .unwrap();
    let e = Study::join(
        open(),
        record("random", goal.clone()),
        space.as_ref(),
        SchedulerProposer::boxed(sh),
        "c",
        quick(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("cannot share a study"), "{e}");
    let bad = Sharing {
        grace: 0.1,
        ..quick()
    };
    let e = Study::join(
        open(),
        record("random", goal),
        space.as_ref(),
        random(),
        "d",
        bad,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("grace period"), "{e}");
}

/// Each test above, once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&|_| super::Db::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let name = stringify!($name).split('_').take(3).collect::<Vec<_>>().join("_");
                    if super::Db::postgres(&name).is_none() {
                        return;
                    }
                    super::$name(&|label| {
                        super::Db::postgres(&format!("{name}_{label}")).unwrap()
                    });
                }
            )*
        }
    };
}

on_both!(
    eight_workers_fill_one_study_with_distinct_archs_and_nothing_lost_or_doubled,
    asha_promotes_across_workers_without_running_a_rung_twice,
    a_silent_workers_trial_is_rerun_once_and_its_late_result_cannot_overwrite,
    a_repeated_tell_is_a_no_op_and_a_taken_arch_is_not_created_twice,
    joining_with_another_configuration_or_a_synchronous_scheduler_is_refused,
);
