//! PostgreSQL storage: one study shared by workers on many machines.
//!
//! The same trial model as the SQLite storage, on a server: every method is one transaction.
//! What makes it safe with many writers:
//!
//! - **Trial numbers** come from a counter in the study's row, taken under that row's lock, so
//!   they are dense and never collide; the same lock makes [`Storage::create_trial_if`]'s
//!   check-then-insert atomic.
//! - **Claims** take the oldest queued trial with `FOR UPDATE SKIP LOCKED`: two workers never
//!   claim the same trial, and neither waits for the other.
//! - **Time is the server's**: creation, heartbeats and the staleness test all read the
//!   database server's clock, so workers whose clocks disagree still agree on who is stale.
//! - **Retries**: a deadlock or serialization failure is retried at once with a jittered
//!   pause; a lost connection is re-opened and the transaction run again, for up to
//!   [`Retry::lost`] (60 s by default), then the method fails. A transaction that committed
//!   just before its connection dropped may run twice: a repeated tell is recognised
//!   ([`Told::Repeated`]), and a trial created or claimed twice is left running, goes stale
//!   and is re-queued, so nothing is lost.
//!
//! Statements are prepared once per connection and kept, so each query is one round trip.
//!
//! Tables are prefixed `nasforge_`, so a database shared with other programs is safe; the
//! schema carries a version (`nasforge_meta`), and a database written by a newer nasforge is
//! refused, never altered. Connections are plain TCP or Unix sockets (no TLS).

use super::storage::{
    counts, is_stale, parse_record, stale_error, superseded_error, told_late, Created,
    FinishedTrial, NewTrial, Storage, StoredTrial, StudyRecord, Told,
};
use super::{Trial, TrialState};
use crate::{Error, Result};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Prepared statements of the current connection, by SQL text: a query then costs one round
/// trip instead of two (prepare, then run). Emptied when the connection is replaced.
#[derive(Default)]
struct Statements(RefCell<HashMap<String, Statement>>);

impl Statements {
    fn get<C: GenericClient>(&self, c: &mut C, sql: &str) -> PgResult<Statement> {
        if let Some(s) = self.0.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql)?;
        self.0.borrow_mut().insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

type PgResult<T> = std::result::Result<T, postgres::Error>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

fn query<C: GenericClient>(
    c: &mut C,
    st: &Statements,
    sql: &str,
    p: Params,
) -> PgResult<Vec<postgres::Row>> {
    let s = st.get(c, sql)?;
    c.query(&s, p)
}

fn query_one<C: GenericClient>(
    c: &mut C,
    st: &Statements,
    sql: &str,
    p: Params,
) -> PgResult<postgres::Row> {
    let s = st.get(c, sql)?;
    c.query_one(&s, p)
}

fn query_opt<C: GenericClient>(
    c: &mut C,
    st: &Statements,
    sql: &str,
    p: Params,
) -> PgResult<Option<postgres::Row>> {
    let s = st.get(c, sql)?;
    c.query_opt(&s, p)
}

fn execute<C: GenericClient>(c: &mut C, st: &Statements, sql: &str, p: Params) -> PgResult<u64> {
    let s = st.get(c, sql)?;
    c.execute(&s, p)
}

/// The version of the tables below; written to `nasforge_meta`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE nasforge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nasforge_studies (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL,
    next_number BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE nasforge_trials (
    id BIGSERIAL PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES nasforge_studies(id),
    number BIGINT NOT NULL,
    arch_key TEXT NOT NULL,
    arch TEXT NOT NULL,
    fidelity TEXT NOT NULL,
    state TEXT NOT NULL,
    objective_values DOUBLE PRECISION[] NOT NULL DEFAULT '{}',
    violation DOUBLE PRECISION,
    cost TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    worker TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    heartbeat_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    UNIQUE (study_id, number)
);
CREATE INDEX nasforge_trials_by_key ON nasforge_trials (study_id, arch_key);
CREATE INDEX nasforge_trials_by_state ON nasforge_trials (study_id, state, number);
CREATE TABLE nasforge_intermediate (
    trial_id BIGINT NOT NULL REFERENCES nasforge_trials(id),
    step BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (trial_id, step)
);
";

/// The server's clock, in Unix seconds.
const NOW: &str = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION";

/// The columns [`decode_row`] reads, in its order.
const TRIAL_COLUMNS: &str = "id, number, arch_key, arch, fidelity, state, objective_values,
    violation, cost, metrics, error, worker, created_at, started_at, heartbeat_at, finished_at";

/// A key for `pg_advisory_xact_lock` while the schema is set up (any constant of ours).
const SCHEMA_LOCK: i64 = 0x6e61_7366_6f72_6765; // "nasforge"

/// How long to keep trying when the database cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    /// When opening: how long to keep trying to connect (a worker may start before its
    /// database does).
    pub open: Duration,
    /// Once open: how long to keep re-connecting after the connection is lost, before a
    /// method fails.
    pub lost: Duration,
}

