//! The journal: the engine's memory (spec/operations.md).
//!
//! Every cycle, decision, guard verdict and outcome is appended to one
//! SQLite file in the state directory (WAL, synchronous writes). A decision
//! is written before its action starts and its outcome after, so a crash
//! mid-action leaves a decision without an outcome, never an action without
//! a record.
//!
//! **Architecture invariant:** nothing is executed before it is journaled.
//! The driver calls [`Journal::record_decision`] and only then the actuator.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use db::{p, Db};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use steward_core::assess::Metrics;
use steward_core::decision::{Action, Decision, DecisionType, Outcome, OutcomeResult};
use steward_core::history::{ActionRecord, CycleSummary, History, Sample};
use steward_core::time::{format_rfc3339, UnixMs};

/// Journal failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal file could not be opened or created.
    #[error("cannot open the journal {path}")]
    Open {
        /// The journal file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The journal was written by a newer steward.
    #[error("the journal {path} has schema version {found}, newer than this steward understands ({supported}); upgrade steward")]
    TooNew {
        /// The journal file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A statement failed.
    #[error("journal {what} failed")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement on the PostgreSQL journal failed (or its server could
    /// not be reached).
    #[error("journal {what} failed: {message}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// Why (the server's message and SQLSTATE, never the password).
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("journal record {id} is corrupt: {message}")]
    Corrupt {
        /// The record.
        id: String,
        /// What is wrong.
        message: String,
    },
}

type Result<T, E = JournalError> = std::result::Result<T, E>;

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |source| JournalError::Sql { what, source }
}

const SCHEMA_VERSION: i64 = 7;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cycles (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    policy TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    health_score REAL NOT NULL,
    health_state TEXT NOT NULL,
    work_queue_size INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    active_agents INTEGER NOT NULL,
    recommended_agents INTEGER,
    warnings INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    finished_ts INTEGER
);
CREATE INDEX IF NOT EXISTS cycles_ts ON cycles(ts);
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY,
    cycle_id TEXT NOT NULL REFERENCES cycles(id),
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    confidence REAL NOT NULL,
    scale_from INTEGER,
    scale_to INTEGER,
    verdict TEXT NOT NULL,
    guard TEXT,
    guard_reason TEXT,
    notes TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions(ts);
