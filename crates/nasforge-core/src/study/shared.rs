//! Several workers on one study.
//!
//! Workers are identical processes (or threads) that open the same study in the same storage
//! with [`Study::join`]; there is no coordinator. Each worker loops: fail the trials whose
//! worker stopped heart-beating as stale (queuing each again up to `max_retry` times), take a
//! queued trial if there is one, otherwise sync with the storage and ask its own proposer.
//!
//! - **Sync**: before each proposal the worker reads the trials it has not yet seen finish.
//!   Another worker's finished trial is learnt from as if proposed here
//!   ([`Proposer::observe_foreign`]); a running one is marked asked, so no strategy proposes
//!   an arch that is being evaluated (the *pending-aware* rule: running archs are excluded,
//!   not given an imputed value).
//! - **Claims are atomic**: a trial is created only if no trial that counts holds the same
//!   arch at the same fidelity and the study is below its trial limit
//!   ([`Storage::create_trial_if`]): of two workers proposing one arch, one gets it and the
//!   other proposes again. So no arch is evaluated twice at one fidelity, and a study of N
//!   trials ends with N, whatever the number of workers.
//! - **Heartbeats**: a thread with its own connection ([`Storage::reopen`]) refreshes the
//!   running trial's heartbeat every `heartbeat` seconds; a trial silent for `grace` seconds
//!   is failed as stale by whichever worker looks next.
//! - **Exactly once**: a worker stores an outcome only while it still holds the trial
//!   ([`Storage::finish_owned`]); a worker whose trial was failed as stale and queued again
//!   cannot overwrite the new run's result (its outcome is dropped and counted as lost), and
//!   a repeated tell of the same outcome changes nothing.
//! - **The end**: once the study holds its limit, a worker waits while other workers' trials
//!   are still running or queued (one of them may go stale and need a re-run), then stops.

use super::{
    feedback, Ask, Created, FinishedTrial, Proposal, Proposer, Storage, Study, StudyRecord, Taken,
    Told, TrialState,
};
use crate::space::Space;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a worker shares its study with other workers.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharing {
    /// Seconds without a heartbeat after which a running trial is failed as stale.
    pub grace: f64,
    /// How many times an arch failed as stale is queued again.
    pub max_retry: u32,
    /// Seconds between two heartbeats of the running trial.
    pub heartbeat: f64,
}

impl Default for Sharing {
    /// A heartbeat every 10 s, stale after 60 s (six missed beats), two re-runs.
    fn default() -> Self {
        Sharing {
            grace: 60.0,
            max_retry: 2,
            heartbeat: 10.0,
        }
    }
}

impl Sharing {
    /// Checks that the heartbeat is positive and comes well within the grace period.
    pub fn validate(&self) -> Result<()> {
        if !(self.heartbeat > 0.0 && self.grace >= 2.0 * self.heartbeat) {
            return Err(Error::invalid(format!(
                "a shared study needs a positive heartbeat interval and a grace period of at least two heartbeats (heartbeat {} s, grace {} s)",
                self.heartbeat, self.grace
            )));
        }
        Ok(())
    }
}

/// An outcome a worker could not store, kept in a file (see [`Study::set_spool`]).
#[derive(Serialize, Deserialize)]
struct Unsent {
    study: String,
    /// The study's creation time: a study of the same name in another database is another.
    created_at: f64,
    number: u64,
    worker: String,
    end: FinishedTrial,
}

/// A worker's view of the shared study.
pub(super) struct SharedState {
    sharing: Sharing,
    /// Every trial numbered below this one was seen finished.
    low: u64,
    /// Trials numbered `low` or above already seen finished.
    done: HashSet<u64>,
    /// Trials this worker created or claimed.
    mine: HashSet<u64>,
    /// The study's trial limit, while [`Study::optimize`] runs.
    limit: Option<u64>,
    /// When this worker last looked for stale trials.
    last_reap: f64,
    /// Outcomes dropped because the trial had been taken from this worker.
    lost: usize,
    /// Where outcomes that cannot be stored are kept ([`Study::set_spool`]).
    spool: Option<PathBuf>,
    heart: Heart,
}

