//! Studies driven by a multi-fidelity [`Scheduler`] instead of a strategy.
//!
//! Every job (arch × rung) is one stored trial whose fidelity is the rung's epochs. Resuming
//! replays the finished trials into a fresh scheduler (next, then report, in order), which must
//! hand out the same jobs again; trials a crash left running are marked failed and their jobs
//! come out of the scheduler again.

use super::{
    best_of, epochs_trained, open_stored, EvalError, Evaluation, Evaluator, Fidelity,
    FinishedTrial, NewTrial, Resumed, Storage, StudyRecord, Trial, TrialState,
};
use crate::scheduler::{Job, Scheduler};
use crate::space::Space;
use crate::{Error, Result};

/// A scheduler-driven search in progress.
pub struct ScheduledStudy<'s> {
    record: StudyRecord,
    space: &'s dyn Space,
    scheduler: Box<dyn Scheduler>,
    storage: Box<dyn Storage>,
    worker: String,
    finished: usize,
    spent: u64,
}

impl<'s> ScheduledStudy<'s> {
    /// Opens (creating or resuming) the study `record.name`.
    pub fn open(
        mut storage: Box<dyn Storage>,
        record: StudyRecord,
        space: &'s dyn Space,
        mut scheduler: Box<dyn Scheduler>,
        worker: &str,
    ) -> Result<(Self, Resumed)> {
        let (replay, interrupted) = open_stored(storage.as_mut(), &record)?;
        let sign = record.direction.sign();
        let mut spent = 0;
        for t in &replay {
            let job = scheduler.next(space).ok_or_else(|| {
                Error::invalid("the stored trials do not follow this scheduler (it ran out of jobs); was the configuration changed?")
            })?;
            let epochs = scheduler.rungs().budgets()[job.rung];
            if space.key(&job.arch) != t.arch_key || t.fidelity.epochs != Some(epochs) {
                return Err(Error::invalid(format!(
                    "stored trial {} ({} at {:?} epochs) is not what the scheduler replays ({} at {epochs} epochs); was the configuration or the seed changed?",
                    t.number,
                    t.arch_key,
                    t.fidelity.epochs,
                    space.key(&job.arch)
                )));
            }
            scheduler.report(space, &job, t.score(sign));
            spent += epochs_trained(&t.metrics);
        }
        let resumed = Resumed {
            replayed: replay.len(),
            interrupted,
        };
        Ok((
            ScheduledStudy {
                record,
                space,
                scheduler,
                storage,
                worker: worker.to_string(),
                finished: replay.len(),
                spent,
            },
            resumed,
        ))
    }

    /// Trials finished so far (resumed ones included).
    pub fn finished(&self) -> usize {
        self.finished
    }

    /// Epochs trained by the finished trials.
    pub fn epochs_spent(&self) -> u64 {
        self.spent
    }

    /// Runs jobs until `trials` have finished or the next job would take the trained epochs past
    /// `epoch_budget`, calling `progress` after each.
    pub fn optimize(
        &mut self,
        evaluator: &mut dyn Evaluator,
        trials: usize,
        epoch_budget: Option<u64>,
        mut progress: impl FnMut(&ScheduledStudy<'s>, &Trial),
    ) -> Result<()> {
        let name = self.record.name.clone();
        while self.finished < trials && epoch_budget.is_none_or(|b| self.spent < b) {
            let Some(job) = self.scheduler.next(self.space) else {
                break;
            };
            let epochs = self.scheduler.rungs().budgets()[job.rung];
            // A job that would overrun the budget is not started. It is not stored either, so a
            // resume with a larger budget gets the same job from the replayed scheduler.
            if epoch_budget.is_some_and(|b| self.spent + epochs as u64 > b) {
                break;
            }
            let fidelity = Fidelity {
                epochs: Some(epochs),
                data_fraction: None,
            };
            let number = self.storage.create_trial(
                &name,
                &NewTrial {
                    arch_key: self.space.key(&job.arch),
                    arch: self.space.to_json(&job.arch),
                    fidelity: fidelity.clone(),
                    state: TrialState::Running,
                    worker: self.worker.clone(),
                },
            )?;
            let storage = &mut self.storage;
            let mut report_err = None;
            let outcome: std::result::Result<Evaluation, EvalError> =
                evaluator.evaluate(self.space, &job.arch, &fidelity, &mut |step, value| {
                    if let Err(e) = storage.report(&name, number, step, value) {
                        report_err.get_or_insert(e);
                    }
                    true
                });
            if let Some(e) = report_err {
                return Err(e);
            }
            self.finish(&job, number, FinishedTrial::from_outcome(outcome))?;
            let trial = self.storage.trial(&name, number)?;
            progress(self, &trial);
        }
        Ok(())
    }

    fn finish(&mut self, job: &Job, number: u64, finished: FinishedTrial) -> Result<()> {
        self.storage
            .finish_trial(&self.record.name, number, &finished)?;
        self.spent += epochs_trained(&finished.metrics);
        let score = finished.value.map(|v| self.record.direction.sign() * v);
        self.scheduler.report(self.space, job, score);
        self.finished += 1;
        Ok(())
    }

    /// All stored trials.
    pub fn trials(&self) -> Result<Vec<Trial>> {
        self.storage.trials(&self.record.name)
    }

    /// The best complete trial at the highest fidelity any complete trial reached: a score at
    /// fewer epochs is not comparable with one at more.
    pub fn best(&self) -> Result<Option<Trial>> {
        Ok(best_of(&self.trials()?, self.record.direction.sign()).cloned())
    }
}
