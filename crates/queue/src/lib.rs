//! Real queues for steward: **Redis Streams** (and plain lists, read only)
//! and **PostgreSQL job tables**, with the claim protocol's transitions
//! done the queue's own way, in one place. The source (census), the
//! actuator (requeue) and the built-in worker (claim, complete, fail) all
//! call [`WorkQueue`]; nothing else speaks to the servers.
//!
//! # Redis Streams (`redis://HOST:PORT/DB?stream=S&group=G`)
//! - An item is a stream entry. Its fields: `payload` (JSON text; an
//!   object's fields become the item's), `id` (the item's id; defaults to
//!   the entry id), `attempts` (failures so far; absent = 0) and
//!   `max_attempts` (optional, the item's own limit).
//! - Workers read with `XREADGROUP` in group `G` as consumer `<worker id>`;
//!   a delivered entry is pending (claimed) until acknowledged.
//! - **Completion** is recorded and acknowledged in one `MULTI`/`EXEC`:
//!   `HSETNX S:completed <item id> <unix ms>` and `XACK`. The hash is the
//!   record: a redelivered entry whose item is in it is acknowledged
//!   without running again, so an item is completed exactly once.
//! - **Failure**: `XACK` the original and, if that took it off the pending
//!   list, `XADD S` a copy with `attempts + 1` (or `XADD S:dead` with the
//!   reason once `attempts + 1` reaches the limit), atomically.
//! - **Recovery** (steward's loop): a claim idle for longer than the claim
//!   timeout is taken with `XCLAIM` (named claims) or `XAUTOCLAIM` (every
//!   claim older than an age) by the consumer `steward-requeue`, which
//!   then requeues it as a failure would. If steward dies in between, the
//!   entry stays pending under `steward-requeue` and the next cycle takes
//!   it again: nothing is lost.
//! - A failure, a requeue and a release acknowledge the entry and add its
//!   copy in one script that adds the copy only if its `XACK` took the
//!   entry off the pending list: whoever races (a slow worker's failure,
//!   steward's recovery), one copy is made.
//! - Queue depth is the group's `lag` (entries not yet delivered), in
//!   flight its pending count, consumers `XINFO CONSUMERS`.
//!
//! # Redis lists (`redis://HOST/DB?list=L`)
//! Only the depth (`LLEN`) is read: Sidekiq- and RQ-style queues keep no
//! claim steward could recover.
//!
//! # PostgreSQL (`postgres://USER@HOST/DB?table=T`)
//! A job table (default `steward_jobs`, schema in [`postgres::SCHEMA`]),
//! claimed with `FOR UPDATE SKIP LOCKED`, as River, graphile-worker and
//! Oban do. A completion is one `UPDATE … WHERE claimed_by = me AND state
//! = 'running'`: a worker whose claim was requeued cannot complete it, and
//! the row's state makes a second completion impossible. Recovery resets
//! the claim columns of stale rows in one statement.

#![warn(missing_docs)]

pub mod postgres;
pub mod redis;
pub mod resp;
pub mod url;

use std::time::Duration;

use serde_json::{Map, Value};

pub use url::{QueueUrl, RedisKind, RedisUrl};

/// The consumer name steward's own recovery claims under.
pub const REQUEUE_CONSUMER: &str = "steward-requeue";

/// What a queue call could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The URL is wrong (bad input).
    #[error("bad queue URL {url}: {why}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The server cannot be reached.
    #[error("cannot connect to {target}")]
    Connect {
        /// The server.
        target: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed or timed out mid-call.
    #[error("talking to {target}")]
    Io {
        /// The server.
        target: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something that breaks its protocol.
    #[error("{target} broke the protocol: {why}")]
    Protocol {
        /// The server.
        target: String,
        /// What was wrong.
        why: String,
    },
    /// The server refused a command.
    #[error("{command} failed: {message}")]
    Command {
        /// The command.
        command: String,
        /// The server's message.
        message: String,
    },
    /// A PostgreSQL call failed.
    #[error("{what}: {message}")]
    Postgres {
        /// What was being done.
        what: String,
        /// The error, with its SQLSTATE where there is one.
        message: String,
    },
    /// The operation makes no sense on this queue (e.g. claiming from a list).
    #[error("{0}")]
    Unsupported(String),
}

impl QueueError {
    /// Whether the error is in what the user asked for (exit 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::BadUrl { .. } | Self::Unsupported(_))
    }

    /// Whether the connection is gone (drop it and reconnect).
    pub fn is_connection(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io { .. } | Self::Protocol { .. } => true,
            Self::Postgres { message, .. } => message.contains("connection") || message.contains("closed"),
            _ => false,
        }
    }
}

