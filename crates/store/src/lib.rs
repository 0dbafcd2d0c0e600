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

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
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

const SCHEMA: &str = "
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
mod incidents;
mod tasks;

pub use audit::{AuditKey, AuditRecord, ChainBreak, NewRecord, Verified};
pub use incidents::{CycleAction, CycleMetric, CyclePoint, Incident, IncidentDetail, LinkedAction, TimelineEntry, Transition};
pub use tasks::{NewTask, Task, TaskCounts, TaskOutcome, TaskState};

/// The journal's file name inside the state directory.
pub const JOURNAL_FILE: &str = "journal.db";

/// An open journal.
pub struct Journal {
    conn: Connection,
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

impl Journal {
    /// Opens the journal at `path`, creating it (and its schema) if needed.
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
        let j = Self { conn, audit: None };
        j.init(path)?;
        Ok(j)
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
        Ok(Some(Self { conn, audit: None }))
    }

    fn init(&self, path: &Path) -> Result<()> {
        let c = &self.conn;
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

    /// The target this journal belongs to (the coordination directory it
    /// was first written for), if recorded. Journals of steward 0.1.0 have
    /// none.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn owner(&self) -> Result<Option<String>> {
        let has_meta: bool = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", [], |r| r.get::<_, i64>(0))
            .map_err(sql("reading the journal's owner"))?
            > 0;
        if !has_meta {
            return Ok(None);
        }
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'target'", [], |r| r.get(0))
            .optional()
            .map_err(sql("reading the journal's owner"))
    }

    /// Records the target this journal belongs to, unless one is recorded.
    ///
    /// # Errors
    /// The write failed.
    pub fn claim(&self, target: &str) -> Result<()> {
        self.conn
            .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('target', ?1)", params![target])
            .map_err(sql("recording the journal's owner"))?;
        Ok(())
    }

    /// Records the start of a cycle.
    ///
    /// # Errors
    /// The write failed.
    pub fn record_cycle(&self, c: &CycleStart<'_>) -> Result<()> {
        let m = c.metrics;
        let metrics = serde_json::to_string(m).map_err(|e| JournalError::Corrupt { id: c.id.into(), message: e.to_string() })?;
        self.conn
            .execute(
                "INSERT INTO cycles (id, ts, policy, dry_run, health_score, health_state, work_queue_size, in_flight, completed, failed, active_agents, recommended_agents, warnings, metrics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    c.id,
                    c.ts,
                    c.policy,
                    c.dry_run,
                    m.health_score,
                    m.health_state.as_str(),
                    m.work_queue_size as i64,
                    m.in_flight as i64,
                    m.completed as i64,
                    m.failed as i64,
                    m.active_agents as i64,
                    c.recommended_agents,
                    c.warnings as i64,
                    metrics
                ],
            )
            .map_err(sql("recording a cycle"))?;
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
        self.write_with_audit("recording a decision", ts, records, |c| {
            let mut stmt = c
                .prepare_cached(
                    "INSERT INTO decisions (id, cycle_id, ts, type, priority, confidence, scale_from, scale_to, verdict, guard, guard_reason, notes, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(sql("recording a decision"))?;
            for ((d, v), (body, notes)) in decisions.iter().zip(&rows) {
                let (from, to) = match d.action {
                    Action::Scale { from, to } => (Some(from), Some(to)),
                    _ => (None, None),
                };
                stmt.execute(params![
                    d.id,
                    cycle_id,
                    ts,
                    d.kind.as_str(),
                    d.priority,
                    d.confidence,
                    from,
                    to,
                    v.verdict,
                    v.guard,
                    v.reason,
                    notes,
                    body.to_string()
                ])
                .map_err(sql("recording a decision"))?;
            }
            Ok(())
        })
    }

