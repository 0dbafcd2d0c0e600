//! The four-term health score and its states (spec/engine.md).

use serde::{Deserialize, Serialize};

use crate::config::HealthConfig;

/// The health state a score falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// score < 0.3
    Critical,
    /// 0.3 ≤ score < 0.6
    Degraded,
    /// 0.6 ≤ score < 0.9
    Healthy,
    /// 0.9 ≤ score
    Optimal,
}

impl HealthState {
    /// The state of a score; the bounds are inclusive below (0.6 is healthy).
    pub fn of(score: f64) -> Self {
        if score < 0.3 {
            Self::Critical
        } else if score < 0.6 {
            Self::Degraded
        } else if score < 0.9 {
            Self::Healthy
        } else {
            Self::Optimal
        }
    }

    /// The state's name as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Degraded => "degraded",
            Self::Healthy => "healthy",
            Self::Optimal => "optimal",
        }
    }

    /// All states, worst first.
    pub const ALL: [HealthState; 4] = [Self::Critical, Self::Degraded, Self::Healthy, Self::Optimal];
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The completion rate: completed / (queued + completed), 0 when both are 0.
pub fn completion_rate(work_queue_size: u64, completed: u64) -> f64 {
    let total = work_queue_size + completed;
    if total == 0 {
        0.0
    } else {
        completed as f64 / total as f64
    }
}

/// The health score in [0, 1].
///
/// The operations run in exactly the order of spec/engine.md, in f64,
/// because users compare scores across tools and the order decides the
/// edge cases (5 agents, empty queue, all complete, no telemetry gives
/// 0.8999999999999999, which is `healthy`).
pub fn health_score(cfg: &HealthConfig, completion_rate: f64, active_agents: u64, work_queue_size: u64, telemetry_volume: u64) -> f64 {
    let mut h = completion_rate * cfg.completion_weight;
    h += (active_agents as f64 / cfg.agents_target).min(1.0) * cfg.agents_weight;
    h += 0.0f64.max(1.0 - work_queue_size as f64 / cfg.queue_target) * cfg.queue_weight;
    h += (telemetry_volume as f64 / cfg.telemetry_target).min(1.0) * cfg.telemetry_weight;
    // Clamp below too: a weight set above its share must not push the score
    // outside [0, 1], and NaN (impossible with validated weights) reads as 0.
    if h.is_nan() {
        0.0
    } else {
        h.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (agents, queue, completed, telemetry) → (score, state)
    fn check(a: u64, q: u64, c: u64, t: u64, score: f64, state: HealthState) {
        let cfg = HealthConfig::default();
        let h = health_score(&cfg, completion_rate(q, c), a, q, t);
        assert_eq!(h.to_bits(), score.to_bits(), "a={a} q={q} c={c} t={t}: {h} != {score}");
        assert_eq!(HealthState::of(h), state);
    }

    #[test]
    fn float_edges_of_the_spec() {
        check(5, 0, 1, 0, 0.8999999999999999, HealthState::Healthy);
        check(5, 0, 1000, 0, 0.8999999999999999, HealthState::Healthy);
        check(2, 3, 7, 12, 0.5999999999999999, HealthState::Degraded);
    }

    #[test]
    fn empty_system_scores_point_two() {
        check(0, 0, 0, 0, 0.2, HealthState::Critical);
    }

    #[test]
    fn full_marks_are_optimal() {
        // Float order makes full marks 0.9999999999999999, as the reference engine reports.
        check(5, 0, 10, 20, 0.9999999999999999, HealthState::Optimal);
    }

    #[test]
    fn state_bounds_are_inclusive_below() {
        assert_eq!(HealthState::of(0.3), HealthState::Degraded);
        assert_eq!(HealthState::of(0.6), HealthState::Healthy);
        assert_eq!(HealthState::of(0.9), HealthState::Optimal);
        assert_eq!(HealthState::of(0.2999999999999999), HealthState::Critical);
    }
}
