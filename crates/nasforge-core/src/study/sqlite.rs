//! SQLite storage: the embedded default. One file per run directory, in WAL mode so readers
//! (the dashboard, `nasforge status`) never block the search, and writes are transactions so a
//! crash never leaves a half-written trial.

use super::storage::{
    counts, is_stale, parse_record, stale_error, superseded_error, told_late, Created,
    FinishedTrial, NewTrial, Storage, StoredTrial, StudyRecord, Told,
};
use super::{now, Trial, TrialState};
use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Version 2 added one value per objective, the constraint violation and the typed cost;
/// a version-1 file is migrated when a writer opens it and read as it is by readers.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    arch_key TEXT NOT NULL,
    arch TEXT NOT NULL,
    fidelity TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    violation REAL,
    cost TEXT,
    worker TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    heartbeat_at REAL,
    finished_at REAL,
    UNIQUE (study_id, number)
);
CREATE INDEX IF NOT EXISTS trials_by_key ON trials (study_id, arch_key);
CREATE INDEX IF NOT EXISTS trials_by_state ON trials (study_id, state, number);
CREATE TABLE IF NOT EXISTS objective_values (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    objective INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (trial_id, objective)
);
CREATE TABLE IF NOT EXISTS intermediate (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (trial_id, step)
);
";

/// From version 1 to 2, run after [`SCHEMA`] (which makes the `objective_values` table) in the
/// same transaction: the new columns, filled from what version 1 kept
/// (its one `value`, the `epochs` and `train_seconds` metrics; `latency_ms_b1` is `latency_ms`).
const MIGRATE_1_TO_2: &str = "
ALTER TABLE trials ADD COLUMN violation REAL;
ALTER TABLE trials ADD COLUMN cost TEXT;
INSERT INTO objective_values (trial_id, objective, value)
    SELECT id, 0, value FROM trials WHERE state = 'complete' AND value IS NOT NULL;
UPDATE trials SET
    violation = CASE WHEN state = 'complete' THEN 0.0 END,
    cost = json_object(
        'epochs', CAST(COALESCE(json_extract(metrics, '$.epochs'), 0) AS INTEGER),
        'seconds', COALESCE(json_extract(metrics, '$.train_seconds'), 0.0));
UPDATE trials SET metrics = json_set(json_remove(metrics, '$.latency_ms_b1'), '$.latency_ms',
        json_extract(metrics, '$.latency_ms_b1'))
    WHERE json_extract(metrics, '$.latency_ms_b1') IS NOT NULL;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
";

/// How long a connection waits for another one's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether `e` is SQLite's "the database is locked / busy" (another connection's lock).
fn is_busy(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("database is busy")
}

/// A study database in one SQLite file.
pub struct SqliteStorage {
    conn: Connection,
    /// The file (`None` in memory), for [`Storage::reopen`].
    path: Option<PathBuf>,
    /// The file's schema version (a reader may hold a version-1 file).
    version: i64,
    /// Study name -> row id; a study is never renamed or deleted, so this never goes stale.
    study_ids: RefCell<HashMap<String, i64>>,
}