impl Default for Retry {
    /// 10 s to open, 60 s to get a lost connection back.
    fn default() -> Self {
        Retry {
            open: Duration::from_secs(10),
            lost: Duration::from_secs(60),
        }
    }
}

/// A study database on a PostgreSQL server.
pub struct PostgresStorage {
    client: RefCell<Client>,
    /// The connection string, for re-connecting and [`Storage::reopen`].
    url: String,
    /// The URL without its password, for messages.
    shown: String,
    retry: Retry,
    statements: Statements,
    /// Study name -> row id; a study is never renamed or deleted.
    study_ids: RefCell<HashMap<String, i64>>,
}

/// What kind of failure a PostgreSQL error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// A deadlock or serialization failure: run the transaction again.
    Conflict,
    /// The connection is gone (or was never made): connect again, then run it again.
    Connection,
    /// Anything else (a bad password, a constraint, a bug): give up.
    Other,
}

fn classify(e: &postgres::Error) -> Failure {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Failure::Conflict
        }
        // Class 08 (connection exception) and 57P01-03 (the server shut down or is starting).
        Some(c)
            if c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW =>
        {
            Failure::Connection
        }
        Some(_) => Failure::Other,
        // No server error: the socket failed, timed out or was closed.
        None => Failure::Connection,
    }
}

/// What a PostgreSQL error says, for people: the server's message with its detail and hint.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(d) = db.detail() {
                text.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                text.push_str(&format!("; {h}"));
            }
            text
        }
        None => e.to_string(),
    }
}

/// `url` without its password: `postgres://user@host:port/db`.
fn redact(url: &str) -> String {
    use std::str::FromStr;
    let Ok(config) = postgres::Config::from_str(url) else {
        return "the PostgreSQL database".into();
    };
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map_or(String::new(), |p| format!(":{p}"));
    let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{host}{port}/{db}")
}

