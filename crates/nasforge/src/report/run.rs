//! A run directory as the reporting commands read it: its configuration, study, final
//! training and whether a process is still working on it.
//!
//! `nasforge search` keeps `RUN/activity.json` up to date (phase, process id, host); a run whose
//! process is gone before the phase `done` was written was interrupted (`--resume` continues it).

use crate::cmd::config::SearchConfig;
use crate::cmd::{bad_input, BadInput};
use anyhow::{Context, Result};
use nasforge_core::study::{
    best_of, now, PostgresStorage, SqliteStorage, Storage, StudyRecord, Trial, TrialState,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The study name `nasforge search` uses in its database.
pub const STUDY: &str = "search";

/// The folder of a one-shot run's supernet checkpoint (`nasforge_nn::supernet::Checkpoint`).
pub const SUPERNET_DIR: &str = "supernet";

/// What a run's process is doing, as it last wrote it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Activity {
    /// `searching`, `final training` or `done`.
    pub phase: String,
    /// Process id of the writer.
    pub pid: u32,
    /// Host of the writer.
    pub host: String,
    /// Unix time of the last update.
    pub updated_at: f64,
}

/// This process's host name (the `HOSTNAME` variable, else `localhost`).
pub fn host() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
}

impl Activity {
    /// Records `phase` for this process in `dir/activity.json` (written atomically).
    pub fn mark(dir: &Path, phase: &str) -> Result<()> {
        let a = Activity {
            phase: phase.to_string(),
            pid: std::process::id(),
            host: host(),
            updated_at: now(),
        };
        let tmp = dir.join("activity.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&a)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("activity.json"))
            .with_context(|| format!("cannot write {}", dir.join("activity.json").display()))
    }

    fn read(dir: &Path) -> Option<Activity> {
        let text = std::fs::read_to_string(dir.join("activity.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether the writing process still runs (always true for another host: it cannot be
    /// checked from here).
    fn alive(&self) -> bool {
        if self.host != host() {
            return true;
        }
        std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|c| String::from_utf8_lossy(&c).contains("nasforge"))
            .unwrap_or(false)
    }
}

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A process is searching.
    Searching,
    /// A process is training the best arch from scratch.
    FinalTraining,
    /// The search (and final training, on data) finished.
    Done,
    /// Its process stopped before the end; `--resume` continues it.
    Interrupted,
}

impl RunState {
    /// The state as shown in tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Searching => "searching",
            RunState::FinalTraining => "final training",
            RunState::Done => "done",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Whether a process may still add trials or a model.
    pub fn is_live(&self) -> bool {
        matches!(self, RunState::Searching | RunState::FinalTraining)
    }
}

/// One run directory, read.
#[derive(Clone, Debug)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// The resolved configuration it stores.
    pub config: SearchConfig,
    /// The study's record (space, strategy, objective, direction, seed).
    pub record: StudyRecord,
    /// Every trial, by number.
    pub trials: Vec<Trial>,
    /// `best/final.json`, when final training finished.
    pub final_result: Option<serde_json::Value>,
    /// Where it stands.
    pub state: RunState,
}

/// Finished trials, one per trial slot (interrupted leftovers are not counted).
fn finished_slots(trials: &[Trial]) -> usize {
    trials
        .iter()
        .filter(|t| t.state.is_finished() && !t.was_interrupted())
        .count()
}

/// Whether `dir` looks like a run: a `config.toml` with a `study.db`, or with a study in a
/// database (`--storage`).
pub fn is_run(dir: &Path) -> bool {
    let config = dir.join("config.toml");
    config.is_file()
        && (dir.join("study.db").is_file()
            || SearchConfig::from_file(&config).is_ok_and(|c| c.storage.is_some()))
}

/// The study of the run in `dir` with configuration `cfg`, and its name: the run's `study.db`
/// (created if `create`, else it must be a nasforge study), or the study `--storage` and
/// `--study` name.
pub fn open_storage(
    dir: &Path,
    cfg: &SearchConfig,
    create: bool,
) -> Result<(Box<dyn Storage>, String)> {
    if let (Some(url), Some(name)) = (&cfg.storage, &cfg.study) {
        return Ok((Box::new(PostgresStorage::open(url)?), name.clone()));
    }
    let db = dir.join("study.db");
    let storage = if create {
        SqliteStorage::open(&db)?
    } else {
        SqliteStorage::open_existing(&db).map_err(|e| BadInput(format!("{}: {e}", db.display())))?
    };
    Ok((Box::new(storage), STUDY.to_string()))
}

impl Run {
    /// Reads study `name` of a PostgreSQL database without its run directory (which lives on
    /// the machine of the search that made it): its configuration comes from the study. The
    /// state is judged from the trials: searching while a trial has sent a heartbeat in the
    /// last minute, done once every trial has finished, else interrupted. `dir` is
    /// `URL/NAME` (no model, no final result).
    pub fn from_study(url: &str, name: &str) -> Result<Run> {
        let storage = PostgresStorage::open(url)?;
        let record = storage.study(name)?.ok_or_else(|| {
            BadInput(format!(
                "there is no study `{name}` in {} ({})",
                storage.shown(),
                held_studies(&storage)
            ))
        })?;
        Self::of_study(&storage, record)
    }

