//! Snapshot → Assessment: metrics, health, and the facts policies act on.
//!
//! Analysis degrades instead of failing: a missing directory scores as an
//! empty system, an unreadable file becomes a warning, a missing metric is
//! absent (never invented) and lowers the confidence of what depends on it.

use serde::{Deserialize, Serialize};

use crate::config::{EngineConfig, Ownership};
use crate::health::{completion_rate, health_score, HealthState};
use crate::snapshot::{AgentRecord, ClaimRecord, Snapshot, SourceWarning};
use crate::time::UnixMs;

/// The metrics of one cycle (the `metrics` object of `analyze` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// completed / (work_queue_size + completed), 0 when both are 0.
    pub completion_rate: f64,
    /// Agents that are alive and not failed or stopped.
    pub active_agents: u64,
    /// Pending work items.
    pub work_queue_size: u64,
    /// Telemetry records.
    pub telemetry_volume: u64,
    /// The four-term score in [0, 1].
    pub health_score: f64,
    /// The score's state.
    pub health_state: HealthState,
    /// Claimed items.
    pub in_flight: u64,
    /// Claims older than `claim_ttl` or whose claimant is not active.
    pub stale_claims: u64,
    /// Completed records.
    pub completed: u64,
    /// Dead-lettered items.
    pub failed: u64,
    /// Agent records of any status or age.
    pub total_agents: u64,
    /// Mean error rate over the recent telemetry, absent when none reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Mean response time over the recent telemetry, absent when none reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<f64>,
}

/// Why an agent needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartReason {
    /// It reports `status: failed`.
    ReportsFailed,
    /// Its last sign of life is older than `agent_ttl` (age in seconds).
    Silent(u64),
}

/// The assessment of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// When the snapshot was taken.
    pub taken_at: UnixMs,
    /// Whether the target exists.
    pub target_exists: bool,
    /// The cycle's metrics.
    pub metrics: Metrics,
    /// Agents to restart, with why.
    pub restart: Vec<(String, RestartReason)>,
    /// Claims to requeue (stale), by item id, with the age of the claim in seconds.
    pub stale: Vec<(String, u64)>,
    /// Claims whose completed record exists.
    pub leftover: Vec<String>,
    /// Everything that could not be read, plus gaps in the data.
    pub warnings: Vec<SourceWarning>,
    /// Ids of every agent record, alive or not.
    pub agent_ids: Vec<String>,
    /// What dead writers left that may be removed.
    pub leftovers: Leftovers,
    /// Active agents the fleet actuator owns (all of them unless
    /// `fleet_owns` says only steward's); the rest share the load.
    pub owned_active: u64,
}

/// What dead writers left: steward's own agent records silent for long,
/// and temp files unchanged for long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Agent record files.
    pub agent_files: Vec<String>,
    /// Temp files.
    pub temp_files: Vec<String>,
    /// Both were last written at or before this.
    pub unchanged_since: UnixMs,
}

/// A writer silent for this long is gone: no write of steward's takes this
/// long, and no heartbeat is this late (unless `agent_ttl` is longer).
pub const LEFTOVER_AFTER_MS: i64 = 10 * 60 * 1000;

const INACTIVE_STATUSES: [&str; 3] = ["failed", "stopped", "decommissioned"];

/// Whether an agent counts as active at `now`.
pub fn is_active(agent: &AgentRecord, cfg: &EngineConfig, now: UnixMs) -> bool {
    !is_inactive_status(&agent.status) && is_alive(agent, cfg, now)
}

/// `failed`, `stopped` or `decommissioned`, in any case.
fn is_inactive_status(status: &str) -> bool {
    INACTIVE_STATUSES.iter().any(|s| s.eq_ignore_ascii_case(status))
}

fn is_alive(agent: &AgentRecord, cfg: &EngineConfig, now: UnixMs) -> bool {
    let ttl = cfg.liveness.agent_ttl.as_millis() as i64;
    ttl == 0 || agent.last_seen.is_some_and(|seen| now - seen < ttl)
}