/// A pause of about `ms` milliseconds, jittered so that workers retrying together spread out.
fn pause(ms: u64) {
    let jitter = (super::now().fract() * 1e6) as u64 % (ms / 2 + 1);
    std::thread::sleep(Duration::from_millis(ms / 2 + jitter));
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// any connection string the `postgres` crate takes) and sets up nasforge's tables if
    /// they are missing.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, Retry::default())
    }

    /// [`PostgresStorage::open`] with other retry limits.
    pub fn open_with(url: &str, retry: Retry) -> Result<Self> {
        let shown = redact(url);
        let client = connect(url, &shown, retry.open)?;
        let storage = PostgresStorage {
            client: RefCell::new(client),
            url: url.to_string(),
            shown,
            retry,
            statements: Statements::default(),
            study_ids: RefCell::new(HashMap::new()),
        };
        storage.run("cannot set up the nasforge tables", |c, st| {
            let mut tx = c.transaction()?;
            execute(&mut tx, st, "SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            let exists: bool = query_one(
                &mut tx,
                st,
                "SELECT to_regclass('nasforge_meta') IS NOT NULL",
                &[],
            )?
            .get(0);
            let version: Option<String> = if exists {
                query_opt(
                    &mut tx,
                    st,
                    "SELECT value FROM nasforge_meta WHERE key = 'schema_version'",
                    &[],
                )?
                .map(|r| r.get(0))
            } else {
                tx.batch_execute(SCHEMA)?;
                execute(
                    &mut tx,
                    st,
                    "INSERT INTO nasforge_meta (key, value) VALUES ('schema_version', $1)",
                    &[&SCHEMA_VERSION.to_string()],
                )?;
                Some(SCHEMA_VERSION.to_string())
            };
            tx.commit()?;
            Ok(version)
        })
        .and_then(|version| match version {
            Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
            Some(v) => Err(Error::Storage(format!(
                "{}: the nasforge tables have schema version {v}, newer than the {SCHEMA_VERSION} this nasforge reads; use the nasforge that wrote them, or a newer one",
                storage.shown
            ))),
            None => Err(Error::Storage(format!(
                "{}: table nasforge_meta has no schema version; it was not written by nasforge (drop the nasforge_ tables, or use another database)",
                storage.shown
            ))),
        })?;
        Ok(storage)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `op` on the connection, again after a conflict (at once) or a lost connection
    /// (after re-connecting, for up to [`Retry::lost`]); other errors fail with `what`.
    fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut Client, &Statements) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut conflicts = 0u32;
        let mut lost = false;
        loop {
            let mut client = self.client.borrow_mut();
            // A connection that failed is replaced, whatever state the client is in; its
            // prepared statements go with it.
            if lost || client.is_closed() {
                let left = self.retry.lost.saturating_sub(start.elapsed());
                self.statements.0.borrow_mut().clear();
                *client = connect(&self.url, &self.shown, left)
                    .map_err(|e| Error::Storage(format!("{what}: lost the connection and {e}")))?;
                lost = false;
            }
            let e = match op(&mut client, &self.statements) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match classify(&e) {
                Failure::Conflict if conflicts < 50 => {
                    conflicts += 1;
                    drop(client);
                    pause(2 * u64::from(conflicts.min(20)));
                }
                Failure::Connection if start.elapsed() < self.retry.lost => {
                    lost = true;
                    drop(client);
                    pause(200);
                }
                _ => {
                    return Err(Error::Storage(format!(
                        "{what} ({}): {}",
                        self.shown,
                        describe(&e)
                    )))
                }
            }
        }
    }

    fn study_id(&self, name: &str) -> Result<i64> {
        if let Some(&id) = self.study_ids.borrow().get(name) {
            return Ok(id);
        }
        let id: i64 = self
            .run("cannot read the study", |c, st| {
                query_opt(
                    c,
                    st,
                    "SELECT id FROM nasforge_studies WHERE name = $1",
                    &[&name],
                )
                .map(|r| r.map(|r| r.get(0)))
            })?
            .ok_or_else(|| Error::Storage(format!("no study named `{name}` in {}", self.shown)))?;
        self.study_ids.borrow_mut().insert(name.to_string(), id);
        Ok(id)
    }

    /// The trials numbered `number` (`exact`) or from `number` on, by number.
    fn load(&self, study: &str, number: u64, exact: bool) -> Result<Vec<Trial>> {
        let sid = self.study_id(study)?;
        let which = if exact { "=" } else { ">=" };
        let (rows, steps) = self.run("cannot read trials", |c, st| {
            // One snapshot for the trials and their intermediate values.
            let mut tx = c.build_transaction().read_only(true).start()?;
            let rows = query(
                &mut tx,
                st,
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM nasforge_trials
                     WHERE study_id = $1 AND number {which} $2 ORDER BY number"
                ),
                &[&sid, &(number as i64)],
            )?;
            let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let steps = query(
                &mut tx,
                st,
                "SELECT trial_id, step, value FROM nasforge_intermediate
                 WHERE trial_id = ANY($1) ORDER BY trial_id, step",
                &[&ids],
            )?;
            tx.commit()?;
            Ok((rows, steps))
        })?;
        let mut by_id: HashMap<i64, Vec<(u64, f64)>> = HashMap::new();
        for s in &steps {
            by_id
                .entry(s.get(0))
                .or_default()
                .push((s.get::<_, i64>(1) as u64, s.get(2)));
        }
        rows.iter()
            .map(|r| {
                let mut t = decode_row(r)?;
                t.intermediate = by_id.remove(&r.get::<_, i64>(0)).unwrap_or_default();
                Ok(t)
            })
            .collect()
    }
}