/// What a queue holds at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Census {
    /// Items waiting, not yet claimed.
    pub depth: u64,
    /// Items claimed and not finished.
    pub in_flight: u64,
    /// Items completed (all time, as the queue records them).
    pub completed: u64,
    /// Items dead-lettered.
    pub failed: u64,
    /// The claims, oldest first, at most the bound asked for.
    pub claims: Vec<PendingClaim>,
    /// The consumers (workers) the queue knows, steward's own excluded.
    pub consumers: Vec<Consumer>,
    /// What could not be read or looks wrong, each a sentence.
    pub warnings: Vec<String>,
}

/// A claimed item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingClaim {
    /// The claim's handle: the entry id (Redis) or the row id (PostgreSQL).
    pub claim: String,
    /// Who holds it.
    pub consumer: Option<String>,
    /// Milliseconds since it was claimed or last refreshed.
    pub idle_ms: i64,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A worker the queue knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Its name (the worker's id).
    pub name: String,
    /// Items it holds.
    pub pending: u64,
    /// Milliseconds since it was last seen.
    pub idle_ms: i64,
}

/// A claimed item, as a worker gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The claim's handle (entry id, row id).
    pub claim: String,
    /// The item's id.
    pub id: String,
    /// The item: its payload's fields, with `id` set.
    pub body: Map<String, Value>,
    /// Failures so far.
    pub attempts: u32,
    /// The item's own attempt limit.
    pub max_attempts: Option<u32>,
    /// Its completion is already recorded (a redelivery): acknowledge, do not run.
    pub completed: bool,
}

/// What became of a failed or requeued item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Back in the queue with one more attempt.
    Requeued,
    /// Moved to the dead letters: it reached its attempt limit.
    DeadLettered,
    /// Its completion was recorded: only the claim was removed.
    AlreadyCompleted,
    /// It was no longer claimed (someone else finished or requeued it).
    Gone,
}

/// Counts of what a recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Put back with one more attempt.
    pub requeued: u64,
    /// Dead-lettered at their limit.
    pub dead_lettered: u64,
    /// Claims of completed items, removed.
    pub leftovers: u64,
    /// Named claims no longer there (or not stale any more).
    pub gone: u64,
}

impl Recovery {
    fn add(&mut self, other: Self) {
        self.requeued += other.requeued;
        self.dead_lettered += other.dead_lettered;
        self.leftovers += other.leftovers;
        self.gone += other.gone;
    }

    fn count(&mut self, f: Fate) {
        match f {
            Fate::Requeued => self.requeued += 1,
            Fate::DeadLettered => self.dead_lettered += 1,
            Fate::AlreadyCompleted => self.leftovers += 1,
            Fate::Gone => self.gone += 1,
        }
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "requeued {}, dead-lettered {}, removed {} leftover claims", self.requeued, self.dead_lettered, self.leftovers)?;
        if self.gone > 0 {
            write!(f, ", {} no longer stale", self.gone)?;
        }
        Ok(())
    }
}

/// A work queue on a server: what the source, the actuator and the worker
/// need of it. Implement it to put steward on another queue.
pub trait WorkQueue: Send {
    /// What it is, without secrets, for messages and the lock.
    fn target(&self) -> String;

    /// Reads depth, claims (at most `max_claims`, oldest first), consumers
    /// and totals. Read only.
    ///
    /// # Errors
    /// The server cannot be read: no census is better than a wrong one.
    fn census(&mut self, max_claims: usize) -> Result<Census, QueueError>;

