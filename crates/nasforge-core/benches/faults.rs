//! Workers killed with SIGKILL at random moments: is anything lost, doubled or stuck?
//!
//! ```sh
//! cargo bench -p nasforge-core --bench faults -- --runs 50
//! cargo bench -p nasforge-core --bench faults -- --runs 50 --postgres postgres://USER:PW@HOST/DB
//! ```
//!
//! Each run is a new study of `--trials` (100) NB201 table trials, each evaluation sleeping
//! `--delay-ms` (50) first, shared by `--workers` (4) worker *processes* (this program again,
//! with `--child`). While the study fills, the parent kills a random worker with SIGKILL at a
//! random moment (every 50-400 ms) and starts a new one in its place, as a cluster scheduler
//! restarts a failed job; workers use a 1 s grace period (heartbeat 0.2 s), so silent trials
//! go stale quickly. After the last kill the workers run to the end. Checked for every run:
//!
//! - every trial seen complete before a kill is still complete, with the same values, at the end;
//! - every trial failed as stale has its arch evaluated again, exactly once among the trials
//!   that count; no (arch, fidelity) is evaluated twice;
//! - the study ends with exactly `--trials` trials that count, all complete, nothing left
//!   running or queued, and every worker that was not killed exits 0.

use nasforge_core::space;
use nasforge_core::strategy;
use nasforge_core::study::{
    Direction, Goal, Sharing, StrategyProposer, Study, StudyRecord, TableEvaluator, TrialState,
};
use nasforge_core::tabular::Table;
use nasforge_core::Params;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{arg, open, Slow};

fn record(name: &str) -> StudyRecord {
    StudyRecord::new(
        name,
        "nb201",
        serde_json::json!({}),
        "random",
        Goal::single("valid_acc_12ep", Direction::Maximize),
        1,
        serde_json::json!({}),
    )
}

fn sharing() -> Sharing {
    Sharing {
        grace: 1.0,
        max_retry: 1000,
        heartbeat: 0.2,
    }
}

/// A worker process: joins the study and runs it to the end.
fn child() {
    let store = arg("--store", "");
    let name = arg("--study", "");
    let worker = arg("--worker", "w");
    let trials: usize = arg("--trials", "100").parse().unwrap();
    let delay = Duration::from_millis(arg("--delay-ms", "50").parse().unwrap());
    let seed: u64 = arg("--seed", "1").parse().unwrap();
    let space = space::build("nb201", &Params::new()).unwrap();
    let table = Arc::new(Table::builtin(space.as_ref()).unwrap());
    let st = strategy::build("random", seed, &Params::new()).unwrap();
    let mut study = Study::join(
        open(&store),
        record(&name),
        space.as_ref(),
        StrategyProposer::boxed(st, 1, seed),
        &worker,
        sharing(),
    )
    .unwrap();
    let mut ev = Slow {
        table: TableEvaluator::new(table),
        delay,
    };
    study.optimize(&mut ev, trials, |_, _| {}).unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "--child") {
        return child();
    }
    let runs: usize = arg("--runs", "50").parse().expect("--runs: a count");
    let trials: usize = arg("--trials", "100").parse().expect("--trials: a count");
    let workers: usize = arg("--workers", "4").parse().expect("--workers: a count");
    let delay = arg("--delay-ms", "50");
    let postgres = Some(arg("--postgres", "")).filter(|u| !u.is_empty());
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = nasforge_core::rng::Rng::new(7);
    println!(
        "{runs} runs of {trials} trials, {workers} worker processes, {delay} ms per evaluation, {}",
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let (mut kills, mut stale_total, mut failures) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for run in 0..runs {
        let name = format!("faults-{}-{run}", std::process::id());
        let store = match &postgres {
            Some(url) => url.clone(),
            None => dir.path().join(format!("{name}.db")).display().to_string(),
        };
        let mut spawned = 0usize;
        let spawn = |spawned: &mut usize| -> Child {
            *spawned += 1;
            Command::new(&exe)
                .args(["--child", "--store", &store, "--study", &name])
                .args([
                    "--worker",
                    &format!("w{spawned}"),
                    "--seed",
                    &spawned.to_string(),
                ])
                .args(["--trials", &trials.to_string(), "--delay-ms", &delay])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut live: Vec<Child> = (0..workers).map(|_| spawn(&mut spawned)).collect();
        // Complete trials seen before each kill, with their values.
        let mut seen: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut run_kills = 0;
        // Kill while the study is still filling (stop a little before the end, so the run ends).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            std::thread::sleep(Duration::from_millis(50 + rng.below(350) as u64));
            let stored = match open(&store).trials(&name) {
                Ok(t) => t,
                Err(_) => continue, // not made yet
            };
            let complete = stored
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .count();
            for t in stored.iter().filter(|t| t.state == TrialState::Complete) {
                seen.insert(t.number, t.values.clone());
            }
            if complete + workers >= trials || Instant::now() > deadline {
                break;
            }
            let k = rng.below(live.len());
            let mut victim = live.swap_remove(k);
            victim.kill().unwrap();
            victim.wait().unwrap();
            run_kills += 1;
            live.push(spawn(&mut spawned));
        }
        let mut bad = Vec::new();
        for mut w in live {
            let out = w.wait().unwrap();
            if !out.success() {
                let mut text = String::new();
                use std::io::Read;
                w.stderr.take().unwrap().read_to_string(&mut text).ok();
                bad.push(format!("a worker ended with {out}: {text}"));
            }
        }
        let stored = open(&store).trials(&name).unwrap();
        for (n, values) in &seen {
            let t = &stored[*n as usize];
            if t.state != TrialState::Complete || &t.values != values {
                bad.push(format!("trial {n} was complete and is now {:?}", t.state));
            }
        }
        let counted: Vec<_> = stored.iter().filter(|t| !t.was_interrupted()).collect();
        let mut per_key: BTreeMap<(String, Option<u32>), usize> = BTreeMap::new();
        for t in &counted {
            *per_key
                .entry((t.arch_key.clone(), t.fidelity.epochs))
                .or_default() += 1;
        }
        let stale: Vec<_> = stored
            .iter()
            .filter(|t| t.error.as_deref().is_some_and(|e| e.starts_with("stale")))
            .collect();
        let stale_keys: BTreeSet<_> = stale
            .iter()
            .map(|t| (t.arch_key.clone(), t.fidelity.epochs))
            .collect();
        for key in &stale_keys {
            if per_key.get(key) != Some(&1) {
                bad.push(format!(
                    "stale arch {} evaluated {} times after",
                    key.0,
                    per_key.get(key).copied().unwrap_or(0)
                ));
            }
        }
        if per_key.values().any(|&c| c > 1) {
            bad.push("an arch was evaluated twice".into());
        }
        if counted.len() != trials || counted.iter().any(|t| t.state != TrialState::Complete) {
            bad.push(format!(
                "{} trials count ({} complete), {trials} asked",
                counted.len(),
                counted
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .count()
            ));
        }
        kills += run_kills;
        stale_total += stale.len();
        if !bad.is_empty() {
            failures += 1;
            println!("run {run}: FAILED: {}", bad.join("; "));
        }
    }
    println!(
        "{runs} runs in {:.0} s: {kills} workers killed, {stale_total} trials failed as stale and re-run, {failures} runs with a problem",
        start.elapsed().as_secs_f64()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
