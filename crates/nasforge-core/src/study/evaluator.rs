//! Evaluators: how a study learns how good an arch is.

use super::Fidelity;
use crate::space::{Arch, Space};
use crate::tabular::Table;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an evaluation spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Training epochs run (0 for a table look-up).
    pub epochs: u32,
    /// Wall time of the evaluation, in seconds.
    pub seconds: f64,
}

/// A successful evaluation: measurements by metric name ([`super::metric`]); the study picks
/// its objectives and constraints out of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Every measurement, stored with the trial.
    pub metrics: BTreeMap<String, f64>,
    /// What it spent.
    pub cost: Cost,
}

/// An evaluation that did not complete.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// Stopped early on purpose (scheduler, learning-curve stopper).
    Pruned {
        /// What was measured before it stopped.
        metrics: BTreeMap<String, f64>,
        /// What it spent before it stopped.
        cost: Cost,
    },
    /// Failed (diverging loss, out of memory, ...); the reason is stored with the trial.
    Failed(String),
}

/// Measures archs. Evaluators never decide what to try next; strategies never evaluate.
pub trait Evaluator {
    /// The names of the metrics every successful evaluation measures (besides the NetSpec
    /// metrics the study adds itself), so a study's objectives and constraints are checked
    /// before the first trial.
    fn metric_names(&self) -> Vec<String>;

    /// Evaluates `arch` at `fidelity`, calling `report(step, value)` with intermediate values
    /// of its learning-curve metric (per-epoch validation accuracy, say) as they come. When
    /// `report` returns `false` the trial is to stop early: the evaluator ends it as
    /// [`EvalError::Pruned`].
    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError>;
}

/// Looks archs up in a benchmark [`Table`] instead of training them: every column of the row
/// is a metric. With [`TableEvaluator::with_fidelities`] it serves multi-fidelity jobs, each
/// fidelity's epochs reading one column (as `fidelity_value`) and costing those epochs.
pub struct TableEvaluator {
    table: Arc<Table>,
    /// (epochs, column) of each fidelity the table holds, and the default fidelity's epochs.
    fidelities: Vec<(u32, usize)>,
    default_epochs: u32,
}

/// The metric a [`TableEvaluator`] with fidelities stores the job's fidelity column under.
pub const FIDELITY_VALUE: &str = "fidelity_value";

impl TableEvaluator {
    /// An evaluator of `table` at its one fidelity (a look-up costs 0 epochs).
    pub fn new(table: Arc<Table>) -> Self {
        TableEvaluator {
            table,
            fidelities: Vec::new(),
            default_epochs: 0,
        }
    }

    /// Serves `fidelities` (epochs a training would have cost, column); a job without an
    /// epochs fidelity is charged `default_epochs`.
    pub fn with_fidelities(
        mut self,
        fidelities: &[(u32, String)],
        default_epochs: u32,
    ) -> Result<Self> {
        self.fidelities = fidelities
            .iter()
            .map(|(e, c)| self.table.metric_index(c).map(|i| (*e, i)))
            .collect::<Result<_>>()?;
        self.default_epochs = default_epochs;
        Ok(self)
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Checks `goal` against the table's columns (and NetSpec's metrics): every metric known,
    /// and every column an objective compares holding finite numbers.
    pub fn check_goal(&self, goal: &super::Goal) -> Result<()> {
        goal.check(&self.metric_names())?;
        for o in &goal.objectives {
            if self.table.column_index(&o.metric).is_ok() {
                self.table.metric_index(&o.metric)?;
            }
        }
        Ok(())
    }
}

impl Evaluator for TableEvaluator {
    fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.table.metric_names().map(str::to_string).collect();
        if !self.fidelities.is_empty() {
            names.push(FIDELITY_VALUE.into());
        }
        names
    }

    fn evaluate(
        &mut self,
        space: &dyn Space,
        arch: &Arch,
        fidelity: &Fidelity,
        _report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> std::result::Result<Evaluation, EvalError> {
        if fidelity.data_fraction.is_some() {
            return Err(EvalError::Failed(
                "a table holds fixed results: it cannot evaluate on a fraction of the data".into(),
            ));
        }
        let column = match fidelity.epochs {
            None => None,
            Some(e) => Some(
                self.fidelities
                    .iter()
                    .find(|(f, _)| *f == e)
                    .map(|&(_, c)| c)
                    .ok_or_else(|| {
                        EvalError::Failed(format!(
                            "the table holds no result at {e} epochs; it holds fixed results at fixed fidelities"
                        ))
                    })?,
            ),
        };
        let row = self.table.row(arch).ok_or_else(|| {
            EvalError::Failed(format!("the table has no row for {}", space.format(arch)))
        })?;
        let mut metrics: BTreeMap<String, f64> = self
            .table
            .row_values(row)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if let Some(c) = column {
            metrics.insert(FIDELITY_VALUE.into(), self.table.column(c)[row]);
        }
        Ok(Evaluation {
            metrics,
            cost: Cost {
                epochs: fidelity.epochs.unwrap_or(self.default_epochs),
                seconds: 0.0,
            },
        })
    }
}

impl From<Error> for EvalError {
    fn from(e: Error) -> Self {
        EvalError::Failed(e.to_string())
    }
}
