//! Where a test's study lives: a SQLite file, or a fresh schema on the test PostgreSQL server.
//! Shared by the core and CLI tests (`#[path]`).
#![allow(dead_code)]

use nasforge_core::study::{PostgresStorage, SqliteStorage, Storage};
use std::path::PathBuf;

/// The variable that names the test PostgreSQL server (`source .ci/postgres` starts one).
pub const PG_VAR: &str = "NASFORGE_TEST_POSTGRES";

/// A study database for one test.
pub enum Db {
    /// A SQLite file (its folder lives as long as the `Db`).
    Sqlite(PathBuf, tempfile::TempDir),
    /// A PostgreSQL URL whose search path is a schema of the test's own.
    Postgres(String),
}

impl Db {
    /// A new SQLite database.
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db::Sqlite(dir.path().join("study.db"), dir)
    }

    /// A new, empty schema named after `name` (and this process) on the test server; `None`,
    /// with a message, when no server is named and this is not CI. Under CI a missing server
    /// fails the test.
    pub fn postgres(name: &str) -> Option<Db> {
        let Ok(url) = std::env::var(PG_VAR) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {PG_VAR} is not: the PostgreSQL tests need the server that `.ci/run` starts (`source .ci/postgres`)"
            );
            eprintln!(
                "skipped: no PostgreSQL server; `source .ci/postgres` starts one and sets {PG_VAR}"
            );
            return None;
        };
        let schema = format!("t_{}_{}", name.to_lowercase(), std::process::id());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to {PG_VAR}: {e}"));
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(Db::Postgres(format!(
            "{url}{sep}options=-csearch_path%3D{schema}"
        )))
    }

    /// A connection (each worker opens its own).
    pub fn open(&self) -> Box<dyn Storage> {
        match self {
            Db::Sqlite(path, _) => Box::new(SqliteStorage::open(path).unwrap()),
            Db::Postgres(url) => Box::new(PostgresStorage::open(url).unwrap()),
        }
    }

    /// What to pass as `--storage`.
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(path, _) => path.display().to_string(),
            Db::Postgres(url) => url.clone(),
        }
    }
}
