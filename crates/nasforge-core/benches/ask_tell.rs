//! Ask+tell overhead per trial at a 1,000-trial history.
//!
//! `cargo bench -p nasforge-core --bench ask_tell` (figures in docs/BENCHMARKS.md).
//!
//! For every strategy on every space: 1,000 trials are run to build the history, then the next
//! 500 ask+tell pairs are timed. Three layers are measured: the strategy alone (with its
//! `History`), a `Study` on in-memory storage, and a `Study` on SQLite (a file in a temp dir,
//! WAL, synchronous=NORMAL), which is what `nasforge search` pays per trial. The objective is a
//! cheap deterministic function of the arch, so only the search machinery is timed.

use nasforge_core::space::{self, Arch, Space, SPACE_NAMES};
use nasforge_core::strategy::{self, History, STRATEGIES};
use nasforge_core::study::{
    Direction, EvalError, Evaluation, Evaluator, Fidelity, Goal, MemoryStorage, SqliteStorage,
    Storage, StrategyProposer, Study, StudyRecord,
};
use nasforge_core::Params;
use std::time::Instant;

const WARM: usize = 1_000;
const TIMED: usize = 500;

fn score(arch: &Arch) -> f64 {
    arch.values()
        .iter()
        .enumerate()
        .map(|(i, &v)| ((v as f64 + 1.0) * (i as f64 + 0.37)).sin())
        .sum()
}

struct Cheap;

impl Evaluator for Cheap {
    fn metric_names(&self) -> Vec<String> {
        vec!["score".into()]
    }

    fn evaluate(
        &mut self,
        _: &dyn Space,
        arch: &Arch,
        _: &Fidelity,
        _: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Result<Evaluation, EvalError> {
        Ok(Evaluation {
            metrics: [("score".to_string(), score(arch))].into(),
            cost: Default::default(),
        })
    }
}

fn strategy_only(space: &dyn Space, name: &str) -> f64 {
    let mut s = strategy::build(name, 1, &Params::new()).unwrap();
    let mut h = History::new();
    let step = |s: &mut Box<dyn strategy::Strategy>, h: &mut History| {
        let a = s.ask(space, h).expect("space not exhausted");
        h.mark_asked(&a);
        let v = score(&a);
        h.record(&a, Some(v));
        s.tell(space, &a, Some(v), h);
    };
    for _ in 0..WARM {
        step(&mut s, &mut h);
    }
    let t = Instant::now();
    for _ in 0..TIMED {
        step(&mut s, &mut h);
    }
    t.elapsed().as_secs_f64() * 1e6 / TIMED as f64
}

fn study(space: &dyn Space, name: &str, storage: Box<dyn Storage>) -> f64 {
    let record = StudyRecord::new(
        "bench",
        space.name(),
        space.params_json(),
        name,
        Goal::single("score", Direction::Maximize),
        1,
        serde_json::json!({}),
    );
    let strat = StrategyProposer::boxed(strategy::build(name, 1, &Params::new()).unwrap(), 1, 1);
    let (mut study, _) = Study::open(storage, record, space, strat, "bench").unwrap();
    let mut eval = Cheap;
    let mut step = |study: &mut Study| {
        let ask = study.ask().unwrap().expect("space not exhausted");
        let out = eval.evaluate(space, &ask.arch, &Fidelity::default(), &mut |_, _| true);
        study.tell(ask.number, out).unwrap();
    };
    for _ in 0..WARM {
        step(&mut study);
    }
    let t = Instant::now();
    for _ in 0..TIMED {
        step(&mut study);
    }
    t.elapsed().as_secs_f64() * 1e6 / TIMED as f64
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "ask+tell per trial (µs), trials {WARM}..{} timed",
        WARM + TIMED
    );
    println!(
        "{:<8} {:<8} {:>10} {:>14} {:>14}",
        "space", "strategy", "strategy", "study+memory", "study+sqlite"
    );
    for space_name in SPACE_NAMES {
        let space = space::build(space_name, &Params::new()).unwrap();
        for info in STRATEGIES {
            let db = dir.path().join(format!("{space_name}-{}.db", info.name));
            let a = strategy_only(space.as_ref(), info.name);
            let b = study(space.as_ref(), info.name, Box::new(MemoryStorage::new()));
            let c = study(
                space.as_ref(),
                info.name,
                Box::new(SqliteStorage::open(&db).unwrap()),
            );
            println!(
                "{space_name:<8} {:<8} {a:>10.1} {b:>14.1} {c:>14.1}",
                info.name
            );
        }
    }
}