/// Connects to `url`, trying again for up to `patience` while the server cannot be reached.
fn connect(url: &str, shown: &str, patience: Duration) -> Result<Client> {
    use std::str::FromStr;
    let mut config = postgres::Config::from_str(url).map_err(|e| {
        Error::invalid(format!(
            "`{shown}` is not a PostgreSQL connection string ({e}); write postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("nasforge");
    }
    let start = Instant::now();
    loop {
        match config.connect(NoTls) {
            Ok(c) => return Ok(c),
            Err(e) if classify(&e) == Failure::Connection && start.elapsed() < patience => {
                pause(500)
            }
            Err(e) => {
                let why = describe(&e);
                let waited = if start.elapsed() >= Duration::from_secs(1) {
                    format!(" (kept trying for {:.0} s)", start.elapsed().as_secs_f64())
                } else {
                    String::new()
                };
                let fix = match e.code() {
                    Some(c)
                        if *c == SqlState::INVALID_PASSWORD
                            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                    {
                        "check the user and password in the URL"
                    }
                    Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                        "create the database first (createdb), or name one that exists"
                    }
                    Some(_) => "check the URL and the server's log",
                    None => "check that the server runs and that host and port are right",
                };
                return Err(Error::Storage(format!(
                    "cannot connect to {shown}: {why}{waited}; {fix}"
                )));
            }
        }
    }
}

/// A trial from a row of [`TRIAL_COLUMNS`] (its intermediate values are read apart).
fn decode_row(r: &postgres::Row) -> Result<Trial> {
    StoredTrial {
        number: r.get::<_, i64>(1) as u64,
        arch_key: r.get(2),
        arch: r.get(3),
        fidelity: r.get(4),
        state: TrialState::parse(r.get(5))?,
        values: r.get(6),
        violation: r.get(7),
        cost: r.get(8),
        metrics: r.get(9),
        error: r.get(10),
        worker: r.get(11),
        created_at: r.get(12),
        started_at: r.get(13),
        heartbeat_at: r.get(14),
        finished_at: r.get(15),
    }
    .decode()
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Storage(format!("cannot encode JSON: {e}")))
}

/// A trial to insert, its JSON encoded.
struct NewRow<'a> {
    arch_key: &'a str,
    arch: &'a str,
    fidelity: &'a str,
    state: TrialState,
    worker: &'a str,
}

impl<'a> NewRow<'a> {
    fn of(t: &'a NewTrial, arch: &'a str, fidelity: &'a str) -> Self {
        NewRow {
            arch_key: &t.arch_key,
            arch,
            fidelity,
            state: t.state,
            worker: &t.worker,
        }
    }
}

/// Inserts `t` as the study's next trial; the caller's transaction holds the study's row lock
/// (or takes it here, through the counter).
fn insert_trial(
    tx: &mut impl GenericClient,
    st: &Statements,
    sid: i64,
    t: &NewRow<'_>,
) -> std::result::Result<u64, postgres::Error> {
    let number: i64 = query_one(
        tx,
        st,
        "UPDATE nasforge_studies SET next_number = next_number + 1 WHERE id = $1
             RETURNING next_number - 1",
        &[&sid],
    )?
    .get(0);
    let running = t.state == TrialState::Running;
    execute(
        tx,
        st,
        &format!(
            "INSERT INTO nasforge_trials (study_id, number, arch_key, arch, fidelity, state, worker,
                 created_at, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW},
                 CASE WHEN $8 THEN {NOW} END, CASE WHEN $8 THEN {NOW} END)"
        ),
        &[
            &sid,
            &number,
            &t.arch_key,
            &t.arch,
            &t.fidelity,
            &t.state.as_str(),
            &t.worker,
            &running,
        ],
    )?;
    Ok(number as u64)
}

/// The encoded end of a trial, ready for [`store_end`].
struct EncodedEnd<'a> {
    end: &'a FinishedTrial,
    metrics: String,
    cost: String,
}

impl<'a> EncodedEnd<'a> {
    fn new(end: &'a FinishedTrial) -> Result<Self> {
        Ok(EncodedEnd {
            end,
            metrics: to_json(&end.metrics)?,
            cost: to_json(&end.cost)?,
        })
    }
}

