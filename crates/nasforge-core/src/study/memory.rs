//! In-memory storage, for benchmarks, tests and throw-away studies.

use super::storage::{FinishedTrial, NewTrial, Storage, StudyRecord};
use super::{now, Trial, TrialState};
use crate::{Error, Result};

/// Keeps everything in memory; lost when dropped.
#[derive(Default)]
pub struct MemoryStorage {
    studies: Vec<(StudyRecord, Vec<Trial>)>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn trials_mut(&mut self, study: &str) -> Result<&mut Vec<Trial>> {
        self.studies
            .iter_mut()
            .find(|(r, _)| r.name == study)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::Storage(format!("no study named `{study}`")))
    }

    fn trial_mut(&mut self, study: &str, number: u64) -> Result<&mut Trial> {
        self.trials_mut(study)?
            .get_mut(number as usize)
            .ok_or_else(|| Error::Storage(format!("study `{study}` has no trial {number}")))
    }
}

impl Storage for MemoryStorage {
    fn create_study(&mut self, record: &StudyRecord) -> Result<()> {
        if self.study(&record.name)?.is_some() {
            return Err(Error::Storage(format!(
                "a study named `{}` exists",
                record.name
            )));
        }
        self.studies.push((record.clone(), Vec::new()));
        Ok(())
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>> {
        Ok(self
            .studies
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(r, _)| r.clone()))
    }

    fn studies(&self) -> Result<Vec<StudyRecord>> {
        Ok(self.studies.iter().map(|(r, _)| r.clone()).collect())
    }

    fn create_trial(&mut self, study: &str, t: &NewTrial) -> Result<u64> {
        let trials = self.trials_mut(study)?;
        let number = trials.len() as u64;
        let created = now();
        trials.push(Trial {
            number,
            arch_key: t.arch_key.clone(),
            arch: t.arch.clone(),
            fidelity: t.fidelity.clone(),
            state: t.state,
            values: Vec::new(),
            violation: None,
            cost: Default::default(),
            metrics: Default::default(),
            intermediate: Vec::new(),
            error: None,
            worker: t.worker.clone(),
            created_at: created,
            started_at: (t.state == TrialState::Running).then_some(created),
            heartbeat_at: (t.state == TrialState::Running).then_some(created),
            finished_at: None,
        });
        Ok(number)
    }

    fn report(&mut self, study: &str, number: u64, step: u64, value: f64) -> Result<()> {
        let t = self.trial_mut(study, number)?;
        t.intermediate.retain(|(s, _)| *s != step);
        t.intermediate.push((step, value));
        t.intermediate.sort_by_key(|(s, _)| *s);
        t.heartbeat_at = Some(now());
        Ok(())
    }

    fn heartbeat(&mut self, study: &str, number: u64) -> Result<()> {
        self.trial_mut(study, number)?.heartbeat_at = Some(now());
        Ok(())
    }

    fn finish_trial(&mut self, study: &str, number: u64, end: &FinishedTrial) -> Result<()> {
        let t = self.trial_mut(study, number)?;
        t.state = end.state;
        t.values = end.values.clone();
        t.violation = end.violation;
        t.cost = end.cost;
        t.metrics = end.metrics.clone();
        t.error = end.error.clone();
        t.finished_at = Some(now());
        Ok(())
    }

    fn trial(&self, study: &str, number: u64) -> Result<Trial> {
        self.studies
            .iter()
            .find(|(r, _)| r.name == study)
            .and_then(|(_, t)| t.get(number as usize).cloned())
            .ok_or_else(|| Error::Storage(format!("study `{study}` has no trial {number}")))
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        self.studies
            .iter()
            .find(|(r, _)| r.name == study)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| Error::Storage(format!("no study named `{study}`")))
    }
}