    fn of_study(storage: &PostgresStorage, record: StudyRecord) -> Result<Run> {
        let config: SearchConfig = serde_json::from_value(record.config.clone()).map_err(|e| {
            BadInput(format!(
                "study `{}` holds a configuration this nasforge cannot read ({e})",
                record.name
            ))
        })?;
        let trials = storage.trials(&record.name)?;
        let total = config.trials.unwrap_or(0);
        let fresh = trials.iter().any(|t| {
            t.state == TrialState::Running && t.heartbeat_at.is_some_and(|h| now() - h < 60.0)
        });
        let unfinished = trials
            .iter()
            .any(|t| matches!(t.state, TrialState::Running | TrialState::Queued));
        let state = if fresh {
            RunState::Searching
        } else if !unfinished && total > 0 && finished_slots(&trials) >= total {
            RunState::Done
        } else {
            RunState::Interrupted
        };
        Ok(Run {
            dir: PathBuf::from(storage.shown()).join(&record.name),
            config,
            record,
            trials,
            final_result: None,
            state,
        })
    }

    /// Reads the run in `dir`; a missing directory or one that is not a run is bad input.
    pub fn open(dir: &Path) -> Result<Run> {
        if !dir.exists() {
            return bad_input(format!(
                "{} does not exist; give a run directory (`nasforge runs` lists those under runs/)",
                dir.display()
            ));
        }
        if !is_run(dir) {
            return bad_input(format!(
                "{} is not a nasforge run (it needs config.toml and study.db, which `nasforge search --run-dir {}` writes)",
                dir.display(),
                dir.display()
            ));
        }
        let config = SearchConfig::from_file(&dir.join("config.toml"))?;
        let (storage, name) = open_storage(dir, &config, false)?;
        let record = storage.study(&name)?.ok_or_else(|| {
            BadInput(format!(
                "{} holds no `{name}` study; it was not written by `nasforge search`",
                config.storage.as_ref().map_or_else(
                    || dir.join("study.db").display().to_string(),
                    |_| { "the --storage database".to_string() }
                )
            ))
        })?;
        let trials = storage.trials(&name)?;
        let final_result = std::fs::read_to_string(dir.join("best").join("final.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let total = config.trials.unwrap_or(0);
        let finished = finished_slots(&trials);
        let state = match Activity::read(dir) {
            Some(a) if a.phase == "done" => RunState::Done,
            Some(a) if a.alive() && a.phase == "final training" => RunState::FinalTraining,
            Some(a) if a.alive() => RunState::Searching,
            Some(_) => RunState::Interrupted,
            // Runs written before activity.json existed.
            None if final_result.is_some() || (total > 0 && finished >= total) => RunState::Done,
            None => RunState::Interrupted,
        };
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            record,
            trials,
            final_result,
            state,
        })
    }

    /// The run's name (its directory's last component).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// Trials asked for (`--trials`).
    pub fn total(&self) -> usize {
        self.config.trials.unwrap_or(0)
    }

    /// Finished trials (complete, pruned or failed), one per trial slot: a trial an
    /// interrupted process left behind is not counted (its arch ran again).
    pub fn finished(&self) -> usize {
        finished_slots(&self.trials)
    }

    /// Trials in a given state (interrupted leftovers are not failures of their own).
    pub fn count(&self, state: TrialState) -> usize {
        self.trials
            .iter()
            .filter(|t| t.state == state && !t.was_interrupted())
            .count()
    }