CREATE TABLE IF NOT EXISTS outcomes (
    decision_id TEXT PRIMARY KEY REFERENCES decisions(id),
    ts INTEGER NOT NULL,
    result TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes(ts);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    decision_id TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS samples (
    ts INTEGER NOT NULL,
    component TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    key TEXT NOT NULL,
    partition TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority TEXT NOT NULL,
    rank INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    last_error TEXT,
    owner TEXT,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_open ON tasks(dataset, key) WHERE state IN ('queued', 'running', 'dead');
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(state, rank, created_at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    severity INTEGER NOT NULL,
    summary TEXT NOT NULL,
    phase TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    assessed_at INTEGER,
    contained_at INTEGER,
    eradicated_at INTEGER,
    recovered_at INTEGER,
    closed_at INTEGER,
    acked_at INTEGER,
    acked_by TEXT,
    resolution TEXT,
    assessment TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open ON incidents(rule, target) WHERE phase != 'closed';
CREATE TABLE IF NOT EXISTS incident_timeline (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    ts INTEGER NOT NULL,
    what TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_timeline_id ON incident_timeline(incident_id);
CREATE TABLE IF NOT EXISTS incident_actions (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    decision_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (incident_id, decision_id)
);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    ts INTEGER NOT NULL
);
";

pub mod audit;
mod copy;
mod db;
mod incidents;
mod tasks;

pub use audit::{AuditKey, AuditRecord, ChainBreak, NewRecord, Verified};
pub use incidents::{CycleAction, CycleMetric, CyclePoint, Incident, IncidentDetail, LinkedAction, TimelineEntry, Transition};
pub use tasks::{NewTask, Task, TaskCounts, TaskOutcome, TaskState};

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.db";

/// An open journal.
pub struct Journal {
    db: Db,
    audit: Option<audit::Auditor>,
}

/// A cycle as the journal records it when it starts.
#[derive(Debug, Clone)]
pub struct CycleStart<'a> {
    /// The cycle's id.
    pub id: &'a str,
    /// When the snapshot was taken.
    pub ts: UnixMs,
    /// The policy's name.
    pub policy: &'a str,
    /// Whether this cycle touches nothing.
    pub dry_run: bool,
    /// The cycle's metrics.
    pub metrics: &'a Metrics,
    /// The policy's recommended agent count.
    pub recommended_agents: Option<u32>,
    /// Source warnings this cycle.
    pub warnings: usize,
}

/// A guard verdict as the journal records it.
#[derive(Debug, Clone)]
pub struct VerdictRecord<'a> {
    /// `execute` or `skip`.
    pub verdict: &'a str,
    /// The guard that skipped it.
    pub guard: Option<&'a str>,
    /// Why.
    pub reason: Option<&'a str>,
    /// Adjustments the guards made.
    pub notes: &'a [String],
}

/// A decision with its outcome, as `status` and `/decisions` show it.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionEntry {
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
    /// The cycle it belongs to.
    pub cycle_id: String,
    /// When it was decided (RFC 3339).
    pub timestamp: String,
    /// The guard verdict: `execute` or `skip`.
    pub verdict: String,
    /// The guard that skipped it, if any.
    pub guard: Option<String>,
    /// Adjustments the guards made.
    pub notes: Vec<String>,
    /// What happened; absent while the action runs (or if it was interrupted).
    pub outcome: Option<OutcomeEntry>,
}

/// A component event.
#[derive(Debug, Clone, Serialize)]
pub struct EventEntry {
    /// When (RFC 3339).
    pub timestamp: String,
    /// What kind (`started`, `crashed`, `rollback`, ...).
    pub kind: String,
    /// What it concerns (an agent id, ...).
    pub subject: String,
    /// A sentence.
    pub message: String,
    /// The decision that caused it, if any.
    pub decision_id: Option<String>,
}

/// An outcome with its time.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeEntry {
    /// Executed, failed or skipped.
    pub result: OutcomeResult,
    /// Why, or what it did.
    pub reason: String,
    /// How long the action took.
    pub duration_ms: u64,
    /// When it was recorded (RFC 3339).
    pub timestamp: String,
}

/// Where a journal lives: a SQLite file (the default,
/// `<state_dir>/journal.db`) or a PostgreSQL database that replicas share
/// (`state.journal: postgres://USER@HOST/DB?schema=NAME`).
#[derive(Clone, PartialEq, Eq)]
pub enum JournalAt {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database, in its own schema.
    Postgres {
        /// The connection (its password kept apart).
        url: steward_queue::url::PostgresUrl,
        /// The schema holding the journal's tables (`?schema=`, default `steward`).
        schema: String,
    },
}

impl std::fmt::Debug for JournalAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JournalAt({self})")
    }
}

impl std::fmt::Display for JournalAt {
    /// The file's path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Postgres { url, schema } => write!(f, "{} (schema {schema})", url.redacted()),
        }
    }
}