/// Stores the end of trial `number` of study row `sid`; how many rows changed (0: no such
/// trial).
fn store_end(
    tx: &mut impl GenericClient,
    st: &Statements,
    sid: i64,
    number: u64,
    e: &EncodedEnd,
) -> std::result::Result<u64, postgres::Error> {
    execute(
        tx,
        st,
        &format!(
            "UPDATE nasforge_trials SET state = $3, objective_values = $4, violation = $5,
                 cost = $6, metrics = $7, error = $8, finished_at = {NOW}
             WHERE study_id = $1 AND number = $2"
        ),
        &[
            &sid,
            &(number as i64),
            &e.end.state.as_str(),
            &e.end.values,
            &e.end.violation,
            &e.cost,
            &e.metrics,
            &e.end.error,
        ],
    )
}

/// `Ok` if the trial was found, else the error of a missing trial.
fn found_or_missing(found: bool, study: &str, number: u64) -> Result<()> {
    if found {
        Ok(())
    } else {
        Err(Error::Storage(format!(
            "study `{study}` has no trial {number}"
        )))
    }
}

impl Storage for PostgresStorage {
    fn create_study(&mut self, record: &StudyRecord) -> Result<()> {
        let text = to_json(record)?;
        self.run(
            &format!("cannot create study `{}`", record.name),
            |c, st| {
                execute(
                    c,
                    st,
                    "INSERT INTO nasforge_studies (name, record) VALUES ($1, $2)",
                    &[&record.name, &text],
                )
            },
        )?;
        Ok(())
    }

    fn set_config(&mut self, name: &str, config: &serde_json::Value) -> Result<()> {
        let found = self.run("cannot update the study", |c, st| {
            let mut tx = c.transaction()?;
            let Some(row) = query_opt(
                &mut tx,
                st,
                "SELECT record FROM nasforge_studies WHERE name = $1 FOR UPDATE",
                &[&name],
            )?
            else {
                return Ok(None);
            };
            let text: String = row.get(0);
            let Ok(mut record) = parse_record(&text, Some(name)) else {
                return Ok(Some(false));
            };
            record.config = config.clone();
            let Ok(text) = to_json(&record) else {
                return Ok(Some(false));
            };
            execute(
                &mut tx,
                st,
                "UPDATE nasforge_studies SET record = $2 WHERE name = $1",
                &[&name, &text],
            )?;
            tx.commit()?;
            Ok(Some(true))
        })?;
        match found {
            Some(true) => Ok(()),
            Some(false) => Err(Error::Storage(format!("study `{name}`: bad record"))),
            None => Err(Error::Storage(format!(
                "no study named `{name}` in {}",
                self.shown
            ))),
        }
    }

    fn study(&self, name: &str) -> Result<Option<StudyRecord>> {
        let text: Option<String> = self.run("cannot read the study", |c, st| {
            query_opt(
                c,
                st,
                "SELECT record FROM nasforge_studies WHERE name = $1",
                &[&name],
            )
            .map(|r| r.map(|r| r.get(0)))
        })?;
        text.map(|t| parse_record(&t, Some(name))).transpose()
    }

    fn studies(&self) -> Result<Vec<StudyRecord>> {
        let texts: Vec<String> = self.run("cannot list the studies", |c, st| {
            query(
                c,
                st,
                "SELECT record FROM nasforge_studies ORDER BY id",
                &[],
            )
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        })?;
        texts.iter().map(|t| parse_record(t, None)).collect()
    }

