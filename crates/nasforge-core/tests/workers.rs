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
    SchedulerProposer, Sharing, Storage, StrategyProposer, Study, StudyRecord, TableEvaluator,
    Told, Trial, TrialState, FIDELITY_VALUE,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
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

fn a_late_result_is_kept_while_its_rerun_is_still_queued(new_db: &dyn Fn(&str) -> Db) {
    let db = new_db("late");
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
    let s = strategy::build("random", 1, &Params::new()).unwrap();
    let mut slow = Study::join(
        db.open(),
        record("random", goal),
        space.as_ref(),
        StrategyProposer::boxed(s, 1, 1),
        "slow",
        quick(),
    )
    .unwrap();
    let ask = slow.ask().unwrap().unwrap();
    // Silent for longer than the grace period (`ask` alone sends no heartbeats, as a worker
    // cut off from the database): the trial is failed as stale and queued again, but nobody
    // has started the re-run yet.
    std::thread::sleep(std::time::Duration::from_secs_f64(quick().grace + 0.3));
    let failed = db
        .open()
        .reap_stale("shared", quick().grace, quick().max_retry)
        .unwrap();
    assert_eq!(failed, [ask.number]);
    let outcome = TableEvaluator::new(table).evaluate(
        space.as_ref(),
        &ask.arch,
        &ask.fidelity,
        &mut |_, _| true,
    );
    slow.tell(ask.number, outcome).unwrap();
    assert_eq!(slow.lost(), 0, "the late result was kept");
    let trials = db.open().trials("shared").unwrap();
    assert_eq!(trials.len(), 2);
    assert_eq!(trials[0].state, TrialState::Complete);
    assert_eq!(trials[0].worker, "slow");
    assert_eq!(trials[1].state, TrialState::Failed);
    assert!(
        trials[1].error.as_deref().unwrap().contains("superseded"),
        "{:?}",
        trials[1]
    );
    assert_eq!(counting(&trials).len(), 1);
}

/// A storage whose `finish_owned` fails while `down` is set, as when the database is gone.
struct Flaky {
    inner: Box<dyn Storage>,
    down: Arc<AtomicBool>,
}

impl Storage for Flaky {
    fn create_study(&mut self, record: &StudyRecord) -> nasforge_core::Result<()> {
        self.inner.create_study(record)
    }
    fn study(&self, name: &str) -> nasforge_core::Result<Option<StudyRecord>> {
        self.inner.study(name)
    }
    fn studies(&self) -> nasforge_core::Result<Vec<StudyRecord>> {
        self.inner.studies()
    }
    fn set_config(&mut self, name: &str, c: &serde_json::Value) -> nasforge_core::Result<()> {
        self.inner.set_config(name, c)
    }
    fn create_trial(&mut self, study: &str, t: &NewTrial) -> nasforge_core::Result<u64> {
        self.inner.create_trial(study, t)
    }
    fn report(&mut self, study: &str, n: u64, step: u64, v: f64) -> nasforge_core::Result<()> {
        self.inner.report(study, n, step, v)
    }
    fn heartbeat(&mut self, study: &str, n: u64) -> nasforge_core::Result<()> {
        self.inner.heartbeat(study, n)
    }
    fn finish_trial(&mut self, s: &str, n: u64, e: &FinishedTrial) -> nasforge_core::Result<()> {
        self.inner.finish_trial(s, n, e)
    }
    fn trial(&self, study: &str, n: u64) -> nasforge_core::Result<Trial> {
        self.inner.trial(study, n)
    }
    fn trials(&self, study: &str) -> nasforge_core::Result<Vec<Trial>> {
        self.inner.trials(study)
    }
    fn create_trial_if(
        &mut self,
        study: &str,
        t: &NewTrial,
        limit: Option<u64>,
    ) -> nasforge_core::Result<Created> {
        self.inner.create_trial_if(study, t, limit)
    }
    fn trials_from(&self, study: &str, from: u64) -> nasforge_core::Result<Vec<Trial>> {
        self.inner.trials_from(study, from)
    }
    fn reap_stale(&mut self, s: &str, grace: f64, retry: u32) -> nasforge_core::Result<Vec<u64>> {
        self.inner.reap_stale(s, grace, retry)
    }
    fn claim_queued(&mut self, study: &str, w: &str) -> nasforge_core::Result<Option<Trial>> {
        self.inner.claim_queued(study, w)
    }
    fn finish_owned(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        end: &FinishedTrial,
    ) -> nasforge_core::Result<Told> {
        if self.down.load(Ordering::SeqCst) {
            return Err(nasforge_core::Error::Storage(
                "cannot reach the database (the test took it away)".into(),
            ));
        }
        self.inner.finish_owned(study, number, worker, end)
    }
    fn reopen(&self) -> nasforge_core::Result<Box<dyn Storage>> {
        self.inner.reopen()
    }
}

fn an_outcome_the_database_refused_is_kept_and_stored_by_the_next_worker(
    new_db: &dyn Fn(&str) -> Db,
) {
    let db = new_db("spool");
    let spool = tempfile::tempdir().unwrap();
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let goal = Goal::single("valid_acc_12ep", Direction::Maximize);
    let join = |storage: Box<dyn Storage>, w: &str| {
        let s = strategy::build("random", 3, &Params::new()).unwrap();
        Study::join(
            storage,
            record("random", goal.clone()),
            space.as_ref(),
            StrategyProposer::boxed(s, 1, 3),
            w,
            quick(),
        )
        .unwrap()
    };
    let down = Arc::new(AtomicBool::new(false));
    let flaky = Flaky {
        inner: db.open(),
        down: down.clone(),
    };
    let mut first = join(Box::new(flaky), "first");
    assert_eq!(first.set_spool(spool.path()).unwrap(), 0);
    let ask = first.ask().unwrap().unwrap();
    let outcome = TableEvaluator::new(table).evaluate(
        space.as_ref(),
        &ask.arch,
        &ask.fidelity,
        &mut |_, _| true,
    );
    down.store(true, Ordering::SeqCst);
    let e = first.tell(ask.number, outcome).err().unwrap().to_string();
    assert!(
        e.contains("test took it away") && e.contains("is kept in"),
        "{e}"
    );
    drop(first);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 1);
    // The next worker started with that folder stores it, as the first worker's.
    let mut next = join(db.open(), "next");
    assert_eq!(next.set_spool(spool.path()).unwrap(), 1);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    let t = db.open().trial("shared", ask.number).unwrap();
    assert_eq!(t.state, TrialState::Complete);
    assert_eq!(t.worker, "first");
    assert!(!t.values.is_empty());
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
    a_late_result_is_kept_while_its_rerun_is_still_queued,
    an_outcome_the_database_refused_is_kept_and_stored_by_the_next_worker,
);

/// Workers started together open a new SQLite file at once: every one gets the study database
/// (one of them writes the schema version, the others find it written).
#[test]
fn workers_opening_a_new_sqlite_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..60 {
        let db = dir.path().join(format!("{round}.db"));
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    nasforge_core::study::SqliteStorage::open(&db)
                        .unwrap_or_else(|e| panic!("round {round}: {e}"));
                });
            }
        });
    }
}