/// The heartbeat thread: beats for the trial in `current` every interval until dropped.
struct Heart {
    current: Arc<Mutex<Option<u64>>>,
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Heart {
    fn start(mut storage: Box<dyn Storage>, study: String, every: f64) -> Self {
        let current: Arc<Mutex<Option<u64>>> = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let beat = current.clone();
        let thread = std::thread::spawn(move || {
            let every = Duration::from_secs_f64(every);
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let number = *beat.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = number {
                    // A missed beat is retried at the next one; the grace period covers
                    // several.
                    let _ = storage.heartbeat(&study, n);
                }
            }
        });
        Heart {
            current,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, number: Option<u64>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = number;
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether two records describe the same search (what every worker of a study must share):
/// space, its parameters, strategy, goal and seed. The rest of the configuration may differ
/// (a resume may raise the number of trials).
fn same_search(a: &StudyRecord, b: &StudyRecord) -> bool {
    a.space == b.space
        && a.space_params == b.space_params
        && a.strategy == b.strategy
        && a.goal() == b.goal()
        && a.seed == b.seed
}

impl<'s> Study<'s> {
    /// Joins the study `record.name` in `storage` as one of several workers (see the
    /// [module docs](self)), creating it if no worker has yet. A study that exists must
    /// describe the same search (space and its parameters, strategy, goal, seed); trials other workers
    /// are running are left to them. `worker` must be unique among the study's workers.
    pub fn join(
        mut storage: Box<dyn Storage>,
        record: StudyRecord,
        space: &'s dyn Space,
        proposer: Box<dyn Proposer>,
        worker: &str,
        sharing: Sharing,
    ) -> Result<Self> {
        sharing.validate()?;
        if !proposer.shares() {
            return Err(Error::invalid(format!(
                "`{}` cannot share a study with other workers: it waits for results in the order it asked for them; use a strategy, or the asha scheduler",
                proposer.name()
            )));
        }
        let goal = record.goal();
        if goal.objectives.is_empty() {
            return Err(Error::invalid("a study needs at least one objective"));
        }
        let stored = match storage.study(&record.name)? {
            Some(s) => s,
            None => match storage.create_study(&record) {
                Ok(()) => record.clone(),
                // Another worker created it first.
                Err(e) => storage.study(&record.name)?.ok_or(e)?,
            },
        };
        if !same_search(&stored, &record) {
            return Err(Error::invalid(format!(
                "study `{}` already exists with another configuration (space `{}`, strategy `{}`, objectives {}, seed {}); every worker of a study must run the same configuration — use another study name, or the configuration it was created with",
                record.name,
                stored.space,
                stored.strategy,
                stored.goal().describe_objectives(),
                stored.seed
            )));
        }
        let heart = Heart::start(storage.reopen()?, record.name.clone(), sharing.heartbeat);
        let mut study = Study::new(storage, stored, goal, space, proposer, worker, None);
        study.shared = Some(SharedState {
            sharing,
            low: 0,
            done: HashSet::new(),
            mine: HashSet::new(),
            limit: None,
            last_reap: f64::NEG_INFINITY,
            lost: 0,
            spool: None,
            heart,
        });
        study.sync()?;
        Ok(study)
    }

    /// Keeps outcomes that cannot be stored (the database is gone) as files in `dir`, and
    /// stores the ones kept there for this study now (by earlier workers on this machine):
    /// each counts unless its trial was run again meanwhile. Returns how many were stored.
    pub fn set_spool(&mut self, dir: &Path) -> Result<usize> {
        self.shared_mut().spool = Some(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(0);
        };
        let mut stored = 0;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(u) = serde_json::from_str::<Unsent>(&text) else {
                continue;
            };
            if u.study != self.record.name || u.created_at != self.record.created_at {
                continue;
            }
            let told = self
                .storage
                .finish_owned(&self.record.name, u.number, &u.worker, &u.end)?;
            if told == Told::Stored {
                stored += 1;
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(stored)
    }

    /// The error for an outcome the storage refused with `e`, after keeping the outcome in the
    /// spool folder (if there is one) for the next worker to store.
    pub(super) fn keep_unsent(&mut self, number: u64, end: &FinishedTrial, e: Error) -> Error {
        let Some(dir) = self.shared.as_ref().and_then(|s| s.spool.clone()) else {
            return e;
        };
        let unsent = Unsent {
            study: self.record.name.clone(),
            created_at: self.record.created_at,
            number,
            worker: self.worker.clone(),
            end: end.clone(),
        };
        let safe: String = self
            .record
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!(
            "{safe}-{}-{number}-{}.json",
            self.record.created_at as u64,
            std::process::id()
        ));
        let kept = std::fs::create_dir_all(&dir).and_then(|()| {
            let text = serde_json::to_string(&unsent).map_err(std::io::Error::other)?;
            std::fs::write(&path, text)
        });
        match kept {
            Ok(()) => Error::Storage(format!(
                "{e}; the outcome of trial {number} is kept in {} and stored by the next worker of this study started with that folder (unless the trial has been run again meanwhile)",
                path.display()
            )),
            Err(io) => Error::Storage(format!(
                "{e}; the outcome of trial {number} could not be kept either ({}: {io})",
                path.display()
            )),
        }
    }

    /// Outcomes this worker dropped because its trial had been failed as stale meanwhile.
    pub fn lost(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.lost)
    }

    fn shared_mut(&mut self) -> &mut SharedState {
        self.shared.as_mut().expect("a shared study")
    }

    /// Learns every trial other workers finished since the last sync (they count in
    /// [`Study::finished`]), and marks the ones they are running as asked.
    fn sync(&mut self) -> Result<()> {
        let low = self.shared_mut().low;
        let trials = self.storage.trials_from(&self.record.name, low)?;
        let sh = self.shared.as_mut().expect("a shared study");
        let mut all_done = true;
        for t in trials {
            let seen = sh.done.contains(&t.number);
            let finished = t.state.is_finished();
            all_done &= finished;
            if all_done {
                sh.low = t.number + 1;
                sh.done.remove(&t.number);
            } else if finished {
                sh.done.insert(t.number);
            }
            if seen {
                continue;
            }
            if sh.mine.contains(&t.number) || t.was_interrupted() {
                continue;
            }
            let Ok(arch) = self.space.parse_json(&t.arch) else {
                continue;
            };
            if finished {
                self.finished += 1;
            }
            let outcome = finished.then(|| feedback(&self.goal, t.state, &t.values, t.violation));
            self.proposer.observe_foreign(
                self.space,
                &arch,
                &t.fidelity,
                outcome.as_ref(),
                &mut self.history,
            );
        }
        Ok(())
    }

    /// Fails stale trials, at most twice per grace period.
    fn reap(&mut self) -> Result<()> {
        let now = super::now();
        let sh = self.shared_mut();
        if now - sh.last_reap < sh.sharing.grace / 2.0 {
            return Ok(());
        }
        sh.last_reap = now;
        let (grace, retry) = (sh.sharing.grace, sh.sharing.max_retry);
        self.storage.reap_stale(&self.record.name, grace, retry)?;
        Ok(())
    }

    /// A queued trial (one failed as stale and queued again), taken for this worker.
    fn claim(&mut self) -> Result<Option<Ask>> {
        let Some(t) = self.storage.claim_queued(&self.record.name, &self.worker)? else {
            return Ok(None);
        };
        let arch = self.space.parse_json(&t.arch)?;
        let netspec = self.pre_training_metrics(&arch)?;
        self.shared_mut().mine.insert(t.number);
        let ask = Ask {
            number: t.number,
            arch: arch.clone(),
            fidelity: t.fidelity.clone(),
        };
        let proposal = Proposal {
            id: u64::MAX,
            arch,
            fidelity: t.fidelity,
        };
        self.pending.insert(
            t.number,
            Taken {
                proposal,
                netspec,
                foreign: true,
            },
        );
        Ok(Some(ask))
    }

    /// [`Study::ask`] for a worker: a queued trial first, else a new proposal claimed
    /// atomically; `None` once the proposer has nothing left or the study is full, and no
    /// other worker's trial is unfinished.
    pub(super) fn ask_shared(&mut self) -> Result<Option<Ask>> {
        let mut taken_in_a_row = 0usize;
        loop {
            self.reap()?;
            if let Some(ask) = self.claim()? {
                return Ok(Some(ask));
            }
            self.sync()?;
            let Some(taken) = self.take()? else {
                return self.wait_for_others();
            };
            let new = self.new_trial(&taken.proposal);
            let limit = self.shared_mut().limit;
            match self
                .storage
                .create_trial_if(&self.record.name, &new, limit)?
            {
                Created::Number(number) => {
                    self.shared_mut().mine.insert(number);
                    let p = &taken.proposal;
                    let ask = Ask {
                        number,
                        arch: p.arch.clone(),
                        fidelity: p.fidelity.clone(),
                    };
                    self.pending.insert(number, taken);
                    return Ok(Some(ask));
                }
                Created::Taken => {
                    // Another worker claimed this arch between the sync and now; the next
                    // sync tells the proposer its outcome.
                    taken_in_a_row += 1;
                    if taken_in_a_row > super::MAX_INFEASIBLE {
                        return Err(Error::invalid(format!(
                            "{} proposed {taken_in_a_row} archs in a row that other workers had taken; the space may be exhausted",
                            self.proposer.name()
                        )));
                    }
                }
                Created::Full => {
                    self.held = Some(taken);
                    return self.wait_for_others();
                }
            }
        }
    }

    /// Waits while other workers' trials are running or queued (one may go stale and be
    /// queued again for this worker to run): the queued trial's ask, or `None` once every
    /// trial has finished.
    fn wait_for_others(&mut self) -> Result<Option<Ask>> {
        loop {
            self.sync()?;
            let low = self.shared_mut().low;
            let unfinished = self
                .storage
                .trials_from(&self.record.name, low)?
                .into_iter()
                .filter(|t| matches!(t.state, TrialState::Running | TrialState::Queued))
                .count();
            if unfinished == 0 {
                return Ok(None);
            }
            self.reap()?;
            if let Some(ask) = self.claim()? {
                return Ok(Some(ask));
            }
            let pause = self.shared_mut().sharing.heartbeat.min(0.2);
            std::thread::sleep(Duration::from_secs_f64(pause));
        }
    }

    /// The study-wide number of trials that count at which workers stop proposing.
    pub(super) fn set_limit(&mut self, trials: usize) {
        self.shared_mut().limit = Some(trials as u64);
    }

    /// Which trial the heartbeat thread keeps alive.
    pub(super) fn beat_for(&self, number: Option<u64>) {
        if let Some(s) = &self.shared {
            s.heart.set(number);
        }
    }

    /// Counts an outcome dropped because the trial was no longer this worker's.
    pub(super) fn count_lost(&mut self) {
        self.shared_mut().lost += 1;
    }
}
