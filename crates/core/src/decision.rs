//! Decisions, the actions they carry, and their outcomes.
//!
//! These are the shapes of `analyze`/`execute` JSON (spec/cli.md), so they
//! derive `Serialize`; field names are part of the user contract.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of decision this is. Serialized as its snake_case name;
/// user-defined types keep the name the user gave them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DecisionType {
    /// Add agents.
    ScaleUp,
    /// Remove agents.
    ScaleDown,
    /// Requeue stale claims, dead-letter poison items, remove leftovers, rebalance.
    CoordinationImprove,
    /// Improve throughput without changing the fleet (advisory).
    Optimize,
    /// Raise telemetry sampling (advisory).
    TelemetryEnhance,
    /// Restart agents whose heartbeat stopped or that report `failed`.
    Restart,
    /// Fill a data gap found by reconciliation.
    FillGap,
    /// Add agents at once, past the usual step limits.
    EmergencyScale,
    /// A user-defined type.
    Custom(String),
}

impl DecisionType {
    /// The type's name as users see it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ScaleUp => "scale_up",
            Self::ScaleDown => "scale_down",
            Self::CoordinationImprove => "coordination_improve",
            Self::Optimize => "optimize",
            Self::TelemetryEnhance => "telemetry_enhance",
            Self::Restart => "restart",
            Self::FillGap => "fill_gap",
            Self::EmergencyScale => "emergency_scale",
            Self::Custom(name) => name,
        }
    }
}

impl From<String> for DecisionType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "scale_up" => Self::ScaleUp,
            "scale_down" => Self::ScaleDown,
            "coordination_improve" => Self::CoordinationImprove,
            "optimize" => Self::Optimize,
            "telemetry_enhance" => Self::TelemetryEnhance,
            "restart" => Self::Restart,
            "fill_gap" => Self::FillGap,
            "emergency_scale" => Self::EmergencyScale,
            _ => Self::Custom(s),
        }
    }
}

impl From<DecisionType> for String {
    fn from(t: DecisionType) -> String {
        t.as_str().to_owned()
    }
}

impl std::fmt::Display for DecisionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A concrete change to the world. Actuators match on the kind; the JSON
/// form is `{"kind": "scale", "from": 2, "to": 5}` and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Set the number of agents from `from` to `to`.
    Scale {
        /// Agents when the decision was made.
        from: u32,
        /// Agents wanted.
        to: u32,
    },
    /// Restart these agents (by id).
    Restart {
        /// Agent ids.
        agents: Vec<String>,
    },
    /// Requeue these stale claims (attempts + 1), or dead-letter those that
    /// reached their attempt limit. Never deletes a work item.
    RequeueClaims {
        /// Work item ids (the `<id>` of `claimed_<id>.json`).
        items: Vec<String>,
    },
    /// Remove claims whose completed record exists (the completion is authoritative).
    RemoveLeftoverClaims {
        /// Work item ids.
        items: Vec<String>,
    },
    /// Requeue or dead-letter every claim older than `max_age_hours` or stale,
    /// and remove leftover claims (the classic `clear_old_work`).
    ClearOldWork {
        /// Claims at least this old are treated as stale.
        max_age_hours: f64,
    },
    /// Remove what dead writers left: records of steward's own agents and
    /// temp files, each only if it has not changed since `unchanged_since`
    /// (so a writer that came back keeps its file). Never touches work.
    Tidy {
        /// Agent record files (`agent_<id>.json`) of steward's own agents.
        agent_files: Vec<String>,
        /// Temp files (`.steward-tmp-*`).
        temp_files: Vec<String>,
        /// Only files last written at or before this are removed.
        unchanged_since: crate::time::UnixMs,
    },
    /// Nothing to change in the world: a recommendation for a human.
    Advisory {
        /// What a human should look at.
        note: String,
    },
}

