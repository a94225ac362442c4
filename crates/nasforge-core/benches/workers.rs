//! Several workers on one SQLite or PostgreSQL study: throughput and correctness.
//!
//! ```sh
//! cargo bench -p nasforge-core --bench workers -- --workers 1,2,4,8 --trials 2000
//! cargo bench -p nasforge-core --bench workers -- --workers 1,8 --trials 400 --delay-ms 100
//! cargo bench -p nasforge-core --bench workers -- --workers 8 --trials 10000 --strategy asha
//! cargo bench -p nasforge-core --bench workers -- --postgres postgres://USER:PW@HOST/DB
//! ```
//!
//! Each worker is a thread with its own connection to one study (a SQLite file in WAL mode, or
//! with `--postgres URL` a new study in that database for each row), running
//! `Study::join` + `optimize` on the NAS-Bench-201 table; `--delay-ms` makes every evaluation
//! wait that long first (a stand-in for training). Prints per worker count: wall time, trials
//! per second, speed-up over the first row, and the checks: duplicate (arch, fidelity) pairs
//! among the trials that count, trials that count against the limit, and failed ones.

use nasforge_core::scheduler::{self, Rungs};
use nasforge_core::space;
use nasforge_core::strategy;
use nasforge_core::study::{
    Direction, Goal, Proposer, SchedulerProposer, Sharing, StrategyProposer, Study, StudyRecord,
    TableEvaluator, TrialState, FIDELITY_VALUE,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{arg, open, Slow};

fn main() {
    let workers: Vec<usize> = arg("--workers", "1,2,4,8")
        .split(',')
        .map(|w| w.parse().expect("--workers: a list of counts"))
        .collect();
    let trials: usize = arg("--trials", "2000").parse().expect("--trials: a count");
    let delay = Duration::from_secs_f64(
        arg("--delay-ms", "0")
            .parse::<f64>()
            .expect("--delay-ms: milliseconds")
            / 1e3,
    );
    let strat = arg("--strategy", "random");
    let postgres = Some(arg("--postgres", "")).filter(|u| !u.is_empty());
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let asha = strat == "asha";
    let fidelities = [
        (12, "valid_acc_12ep".to_string()),
        (200, "test_acc_200ep".to_string()),
    ];
    let goal = if asha {
        Goal::single(FIDELITY_VALUE, Direction::Maximize)
    } else {
        Goal::single("valid_acc_12ep", Direction::Maximize)
    };
    println!(
        "{strat}, {trials} trials, {} ms per evaluation, NB201 table, {}",
        delay.as_millis(),
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite (WAL)"
        }
    );
    println!("| workers | seconds | trials/s | speed-up | duplicates | counted | failed |");
    println!("|---|---|---|---|---|---|---|");
    let mut base = None;
    for &n in &workers {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("study.db");
        let name = format!(
            "bench-{n}-{}-{}",
            std::process::id(),
            nasforge_core::study::now()
        );
        let store = postgres.clone().unwrap_or_else(|| db.display().to_string());
        let open = || open(&store);
        let record = StudyRecord::new(
            name.as_str(),
            "nb201",
            serde_json::json!({}),
            strat.as_str(),
            goal.clone(),
            1,
            serde_json::json!({}),
        );
        let start = Instant::now();
        std::thread::scope(|s| {
            for w in 0..n {
                let (space, table, record, open) =
                    (space.as_ref(), table.clone(), record.clone(), &open);
                let (strat, fidelities) = (strat.as_str(), &fidelities);
                s.spawn(move || {
                    let seed = 1000 + w as u64;
                    let (proposer, ev): (Box<dyn Proposer>, TableEvaluator) = if asha {
                        let rungs = Rungs::explicit(vec![12, 200]).unwrap();
                        let sched = scheduler::build("asha", seed, rungs, &Params::new()).unwrap();
                        let ev = TableEvaluator::new(table)
                            .with_fidelities(fidelities, 200)
                            .unwrap();
                        (SchedulerProposer::boxed(sched), ev)
                    } else {
                        let st = strategy::build(strat, seed, &Params::new()).unwrap();
                        (
                            StrategyProposer::boxed(st, 1, seed),
                            TableEvaluator::new(table),
                        )
                    };
                    let storage = open();
                    let mut study = Study::join(
                        storage,
                        record,
                        space,
                        proposer,
                        &format!("w{w}"),
                        Sharing::default(),
                    )
                    .unwrap();
                    let mut ev = Slow { table: ev, delay };
                    study.optimize(&mut ev, trials, |_, _| {}).unwrap();
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let stored = open().trials(&name).unwrap();
        let counted: Vec<_> = stored.iter().filter(|t| !t.was_interrupted()).collect();
        let mut seen = BTreeSet::new();
        let duplicates = counted
            .iter()
            .filter(|t| !seen.insert((t.arch_key.clone(), t.fidelity.epochs)))
            .count();
        let failed = stored
            .iter()
            .filter(|t| t.state == TrialState::Failed)
            .count();
        let rate = counted.len() as f64 / secs;
        let speedup = rate / *base.get_or_insert(rate);
        println!(
            "| {n} | {secs:.2} | {rate:.1} | {speedup:.2}× | {duplicates} | {} | {failed} |",
            counted.len()
        );
    }
}
