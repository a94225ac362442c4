//! Evaluators: how a study learns how good an arch is.

use super::Fidelity;
use crate::space::{Arch, Space};
use crate::tabular::Table;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A successful evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// The objective value.
    pub value: f64,
    /// Other measurements, stored with the trial.
    pub metrics: BTreeMap<String, f64>,
}

/// An evaluation that did not complete.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// Stopped early on purpose (scheduler, learning-curve stopper).
    Pruned {
        /// What was measured before it stopped.
        metrics: BTreeMap<String, f64>,
    },
    /// Failed (diverging loss, out of memory, ...); the reason is stored with the trial.
    Failed(String),
}

/// Measures archs. Evaluators never decide what to try next; strategies never evaluate.
pub trait Evaluator {
    /// Evaluates `arch` at `fidelity`, calling `report(step, value)` with intermediate objective
    /// values (per-epoch validation accuracy, say) as they come. When `report` returns `false`
    /// the trial is to stop early: the evaluator ends it as [`EvalError::Pruned`].
    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError>;
}

/// Looks archs up in a benchmark [`Table`] instead of training them. The objective is one
/// column; every column of the row, plus the arch's parameters and MACs, are stored as metrics.
pub struct TableEvaluator {
    table: Arc<Table>,
    objective: usize,
}

impl TableEvaluator {
    /// An evaluator that reads `objective` from `table`.
    pub fn new(table: Arc<Table>, objective: &str) -> Result<Self> {
        let objective = table.metric_index(objective)?;
        Ok(TableEvaluator { table, objective })
    }
}

impl Evaluator for TableEvaluator {
    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        _report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError> {
        if *fidelity != Fidelity::default() {
            return Err(EvalError::Failed(
                "a table holds fixed results: it cannot evaluate at another fidelity".into(),
            ));
        }
        let row = self.table.row(arch).ok_or_else(|| {
            EvalError::Failed(format!("the table has no row for {}", space.format(arch)))
        })?;
        let mut metrics: BTreeMap<String, f64> = self
            .table
            .row_values(row)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if let Ok(net) = space.decode(arch) {
            metrics.insert("params".into(), net.params() as f64);
            metrics.insert("macs".into(), net.macs() as f64);
        }
        Ok(Evaluation {
            value: self.table.column(self.objective)[row],
            metrics,
        })
    }
}

impl From<Error> for EvalError {
    fn from(e: Error) -> Self {
        EvalError::Failed(e.to_string())
    }
}
