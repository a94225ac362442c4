//! What the benches share: flags and a slow table evaluator.
#![allow(dead_code)]

use nasforge_core::space::{Arch, Space};
use nasforge_core::study::{
    EvalError, Evaluation, Evaluator, Fidelity, PostgresStorage, SqliteStorage, Storage,
    TableEvaluator,
};
use std::time::Duration;

/// The table, after a pause.
pub struct Slow {
    pub table: TableEvaluator,
    pub delay: Duration,
}

impl Evaluator for Slow {
    fn metric_names(&self) -> Vec<String> {
        self.table.metric_names()
    }

    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Result<Evaluation, EvalError> {
        std::thread::sleep(self.delay);
        self.table.evaluate(space, arch, fidelity, report)
    }
}

/// The value after flag `name`, else `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// A connection to `store`: a PostgreSQL URL, or a SQLite file.
pub fn open(store: &str) -> Box<dyn Storage> {
    if store.starts_with("postgres") {
        Box::new(PostgresStorage::open(store).unwrap())
    } else {
        Box::new(SqliteStorage::open(std::path::Path::new(store)).unwrap())
    }
}