impl Action {
    /// Whether this action changes the fleet (and so needs a fleet actuator).
    pub fn is_fleet(&self) -> bool {
        matches!(self, Self::Scale { .. } | Self::Restart { .. })
    }
}

/// A decision: what to do, why, how sure, and how to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Unique and sortable: `<cycle id>-<index>`.
    pub id: String,
    /// The decision's type.
    #[serde(rename = "type")]
    pub kind: DecisionType,
    /// Higher first.
    pub priority: i32,
    /// In [0, 1].
    pub confidence: f64,
    /// One sentence a human can check against the numbers.
    pub rationale: String,
    /// A short imperative summary ("Scale agents 2 → 5").
    pub description: String,
    /// The policy's parameters (e.g. `target_agents`).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The concrete action.
    pub action: Action,
    /// The action that rolls this one back, where one exists.
    pub inverse: Option<Action>,
}

/// A decision before it has an id: what policies produce. The same shape;
/// [`number`] gives each its id.
pub type Proposal = Decision;

impl Decision {
    /// A proposal with no parameters and no inverse.
    pub fn new(
        kind: DecisionType,
        priority: i32,
        confidence: f64,
        action: Action,
        description: impl Into<String>,
        rationale: impl Into<String>,
    ) -> Self {
        Self {
            id: String::new(),
            kind,
            priority,
            // Three decimals: what a human reads is what `jq 'select(.confidence > 0.7)'` compares.
            confidence: (confidence.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
            rationale: rationale.into(),
            description: description.into(),
            parameters: BTreeMap::new(),
            action,
            inverse: None,
        }
    }

    /// Adds a parameter.
    #[must_use]
    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.parameters.insert(key.to_owned(), value.into());
        self
    }

    /// A scale proposal from `from` to `to` agents, with its inverse.
    pub fn scale(kind: DecisionType, priority: i32, confidence: f64, from: u32, to: u32, rationale: impl Into<String>) -> Self {
        let mut p = Self::new(kind, priority, confidence, Action::Scale { from, to }, format!("Scale agents {from} → {to}"), rationale)
            .param("target_agents", to)
            .param("current_agents", from);
        p.inverse = Some(Action::Scale { from: to, to: from });
        p
    }

    /// Gives the proposal its id.
    #[must_use]
    pub fn into_decision(mut self, id: String) -> Decision {
        self.id = id;
        self
    }
}

/// Sorts proposals by priority, highest first; ties keep policy order.
pub fn sort_by_priority(proposals: &mut [Proposal]) {
    proposals.sort_by_key(|p| std::cmp::Reverse(p.priority));
}

/// Numbers proposals into decisions of one cycle: `<cycle_id>-<NN>`, so ids
/// sort by cycle and then by rank.
pub fn number(cycle_id: &str, proposals: Vec<Proposal>) -> Vec<Decision> {
    proposals.into_iter().enumerate().map(|(i, p)| p.into_decision(format!("{cycle_id}-{:02}", i + 1))).collect()
}

/// What happened to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    /// The action ran and succeeded.
    Executed,
    /// The action ran and failed.
    Failed,
    /// A guard (or the absence of an actuator) kept the action from running.
    Skipped,
    /// Its cycle stopped before its outcome was recorded (steward was
    /// killed mid-action): whether the action took effect is unknown.
    Interrupted,
}

impl OutcomeResult {
    /// The result's name as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Interrupted => "interrupted",
        }
    }
}

impl std::str::FromStr for OutcomeResult {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "executed" => Ok(Self::Executed),
            "failed" => Ok(Self::Failed),
            "skipped" => Ok(Self::Skipped),
            "interrupted" => Ok(Self::Interrupted),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Executed, failed, skipped or interrupted.
    pub result: OutcomeResult,
    /// Why it was skipped or failed, or what it did.
    pub reason: String,
    /// Time the action took, in milliseconds (0 when it did not run).
    pub duration_ms: u64,
}