impl JournalAt {
    /// Whether `s` names a PostgreSQL journal rather than a file.
    pub fn is_postgres_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    /// A journal location from configuration: a `postgres://` URL (with
    /// `?schema=NAME`, default `steward`), or a file path.
    ///
    /// # Errors
    /// A bad URL or schema name (the message never holds the password).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if !Self::is_postgres_url(s) {
            if s.trim().is_empty() {
                return Err("the journal's path is empty".into());
            }
            return Ok(Self::File(PathBuf::from(s)));
        }
        let (rest, schema) = Self::split_schema(s);
        let schema = schema.unwrap_or_else(|| "steward".to_owned());
        if !steward_queue::url::valid_table(&schema) || schema.contains('.') {
            return Err(format!("schema={schema:?} must be a plain SQL name (letters, digits, _)"));
        }
        match steward_queue::QueueUrl::parse(&rest) {
            Ok(steward_queue::QueueUrl::Postgres(url)) => Ok(Self::Postgres { url, schema }),
            Ok(_) => Err("not a postgres:// URL".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A `postgres://` URL without its `schema=` parameter (the connection
    /// alone, as the HA lease takes it), and that parameter.
    pub fn split_schema(url: &str) -> (String, Option<String>) {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", v)) => schema = Some(v.to_owned()),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        (rest, schema)
    }

    /// The file, for a SQLite journal.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
            Self::Postgres { .. } => None,
        }
    }
}

