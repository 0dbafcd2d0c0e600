//! What a cycle or a rollback did: the shapes `execute --format json` and
//! the HTTP API print (spec/cli.md).

use serde::Serialize;
use steward_core::assess::Metrics;
use steward_core::decision::Decision;

/// One-run overrides (the `execute` flags).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Decide, guard and journal; touch nothing.
    pub dry_run: bool,
    /// Execute at most this many decisions.
    pub max_decisions: Option<u32>,
    /// Skip decisions below this confidence.
    pub min_confidence: Option<f64>,
    /// Give every decision this confidence for this run.
    pub force_confidence: Option<f64>,
}

/// What one cycle did (the `execute --format json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// The cycle's id.
    pub cycle_id: String,
    /// When it ran.
    pub timestamp: String,
    /// The policy that decided.
    pub policy: &'static str,
    /// Whether it touched nothing.
    pub dry_run: bool,
    /// The cycle's metrics.
    pub metrics: Metrics,
    /// How many decisions the policy made.
    pub decisions_generated: usize,
    /// Decisions whose action ran and succeeded.
    pub executed: Vec<Executed>,
    /// Decisions whose action ran and failed.
    pub failed: Vec<Failed>,
    /// Decisions a guard (or a missing actuator) kept from running.
    pub skipped: Vec<Skipped>,
    /// Source warnings.
    pub warnings: Vec<String>,
    /// Whether the target (the coordination directory) exists.
    pub target_exists: bool,
    /// How long the cycle took, in milliseconds.
    pub duration_ms: u64,
    /// Every decision in full (with `--verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Decision>>,
    /// Workers a one-shot run leaves running for the next run to adopt
    /// (set by the caller; absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers_left_running: Option<usize>,
}

impl CycleReport {
    /// `(decision type, result)` for every decision, results being
    /// `executed`, `failed` or `skipped` (what `steward_decisions_total` counts).
    pub fn decision_results(&self) -> Vec<(String, String)> {
        self.executed
            .iter()
            .map(|e| (e.kind.clone(), "executed".to_owned()))
            .chain(self.failed.iter().map(|e| (e.kind.clone(), "failed".to_owned())))
            .chain(self.skipped.iter().map(|e| (e.kind.clone(), "skipped".to_owned())))
            .collect()
    }
}

/// An executed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the actuator did.
    pub result: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// A failed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it failed.
    pub error: String,
}

/// A skipped decision.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it did not run.
    pub reason: String,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The new decision, linked to the original by `parameters.rollback_of`.
    pub decision: Decision,
    /// The decision rolled back.
    pub original: String,
    /// What the actuator did.
    pub result: String,
}
