//! steward's core: plain data and pure functions of
//! `(snapshot, history, config, now)`.
//!
//! **Architecture invariant:** nothing here does I/O, reads a clock or is
//! async. Time comes in as an argument ([`time::UnixMs`]); files, sockets
//! and databases live in the crates above.
//!
//! The loop, in types: [`snapshot::Snapshot`] → [`assess::assess`] →
//! [`assess::Assessment`] → [`policy::Policy::plan`] → [`decision::Decision`]s
//! → [`guard::apply`] → verdicts; the driver then acts and records
//! [`decision::Outcome`]s.

#![warn(missing_docs)]

pub mod assess;
pub mod config;
pub mod control;
pub mod decision;
pub mod guard;
pub mod health;
pub mod history;
pub mod policy;
pub mod predict;
pub mod snapshot;
pub mod time;

use assess::Assessment;
use config::EngineConfig;
use decision::Decision;
use history::History;
use policy::Policy;
use snapshot::Snapshot;
use time::UnixMs;

/// The result of analysis: what is, and what the policy would do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Metrics, health and the facts behind decisions.
    pub assessment: Assessment,
    /// Decisions, highest priority first, with ids.
    pub decisions: Vec<Decision>,
    /// The agent count the policy recommended (for the journal and stabilization).
    pub recommended_agents: Option<u32>,
}

/// Assesses a snapshot and plans decisions. Deterministic: the same inputs
/// give the same decisions (ids come from `cycle_id`).
pub fn analyze(snapshot: &Snapshot, history: &History, cfg: &EngineConfig, policy: &dyn Policy, cycle_id: &str, now: UnixMs) -> Analysis {
    let assessment = assess::assess(snapshot, cfg, now);
    let plan = policy.plan(&assessment, history, cfg);
    Analysis { decisions: decision::number(cycle_id, plan.proposals), recommended_agents: plan.recommended_agents, assessment }
}
