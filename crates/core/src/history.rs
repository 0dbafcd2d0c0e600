//! What the journal remembers that the engine needs: recent cycles and the
//! outcomes of recent actions. Built by the store, read by policies and guards.

use serde::{Deserialize, Serialize};

use crate::decision::{DecisionType, OutcomeResult};
use crate::time::UnixMs;

/// The numbers of one past cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleSummary {
    /// When the cycle's snapshot was taken.
    pub ts: UnixMs,
    /// Pending work items.
    pub work_queue_size: u64,
    /// Claimed items.
    pub in_flight: u64,
    /// Completed records.
    pub completed: u64,
    /// Dead-lettered items.
    pub failed: u64,
    /// Active agents.
    pub active_agents: u64,
    /// The agent count the policy recommended (before guards), if it sized the fleet.
    pub recommended_agents: Option<u32>,
}

/// The outcome of one past decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// When the outcome was recorded.
    pub ts: UnixMs,
    /// The decision's type.
    pub kind: DecisionType,
    /// What happened.
    pub result: OutcomeResult,
    /// For scale actions: agents before and after.
    pub scale: Option<(u32, u32)>,
}

/// One reading of a component's metric, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When.
    pub ts: UnixMs,
    /// The component (an agent id).
    pub component: String,
    /// The metric (e.g. `memory_percent`).
    pub metric: String,
    /// The reading.
    pub value: f64,
}

/// Recent history, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Recent cycles, oldest first.
    pub cycles: Vec<CycleSummary>,
    /// Recent decision outcomes, oldest first.
    pub actions: Vec<ActionRecord>,
    /// Recent metric readings of components, oldest first.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

impl History {
    /// The most recent executed scale action that added (`up`) or removed agents.
    pub fn last_scale(&self, up: bool) -> Option<UnixMs> {
        self.actions
            .iter()
            .rev()
            .find(|a| a.result == OutcomeResult::Executed && a.scale.is_some_and(|(from, to)| if up { to > from } else { to < from }))
            .map(|a| a.ts)
    }

    /// Consecutive failures of `kind` at the end of its record (skips don't
    /// break the streak), and when the last one happened.
    pub fn failure_streak(&self, kind: &DecisionType) -> (u32, Option<UnixMs>) {
        let mut count = 0;
        let mut last = None;
        for a in self.actions.iter().rev().filter(|a| &a.kind == kind) {
            match a.result {
                OutcomeResult::Failed => {
                    count += 1;
                    last.get_or_insert(a.ts);
                }
                OutcomeResult::Executed => break,
                // Neither a success nor a failure the breaker can count.
                OutcomeResult::Skipped | OutcomeResult::Interrupted => {}
            }
        }
        (count, last)
    }
}

/// How much history a cycle reads: the last this-many cycles (enough for
/// the rate window and a forecast), and outcomes of this long ago (the
/// longest guard window). The loop and the simulator read the same.
pub fn depth(cfg: &crate::config::EngineConfig) -> (usize, std::time::Duration) {
    let a = &cfg.auto;
    let window = a.scale_down_window.max(a.breaker_cooldown).max(a.scale_up_cooldown);
    ((cfg.adaptive.rate_window as usize + 1).max(64), window)
}

/// Outcomes a cycle reads whatever their age (the store keeps the last ones
/// beyond the window, for the circuit breaker's streaks).
pub const MIN_ACTIONS: usize = 50;
