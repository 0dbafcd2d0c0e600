//! Incidents (spec/operations.md): the rules that raise them, their
//! severities, and the lifecycle an incident walks.
//!
//! Pure: the rules read what a cycle saw; the runtime keeps the incidents
//! in the journal and walks them through their phases.
//!
//! | rule | severity | raised when |
//! |------|----------|-------------|
//! | `system_critical` | 1 | health is `critical` |
//! | `system_degraded` | 2 | health has been below healthy for `degraded_for` |
//! | `circuit_breaker_open` | 3 | a decision type's circuit breaker holds it back |
//! | `task_dead` | 3 | a dataset has dead-lettered tasks |
//! | `component_failed` | 3 | a daemon component reports `failing` |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration;
use crate::health::HealthState;
use crate::time::UnixMs;

/// The `incidents:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    /// Raise incidents at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Health below healthy for this long raises a severity-2 incident. Default 10m.
    #[serde(default = "default_degraded_for", with = "duration")]
    pub degraded_for: Duration,
    /// An eradicated incident (its condition gone) is recovered after this long without it coming back. Default 2m.
    #[serde(default = "default_recover_after", with = "duration")]
    pub recover_after: Duration,
    /// A recovered incident is closed after this long. Default 10m.
    #[serde(default = "default_close_after", with = "duration")]
    pub close_after: Duration,
}

fn yes() -> bool {
    true
}
fn default_degraded_for() -> Duration {
    Duration::from_secs(600)
}
fn default_recover_after() -> Duration {
    Duration::from_secs(120)
}
fn default_close_after() -> Duration {
    Duration::from_secs(600)
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            degraded_for: default_degraded_for(),
            recover_after: default_recover_after(),
            close_after: default_close_after(),
        }
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A rule fired.
    Detected,
    /// What the cycle saw is recorded with it (the same cycle).
    Assessed,
    /// An automatic action was taken against it.
    Contained,
    /// Its condition is gone.
    Eradicated,
    /// Its condition stayed gone for `recover_after`.
    Recovered,
    /// Over: `close_after` after recovery, or resolved by hand.
    Closed,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 6] = [Self::Detected, Self::Assessed, Self::Contained, Self::Eradicated, Self::Recovered, Self::Closed];

    /// The name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detected => "detected",
            Self::Assessed => "assessed",
            Self::Contained => "contained",
            Self::Eradicated => "eradicated",
            Self::Recovered => "recovered",
            Self::Closed => "closed",
        }
    }

    /// The phase named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether its condition still holds (it fires in Alertmanager).
    pub fn is_active(self) -> bool {
        self <= Self::Contained
    }
}

/// A rule that holds this cycle, for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// The rule (`system_critical`, ...).
    pub rule: &'static str,
    /// What it concerns (the coordination directory, a dataset, a component).
    pub target: String,
    /// 1 (critical system failure), 2 (major degradation), 3 (minor).
    pub severity: u8,
    /// A sentence.
    pub summary: String,
}

/// What the rules read.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The target the loop watches.
    pub target: &'a str,
    /// This cycle's health state and score.
    pub health: Option<(HealthState, f64)>,
    /// Since when health has been below healthy (this cycle included), if it is.
    pub unhealthy_since: Option<UnixMs>,
    /// Decision types held back by their circuit breaker this cycle, with why.
    pub breakers: Vec<(String, String)>,
    /// Datasets with dead-lettered tasks, and how many.
    pub dead_tasks: Vec<(String, u64)>,
    /// Daemon components failing, with their message.
    pub failing_components: Vec<(String, String)>,
}

/// The rules: every signal that holds.
pub fn evaluate(o: &Observed<'_>, cfg: &IncidentConfig, now: UnixMs) -> Vec<Signal> {
    let mut out = Vec::new();
    if !cfg.enabled {
        return out;
    }
    if let Some((state, score)) = o.health {
        if state == HealthState::Critical {
            out.push(Signal {
                rule: "system_critical",
                target: o.target.to_owned(),
                severity: 1,
                summary: format!("health is critical ({score:.2}) on {}", o.target),
            });
        } else if matches!(state, HealthState::Degraded) {
            let long = i64::try_from(cfg.degraded_for.as_millis()).unwrap_or(i64::MAX);
            if let Some(since) = o.unhealthy_since.filter(|s| now - s >= long) {
                out.push(Signal {
                    rule: "system_degraded",
                    target: o.target.to_owned(),
                    severity: 2,
                    summary: format!("health has been below healthy for {} min ({score:.2} now) on {}", (now - since) / 60_000, o.target),
                });
            }
        }
    }
    for (kind, why) in &o.breakers {
        out.push(Signal {
            rule: "circuit_breaker_open",
            target: kind.clone(),
            severity: 3,
            summary: format!("the circuit breaker of {kind} is open: {why}"),
        });
    }
    for (dataset, n) in &o.dead_tasks {
        out.push(Signal {
            rule: "task_dead",
            target: dataset.clone(),
            severity: 3,
            summary: format!("{n} task(s) of dataset {dataset} dead-lettered after their retries"),
        });
    }
    for (name, message) in &o.failing_components {
        out.push(Signal {
            rule: "component_failed",
            target: name.clone(),
            severity: 3,
            summary: format!("component {name} is failing: {message}"),
        });
    }
    out
}

/// The alert name Alertmanager shows for a rule (`SystemCritical`).
pub fn alert_name(rule: &str) -> String {
    rule.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(state: HealthState, since: Option<UnixMs>) -> Observed<'static> {
        Observed { target: "/q", health: Some((state, 0.2)), unhealthy_since: since, ..Observed::default() }
    }

    #[test]
    fn rules_and_severities() {
        let cfg = IncidentConfig::default();
        let s = evaluate(&observed(HealthState::Critical, Some(0)), &cfg, 1000);
        assert_eq!((s[0].rule, s[0].severity, s[0].target.as_str()), ("system_critical", 1, "/q"));
        // Degraded: only after degraded_for.
        assert!(evaluate(&observed(HealthState::Degraded, Some(0)), &cfg, 599_999).is_empty());
        let s = evaluate(&observed(HealthState::Degraded, Some(0)), &cfg, 600_000);
        assert_eq!((s[0].rule, s[0].severity), ("system_degraded", 2));
        assert!(evaluate(&observed(HealthState::Healthy, None), &cfg, 600_000).is_empty());
        let o = Observed {
            breakers: vec![("scale_up".into(), "3 failures".into())],
            dead_tasks: vec![("box".into(), 2)],
            failing_components: vec![("inventory".into(), "lake gone".into())],
            ..Observed::default()
        };
        let s = evaluate(&o, &cfg, 0);
        assert_eq!(
            s.iter().map(|x| (x.rule, x.severity)).collect::<Vec<_>>(),
            [("circuit_breaker_open", 3), ("task_dead", 3), ("component_failed", 3)]
        );
        assert!(evaluate(&o, &IncidentConfig { enabled: false, ..cfg }, 0).is_empty());
    }

    #[test]
    fn phases_order_and_names() {
        assert!(Phase::Contained.is_active() && !Phase::Eradicated.is_active());
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert_eq!(alert_name("circuit_breaker_open"), "CircuitBreakerOpen");
    }
}
