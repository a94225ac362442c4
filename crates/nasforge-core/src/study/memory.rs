//! In-memory storage, for benchmarks, tests and throw-away studies.

use super::storage::{
    counts, is_stale, stale_error, superseded_error, told_late, Created, FinishedTrial, NewTrial,
    Storage, StudyRecord, Told,
};
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

    fn set_config(&mut self, name: &str, config: &serde_json::Value) -> Result<()> {
        let (record, _) = self
            .studies
            .iter_mut()
            .find(|(r, _)| r.name == name)
            .ok_or_else(|| Error::Storage(format!("no study named `{name}`")))?;
        record.config = config.clone();
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
        self.trials_from(study, 0)
    }

    fn create_trial_if(
        &mut self,
        study: &str,
        t: &NewTrial,
        limit: Option<u64>,
    ) -> Result<Created> {
        let trials = self.trials_mut(study)?;
        let counting = |x: &&Trial| counts(x.state, x.error.as_deref());
        if trials
            .iter()
            .filter(counting)
            .any(|x| x.arch_key == t.arch_key && x.fidelity == t.fidelity)
        {
            return Ok(Created::Taken);
        }
        if limit.is_some_and(|l| trials.iter().filter(counting).count() as u64 >= l) {
            return Ok(Created::Full);
        }
        self.create_trial(study, t).map(Created::Number)
    }

    fn trials_from(&self, study: &str, from: u64) -> Result<Vec<Trial>> {
        self.studies
            .iter()
            .find(|(r, _)| r.name == study)
            .map(|(_, t)| t.iter().skip(from as usize).cloned().collect())
            .ok_or_else(|| Error::Storage(format!("no study named `{study}`")))
    }

    fn reap_stale(&mut self, study: &str, grace: f64, max_retry: u32) -> Result<Vec<u64>> {
        let at = now();
        let mut again = Vec::new();
        let mut failed = Vec::new();
        let trials = self.trials_mut(study)?;
        for i in 0..trials.len() {
            let t = &trials[i];
            let beat = t.heartbeat_at.unwrap_or(t.created_at);
            if t.state != TrialState::Running || beat >= at - grace {
                continue;
            }
            let t = &mut trials[i];
            t.state = TrialState::Failed;
            t.error = Some(stale_error(&t.worker, at - beat));
            t.finished_at = Some(at);
            failed.push(t.number);
            let t = &trials[i];
            let before = trials
                .iter()
                .filter(|x| {
                    x.arch_key == t.arch_key
                        && x.fidelity == t.fidelity
                        && x.state == TrialState::Failed
                        && x.error
                            .as_deref()
                            .is_some_and(|e| e.starts_with(super::STALE))
                })
                .count();
            if before as u64 <= u64::from(max_retry) {
                again.push(NewTrial {
                    arch_key: t.arch_key.clone(),
                    arch: t.arch.clone(),
                    fidelity: t.fidelity.clone(),
                    state: TrialState::Queued,
                    worker: String::new(),
                });
            }
        }
        for t in &again {
            self.create_trial(study, t)?;
        }
        Ok(failed)
    }

    fn claim_queued(&mut self, study: &str, worker: &str) -> Result<Option<Trial>> {
        let at = now();
        let trials = self.trials_mut(study)?;
        let Some(t) = trials.iter_mut().find(|t| t.state == TrialState::Queued) else {
            return Ok(None);
        };
        t.state = TrialState::Running;
        t.worker = worker.to_string();
        t.started_at = Some(at);
        t.heartbeat_at = Some(at);
        Ok(Some(t.clone()))
    }

    fn finish_owned(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        end: &FinishedTrial,
    ) -> Result<Told> {
        let t = self.trial_mut(study, number)?;
        if t.state == TrialState::Running && t.worker == worker {
            self.finish_trial(study, number, end)?;
            return Ok(Told::Stored);
        }
        if t.state == TrialState::Failed && t.worker == worker && is_stale(t.error.as_deref()) {
            let (key, fidelity) = (t.arch_key.clone(), t.fidelity.clone());
            let trials = self.trials_mut(study)?;
            if let Some(rerun) = trials.iter_mut().find(|x| {
                x.number > number
                    && x.state == TrialState::Queued
                    && x.arch_key == key
                    && x.fidelity == fidelity
            }) {
                rerun.state = TrialState::Failed;
                rerun.error = Some(superseded_error(number));
                rerun.finished_at = Some(now());
                self.finish_trial(study, number, end)?;
                return Ok(Told::Stored);
            }
        }
        let t = self.trial_mut(study, number)?;
        Ok(told_late(t, worker, end))
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Err(Error::Storage(
            "an in-memory study lives in one process and cannot be opened twice".into(),
        ))
    }
}