impl SqliteStorage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        // Several workers opening a new file at once race to set it up (WAL mode, the
        // schema), and SQLite answers "locked" without waiting for some of those steps: retry
        // with a jittered pause, for as long as the busy timeout.
        let start = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let conn = Connection::open(path)
                .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
            match Self::init(conn) {
                Ok(mut s) => {
                    s.path = Some(path.to_path_buf());
                    return Ok(s);
                }
                Err(e) if is_busy(&e) && start.elapsed() < BUSY_TIMEOUT => {
                    attempt += 1;
                    let jitter = (now().fract() * 1e6) as u64 % 20;
                    std::thread::sleep(std::time::Duration::from_millis(
                        5 * u64::from(attempt.min(10)) + jitter,
                    ));
                }
                Err(e) => return Err(Error::Storage(format!("{}: {e}", path.display()))),
            }
        }
    }

    /// Opens an existing study database without creating anything: a missing file, or a
    /// SQLite file that nasforge did not write, is an error. For readers (reports, dashboards).
    pub fn open_existing(path: &Path) -> Result<Self> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version: std::result::Result<String, _> = conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        );
        match version {
            Ok(v) if v == "1" || v == SCHEMA_VERSION.to_string() => Ok(SqliteStorage {
                conn,
                path: Some(path.to_path_buf()),
                version: v.parse().expect("checked"),
                study_ids: RefCell::new(HashMap::new()),
            }),
            Ok(v) => Err(Error::Storage(format!(
                "{}: database schema version {v} is newer than the {SCHEMA_VERSION} this nasforge reads; use the nasforge that wrote it, or a newer one",
                path.display()
            ))),
            Err(_) => Err(Error::Storage(format!(
                "{} is not a nasforge study database",
                path.display()
            ))),
        }
    }

    /// Checks the whole file for damage (SQLite's `quick_check`: every page and index read
    /// once). For `--resume`, which must never take a truncated or overwritten study for an
    /// empty one; readers skip it, as it reads the whole file.
    pub fn verify(&self) -> Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<_, _>>()?;
        match problems.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(Error::Storage(format!(
                "the database is damaged: {}",
                problems.join("; ")
            ))),
        }
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let old: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap_or(None);
        if old.as_deref() == Some("1") {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
            tx.execute_batch(SCHEMA)
                .and_then(|()| tx.execute_batch(MIGRATE_1_TO_2))
                .map_err(|e| Error::Storage(format!("cannot migrate the study from schema version 1 to 2 (nothing was changed): {e}")))?;
            tx.commit()?;
        }
        conn.execute_batch(SCHEMA)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                // Several workers opening a new file at once may all get here: the first
                // writes the version, the others find it written.
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(Error::Storage(format!(
                    "database schema version {v} is newer than the {SCHEMA_VERSION} this nasforge reads; use the nasforge that wrote it, or a newer one"
                )))
            }
        }
        Ok(SqliteStorage {
            conn,
            path: None,
            version: SCHEMA_VERSION,
            study_ids: RefCell::new(HashMap::new()),
        })
    }

    fn study_id(&self, name: &str) -> Result<i64> {
        if let Some(&id) = self.study_ids.borrow().get(name) {
            return Ok(id);
        }
        let id: i64 = self
            .conn
            .prepare_cached("SELECT id FROM studies WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::Storage(format!("no study named `{name}`")))?;
        self.study_ids.borrow_mut().insert(name.to_string(), id);
        Ok(id)
    }

    fn trial_id(&self, study: &str, number: u64) -> Result<i64> {
        let sid = self.study_id(study)?;
        self.conn
            .prepare_cached("SELECT id FROM trials WHERE study_id = ?1 AND number = ?2")?
            .query_row(params![sid, number as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::Storage(format!("study `{study}` has no trial {number}")))
    }

    /// The trials numbered `number` (`exact`) or from `number` on (all of them for `None`).
    fn load_trials(&self, study: &str, number: Option<u64>, exact: bool) -> Result<Vec<Trial>> {
        let sid = self.study_id(study)?;
        let new_columns = if self.version >= 2 {
            "violation, cost"
        } else {
            "NULL, NULL"
        };
        // One plain comparison per case, so SQLite reads the (study, number) index instead of
        // the whole study.
        let which = match (number, exact) {
            (None, _) => "?2 IS NULL",
            (Some(_), true) => "number = ?2",
            (Some(_), false) => "number >= ?2",
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, number, arch_key, arch, fidelity, state, value, metrics, error, worker,
                    created_at, started_at, heartbeat_at, finished_at, {new_columns}
             FROM trials WHERE study_id = ?1 AND {which} ORDER BY number"
        ))?;
        let rows = stmt.query_map(params![sid, number.map(|n| n as i64)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, f64>(10)?,
                r.get::<_, Option<f64>>(11)?,
                r.get::<_, Option<f64>>(12)?,
                r.get::<_, Option<f64>>(13)?,
                (
                    r.get::<_, Option<f64>>(14)?,
                    r.get::<_, Option<String>>(15)?,
                ),
            ))
        })?;
        let mut ids = Vec::new();
        let mut trials = Vec::new();
        for row in rows {
            let (
                id,
                number,
                arch_key,
                arch,
                fidelity,
                state,
                value,
                metrics,
                error,
                worker,
                created_at,
                started_at,
                heartbeat_at,
                finished_at,
                (violation, cost),
            ) = row?;
            ids.push(id);
            let state = TrialState::parse(&state)?;
            // Version 1 kept the one value in the trial row (and no violation: a complete
            // trial of version 1 was feasible); version 2 reads them below.
            let v1_complete = self.version < 2 && state == TrialState::Complete;
            trials.push(
                StoredTrial {
                    number: number as u64,
                    arch_key,
                    arch,
                    fidelity,
                    state,
                    values: if v1_complete {
                        value.into_iter().collect()
                    } else {
                        Vec::new()
                    },
                    violation: violation.or(v1_complete.then_some(0.0)),
                    cost,
                    metrics,
                    error,
                    worker,
                    created_at,
                    started_at,
                    heartbeat_at,
                    finished_at,
                }
                .decode()?,
            );
        }
        if self.version >= 2 {
            let mut stmt = self.conn.prepare_cached(
                "SELECT value FROM objective_values WHERE trial_id = ?1 ORDER BY objective",
            )?;
            for (id, t) in ids.iter().zip(trials.iter_mut()) {
                if t.state == TrialState::Complete {
                    t.values = stmt
                        .query_map([id], |r| r.get::<_, f64>(0))?
                        .collect::<rusqlite::Result<_>>()?;
                }
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT step, value FROM intermediate WHERE trial_id = ?1 ORDER BY step",
        )?;
        for (id, t) in ids.iter().zip(trials.iter_mut()) {
            t.intermediate = stmt
                .query_map([id], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, f64>(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(trials)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Storage(format!("cannot encode JSON: {e}")))
}

impl Storage for SqliteStorage {
    fn create_study(&mut self, record: &StudyRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO studies (name, record) VALUES (?1, ?2)",
                params![record.name, to_json(record)?],
            )
            .map_err(|e| Error::Storage(format!("cannot create study `{}`: {e}", record.name)))?;
        Ok(())
    }

    fn set_config(&mut self, name: &str, config: &serde_json::Value) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let text: String = tx
            .query_row("SELECT record FROM studies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::Storage(format!("no study named `{name}`")))?;
        let mut record = parse_record(&text, Some(name))?;
        record.config = config.clone();
        tx.execute(
            "UPDATE studies SET record = ?2 WHERE name = ?1",
            params![name, to_json(&record)?],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT record FROM studies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        text.map(|t| parse_record(&t, Some(name))).transpose()
    }

    fn studies(&self) -> Result<Vec<StudyRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM studies ORDER BY id")?;
        let texts: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        texts.iter().map(|t| parse_record(t, None)).collect()
    }

    fn create_trial(&mut self, study: &str, t: &NewTrial) -> Result<u64> {
        let sid = self.study_id(study)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let number = insert_trial(&tx, sid, t)?;
        tx.commit()?;
        Ok(number)
    }

    fn report(&mut self, study: &str, number: u64, step: u64, value: f64) -> Result<()> {
        let id = self.trial_id(study, number)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO intermediate (trial_id, step, value) VALUES (?1, ?2, ?3)",
            params![id, step as i64, value],
        )?;
        tx.execute(
            "UPDATE trials SET heartbeat_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn heartbeat(&mut self, study: &str, number: u64) -> Result<()> {
        let id = self.trial_id(study, number)?;
        self.conn.execute(
            "UPDATE trials SET heartbeat_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    fn finish_trial(&mut self, study: &str, number: u64, end: &FinishedTrial) -> Result<()> {
        let id = self.trial_id(study, number)?;
        let tx = self.conn.transaction()?;
        store_end(&tx, id, end)?;
        tx.commit()?;
        Ok(())
    }

    fn trial(&self, study: &str, number: u64) -> Result<Trial> {
        self.load_trials(study, Some(number), true)?
            .pop()
            .ok_or_else(|| Error::Storage(format!("study `{study}` has no trial {number}")))
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        self.load_trials(study, None, false)
    }

    fn create_trial_if(
        &mut self,
        study: &str,
        t: &NewTrial,
        limit: Option<u64>,
    ) -> Result<Created> {
        let sid = self.study_id(study)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let fidelity = to_json(&t.fidelity)?;
        let holders: Vec<(String, Option<String>)> = tx
            .prepare_cached(
                "SELECT state, error FROM trials WHERE study_id = ?1 AND arch_key = ?2 AND fidelity = ?3",
            )?
            .query_map(params![sid, t.arch_key, fidelity], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (state, error) in &holders {
            if counts(TrialState::parse(state)?, error.as_deref()) {
                return Ok(Created::Taken);
            }
        }
        if let Some(limit) = limit {
            // Trial numbers are dense, so the count is the next number less the failed trials
            // that do not count: two index look-ups, not a scan of the study.
            let all: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1",
                )?
                .query_row([sid], |r| r.get(0))?;
            let uncounted: i64 = tx
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND state = 'failed'
                        AND (error LIKE '{}%' OR error LIKE '{}%')",
                    super::INTERRUPTED,
                    super::STALE
                ))?
                .query_row([sid], |r| r.get(0))?;
            if (all - uncounted) as u64 >= limit {
                return Ok(Created::Full);
            }
        }
        let number = insert_trial(&tx, sid, t)?;
        tx.commit()?;
        Ok(Created::Number(number))
    }

    fn trials_from(&self, study: &str, from: u64) -> Result<Vec<Trial>> {
        self.load_trials(study, Some(from), false)
    }

    fn reap_stale(&mut self, study: &str, grace: f64, max_retry: u32) -> Result<Vec<u64>> {
        let sid = self.study_id(study)?;
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stale: Vec<(i64, i64, String, String, String, String, f64)> = tx
            .prepare_cached(
                "SELECT id, number, arch_key, arch, fidelity, worker, COALESCE(heartbeat_at, created_at)
                 FROM trials WHERE study_id = ?1 AND state = 'running'
                    AND COALESCE(heartbeat_at, created_at) < ?2 ORDER BY number",
            )?
            .query_map(params![sid, at - grace], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut failed = Vec::new();
        for (id, number, key, arch, fidelity, worker, beat) in stale {
            tx.prepare_cached(
                "UPDATE trials SET state = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, stale_error(&worker, at - beat), at])?;
            failed.push(number as u64);
            let before: i64 = tx
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND arch_key = ?2
                        AND fidelity = ?3 AND state = 'failed' AND error LIKE '{}%'",
                    super::STALE
                ))?
                .query_row(params![sid, key, fidelity], |r| r.get(0))?;
            if before as u64 <= u64::from(max_retry) {
                let again = NewTrial {
                    arch_key: key,
                    arch: serde_json::from_str(&arch).map_err(|e| {
                        Error::Storage(format!("trial {number}: bad arch JSON: {e}"))
                    })?,
                    fidelity: serde_json::from_str(&fidelity).map_err(|e| {
                        Error::Storage(format!("trial {number}: bad fidelity JSON: {e}"))
                    })?,
                    state: TrialState::Queued,
                    worker: String::new(),
                };
                insert_trial(&tx, sid, &again)?;
            }
        }
        tx.commit()?;
        Ok(failed)
    }

    fn claim_queued(&mut self, study: &str, worker: &str) -> Result<Option<Trial>> {
        let sid = self.study_id(study)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let queued: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT id, number FROM trials WHERE study_id = ?1 AND state = 'queued'
                 ORDER BY number LIMIT 1",
            )?
            .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((id, number)) = queued else {
            return Ok(None);
        };
        let at = now();
        tx.prepare_cached(
            "UPDATE trials SET state = 'running', worker = ?2, started_at = ?3, heartbeat_at = ?3
             WHERE id = ?1",
        )?
        .execute(params![id, worker, at])?;
        tx.commit()?;
        self.trial(study, number as u64).map(Some)
    }

    fn finish_owned(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        end: &FinishedTrial,
    ) -> Result<Told> {
        let id = self.trial_id(study, number)?;
        let sid = self.study_id(study)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (state, holder, error, key, fidelity): (
            String,
            String,
            Option<String>,
            String,
            String,
        ) = tx
            .prepare_cached(
                "SELECT state, worker, error, arch_key, fidelity FROM trials WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        let state = TrialState::parse(&state)?;
        if state == TrialState::Running && holder == worker {
            store_end(&tx, id, end)?;
            tx.commit()?;
            return Ok(Told::Stored);
        }
        if state == TrialState::Failed && holder == worker && is_stale(error.as_deref()) {
            let rerun: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM trials WHERE study_id = ?1 AND arch_key = ?2 AND fidelity = ?3
                     AND state = 'queued' AND number > ?4 ORDER BY number LIMIT 1",
                )?
                .query_row(params![sid, key, fidelity, number as i64], |r| r.get(0))
                .optional()?;
            if let Some(rerun) = rerun {
                tx.prepare_cached(
                    "UPDATE trials SET state = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1",
                )?
                .execute(params![rerun, superseded_error(number), now()])?;
                store_end(&tx, id, end)?;
                tx.commit()?;
                return Ok(Told::Stored);
            }
        }
        drop(tx);
        Ok(told_late(&self.trial(study, number)?, worker, end))
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        match &self.path {
            Some(p) => Ok(Box::new(SqliteStorage::open(p)?)),
            None => Err(Error::Storage(
                "an in-memory SQLite database cannot be opened twice".into(),
            )),
        }
    }
}

