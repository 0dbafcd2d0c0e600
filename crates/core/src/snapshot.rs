//! The snapshot: one point-in-time view of the world, as sources saw it.
//!
//! A snapshot holds raw observations (counts, agent records, claims) and
//! never interpretations: whether an agent is alive or a claim is stale is
//! decided by [`crate::assess`] from the snapshot, the config and `now`, so
//! the same snapshot can be replayed under another config.

use serde::{Deserialize, Serialize};

use crate::time::UnixMs;

/// One point-in-time view of a coordination target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// When the source finished reading, in Unix milliseconds.
    pub taken_at: UnixMs,
    /// Whether the coordination directory (or other target) exists at all.
    /// A missing target scores as an empty system and says so in a warning.
    pub target_exists: bool,
    /// Number of agent files (`agent_*.json`), readable or not: what
    /// tools that count names report, and `agent_ttl = 0` reproduces.
    pub agent_files: u64,
    /// Number of pending work items (`work_*.json`).
    pub work_queue_size: u64,
    /// Number of completed records (`completed_*.json`).
    pub completed: u64,
    /// Number of dead-lettered items (`failed_*.json`).
    pub failed: u64,
    /// Number of telemetry records (files plus ingested spans).
    pub telemetry_volume: u64,
    /// Every agent record the source found, alive or not.
    pub agents: Vec<AgentRecord>,
    /// Every claimed work item (`claimed_*.json`).
    pub claims: Vec<ClaimRecord>,
    /// Means over the recent telemetry records, where any carried the metric.
    pub telemetry: TelemetrySummary,
    /// Files or inputs the source could not use, each with its reason.
    pub warnings: Vec<SourceWarning>,
    /// Temp files of writers (`.steward-tmp-*`), with when they were last
    /// written: one that has not changed for long belongs to a writer that died.
    pub temp_files: Vec<TempFile>,
}

/// A temp file a writer left in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TempFile {
    /// Its name inside the target.
    pub name: String,
    /// When it was last written.
    pub modified: UnixMs,
}

/// An agent as its record describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRecord {
    /// The agent's id (the record's `id`, else the file name's suffix).
    pub id: String,
    /// The name of the file the record came from.
    pub file: String,
    /// The reported status (`active`, `busy`, `idle`, `draining`, `failed`, `stopped`, ...).
    pub status: String,
    /// The last sign of life: `heartbeat`/`last_heartbeat`, else the file's mtime.
    pub last_seen: Option<UnixMs>,
    /// Where `last_seen` came from.
    pub liveness_from: LivenessSource,
    /// The reported lifecycle phase, if any.
    pub lifecycle: Option<String>,
    /// The process id, if the agent reports one.
    pub pid: Option<u32>,
    /// Items the agent processes in parallel (default 1).
    pub capacity: u32,
    /// When the agent began (`started_at` or `created`), for display only.
    pub started_at: Option<UnixMs>,
    /// Numeric readings the agent reports in its `metrics` object
    /// (e.g. `memory_percent`), kept in the journal for failure prediction.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The record was written by steward (its built-in worker, or its
    /// supervisor for a worker): steward may tidy it away once it is stale.
    pub managed_by_steward: bool,
}

/// Where an agent's last sign of life was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessSource {
    /// The record's `heartbeat` (or `last_heartbeat`) field.
    Heartbeat,
    /// The file's modification time.
    #[default]
    Mtime,
}

/// A work item that an agent has claimed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaimRecord {
    /// The work item's id, from the file name (`claimed_<id>.json`).
    pub id: String,
    /// The agent that claimed it, if the record says.
    pub claimed_by: Option<String>,
    /// When it was claimed: `claimed_at`, else the file's mtime.
    pub claimed_at: Option<UnixMs>,
    /// Attempts made so far (default 0).
    pub attempts: u32,
    /// The item's own attempt limit, if it sets one.
    pub max_attempts: Option<u32>,
    /// A `completed_<id>.json` exists too: the claim is a leftover of a crash
    /// between writing the completion and removing the claim.
    pub completed_exists: bool,
}

/// Means over the telemetry records of the recent window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySummary {
    /// Records read for the means (the most recent ones inside the window).
    pub sampled: u64,
    /// Mean `error_rate` (or `1 - success_rate`), absent when no record had either.
    pub error_rate: Option<f64>,
    /// Mean `response_time` / `response_time_ms`, absent when no record had it.
    pub response_time_ms: Option<f64>,
}

/// Something a source could not use. Never fatal: the cycle goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceWarning {
    /// The file or input concerned (a file name inside the target).
    pub file: String,
    /// Why it could not be used, in a sentence.
    pub reason: String,
}

impl std::fmt::Display for SourceWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}
