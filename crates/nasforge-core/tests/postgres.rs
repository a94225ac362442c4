//! The PostgreSQL storage on its own: what it keeps, how it fails, how it recovers. (The
//! worker tests in `workers.rs` run on it too.) Needs the server `source .ci/postgres` starts;
//! without one these tests are skipped, or fail under CI.

#[path = "common/db.rs"]
mod db;
use db::Db;

use nasforge_core::study::{
    Direction, Fidelity, FinishedTrial, Goal, NewTrial, PostgresStorage, Retry, Storage,
    StudyRecord, TrialState,
};
use std::time::{Duration, Instant};

fn url(name: &str) -> Option<String> {
    Db::postgres(name).map(|db| db.url())
}

fn record(name: &str) -> StudyRecord {
    StudyRecord::new(
        name,
        "nb201",
        serde_json::json!({ "cells": 4 }),
        "random",
        Goal::single("valid_acc_12ep", Direction::Maximize),
        7,
        serde_json::json!({ "trials": 10 }),
    )
}

fn new_trial(key: &str, state: TrialState) -> NewTrial {
    NewTrial {
        arch_key: key.into(),
        arch: serde_json::json!({ "ops": [key] }),
        fidelity: Fidelity::default(),
        state,
        worker: "w0".into(),
    }
}

#[test]
fn keeps_studies_trials_and_intermediate_values_as_sqlite_does() {
    let Some(url) = url("keeps") else { return };
    let mut s = PostgresStorage::open(&url).unwrap();
    assert!(s.study("a").unwrap().is_none());
    let a = record("a");
    s.create_study(&a).unwrap();
    s.create_study(&record("b")).unwrap();
    let e = s.create_study(&record("a")).err().unwrap().to_string();
    assert!(e.contains("cannot create study `a`"), "{e}");
    assert_eq!(s.study("a").unwrap().unwrap(), a);
    assert_eq!(s.studies().unwrap().len(), 2);
    // Numbers are per study and dense.
    assert_eq!(
        s.create_trial("a", &new_trial("x", TrialState::Running))
            .unwrap(),
        0
    );
    assert_eq!(
        s.create_trial("b", &new_trial("x", TrialState::Running))
            .unwrap(),
        0
    );
    assert_eq!(
        s.create_trial("a", &new_trial("y", TrialState::Queued))
            .unwrap(),
        1
    );
    s.report("a", 0, 1, 0.25).unwrap();
    s.report("a", 0, 2, 0.5).unwrap();
    s.report("a", 0, 2, 0.625).unwrap();
    let end = FinishedTrial {
        state: TrialState::Complete,
        values: vec![91.5, 1.25e6],
        violation: Some(0.0),
        metrics: [
            ("valid_acc_12ep".to_string(), 91.5),
            ("params".into(), 1.25e6),
        ]
        .into_iter()
        .collect(),
        cost: nasforge_core::study::Cost {
            epochs: 12,
            seconds: 3.5,
        },
        error: None,
    };
    s.finish_trial("a", 0, &end).unwrap();
    let t = s.trial("a", 0).unwrap();
    assert_eq!(t.state, TrialState::Complete);
    assert_eq!(t.values, end.values);
    assert_eq!(t.metrics, end.metrics);
    assert_eq!(t.cost, end.cost);
    assert_eq!(t.intermediate, [(1, 0.25), (2, 0.625)]);
    assert_eq!(t.arch, serde_json::json!({ "ops": ["x"] }));
    assert!(t.finished_at.unwrap() >= t.created_at);
    let all = s.trials("a").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].state, TrialState::Queued);
    assert_eq!(s.trials_from("a", 1).unwrap(), all[1..]);
    // A second connection sees the same.
    let other = s.reopen().unwrap();
    assert_eq!(other.trials("a").unwrap(), all);
    let e = s.trials("nope").err().unwrap().to_string();
    assert!(e.contains("no study named `nope`"), "{e}");
}

#[test]
fn staleness_is_judged_by_the_server_clock_and_a_claim_is_taken_once() {
    let Some(url) = url("stale") else { return };
    let mut s = PostgresStorage::open(&url).unwrap();
    s.create_study(&record("a")).unwrap();
    s.create_trial("a", &new_trial("x", TrialState::Running))
        .unwrap();
    // Fresh: not stale.
    assert!(s.reap_stale("a", 5.0, 2).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.reap_stale("a", 0.2, 2).unwrap(), [0]);
    let t = s.trial("a", 0).unwrap();
    assert_eq!(t.state, TrialState::Failed);
    assert!(t.error.unwrap().starts_with("stale: worker `w0`"));
    // Queued again, and two workers claiming at once get it once.
    let mut other = s.reopen().unwrap();
    let a = s.claim_queued("a", "w1").unwrap();
    let b = other.claim_queued("a", "w2").unwrap();
    assert_eq!(a.as_ref().map(|t| t.number), Some(1));
    assert!(b.is_none());
    assert_eq!(a.unwrap().worker, "w1");
}

#[test]
fn a_dropped_connection_is_reopened_and_the_call_succeeds() {
    let Some(url) = url("lost") else { return };
    let app = format!("nf_lost_{}", std::process::id());
    let url = format!("{url}&application_name={app}");
    let mut s = PostgresStorage::open(&url).unwrap();
    s.create_study(&record("a")).unwrap();
    // Statements prepared on this connection (another study's trial) must not outlive it.
    s.create_study(&record("b")).unwrap();
    s.create_trial("b", &new_trial("x", TrialState::Running))
        .unwrap();
    s.heartbeat("b", 0).unwrap();
    // The server drops our connection (as on a restart or a network cut).
    let admin = std::env::var(db::PG_VAR).unwrap();
    let mut admin = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        s.create_trial("a", &new_trial("x", TrialState::Running))
            .unwrap(),
        0
    );
    assert_eq!(s.trials("a").unwrap().len(), 1);
    s.heartbeat("a", 0).unwrap();
    let e = s.heartbeat("a", 7).err().unwrap().to_string();
    assert!(e.contains("has no trial 7"), "{e}");
}

#[test]
fn bad_urls_passwords_hosts_and_newer_schemas_are_clear_errors() {
    let Some(url) = url("bad") else { return };
    let quick = Retry {
        open: Duration::from_millis(300),
        lost: Duration::from_millis(300),
    };
    // A wrong password: no retry, the password is not shown.
    let config: postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    let wrong = url.replacen(&format!(":{password}@"), ":not-the-password@", 1);
    let start = Instant::now();
    let e = PostgresStorage::open_with(&wrong, quick)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(e.contains("check the user and password"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");
    assert!(e.contains(&format!("postgres://{user}@")), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Nothing listens on port 9: tried for the open patience, then a clear error.
    let e = PostgresStorage::open_with(&format!("postgres://{user}:x@127.0.0.1:9/db"), quick)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot connect to postgres://"), "{e}");
    assert!(e.contains("check that the server runs"), "{e}");
    // Not a connection string.
    let e = PostgresStorage::open("postgres://host:notaport/db")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a PostgreSQL connection string"), "{e}");
    // Tables written by a newer nasforge are refused and left as they are.
    let mut s = PostgresStorage::open(&url).unwrap();
    s.create_study(&record("a")).unwrap();
    drop(s);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute(
            "UPDATE nasforge_meta SET value = '99' WHERE key = 'schema_version'",
            &[],
        )
        .unwrap();
    let e = PostgresStorage::open(&url).err().unwrap().to_string();
    assert!(e.contains("schema version 99, newer than"), "{e}");
    let kept: i64 = admin
        .query_one("SELECT COUNT(*) FROM nasforge_studies", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
}
