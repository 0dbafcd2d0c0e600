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
pub mod expr;
pub mod guard;
pub mod health;
pub mod history;
pub mod incident;
pub mod policy;
pub mod predict;
pub mod reconcile;
pub mod sim;
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
    let plan = owned(policy.plan(&assessment, history, cfg), &assessment);
    Analysis { decisions: decision::number(cycle_id, plan.proposals), recommended_agents: plan.recommended_agents, assessment }
}

/// Turns a plan's agent counts into counts of the agents the fleet owns.
/// Policies size the whole fleet (every active agent shares the load);
/// when some agents are not the fleet's (hand-run workers next to a
/// supervisor's), a scale decision must move only the fleet's own: 3
/// others and a total of 6 wanted means starting 3, not 6.
fn owned(mut plan: policy::Plan, a: &Assessment) -> policy::Plan {
    let others = a.metrics.active_agents.saturating_sub(a.owned_active);
    if others == 0 {
        return plan;
    }
    let others = u32::try_from(others).unwrap_or(u32::MAX);
    plan.recommended_agents = plan.recommended_agents.map(|n| n.saturating_sub(others));
    plan.proposals.retain_mut(|p| {
        let decision::Action::Scale { from, to } = p.action else { return true };
        let (from, to) = (from.saturating_sub(others), to.saturating_sub(others));
        if from == to {
            return false;
        }
        p.action = decision::Action::Scale { from, to };
        p.inverse = Some(decision::Action::Scale { from: to, to: from });
        p.description = format!("Scale steward's agents {from} → {to}");
        p.rationale = format!("{} {others} other agent(s) share the load but are not steward's to scale.", p.rationale);
        p.parameters.insert("target_agents".into(), to.into());
        p.parameters.insert("current_agents".into(), from.into());
        p.parameters.insert("other_agents".into(), others.into());
        true
    });
    plan
}
