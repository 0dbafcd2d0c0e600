//! The `classic` policy: the rules table of spec/engine.md, decision for
//! decision, for users who compare steward with the tools they ran before.

use super::{agents_u32, Plan, Policy};
use crate::assess::Assessment;
use crate::config::EngineConfig;
use crate::decision::{sort_by_priority, Action, DecisionType, Proposal};
use crate::health::HealthState;
use crate::history::History;

/// The compatibility rules. Only the current state's rules run; at most 2
/// decisions, highest priority first.
pub struct Classic;

const DEFAULT_CONFIDENCE: f64 = 0.8;
const MAX_DECISIONS: usize = 2;

impl Policy for Classic {
    fn name(&self) -> &'static str {
        "classic"
    }

    fn plan(&self, a: &Assessment, _history: &History, _cfg: &EngineConfig) -> Plan {
        let m = &a.metrics;
        let agents = agents_u32(m.active_agents);
        let (q, cr, t) = (m.work_queue_size, m.completion_rate, m.telemetry_volume);
        let score = m.health_score;
        let mut out = Vec::new();
        match m.health_state {
            HealthState::Critical => {
                if agents < 2 {
                    out.push(Proposal::scale(
                        DecisionType::ScaleUp,
                        10,
                        0.95,
                        agents,
                        2,
                        format!("Health is critical ({score:.3}) with {agents} active agent(s), fewer than 2."),
                    ));
                }
                if q > 15 {
                    out.push(
                        Proposal::new(
                            DecisionType::CoordinationImprove,
                            9,
                            DEFAULT_CONFIDENCE,
                            Action::ClearOldWork { max_age_hours: 2.0 },
                            "Requeue or dead-letter claims older than 2 h",
                            format!("Health is critical ({score:.3}) with {q} queued items, more than 15."),
                        )
                        .param("method", "clear_old_work")
                        .param("max_age_hours", 2),
                    );
                }
            }
            HealthState::Degraded => {
                if cr < 0.4 {
                    out.push(Proposal::scale(
                        DecisionType::ScaleUp,
                        7,
                        DEFAULT_CONFIDENCE,
                        agents,
                        agents.saturating_add(1),
                        format!("Health is degraded ({score:.3}) and the completion rate {cr:.3} is below 0.4."),
                    ));
                }
                if q > 5 {
                    let items: Vec<String> = a.stale.iter().map(|(id, _)| id.clone()).collect();
                    out.push(
                        Proposal::new(
                            DecisionType::CoordinationImprove,
                            6,
                            DEFAULT_CONFIDENCE,
                            Action::RequeueClaims { items },
                            "Redistribute work: requeue stale claims",
                            format!("Health is degraded ({score:.3}) with {q} queued items, more than 5."),
                        )
                        .param("method", "optimize_distribution"),
                    );
                }
            }
            HealthState::Healthy => {
                if cr < 0.8 {
                    out.push(
                        Proposal::new(
                            DecisionType::Optimize,
                            4,
                            DEFAULT_CONFIDENCE,
                            Action::Advisory { note: "completion rate below 0.8: look at slow or failing work".into() },
                            "Optimize the completion rate",
                            format!("Health is healthy ({score:.3}) but the completion rate {cr:.3} is below 0.8."),
                        )
                        .param("focus", "completion_rate"),
                    );
                }
            }
            HealthState::Optimal => {
                if agents > 8 || (agents > 3 && q == 0) {
                    out.push(Proposal::scale(
                        DecisionType::ScaleDown,
                        2,
                        DEFAULT_CONFIDENCE,
                        agents,
                        2.max(agents - 1),
                        format!("Health is optimal ({score:.3}) with {agents} active agents and {q} queued items: one agent can go."),
                    ));
                }
                if t < 10 {
                    out.push(
                        Proposal::new(
                            DecisionType::TelemetryEnhance,
                            1,
                            DEFAULT_CONFIDENCE,
                            Action::Advisory { note: "raise telemetry sampling".into() },
                            "Increase telemetry sampling",
                            format!("Health is optimal ({score:.3}) but only {t} telemetry records exist, fewer than 10."),
                        )
                        .param("action", "increase_sampling"),
                    );
                }
            }
        }
        sort_by_priority(&mut out);
        out.truncate(MAX_DECISIONS);
        let recommended_agents = out.iter().find_map(|p| match p.action {
            Action::Scale { to, .. } => Some(to),
            _ => None,
        });
        Plan { proposals: out, recommended_agents: recommended_agents.or(Some(agents)) }
    }
}