    fn create_trial(&mut self, study: &str, t: &NewTrial) -> Result<u64> {
        let sid = self.study_id(study)?;
        let (arch, fidelity) = (to_json(&t.arch)?, to_json(&t.fidelity)?);
        self.run("cannot create a trial", |c, st| {
            let mut tx = c.transaction()?;
            let n = insert_trial(&mut tx, st, sid, &NewRow::of(t, &arch, &fidelity))?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn report(&mut self, study: &str, number: u64, step: u64, value: f64) -> Result<()> {
        let sid = self.study_id(study)?;
        let found = self.run("cannot store an intermediate value", |c, st| {
            // The heartbeat, and the trial's row id for the value, in one statement.
            let mut tx = c.transaction()?;
            let Some(row) = query_opt(
                &mut tx,
                st,
                &format!(
                    "UPDATE nasforge_trials SET heartbeat_at = {NOW}
                     WHERE study_id = $1 AND number = $2 RETURNING id"
                ),
                &[&sid, &(number as i64)],
            )?
            else {
                return Ok(false);
            };
            execute(
                &mut tx,
                st,
                "INSERT INTO nasforge_intermediate (trial_id, step, value) VALUES ($1, $2, $3)
                 ON CONFLICT (trial_id, step) DO UPDATE SET value = EXCLUDED.value",
                &[&row.get::<_, i64>(0), &(step as i64), &value],
            )?;
            tx.commit()?;
            Ok(true)
        })?;
        found_or_missing(found, study, number)
    }

    fn heartbeat(&mut self, study: &str, number: u64) -> Result<()> {
        let sid = self.study_id(study)?;
        let n = self.run("cannot store a heartbeat", |c, st| {
            execute(
                c,
                st,
                &format!(
                    "UPDATE nasforge_trials SET heartbeat_at = {NOW}
                     WHERE study_id = $1 AND number = $2"
                ),
                &[&sid, &(number as i64)],
            )
        })?;
        found_or_missing(n > 0, study, number)
    }

    fn finish_trial(&mut self, study: &str, number: u64, end: &FinishedTrial) -> Result<()> {
        let sid = self.study_id(study)?;
        let e = EncodedEnd::new(end)?;
        let n = self.run("cannot store the trial's end", |c, st| {
            store_end(c, st, sid, number, &e)
        })?;
        found_or_missing(n > 0, study, number)
    }

    fn trial(&self, study: &str, number: u64) -> Result<Trial> {
        self.load(study, number, true)?
            .pop()
            .ok_or_else(|| Error::Storage(format!("study `{study}` has no trial {number}")))
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        self.load(study, 0, false)
    }

    fn create_trial_if(
        &mut self,
        study: &str,
        t: &NewTrial,
        limit: Option<u64>,
    ) -> Result<Created> {
        let sid = self.study_id(study)?;
        let (arch, fidelity) = (to_json(&t.arch)?, to_json(&t.fidelity)?);
        self.run("cannot create a trial", |c, st| {
            let mut tx = c.transaction()?;
            // The study's row lock: one creator at a time, so the checks below hold until
            // the insert commits.
            let next: i64 = query_one(
                &mut tx,
                st,
                "SELECT next_number FROM nasforge_studies WHERE id = $1 FOR UPDATE",
                &[&sid],
            )?
            .get(0);
            let holders = query(
                &mut tx,
                st,
                "SELECT state, error FROM nasforge_trials
                 WHERE study_id = $1 AND arch_key = $2 AND fidelity = $3",
                &[&sid, &t.arch_key, &fidelity],
            )?;
            for h in &holders {
                let state = TrialState::parse(h.get(0)).unwrap_or(TrialState::Failed);
                if counts(state, h.get(1)) {
                    return Ok(Created::Taken);
                }
            }
            if let Some(limit) = limit {
                let uncounted: i64 = query_one(
                    &mut tx,
                    st,
                    "SELECT COUNT(*) FROM nasforge_trials WHERE study_id = $1
                         AND state = 'failed' AND (error LIKE $2 OR error LIKE $3)",
                    &[
                        &sid,
                        &format!("{}%", super::INTERRUPTED),
                        &format!("{}%", super::STALE),
                    ],
                )?
                .get(0);
                if (next - uncounted) as u64 >= limit {
                    return Ok(Created::Full);
                }
            }
            let n = insert_trial(&mut tx, st, sid, &NewRow::of(t, &arch, &fidelity))?;
            tx.commit()?;
            Ok(Created::Number(n))
        })
    }

    fn trials_from(&self, study: &str, from: u64) -> Result<Vec<Trial>> {
        self.load(study, from, false)
    }

    fn reap_stale(&mut self, study: &str, grace: f64, max_retry: u32) -> Result<Vec<u64>> {
        let sid = self.study_id(study)?;
        self.run("cannot fail stale trials", |c, st| {
            let mut tx = c.transaction()?;
            // Trials another worker is reaping (or finishing) right now are skipped.
            let stale = query(
                &mut tx,
                st,
                &format!(
                    "SELECT id, number, arch_key, arch, fidelity, worker,
                            {NOW} - COALESCE(heartbeat_at, created_at)
                     FROM nasforge_trials WHERE study_id = $1 AND state = 'running'
                        AND COALESCE(heartbeat_at, created_at) < {NOW} - $2
                     ORDER BY number FOR UPDATE SKIP LOCKED"
                ),
                &[&sid, &grace],
            )?;
            let mut failed = Vec::new();
            for r in &stale {
                let (id, number, key, arch, fidelity, worker, silent): (
                    i64,
                    i64,
                    String,
                    String,
                    String,
                    String,
                    f64,
                ) = (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                );
                execute(
                    &mut tx,
                    st,
                    &format!(
                        "UPDATE nasforge_trials SET state = 'failed', error = $2,
                             finished_at = {NOW} WHERE id = $1"
                    ),
                    &[&id, &stale_error(&worker, silent)],
                )?;
                failed.push(number as u64);
                let before: i64 = query_one(
                    &mut tx,
                    st,
                    "SELECT COUNT(*) FROM nasforge_trials WHERE study_id = $1
                         AND arch_key = $2 AND fidelity = $3 AND state = 'failed'
                         AND error LIKE $4",
                    &[&sid, &key, &fidelity, &format!("{}%", super::STALE)],
                )?
                .get(0);
                if before as u64 <= u64::from(max_retry) {
                    let again = NewRow {
                        arch_key: &key,
                        arch: &arch,
                        fidelity: &fidelity,
                        state: TrialState::Queued,
                        worker: "",
                    };
                    insert_trial(&mut tx, st, sid, &again)?;
                }
            }
            tx.commit()?;
            Ok(failed)
        })
    }

    fn claim_queued(&mut self, study: &str, worker: &str) -> Result<Option<Trial>> {
        let sid = self.study_id(study)?;
        let number: Option<i64> = self.run("cannot claim a queued trial", |c, st| {
            query_opt(
                c,
                st,
                &format!(
                    "UPDATE nasforge_trials SET state = 'running', worker = $2,
                         started_at = {NOW}, heartbeat_at = {NOW}
                     WHERE id = (SELECT id FROM nasforge_trials
                                 WHERE study_id = $1 AND state = 'queued'
                                 ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING number"
                ),
                &[&sid, &worker],
            )
            .map(|r| r.map(|r| r.get(0)))
        })?;
        number.map(|n| self.trial(study, n as u64)).transpose()
    }

    fn finish_owned(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        end: &FinishedTrial,
    ) -> Result<Told> {
        let sid = self.study_id(study)?;
        let e = EncodedEnd::new(end)?;
        let stored = self.run("cannot store the trial's end", |c, st| {
            let mut tx = c.transaction()?;
            let Some(row) = query_opt(
                &mut tx,
                st,
                "SELECT state, worker, error, arch_key, fidelity FROM nasforge_trials
                 WHERE study_id = $1 AND number = $2 FOR UPDATE",
                &[&sid, &(number as i64)],
            )?
            else {
                return Ok(None);
            };
            let (state, holder, error): (String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if state == TrialState::Running.as_str() && holder == worker {
                store_end(&mut tx, st, sid, number, &e)?;
                tx.commit()?;
                return Ok(Some(true));
            }
            if state == TrialState::Failed.as_str()
                && holder == worker
                && is_stale(error.as_deref())
            {
                let (key, fidelity): (String, String) = (row.get(3), row.get(4));
                // The queued re-run, unless a worker is claiming it right now.
                let rerun = query_opt(
                    &mut tx,
                    st,
                    "SELECT id FROM nasforge_trials WHERE study_id = $1 AND arch_key = $2
                     AND fidelity = $3 AND state = 'queued' AND number > $4
                     ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[&sid, &key, &fidelity, &(number as i64)],
                )?;
                if let Some(rerun) = rerun {
                    execute(
                        &mut tx,
                        st,
                        &format!(
                            "UPDATE nasforge_trials SET state = 'failed', error = $2,
                                 finished_at = {NOW} WHERE id = $1"
                        ),
                        &[&rerun.get::<_, i64>(0), &superseded_error(number)],
                    )?;
                    store_end(&mut tx, st, sid, number, &e)?;
                    tx.commit()?;
                    return Ok(Some(true));
                }
            }
            Ok(Some(false))
        })?;
        match stored {
            Some(true) => return Ok(Told::Stored),
            Some(false) => {}
            None => found_or_missing(false, study, number)?,
        }
        Ok(told_late(&self.trial(study, number)?, worker, end))
    }

    fn reopen(&self) -> Result<Box<dyn Storage>> {
        Ok(Box::new(PostgresStorage::open_with(&self.url, self.retry)?))
    }
}