    /// Records what happened to a decision.
    ///
    /// # Errors
    /// The write failed.
    pub fn record_outcome(&self, decision_id: &str, ts: UnixMs, o: &Outcome) -> Result<()> {
        let duration = i64::try_from(o.duration_ms).unwrap_or(i64::MAX);
        let record = || {
            vec![NewRecord::new(
                "outcome",
                serde_json::json!({"decision_id": decision_id, "result": o.result.as_str(), "reason": o.reason, "duration_ms": o.duration_ms}),
            )]
        };
        self.write_with_audit("recording an outcome", ts, record, |c| {
            c.execute(
                "INSERT OR REPLACE INTO outcomes (decision_id, ts, result, reason, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![decision_id, ts, o.result.as_str(), o.reason, duration],
            )
            .map_err(sql("recording an outcome"))?;
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
        let mut stmt = self
            .conn
            .prepare("SELECT d.id FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.id WHERE o.decision_id IS NULL ORDER BY d.id")
            .map_err(sql("finding interrupted decisions"))?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql("finding interrupted decisions"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(sql("finding interrupted decisions"))?;
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
        self.conn.execute("UPDATE cycles SET finished_ts = ?2 WHERE id = ?1", params![cycle_id, ts]).map_err(sql("finishing a cycle"))?;
        Ok(())
    }

    /// Recent history: the last `max_cycles` cycles and the outcomes of the
    /// last `since_ms` milliseconds (at least the last 50), oldest first.
    /// Dry-run cycles count as recommendations but their outcomes are skips.
    ///
    /// # Errors
    /// A read failed.
    pub fn history(&self, now: UnixMs, max_cycles: usize, since_ms: i64) -> Result<History> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ts, work_queue_size, in_flight, completed, failed, active_agents, recommended_agents
                 FROM cycles WHERE ts <= ?1 ORDER BY ts DESC, id DESC LIMIT ?2",
            )
            .map_err(sql("reading history"))?;
        let mut cycles = stmt
            .query_map(params![now, max_cycles as i64], |r| {
                Ok(CycleSummary {
                    ts: r.get(0)?,
                    work_queue_size: r.get::<_, i64>(1)?.max(0) as u64,
                    in_flight: r.get::<_, i64>(2)?.max(0) as u64,
                    completed: r.get::<_, i64>(3)?.max(0) as u64,
                    failed: r.get::<_, i64>(4)?.max(0) as u64,
                    active_agents: r.get::<_, i64>(5)?.max(0) as u64,
                    recommended_agents: r.get::<_, Option<i64>>(6)?.and_then(|v| u32::try_from(v).ok()),
                })
            })
            .map_err(sql("reading history"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("reading history"))?;
        cycles.reverse();

        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.ts, d.type, o.result, d.scale_from, d.scale_to FROM outcomes o JOIN decisions d ON d.id = o.decision_id
                 WHERE o.ts >= ?1 OR o.rowid IN (SELECT rowid FROM outcomes ORDER BY ts DESC LIMIT ?2)
                 ORDER BY o.ts ASC, d.id ASC",
            )
            .map_err(sql("reading outcomes"))?;
        let actions = stmt
            .query_map(params![now.saturating_sub(since_ms), steward_core::history::MIN_ACTIONS as i64], |r| {
                let result: String = r.get(2)?;
                let from: Option<i64> = r.get(3)?;
                let to: Option<i64> = r.get(4)?;
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, result, from.zip(to)))
            })
            .map_err(sql("reading outcomes"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("reading outcomes"))?
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
        let tx = self.conn.transaction().map_err(sql("recording samples"))?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO samples (ts, component, metric, value) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql("recording samples"))?;
            for s in samples {
                stmt.execute(params![s.ts, s.component, s.metric, s.value]).map_err(sql("recording samples"))?;
            }
        }
        tx.commit().map_err(sql("recording samples"))
    }

    /// Readings since `since`, oldest first, at most `limit` (the newest).
    ///
    /// # Errors
    /// A read failed.
    pub fn samples(&self, since: UnixMs, limit: usize) -> Result<Vec<Sample>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ts, component, metric, value FROM (SELECT rowid, * FROM samples WHERE ts >= ?1 ORDER BY ts DESC, rowid DESC LIMIT ?2) ORDER BY ts ASC, rowid ASC")
            .map_err(sql("reading samples"))?;
        let rows = stmt
            .query_map(params![since, limit as i64], |r| {
                Ok(Sample { ts: r.get(0)?, component: r.get(1)?, metric: r.get(2)?, value: r.get(3)? })
            })
            .map_err(sql("reading samples"))?;
        rows.collect::<Result<_, _>>().map_err(sql("reading samples"))
    }

    /// The most recent decisions with their outcomes, newest first.
    ///
    /// # Errors
    /// A read failed or a stored decision is corrupt.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionEntry>> {
        self.query_entries("ORDER BY d.ts DESC, d.id DESC LIMIT ?1", params![limit as i64])
    }

    /// Decisions made since `since`, newest first, at most `limit`.
    ///
    /// # Errors
    /// A read failed or a stored decision is corrupt.
    pub fn decisions_since(&self, since: UnixMs, limit: usize) -> Result<Vec<DecisionEntry>> {
        self.query_entries("WHERE d.ts >= ?1 ORDER BY d.ts DESC, d.id DESC LIMIT ?2", params![since, limit as i64])
    }

    /// One decision with its outcome.
    ///
    /// # Errors
    /// A read failed or the stored decision is corrupt.
    pub fn decision(&self, id: &str) -> Result<Option<DecisionEntry>> {
        Ok(self.query_entries("WHERE d.id = ?1", params![id])?.into_iter().next())
    }

    fn query_entries(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<DecisionEntry>> {
        let q = format!(
            "SELECT d.id, d.cycle_id, d.ts, d.verdict, d.guard, d.notes, d.body, o.result, o.reason, o.duration_ms, o.ts
             FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.id {tail}"
        );
        let mut stmt = self.conn.prepare(&q).map_err(sql("reading decisions"))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                ))
            })
            .map_err(sql("reading decisions"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("reading decisions"))?;
        rows.into_iter()
            .map(|(id, cycle_id, ts, verdict, guard, notes, body, result, reason, duration, ots)| {
                let corrupt = |message: String| JournalError::Corrupt { id: id.clone(), message };
                let decision: Decision = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                let notes: Vec<String> = serde_json::from_str(&notes).map_err(|e| corrupt(e.to_string()))?;
                let outcome = match (result, ots) {
                    (Some(result), Some(ots)) => Some(OutcomeEntry {
                        result: result.parse().map_err(corrupt)?,
                        reason: reason.unwrap_or_default(),
                        duration_ms: duration.unwrap_or(0).max(0) as u64,
                        timestamp: format_rfc3339(ots),
                    }),
                    _ => None,
                };
                Ok(DecisionEntry { decision, cycle_id, timestamp: format_rfc3339(ts), verdict, guard, notes, outcome })
            })
            .collect()
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
        self.write_with_audit("recording an event", ts, record, |c| {
            c.execute(
                "INSERT INTO events (ts, kind, subject, message, decision_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ts, kind, subject, message, decision_id],
            )
            .map_err(sql("recording an event"))?;
            Ok(())
        })
    }

    /// The most recent events, newest first.
    ///
    /// # Errors
    /// A read failed.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<EventEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT ts, kind, subject, message, decision_id FROM events ORDER BY seq DESC LIMIT ?1")
            .map_err(sql("reading events"))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(EventEntry {
                    timestamp: format_rfc3339(r.get(0)?),
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    message: r.get(3)?,
                    decision_id: r.get(4)?,
                })
            })
            .map_err(sql("reading events"))?;
        rows.collect::<Result<_, _>>().map_err(sql("reading events"))
    }

    /// Retention: removes cycles older than `before` that no decision
    /// refers to, metric samples older than `before`, and tasks that
    /// finished (done or resolved) before it. Decisions, their cycles,
    /// outcomes, events and the audit chain stay. Returns the rows removed.
    ///
    /// # Errors
    /// The write failed.
    pub fn prune_history(&self, before: UnixMs) -> Result<u64> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("pruning the journal"))?;
        let mut n = tx
            .execute(
                "DELETE FROM cycles WHERE ts < ?1 AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = cycles.id)",
                params![before],
            )
            .map_err(sql("pruning old cycles"))?;
        n += tx.execute("DELETE FROM samples WHERE ts < ?1", params![before]).map_err(sql("pruning old samples"))?;
        n += tx
            .execute("DELETE FROM tasks WHERE state IN ('done', 'resolved') AND finished_at < ?1", params![before])
            .map_err(sql("pruning finished tasks"))?;
        tx.commit().map_err(sql("pruning the journal"))?;
        Ok(n as u64)
    }

    /// Runs SQLite's integrity check; `Ok(())` when it says "ok".
    ///
    /// # Errors
    /// The check failed or found problems (listed in the message).
    pub fn integrity_check(&self) -> Result<()> {
        let problems: Vec<String> = {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(sql("checking integrity"))?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql("checking integrity"))?;
            rows.collect::<Result<_, _>>().map_err(sql("checking integrity"))?
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
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM cycles", [], |r| r.get(0)).map_err(sql("counting cycles"))?;
        Ok(n.max(0) as u64)
    }

    /// The newest cycle's id, if any.
    ///
    /// # Errors
    /// A read failed.
    pub fn last_cycle_id(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT id FROM cycles ORDER BY ts DESC, id DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(sql("reading the last cycle"))
    }
}

#[cfg(test)]
mod tests;