/// Inserts `t` as the study's next trial (inside the caller's transaction).
fn insert_trial(tx: &Transaction, sid: i64, t: &NewTrial) -> Result<u64> {
    let created = now();
    let running = (t.state == TrialState::Running).then_some(created);
    let number: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1")?
        .query_row([sid], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO trials (study_id, number, arch_key, arch, fidelity, state, worker, created_at, started_at, heartbeat_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![sid, number, t.arch_key, to_json(&t.arch)?, to_json(&t.fidelity)?, t.state.as_str(), t.worker, created, running])?;
    Ok(number as u64)
}

/// Stores the end of trial row `id` (inside the caller's transaction).
fn store_end(tx: &Transaction, id: i64, end: &FinishedTrial) -> Result<()> {
    tx.prepare_cached(
        "UPDATE trials SET state = ?2, value = ?3, metrics = ?4, error = ?5, finished_at = ?6,
                violation = ?7, cost = ?8 WHERE id = ?1",
    )?
    .execute(params![
        id,
        end.state.as_str(),
        end.values.first(),
        to_json(&end.metrics)?,
        end.error,
        now(),
        end.violation,
        to_json(&end.cost)?
    ])?;
    tx.execute("DELETE FROM objective_values WHERE trial_id = ?1", [id])?;
    for (k, v) in end.values.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO objective_values (trial_id, objective, value) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![id, k as i64, v])?;
    }
    Ok(())
}