    /// `+1` to maximise the objective, `-1` to minimise it.
    pub fn sign(&self) -> f64 {
        self.record.direction.sign()
    }

    /// The best complete trial (at the highest fidelity reached, for schedulers).
    pub fn best(&self) -> Option<&Trial> {
        best_of(&self.trials, self.sign())
    }

    /// Whether final training saved a model (`best/weights.bpk`).
    pub fn has_model(&self) -> bool {
        self.dir.join("best").join("weights.bpk").is_file()
    }

    /// The strategy or scheduler that ran.
    pub fn strategy(&self) -> &str {
        &self.record.strategy
    }

    /// One JSON object summarising the run (the `runs` and `status` documents).
    pub fn summary_json(&self) -> serde_json::Value {
        let best = self.best();
        let goal = self.record.goal();
        let front = nasforge_core::study::front_of(&self.trials, &goal);
        let mut doc = serde_json::json!({
            "name": self.name(),
            "dir": self.dir,
            "space": self.record.space,
            "strategy": self.strategy(),
            "objective": self.record.objective,
            "direction": self.record.direction,
            "seed": self.record.seed,
            "state": self.state,
            "trials_total": self.total(),
            "trials_finished": self.finished(),
            "trials_complete": self.count(TrialState::Complete),
            "trials_pruned": self.count(TrialState::Pruned),
            "trials_failed": self.count(TrialState::Failed),
            "trials_running": self.count(TrialState::Running),
            "best": best.map(|t| serde_json::json!({
                "trial": t.number,
                "value": t.value(),
                "arch": t.arch.get("arch"),
                "metrics": t.metrics,
            })),
            "final": self.final_result,
            "model": self.has_model().then(|| self.dir.join("best")),
        });
        if let Some(o) = doc.as_object_mut() {
            o.extend(goal_json(&goal, Some(&front)));
        }
        doc
    }
}

/// A goal's `objectives` and `constraints` (and, given one, its `front`: trial, arch, values)
/// as JSON fields, for every document that shows a goal.
pub fn goal_json(
    goal: &nasforge_core::study::Goal,
    front: Option<&[&Trial]>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let objectives: Vec<String> = goal.objectives.iter().map(|o| o.to_string()).collect();
    let constraints: Vec<String> = goal.constraints.iter().map(|c| c.to_string()).collect();
    out.insert("objectives".into(), objectives.into());
    out.insert("constraints".into(), constraints.into());
    if let Some(front) = front {
        let trials: Vec<serde_json::Value> = front
            .iter()
            .map(|t| serde_json::json!({"trial": t.number, "arch": t.arch.get("arch"), "values": t.values}))
            .collect();
        out.insert("front".into(), trials.into());
    }
    out
}

/// What studies `storage` holds, for messages: "it holds a, b, c and 12 more", or "it holds
/// none".
pub fn held_studies(storage: &dyn Storage) -> String {
    let names: Vec<String> = storage
        .studies()
        .map(|s| s.into_iter().map(|r| r.name).collect())
        .unwrap_or_default();
    match names.len() {
        0 => "it holds none".to_string(),
        n if n <= 8 => format!("it holds {}", names.join(", ")),
        n => format!("it holds {} and {} more", names[..8].join(", "), n - 8),
    }
}

/// Every study in the PostgreSQL database at `url`, read as [`Run::from_study`] does.
pub fn find_studies(url: &str) -> Result<Vec<(PathBuf, Result<Run>)>> {
    let storage = PostgresStorage::open(url)?;
    Ok(storage
        .studies()?
        .into_iter()
        .map(|r| {
            let dir = PathBuf::from(storage.shown()).join(&r.name);
            (dir, Run::of_study(&storage, r))
        })
        .collect())
}

/// Every run directly under `root` (or `root` itself when it is a run), by name. Folders that
/// are not runs are skipped; runs that cannot be read come back as errors beside their path.
pub fn find_runs(root: &Path) -> Result<Vec<(PathBuf, Result<Run>)>> {
    if !root.exists() {
        return bad_input(format!(
            "{} does not exist; `nasforge runs DIR` lists the runs in DIR (default runs/)",
            root.display()
        ));
    }
    if is_run(root) {
        return Ok(vec![(root.to_path_buf(), Run::open(root))]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_run(p))
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|d| (d.clone(), Run::open(&d)))
        .collect())
}