/// Seconds since `t`, never negative (a clock ahead of ours reads as 0).
pub fn age_secs(now: UnixMs, t: UnixMs) -> u64 {
    (now.saturating_sub(t).max(0) / 1000) as u64
}

fn claim_is_stale(claim: &ClaimRecord, agents: &[AgentRecord], cfg: &EngineConfig, now: UnixMs) -> bool {
    let age_ms = claim.claimed_at.map_or(i64::MAX, |t| now.saturating_sub(t));
    if age_ms >= cfg.liveness.claim_ttl.as_millis() as i64 {
        return true;
    }
    match claim.claimed_by.as_deref() {
        None => false,
        Some(by) => match agents.iter().find(|a| a.id == by) {
            Some(agent) => !is_active(agent, cfg, now),
            // An agent may claim before its own record is written: give it
            // one agent_ttl to show up before its claim counts as orphaned.
            None => {
                let ttl = cfg.liveness.agent_ttl.as_millis() as i64;
                ttl > 0 && age_ms >= ttl
            }
        },
    }
}

/// Assesses a snapshot at `now`.
pub fn assess(snapshot: &Snapshot, cfg: &EngineConfig, now: UnixMs) -> Assessment {
    // agent_ttl = 0 reproduces tools that count agent files by name:
    // every agent file counts, whatever its content.
    let active_agents = if cfg.liveness.agent_ttl.is_zero() {
        snapshot.agent_files.max(snapshot.agents.len() as u64)
    } else {
        snapshot.agents.iter().filter(|a| is_active(a, cfg, now)).count() as u64
    };
    let cr = completion_rate(snapshot.work_queue_size, snapshot.completed);
    let score = health_score(&cfg.health, cr, active_agents, snapshot.work_queue_size, snapshot.telemetry_volume);

    let owns = |agent: &AgentRecord| cfg.fleet_owns == Ownership::All || agent.managed_by_steward;
    let owned_active = if cfg.fleet_owns == Ownership::All {
        active_agents
    } else {
        snapshot.agents.iter().filter(|a| a.managed_by_steward && is_active(a, cfg, now)).count() as u64
    };
    let mut restart = Vec::new();
    // Only agents the fleet owns can be restarted by it.
    for agent in snapshot.agents.iter().filter(|a| owns(a)) {
        if agent.status.eq_ignore_ascii_case("failed") {
            restart.push((agent.id.clone(), RestartReason::ReportsFailed));
        } else if !is_inactive_status(&agent.status) && !is_alive(agent, cfg, now) {
            let age = agent.last_seen.map_or(u64::MAX, |t| age_secs(now, t));
            restart.push((agent.id.clone(), RestartReason::Silent(age)));
        }
    }

    let mut stale = Vec::new();
    let mut leftover = Vec::new();
    for claim in &snapshot.claims {
        if claim.completed_exists {
            leftover.push(claim.id.clone());
        } else if claim_is_stale(claim, &snapshot.agents, cfg, now) {
            stale.push((claim.id.clone(), claim.claimed_at.map_or(u64::MAX, |t| age_secs(now, t))));
        }
    }

    // agent_ttl = 0 counts every agent file as alive: nothing is stale then.
    let ttl = cfg.liveness.agent_ttl.as_millis() as i64;
    let unchanged_since = now.saturating_sub(ttl.max(LEFTOVER_AFTER_MS));
    let leftovers = Leftovers {
        agent_files: if ttl == 0 {
            Vec::new()
        } else {
            snapshot
                .agents
                .iter()
                .filter(|a| a.managed_by_steward && a.last_seen.is_some_and(|t| t <= unchanged_since))
                .map(|a| a.file.clone())
                .collect()
        },
        temp_files: snapshot.temp_files.iter().filter(|t| t.modified <= unchanged_since).map(|t| t.name.clone()).collect(),
        unchanged_since,
    };

    Assessment {
        owned_active,
        leftovers,
        taken_at: snapshot.taken_at,
        target_exists: snapshot.target_exists,
        metrics: Metrics {
            completion_rate: cr,
            active_agents,
            work_queue_size: snapshot.work_queue_size,
            telemetry_volume: snapshot.telemetry_volume,
            health_score: score,
            health_state: HealthState::of(score),
            in_flight: snapshot.claims.len() as u64,
            stale_claims: stale.len() as u64,
            completed: snapshot.completed,
            failed: snapshot.failed,
            total_agents: snapshot.agent_files.max(snapshot.agents.len() as u64),
            error_rate: snapshot.telemetry.error_rate,
            response_time_ms: snapshot.telemetry.response_time_ms,
        },
        restart,
        stale,
        leftover,
        warnings: snapshot.warnings.clone(),
        agent_ids: snapshot.agents.iter().map(|a| a.id.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: UnixMs = 1_800_000_000_000;

    fn agent(id: &str, status: &str, seen_secs_ago: i64) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            file: format!("agent_{id}.json"),
            status: status.into(),
            last_seen: Some(NOW - seen_secs_ago * 1000),
            capacity: 1,
            ..Default::default()
        }
    }

    #[test]
    fn liveness_follows_ttl_and_status() {
        let cfg = EngineConfig::default();
        let snap = Snapshot {
            agents: vec![
                agent("a", "active", 10),
                agent("b", "busy", 299),
                agent("c", "active", 300),
                agent("d", "failed", 1),
                agent("e", "stopped", 1),
            ],
            ..Default::default()
        };
        let a = assess(&snap, &cfg, NOW);
        assert_eq!(a.metrics.active_agents, 2);
        assert_eq!(a.metrics.total_agents, 5);
        assert_eq!(a.restart, vec![("c".to_owned(), RestartReason::Silent(300)), ("d".to_owned(), RestartReason::ReportsFailed)]);
    }

    #[test]
    fn ttl_zero_counts_every_agent_file_like_name_counting_tools() {
        let mut cfg = EngineConfig::default();
        cfg.liveness.agent_ttl = Duration::ZERO;
        // Four agent files, one unreadable (so only three records), one failed, one stopped.
        let snap = Snapshot {
            agent_files: 4,
            agents: vec![agent("a", "active", 10_000), agent("b", "failed", 1_000_000), agent("c", "stopped", 1)],
            ..Default::default()
        };
        assert_eq!(assess(&snap, &cfg, NOW).metrics.active_agents, 4);
    }

    #[test]
    fn statuses_compare_without_case() {
        let cfg = EngineConfig::default();
        let snap =
            Snapshot { agents: vec![agent("a", "FAILED", 1), agent("b", "Stopped", 1), agent("c", "Active", 1)], ..Default::default() };
        let a = assess(&snap, &cfg, NOW);
        assert_eq!(a.metrics.active_agents, 1);
        assert_eq!(a.restart, vec![("a".to_owned(), RestartReason::ReportsFailed)]);
    }

    #[test]
    fn claims_are_stale_by_age_or_dead_claimant_and_leftovers_apart() {
        let cfg = EngineConfig::default();
        let claim = |id: &str, by: Option<&str>, secs_ago: i64, done: bool| ClaimRecord {
            id: id.into(),
            claimed_by: by.map(Into::into),
            claimed_at: Some(NOW - secs_ago * 1000),
            completed_exists: done,
            ..Default::default()
        };
        let snap = Snapshot {
            agents: vec![agent("live", "active", 5), agent("dead", "active", 4000)],
            claims: vec![
                claim("fresh", Some("live"), 10, false),
                claim("old", Some("live"), 601, false),
                claim("orphan", Some("dead"), 10, false),
                claim("unknown-new", Some("ghost"), 10, false),
                claim("unknown-old", Some("ghost"), 400, false),
                claim("done", Some("live"), 10, true),
            ],
            ..Default::default()
        };
        let a = assess(&snap, &cfg, NOW);
        let stale: Vec<&str> = a.stale.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(stale, ["old", "orphan", "unknown-old"]);
        assert_eq!(a.leftover, ["done"]);
        assert_eq!(a.metrics.in_flight, 6);
        assert_eq!(a.metrics.stale_claims, 3);
    }
}
