//! A real queue as a source: a Redis stream (or list) or a PostgreSQL job
//! table, read through [`steward_queue::WorkQueue::census`]. It fills the
//! snapshot's fields as the coordination directory does, so the same
//! numbers give the same decisions:
//!
//! | snapshot | Redis stream | PostgreSQL |
//! | --- | --- | --- |
//! | `work_queue_size` | the group's lag | rows `queued` |
//! | `claims` | `XPENDING` (idle time = claim age) | rows `running` (since `heartbeat_at`) |
//! | `agents` | `XINFO CONSUMERS` (idle time = last seen) | `<table>_workers` |
//! | `completed` | `HLEN <stream>:completed` | rows `done` |
//! | `failed` | `XLEN <stream>:dead` | rows `dead` |
//!
//! A consumer that holds nothing and has been silent longer than the
//! agent TTL is a name the queue remembers, not an agent: it is left out.
//! A queue that cannot be read fails the snapshot (no decision is made on
//! data that is not there); the connection is made again next cycle.

use std::sync::Mutex;
use std::time::Duration;

use steward_core::snapshot::{AgentRecord, ClaimRecord, LivenessSource, Snapshot, SourceWarning};
use steward_core::time::UnixMs;
use steward_queue::{QueueUrl, WorkQueue};

use crate::source::{Source, SourceError};

/// Consumers named by steward's supervisor start with this: the fleet owns them.
pub const SUPERVISED_PREFIX: &str = "agent_sw";

/// A queue on a server, as a source.
pub struct QueueSource {
    queue: Mutex<Box<dyn WorkQueue>>,
    target: String,
    max_claims: usize,
    agent_ttl: Duration,
}

impl QueueSource {
    /// A source on the queue a URL names; nothing is connected yet.
    pub fn new(url: &QueueUrl, timeout: Duration) -> Self {
        Self::from_queue(steward_queue::open(url, timeout))
    }

    /// A source on any [`WorkQueue`].
    pub fn from_queue(queue: Box<dyn WorkQueue>) -> Self {
        Self { target: queue.target(), queue: Mutex::new(queue), max_claims: 10_000, agent_ttl: Duration::from_secs(60) }
    }

    /// Claims examined per snapshot (oldest first; default 10,000).
    #[must_use]
    pub fn with_max_claims(mut self, n: usize) -> Self {
        self.max_claims = n.max(1);
        self
    }

    /// The agent TTL of the config: silent consumers holding nothing are left out after it.
    #[must_use]
    pub fn with_agent_ttl(mut self, ttl: Duration) -> Self {
        self.agent_ttl = ttl;
        self
    }
}

impl Source for QueueSource {
    fn target(&self) -> String {
        self.target.clone()
    }

    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError> {
        let census = {
            let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            q.census(self.max_claims).map_err(|e| SourceError::Other(Box::new(e)))?
        };
        let ttl = i64::try_from(self.agent_ttl.as_millis()).unwrap_or(i64::MAX);
        let agents: Vec<AgentRecord> = census
            .consumers
            .iter()
            .filter(|c| c.pending > 0 || ttl == 0 || c.idle_ms < ttl)
            .map(|c| AgentRecord {
                id: c.name.clone(),
                file: c.name.clone(),
                status: if c.pending > 0 { "busy" } else { "idle" }.into(),
                last_seen: Some(now.saturating_sub(c.idle_ms.max(0))),
                liveness_from: LivenessSource::Heartbeat,
                capacity: 1,
                managed_by_steward: c.name.starts_with(SUPERVISED_PREFIX),
                ..AgentRecord::default()
            })
            .collect();
        let claims = census
            .claims
            .iter()
            .map(|p| ClaimRecord {
                id: p.claim.clone(),
                claimed_by: p.consumer.clone(),
                claimed_at: Some(now.saturating_sub(p.idle_ms.max(0))),
                attempts: p.attempts,
                max_attempts: None,
                completed_exists: false,
            })
            .collect();
        Ok(Snapshot {
            taken_at: now,
            target_exists: true,
            agent_files: agents.len() as u64,
            work_queue_size: census.depth,
            completed: census.completed,
            failed: census.failed,
            agents,
            claims,
            warnings: census.warnings.into_iter().map(|reason| SourceWarning { file: self.target.clone(), reason }).collect(),
            ..Snapshot::default()
        })
    }
}