    /// Requeues (attempts + 1) or dead-letters the named claims if they
    /// are still claimed and idle for at least `min_idle`.
    ///
    /// # Errors
    /// The server failed; what was done before stays done and is journaled by the caller.
    fn requeue(&mut self, claims: &[String], min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError>;

    /// Requeues or dead-letters every claim idle for at least `min_idle`.
    ///
    /// # Errors
    /// As [`WorkQueue::requeue`].
    fn requeue_idle(&mut self, min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError>;

    /// Creates what the worker needs (the group, the table) if missing.
    ///
    /// # Errors
    /// The server refused.
    fn prepare(&mut self) -> Result<(), QueueError>;

    /// Claims up to `max` items for `consumer`, waiting up to `wait` for one.
    ///
    /// # Errors
    /// The server failed.
    fn claim(&mut self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Item>, QueueError>;

    /// Records the items' completions and acknowledges them, in one step.
    /// Returns, per item, whether this call recorded it (`false`: it was
    /// already complete, or no longer this consumer's claim).
    ///
    /// # Errors
    /// The server failed; nothing of the step was applied.
    fn complete(&mut self, consumer: &str, items: &[&Item], results: &[Option<Value>]) -> Result<Vec<bool>, QueueError>;

    /// A failed item: requeued with one more attempt, or dead-lettered at
    /// its limit (the item's own, else `max_attempts`).
    ///
    /// # Errors
    /// The server failed.
    fn fail(&mut self, consumer: &str, item: &Item, reason: &str, max_attempts: u32) -> Result<Fate, QueueError>;

    /// Puts an item back untouched (the worker's handler cannot run).
    ///
    /// # Errors
    /// The server failed.
    fn release(&mut self, consumer: &str, item: &Item) -> Result<(), QueueError>;

    /// Says the consumer is alive and refreshes its claims.
    ///
    /// # Errors
    /// The server failed.
    fn heartbeat(&mut self, consumer: &str, claims: &[String]) -> Result<(), QueueError>;

    /// A consumer's worker died: its claims are requeued at once (or
    /// dead-lettered at their limit), and the consumer is forgotten.
    ///
    /// # Errors
    /// The server failed.
    fn requeue_consumer(&mut self, consumer: &str, max_attempts: u32) -> Result<Recovery, QueueError>;

    /// The consumer leaves (its worker exits); its claims, if any, stay for recovery.
    ///
    /// # Errors
    /// The server failed.
    fn leave(&mut self, consumer: &str) -> Result<(), QueueError>;

    /// Adds items (producers: the demo, tests, benchmarks). Each item's
    /// `id`, when present, is its id.
    ///
    /// # Errors
    /// The server failed.
    fn push(&mut self, items: &[Map<String, Value>]) -> Result<(), QueueError>;
}

/// The queue a URL names. Nothing is connected yet: each call connects
/// when it needs to (and again after a failure), with `timeout` on every
/// connect, read and write, so a server that goes away fails calls
/// instead of hanging them.
pub fn open(url: &QueueUrl, timeout: Duration) -> Box<dyn WorkQueue> {
    match url {
        QueueUrl::Redis(r) => Box::new(redis::RedisQueue::new(r.clone(), timeout)),
        QueueUrl::Postgres(p) => Box::new(postgres::PgQueue::new(p.clone(), timeout)),
    }
}

/// The item's JSON as a worker's handler gets it: the payload's fields
/// (or `{"payload": value}` when it is not an object), with `id` set.
pub fn item_body(id: &str, payload: Option<&str>) -> Map<String, Value> {
    let mut body = match payload.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        Some(Ok(v)) => Map::from_iter([("payload".to_owned(), v)]),
        Some(Err(_)) => Map::from_iter([("payload".to_owned(), Value::String(payload.unwrap_or_default().to_owned()))]),
        None => Map::new(),
    };
    body.insert("id".into(), Value::String(id.to_owned()));
    body
}