impl Journal {
    /// Opens the SQLite journal at `path`, creating it (and its schema) if needed.
    ///
    /// # Errors
    /// The file cannot be opened or created, or was written by a newer steward.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|source| JournalError::Open { path: path.to_owned(), source })?;
        // Owner only: it holds decisions, the audit trail and incidents. Set
        // before WAL is enabled, so the -wal and -shm files SQLite creates
        // take the same mode.
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
        let j = Self { db: Db::Lite(conn), audit: None };
        j.init_lite(path)?;
        Ok(j)
    }

    /// Opens the journal wherever it lives, creating its schema if needed.
    ///
    /// # Errors
    /// As [`Journal::open`]; for PostgreSQL, the server cannot be reached
    /// or refuses.
    pub fn open_at(at: &JournalAt) -> Result<Self> {
        match at {
            JournalAt::File(p) => Self::open(p),
            JournalAt::Postgres { url, schema } => {
                let j = Self { db: Db::Pg(Box::new(std::cell::RefCell::new(db::Pg::new(url.clone(), schema.clone())))), audit: None };
                j.init_pg(at)?;
                Ok(j)
            }
        }
    }

    /// [`Journal::open_existing`] wherever the journal lives. A PostgreSQL
    /// journal whose schema was never created is `None`.
    ///
    /// # Errors
    /// As [`Journal::open_at`].
    pub fn open_existing_at(at: &JournalAt) -> Result<Option<Self>> {
        match at {
            JournalAt::File(p) => Self::open_existing(p),
            JournalAt::Postgres { url, schema } => {
                let j = Self { db: Db::Pg(Box::new(std::cell::RefCell::new(db::Pg::new(url.clone(), schema.clone())))), audit: None };
                match j.pg_version()? {
                    None => Ok(None),
                    Some(v) if v > SCHEMA_VERSION => {
                        Err(JournalError::TooNew { path: PathBuf::from(at.to_string()), found: v, supported: SCHEMA_VERSION })
                    }
                    Some(_) => Ok(Some(j)),
                }
            }
        }
    }

    /// Opens an existing journal for reading; `None` when there is none yet.
    /// Used by commands that only look (`analyze`, `status`), so they never
    /// create state.
    ///
    /// # Errors
    /// The file exists but cannot be opened or read.
    pub fn open_existing(path: &Path) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|source| JournalError::Open { path: path.to_owned(), source })?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql("setting the busy timeout"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| JournalError::Open { path: path.to_owned(), source })?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::TooNew { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
        }
        if version == 0 {
            // Created but never initialised (a crash at the first open): nothing to read.
            return Ok(None);
        }
        Ok(Some(Self { db: Db::Lite(conn), audit: None }))
    }

    fn init_lite(&self, path: &Path) -> Result<()> {
        let Some(c) = self.db.lite_conn() else { return Ok(()) };
        c.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql("setting the busy timeout"))?;
        c.pragma_update(None, "journal_mode", "WAL").map_err(sql("enabling WAL"))?;
        // FULL: a decision is on disk before its action starts.
        c.pragma_update(None, "synchronous", "FULL").map_err(sql("setting synchronous"))?;
        c.pragma_update(None, "foreign_keys", "ON").map_err(sql("enabling foreign keys"))?;
        let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql("reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::TooNew { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
        }
        if version < SCHEMA_VERSION {
            c.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                .map_err(sql("creating the schema"))?;
        }
        Ok(())
    }

    /// The PostgreSQL journal's schema version; `None` before its tables exist.
    fn pg_version(&self) -> Result<Option<i64>> {
        let exists: bool =
            self.db.one("reading the schema version", "SELECT to_regclass('journal_version') IS NOT NULL", &[], |r| r.get(0))?;
        if !exists {
            return Ok(None);
        }
        self.db.opt("reading the schema version", "SELECT version FROM journal_version", &[], |r| r.get(0))
    }

    fn init_pg(&self, at: &JournalAt) -> Result<()> {
        // Replicas starting together create the schema once: the first
        // takes the writers' lock, the others find it made.
        self.db.tx("creating the schema", |db| {
            db.ensure_schema("creating the schema")?;
            db.batch("creating the schema", "CREATE TABLE IF NOT EXISTS journal_version (version BIGINT NOT NULL)")?;
            let version: Option<i64> = db.opt("reading the schema version", "SELECT version FROM journal_version", &[], |r| r.get(0))?;
            let version = version.unwrap_or(0);
            if version > SCHEMA_VERSION {
                return Err(JournalError::TooNew { path: PathBuf::from(at.to_string()), found: version, supported: SCHEMA_VERSION });
            }
            if version < SCHEMA_VERSION {
                db.batch("creating the schema", &db::pg_schema(SCHEMA))?;
                db.exec("recording the schema version", "DELETE FROM journal_version", &[])?;
                db.exec("recording the schema version", "INSERT INTO journal_version (version) VALUES (?1)", p![SCHEMA_VERSION])?;
            }
            Ok(())
        })
    }

    /// Whether this journal is on PostgreSQL (shared by replicas).
    pub fn is_shared(&self) -> bool {
        self.db.is_pg()
    }

    /// The target this journal belongs to (the coordination directory it
    /// was first written for), if recorded. Journals of steward 0.1.0 have
    /// none.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn owner(&self) -> Result<Option<String>> {
        if !self.has_table("meta")? {
            return Ok(None);
        }
        self.db.opt("reading the journal's owner", "SELECT value FROM meta WHERE key = 'target'", &[], |r| r.get(0))
    }

    /// Whether the journal has table `name`: an SQLite journal of an older
    /// schema, opened read-only, may lack the newer tables; a PostgreSQL
    /// journal is created whole.
    pub(crate) fn has_table(&self, name: &str) -> Result<bool> {
        if self.db.is_pg() {
            return Ok(true);
        }
        let n: i64 =
            self.db.one("reading the schema", "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", p![name], |r| {
                r.get(0)
            })?;
        Ok(n > 0)
    }

    /// Records the target this journal belongs to, unless one is recorded.
    ///
    /// # Errors
    /// The write failed.
    pub fn claim(&self, target: &str) -> Result<()> {
        self.db.exec(
            "recording the journal's owner",
            "INSERT INTO meta (key, value) VALUES ('target', ?1) ON CONFLICT DO NOTHING",
            p![target],
        )?;
        Ok(())
    }

    /// Records the start of a cycle.
    ///
    /// # Errors
    /// The write failed.
    pub fn record_cycle(&self, c: &CycleStart<'_>) -> Result<()> {
        let m = c.metrics;
        let metrics = serde_json::to_string(m).map_err(|e| JournalError::Corrupt { id: c.id.into(), message: e.to_string() })?;
        self.db.exec(
            "recording a cycle",
            "INSERT INTO cycles (id, ts, policy, dry_run, health_score, health_state, work_queue_size, in_flight, completed, failed, active_agents, recommended_agents, warnings, metrics)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            p![
                c.id,
                c.ts,
                c.policy,
                c.dry_run,
                m.health_score,
                m.health_state.as_str(),
                m.work_queue_size,
                m.in_flight,
                m.completed,
                m.failed,
                m.active_agents,
                c.recommended_agents,
                c.warnings,
                metrics
            ],
        )?;
        Ok(())
    }

    /// Records a decision and its guard verdict. Call before acting.
    ///
    /// # Errors
    /// The write failed: the caller must not act.
    pub fn record_decision(&self, cycle_id: &str, ts: UnixMs, d: &Decision, v: &VerdictRecord<'_>) -> Result<()> {
        self.record_decisions(cycle_id, ts, &[(d, v.clone())])
    }

    /// Records a cycle's decisions with their verdicts in one transaction
    /// (one sync, and their audit records with them). Call before acting on
    /// any of them.
    ///
    /// # Errors
    /// The write failed: the caller must not act.
    pub fn record_decisions(&self, cycle_id: &str, ts: UnixMs, decisions: &[(&Decision, VerdictRecord<'_>)]) -> Result<()> {
        if decisions.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(decisions.len());
        for (d, v) in decisions {
            let corrupt = |e: serde_json::Error| JournalError::Corrupt { id: d.id.clone(), message: e.to_string() };
            let body = serde_json::to_value(d).map_err(corrupt)?;
            let notes = serde_json::to_string(v.notes).map_err(corrupt)?;
            rows.push((body, notes));
        }
        let records = || {
            decisions
                .iter()
                .zip(&rows)
                .map(|((d, v), (body, _))| {
                    NewRecord::new(
                        "decision",
                        serde_json::json!({
                            "id": d.id, "cycle_id": cycle_id, "decision": body,
                            "verdict": v.verdict, "guard": v.guard, "reason": v.reason, "notes": v.notes,
                        }),
                    )
                })
                .collect()
        };
        self.write_with_audit("recording a decision", ts, records, |db| {
            for ((d, v), (body, notes)) in decisions.iter().zip(&rows) {
                let (from, to) = match d.action {
                    Action::Scale { from, to } => (Some(from), Some(to)),
                    _ => (None, None),
                };
                db.exec(
                    "recording a decision",
                    "INSERT INTO decisions (id, cycle_id, ts, type, priority, confidence, scale_from, scale_to, verdict, guard, guard_reason, notes, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    p![d.id, cycle_id, ts, d.kind.as_str(), d.priority, d.confidence, from, to, v.verdict, v.guard, v.reason, notes, body.to_string()],
                )?;
            }
            Ok(())
        })
    }

    /// Records what happened to a decision.
    ///
    /// # Errors
    /// The write failed.
    pub fn record_outcome(&self, decision_id: &str, ts: UnixMs, o: &Outcome) -> Result<()> {
        let record = || {
            vec![NewRecord::new(
                "outcome",
                serde_json::json!({"decision_id": decision_id, "result": o.result.as_str(), "reason": o.reason, "duration_ms": o.duration_ms}),
            )]
        };
        self.write_with_audit("recording an outcome", ts, record, |db| {
            db.exec(
                "recording an outcome",
                "INSERT INTO outcomes (decision_id, ts, result, reason, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (decision_id) DO UPDATE SET ts = excluded.ts, result = excluded.result, reason = excluded.reason, duration_ms = excluded.duration_ms",
                p![decision_id, ts, o.result.as_str(), o.reason, o.duration_ms],
            )?;
            Ok(())
        })
    }

    /// Gives every decision still without an outcome the outcome
    /// `interrupted`: its cycle was stopped mid-action (steward killed).
    /// Call it only while no other cycle can be running (under the target
    /// lock, before the next cycle records anything). Returns the ids.
    ///
    /// # Errors
    /// The journal cannot be read or written.
    pub fn mark_interrupted(&self, ts: UnixMs) -> Result<Vec<String>> {
        let ids: Vec<String> = self.db.all(
            "finding interrupted decisions",
            "SELECT d.id FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.id WHERE o.decision_id IS NULL ORDER BY d.id",
            &[],
            |r| r.get(0),
        )?;
        let reason =
            "its cycle stopped before the outcome was recorded (steward was stopped mid-action); check whether the action took effect";
        for id in &ids {
            self.record_outcome(id, ts, &Outcome { result: OutcomeResult::Interrupted, reason: reason.into(), duration_ms: 0 })?;
        }
        Ok(ids)
    }

    /// Marks a cycle finished.
    ///
    /// # Errors
    /// The write failed.
    pub fn finish_cycle(&self, cycle_id: &str, ts: UnixMs) -> Result<()> {
        self.db.exec("finishing a cycle", "UPDATE cycles SET finished_ts = ?2 WHERE id = ?1", p![cycle_id, ts])?;
        Ok(())
    }

    /// Recent history: the last `max_cycles` cycles and the outcomes of the
    /// last `since_ms` milliseconds (at least the last 50), oldest first.
    /// Dry-run cycles count as recommendations but their outcomes are skips.
    ///
    /// # Errors
    /// A read failed.
    pub fn history(&self, now: UnixMs, max_cycles: usize, since_ms: i64) -> Result<History> {
        let nonneg = |v: i64| v.max(0) as u64;
        let mut cycles = self.db.all(
            "reading history",
            "SELECT ts, work_queue_size, in_flight, completed, failed, active_agents, recommended_agents
             FROM cycles WHERE ts <= ?1 ORDER BY ts DESC, id DESC LIMIT ?2",
            p![now, max_cycles],
            |r| {
                Ok(CycleSummary {
                    ts: r.get(0)?,
                    work_queue_size: nonneg(r.get(1)?),
                    in_flight: nonneg(r.get(2)?),
                    completed: nonneg(r.get(3)?),
                    failed: nonneg(r.get(4)?),
                    active_agents: nonneg(r.get(5)?),
                    recommended_agents: r.get::<Option<i64>>(6)?.and_then(|v| u32::try_from(v).ok()),
                })
            },
        )?;
        cycles.reverse();

        let actions = self
            .db
            .all(
                "reading outcomes",
                "SELECT o.ts, d.type, o.result, d.scale_from, d.scale_to FROM outcomes o JOIN decisions d ON d.id = o.decision_id
                 WHERE o.ts >= ?1 OR o.decision_id IN (SELECT decision_id FROM outcomes ORDER BY ts DESC LIMIT ?2)
                 ORDER BY o.ts ASC, d.id ASC",
                p![now.saturating_sub(since_ms), steward_core::history::MIN_ACTIONS],
                |r| {
                    let from: Option<i64> = r.get(3)?;
                    let to: Option<i64> = r.get(4)?;
                    Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<String>(2)?, from.zip(to)))
                },
            )?
            .into_iter()
            .filter_map(|(ts, kind, result, scale)| {
                Some(ActionRecord {
                    ts,
                    kind: DecisionType::from(kind),
                    result: result.parse().ok()?,
                    scale: scale.and_then(|(f, t)| Some((u32::try_from(f).ok()?, u32::try_from(t).ok()?))),
                })
            })
            .collect();
        Ok(History { cycles, actions, samples: Vec::new() })
    }

    /// Records components' metric readings (one transaction).
    ///
    /// # Errors
    /// The write failed.
    pub fn record_samples(&mut self, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.db.tx("recording samples", |db| {
            for s in samples {
                db.exec(
                    "recording samples",
                    "INSERT INTO samples (ts, component, metric, value) VALUES (?1, ?2, ?3, ?4)",
                    p![s.ts, s.component, s.metric, s.value],
                )?;
            }
            Ok(())
        })
    }

    /// Readings since `since`, oldest first, at most `limit` (the newest).
    ///
    /// # Errors
    /// A read failed.
    pub fn samples(&self, since: UnixMs, limit: usize) -> Result<Vec<Sample>> {
        self.db.all(
            "reading samples",
            "SELECT ts, component, metric, value FROM (SELECT ts, component, metric, value, rowid FROM samples WHERE ts >= ?1 ORDER BY ts DESC, rowid DESC LIMIT ?2) AS s ORDER BY ts ASC, rowid ASC",
            p![since, limit],
            |r| Ok(Sample { ts: r.get(0)?, component: r.get(1)?, metric: r.get(2)?, value: r.get(3)? }),
        )
    }

    /// The most recent decisions with their outcomes, newest first.
    ///
    /// # Errors
    /// A read failed or a stored decision is corrupt.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionEntry>> {
        self.query_entries("ORDER BY d.ts DESC, d.id DESC LIMIT ?1", p![limit])
    }

    /// Decisions made since `since`, newest first, at most `limit`.
    ///
    /// # Errors
    /// A read failed or a stored decision is corrupt.
    pub fn decisions_since(&self, since: UnixMs, limit: usize) -> Result<Vec<DecisionEntry>> {
        self.query_entries("WHERE d.ts >= ?1 ORDER BY d.ts DESC, d.id DESC LIMIT ?2", p![since, limit])
    }

    /// One decision with its outcome.
    ///
    /// # Errors
    /// A read failed or the stored decision is corrupt.
    pub fn decision(&self, id: &str) -> Result<Option<DecisionEntry>> {
        Ok(self.query_entries("WHERE d.id = ?1", p![id])?.into_iter().next())
    }

    fn query_entries(&self, tail: &str, args: &[db::P<'_>]) -> Result<Vec<DecisionEntry>> {
        let q = format!(
            "SELECT d.id, d.cycle_id, d.ts, d.verdict, d.guard, d.notes, d.body, o.result, o.reason, o.duration_ms, o.ts
             FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.id {tail}"
        );
        self.db.all("reading decisions", &q, args, |r| {
            let id: String = r.get(0)?;
            let corrupt = |message: String| JournalError::Corrupt { id: id.clone(), message };
            let body: String = r.get(6)?;
            let notes: String = r.get(5)?;
            let decision: Decision = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
            let notes: Vec<String> = serde_json::from_str(&notes).map_err(|e| corrupt(e.to_string()))?;
            let outcome = match (r.get::<Option<String>>(7)?, r.get::<Option<i64>>(10)?) {
                (Some(result), Some(ots)) => Some(OutcomeEntry {
                    result: result.parse().map_err(corrupt)?,
                    reason: r.get::<Option<String>>(8)?.unwrap_or_default(),
                    duration_ms: r.get::<Option<i64>>(9)?.unwrap_or(0).max(0) as u64,
                    timestamp: format_rfc3339(ots),
                }),
                _ => None,
            };
            Ok(DecisionEntry {
                decision,
                cycle_id: r.get(1)?,
                timestamp: format_rfc3339(r.get(2)?),
                verdict: r.get(3)?,
                guard: r.get(4)?,
                notes,
                outcome,
            })
        })
    }

    /// Records a component event (a worker started, crashed, was adopted;
    /// a rollback; ...), optionally linked to the decision that caused it.
    ///
    /// # Errors
    /// The write failed.
    pub fn record_event(&self, ts: UnixMs, kind: &str, subject: &str, message: &str, decision_id: Option<&str>) -> Result<()> {
        // An event a decision caused is an action; a rollback is its own kind.
        let audit_kind = match (kind, decision_id) {
            ("rollback", _) => "rollback",
            (_, Some(_)) => "action",
            _ => "event",
        };
        let record = || {
            vec![NewRecord::new(
                audit_kind,
                serde_json::json!({"event": kind, "subject": subject, "message": message, "decision_id": decision_id}),
            )]
        };
        self.write_with_audit("recording an event", ts, record, |db| {
            db.exec(
                "recording an event",
                "INSERT INTO events (ts, kind, subject, message, decision_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                p![ts, kind, subject, message, decision_id],
            )?;
            Ok(())
        })
    }

    /// The most recent events, newest first.
    ///
    /// # Errors
    /// A read failed.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<EventEntry>> {
        self.db.all(
            "reading events",
            "SELECT ts, kind, subject, message, decision_id FROM events ORDER BY seq DESC LIMIT ?1",
            p![limit],
            |r| {
                Ok(EventEntry {
                    timestamp: format_rfc3339(r.get(0)?),
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    message: r.get(3)?,
                    decision_id: r.get(4)?,
                })
            },
        )
    }

    /// Retention: removes cycles older than `before` that no decision
    /// refers to, metric samples older than `before`, and tasks that
    /// finished (done or resolved) before it. Decisions, their cycles,
    /// outcomes, events and the audit chain stay. Returns the rows removed.
    ///
    /// # Errors
    /// The write failed.
    pub fn prune_history(&self, before: UnixMs) -> Result<u64> {
        self.db.tx("pruning the journal", |db| {
            let mut n = db.exec(
                "pruning old cycles",
                "DELETE FROM cycles WHERE ts < ?1 AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = cycles.id)",
                p![before],
            )?;
            n += db.exec("pruning old samples", "DELETE FROM samples WHERE ts < ?1", p![before])?;
            n += db.exec(
                "pruning finished tasks",
                "DELETE FROM tasks WHERE state IN ('done', 'resolved') AND finished_at < ?1",
                p![before],
            )?;
            Ok(n)
        })
    }

    /// Checks the database: SQLite's integrity check on a file; on
    /// PostgreSQL (which keeps its own pages' checksums) that every table
    /// of the journal is there and readable. `Ok(())` when all is well.
    ///
    /// # Errors
    /// The check failed or found problems (listed in the message).
    pub fn integrity_check(&self) -> Result<()> {
        let problems: Vec<String> = if self.db.is_pg() {
            let mut missing = Vec::new();
            for t in TABLES {
                let q = format!("SELECT count(*) FROM {t}");
                if let Err(e) = self.db.one("checking integrity", &q, &[], |r| r.get::<i64>(0)) {
                    missing.push(format!("{t}: {e}"));
                }
            }
            if missing.is_empty() {
                vec!["ok".into()]
            } else {
                missing
            }
        } else {
            self.db.all("checking integrity", "PRAGMA integrity_check", &[], |r| r.get(0))?
        };
        if problems == ["ok"] {
            Ok(())
        } else {
            Err(JournalError::Corrupt { id: "journal".into(), message: problems.join("; ") })
        }
    }

    /// Number of cycles recorded.
    ///
    /// # Errors
    /// A read failed.
    pub fn cycle_count(&self) -> Result<u64> {
        let n: i64 = self.db.one("counting cycles", "SELECT COUNT(*) FROM cycles", &[], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// The newest cycle's id, if any.
    ///
    /// # Errors
    /// A read failed.
    pub fn last_cycle_id(&self) -> Result<Option<String>> {
        self.db.opt("reading the last cycle", "SELECT id FROM cycles ORDER BY ts DESC, id DESC LIMIT 1", &[], |r| r.get(0))
    }
}

/// The journal's tables, in an order that keeps references valid when
/// copied one after another.
pub const TABLES: [&str; 12] = [
    "meta",
    "cycles",
    "decisions",
    "outcomes",
    "events",
    "samples",
    "tasks",
    "audit",
    "audit_checkpoint",
    "incidents",
    "incident_timeline",
    "incident_actions",
];

#[cfg(test)]
mod tests;
