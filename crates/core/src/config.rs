//! The engine's configuration: health weights, liveness, policy and guards.
//!
//! These structs are the `health:`, `auto:` and `adaptive:` sections of
//! `steward.yaml` (the file's shape is a user contract, hence `Serialize`).
//! Every field has a named default function and a doc that says its role,
//! unit and default; `steward config --example` shows them all.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A config value that is out of its range, naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidValue {
    /// The dotted key, e.g. `auto.min_confidence`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> InvalidValue {
    InvalidValue { key: key.to_owned(), message: message.into() }
}

fn check_unit(key: &str, v: f64) -> Result<(), InvalidValue> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be between 0 and 1, got {v}")))
    }
}

fn check_positive(key: &str, v: f64) -> Result<(), InvalidValue> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(key, format!("must be a positive number, got {v}")))
    }
}

/// Weights and targets of the four-term health score (spec/engine.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Weight of the completion rate. Default 0.4.
    #[serde(default = "default_completion_weight")]
    pub completion_weight: f64,
    /// Weight of the agent term `min(active_agents / agents_target, 1)`. Default 0.3.
    #[serde(default = "default_agents_weight")]
    pub agents_weight: f64,
    /// Weight of the queue term `max(0, 1 - work_queue_size / queue_target)`. Default 0.2.
    #[serde(default = "default_queue_weight")]
    pub queue_weight: f64,
    /// Weight of the telemetry term `min(telemetry_volume / telemetry_target, 1)`. Default 0.1.
    #[serde(default = "default_telemetry_weight")]
    pub telemetry_weight: f64,
    /// Active agents that earn the full agent term. Default 5.
    #[serde(default = "default_agents_target")]
    pub agents_target: f64,
    /// Queue length at which the queue term reaches 0. Default 10.
    #[serde(default = "default_queue_target")]
    pub queue_target: f64,
    /// Telemetry records that earn the full telemetry term. Default 20.
    #[serde(default = "default_telemetry_target")]
    pub telemetry_target: f64,
}

fn default_completion_weight() -> f64 {
    0.4
}
fn default_agents_weight() -> f64 {
    0.3
}
fn default_queue_weight() -> f64 {
    0.2
}
fn default_telemetry_weight() -> f64 {
    0.1
}
fn default_agents_target() -> f64 {
    5.0
}
fn default_queue_target() -> f64 {
    10.0
}
fn default_telemetry_target() -> f64 {
    20.0
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            completion_weight: default_completion_weight(),
            agents_weight: default_agents_weight(),
            queue_weight: default_queue_weight(),
            telemetry_weight: default_telemetry_weight(),
            agents_target: default_agents_target(),
            queue_target: default_queue_target(),
            telemetry_target: default_telemetry_target(),
        }
    }
}

impl HealthConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_unit("health.completion_weight", self.completion_weight)?;
        check_unit("health.agents_weight", self.agents_weight)?;
        check_unit("health.queue_weight", self.queue_weight)?;
        check_unit("health.telemetry_weight", self.telemetry_weight)?;
        check_positive("health.agents_target", self.agents_target)?;
        check_positive("health.queue_target", self.queue_target)?;
        check_positive("health.telemetry_target", self.telemetry_target)
    }
}

/// How liveness and staleness are judged from a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct LivenessConfig {
    /// An agent whose last sign of life is older than this is not active.
    /// Zero counts every agent record regardless of age.
    pub agent_ttl: Duration,
    /// A claim older than this is stale.
    pub claim_ttl: Duration,
    /// Attempts after which a stale claim is dead-lettered instead of requeued.
    pub max_attempts: u32,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self { agent_ttl: Duration::from_secs(300), claim_ttl: Duration::from_secs(600), max_attempts: 3 }
    }
}

/// The name of a built-in policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// Load-proportional sizing, restarts and requeues (spec/engine.md).
    #[default]
    Adaptive,
    /// The compatibility rules table, decision for decision.
    Classic,
}

impl std::str::FromStr for PolicyName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adaptive" => Ok(Self::Adaptive),
            "classic" => Ok(Self::Classic),
            other => Err(format!("unknown policy {other:?} (expected adaptive or classic)")),
        }
    }
}

impl std::fmt::Display for PolicyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Adaptive => "adaptive",
            Self::Classic => "classic",
        })
    }
}

/// The `auto:` section: which policy runs and the guards around execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoConfig {
    /// Policy that turns an assessment into decisions: `adaptive` or `classic`. Default `adaptive`.
    #[serde(default)]
    pub policy: PolicyName,
    /// Decisions below this confidence are skipped. Default 0.6.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// Most decisions executed per cycle. Default 3.
    #[serde(default = "default_max_decisions")]
    pub max_decisions: u32,
    /// Fewest agents the engine will scale to. Default 1.
    #[serde(default = "default_min_agents")]
    pub min_agents: u32,
    /// Most agents the engine will scale to. Default 10.
    #[serde(default = "default_max_agents")]
    pub max_agents: u32,
    /// Most agents added or removed by one action. Default 4.
    #[serde(default = "default_max_step")]
    pub max_step: u32,
    /// Most the adaptive policy multiplies the fleet by in one step (2.0 = at most double). Default 2.0.
    #[serde(default = "default_scale_factor")]
    pub scale_factor: f64,
    /// Decide, guard and journal, but touch nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Time between cycles of `steward loop` and the daemon. Default 30s.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// A scale-down happens only if every recommendation in this window allowed it,
    /// and never within this window after a scale-up. Default 300s.
    #[serde(default = "default_scale_down_window", with = "duration")]
    pub scale_down_window: Duration,
    /// Least time between two scale actions that add agents, or after a scale-down. Default 30s.
    #[serde(default = "default_scale_up_cooldown", with = "duration")]
    pub scale_up_cooldown: Duration,
    /// Consecutive failed executions of one decision type that open its circuit breaker. Default 3.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker stops its decision type from acting. Default 300s.
    #[serde(default = "default_breaker_cooldown", with = "duration")]
    pub breaker_cooldown: Duration,
}

fn default_min_confidence() -> f64 {
    0.6
}
fn default_max_decisions() -> u32 {
    3
}
fn default_min_agents() -> u32 {
    1
}
fn default_max_agents() -> u32 {
    10
}
fn default_max_step() -> u32 {
    4
}
fn default_scale_factor() -> f64 {
    2.0
}
fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_scale_down_window() -> Duration {
    Duration::from_secs(300)
}
fn default_scale_up_cooldown() -> Duration {
    Duration::from_secs(30)
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(300)
}

impl Default for AutoConfig {
    fn default() -> Self {
        Self {
            policy: PolicyName::default(),
            min_confidence: default_min_confidence(),
            max_decisions: default_max_decisions(),
            min_agents: default_min_agents(),
            max_agents: default_max_agents(),
            max_step: default_max_step(),
            scale_factor: default_scale_factor(),
            dry_run: false,
            interval: default_interval(),
            scale_down_window: default_scale_down_window(),
            scale_up_cooldown: default_scale_up_cooldown(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown: default_breaker_cooldown(),
        }
    }
}

/// The shortest time between cycles (`auto.interval`, `loop --interval`).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl AutoConfig {
    /// Checks ranges and relations between keys.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_unit("auto.min_confidence", self.min_confidence)?;
        if self.min_agents > self.max_agents {
            return Err(invalid("auto.min_agents", format!("min_agents ({}) is above max_agents ({})", self.min_agents, self.max_agents)));
        }
        if self.max_step == 0 {
            return Err(invalid("auto.max_step", "must be at least 1"));
        }
        if !(self.scale_factor.is_finite() && self.scale_factor > 1.0) {
            return Err(invalid("auto.scale_factor", format!("must be above 1, got {}", self.scale_factor)));
        }
        if self.interval < MIN_INTERVAL {
            return Err(invalid(
                "auto.interval",
                format!("{:?} is below the floor of 100ms: a cycle lists the whole directory and writes the journal", self.interval),
            ));
        }
        if self.breaker_failures == 0 {
            return Err(invalid("auto.breaker_failures", "must be at least 1"));
        }
        Ok(())
    }
}

/// The `adaptive:` section: how the adaptive policy sizes the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// Backlog items per agent when no service rate is known yet (as KEDA's queue length target). Default 5.
    #[serde(default = "default_target_per_agent")]
    pub target_per_agent: f64,
    /// Fraction of an agent's service rate the policy plans to use (Little's law). Default 0.8.
    #[serde(default = "default_target_utilization")]
    pub target_utilization: f64,
    /// Relative change below which no scale decision is made (as the HPA's tolerance). Default 0.1.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Time in which the backlog should be worked off, on top of the arrivals. Default 300s.
    #[serde(default = "default_drain_time", with = "duration")]
    pub drain_time: Duration,
    /// Cycles of history used to estimate arrival and service rates. Default 10.
    #[serde(default = "default_rate_window")]
    pub rate_window: u32,
    /// How long a new agent takes to start serving: the forecast looks this
    /// far ahead, so capacity is there when a predicted peak arrives. Default 30s.
    #[serde(default = "default_startup_time", with = "duration")]
    pub startup_time: Duration,
    /// Scale up ahead of a forecast peak of arrivals (never down on a forecast alone). Default true.
    #[serde(default = "default_true")]
    pub forecast: bool,
    /// The longest an item should wait in the queue (the SLA). When set,
    /// the fleet is sized to keep waits under it instead of to
    /// `target_utilization`: work may queue while every agent is busy, so
    /// nobody is paid to idle. Default 0s (not set).
    #[serde(default, with = "duration")]
    pub max_wait: Duration,
}

fn default_startup_time() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}

fn default_target_per_agent() -> f64 {
    5.0
}
fn default_target_utilization() -> f64 {
    0.8
}
fn default_tolerance() -> f64 {
    0.1
}
fn default_drain_time() -> Duration {
    Duration::from_secs(300)
}
fn default_rate_window() -> u32 {
    10
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            target_per_agent: default_target_per_agent(),
            target_utilization: default_target_utilization(),
            tolerance: default_tolerance(),
            drain_time: default_drain_time(),
            rate_window: default_rate_window(),
            startup_time: default_startup_time(),
            forecast: true,
            max_wait: Duration::ZERO,
        }
    }
}

impl AdaptiveConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_positive("adaptive.target_per_agent", self.target_per_agent)?;
        check_positive("adaptive.target_utilization", self.target_utilization)?;
        check_unit("adaptive.target_utilization", self.target_utilization)?;
        check_unit("adaptive.tolerance", self.tolerance)?;
        if self.drain_time.is_zero() {
            return Err(invalid("adaptive.drain_time", "must be above zero"));
        }
        if self.rate_window < 1 {
            return Err(invalid("adaptive.rate_window", "must be at least 1"));
        }
        Ok(())
    }
}

/// Everything the pure engine needs to assess, decide and guard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineConfig {
    /// Health score weights and targets.
    pub health: HealthConfig,
    /// Agent and claim liveness.
    pub liveness: LivenessConfig,
    /// Policy choice and guards.
    pub auto: AutoConfig,
    /// Adaptive policy sizing.
    pub adaptive: AdaptiveConfig,
    /// Failure prediction limits.
    pub predict: PredictConfig,
    /// Which agents the fleet actuator can change.
    pub fleet_owns: Ownership,
}

/// Which agents the fleet actuator can change, and so which ones a scale
/// decision counts (as Kubernetes' HPA counts only the pods its target owns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ownership {
    /// Every agent (a deployment scaled by a command or a webhook, whose
    /// replicas are the agents).
    #[default]
    All,
    /// Only agents steward runs (its supervisor's workers): other agents in
    /// the directory share the load, but are neither scaled nor restarted.
    StewardManaged,
}

/// A metric's failure limit in config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// The value at which the metric means failure.
    pub value: f64,
    /// Failure is reaching it from below (memory, disk); false for metrics that fail by falling. Default true.
    #[serde(default = "default_true")]
    pub rising: bool,
}

/// The `cost:` section: what agents cost, for `steward cost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Price of an on-demand agent-hour. Default 0.10.
    #[serde(default = "default_on_demand")]
    pub on_demand_per_agent_hour: f64,
    /// Price of a spot (interruptible) agent-hour. Default 0.03.
    #[serde(default = "default_spot")]
    pub spot_per_agent_hour: f64,
    /// Price of an idle (scaled-to-standby) agent-hour. Default 0.01.
    #[serde(default = "default_idle")]
    pub idle_per_agent_hour: f64,
}

fn default_on_demand() -> f64 {
    0.10
}
fn default_spot() -> f64 {
    0.03
}
fn default_idle() -> f64 {
    0.01
}

impl Default for CostConfig {
    fn default() -> Self {
        Self { on_demand_per_agent_hour: default_on_demand(), spot_per_agent_hour: default_spot(), idle_per_agent_hour: default_idle() }
    }
}

impl CostConfig {
    /// Checks that every price is a number of zero or more.
    ///
    /// # Errors
    /// The first price that is not, naming its key.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (key, v) in [
            ("on_demand_per_agent_hour", self.on_demand_per_agent_hour),
            ("spot_per_agent_hour", self.spot_per_agent_hour),
            ("idle_per_agent_hour", self.idle_per_agent_hour),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(InvalidValue { key: format!("cost.{key}"), message: format!("must be a price of zero or more, got {v}") });
            }
        }
        Ok(())
    }
}

/// The `predict:` section: predictive maintenance from agent metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictConfig {
    /// Failure limits by metric name (an agent file's `metrics` object); a
    /// metric not listed is matched by the kind its name contains.
    /// Default: memory 95, disk 95, cpu 95, error_rate 0.05 (all rising).
    #[serde(default = "default_limits")]
    pub limits: std::collections::BTreeMap<String, LimitConfig>,
    /// A failure further away than this is not acted on. Default 7d.
    #[serde(default = "default_horizon", with = "duration")]
    pub horizon: Duration,
    /// Only this much recent history is fitted. Default 72h.
    #[serde(default = "default_window", with = "duration")]
    pub window: Duration,
    /// Turn predicted failures into decisions in the adaptive policy. Default true.
    #[serde(default = "default_true")]
    pub act: bool,
}

fn default_limits() -> std::collections::BTreeMap<String, LimitConfig> {
    [("memory", 95.0), ("disk", 95.0), ("cpu", 95.0), ("error_rate", 0.05)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), LimitConfig { value: v, rising: true }))
        .collect()
}
fn default_horizon() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_window() -> Duration {
    Duration::from_secs(72 * 3600)
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self { limits: default_limits(), horizon: default_horizon(), window: default_window(), act: true }
    }
}

impl PredictConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (name, l) in &self.limits {
            if !l.value.is_finite() {
                return Err(invalid(&format!("predict.limits.{name}"), "must be a finite number"));
            }
        }
        if self.horizon.is_zero() || self.window.is_zero() {
            return Err(invalid("predict.horizon", "horizon and window must be above zero"));
        }
        Ok(())
    }

    /// The maintenance model's config.
    pub fn maintenance(&self) -> crate::predict::maintenance::MaintenanceConfig {
        crate::predict::maintenance::MaintenanceConfig {
            limits: self
                .limits
                .iter()
                .map(|(k, l)| (k.clone(), crate::predict::maintenance::Limit { value: l.value, rising: l.rising }))
                .collect(),
            horizon_hours: self.horizon.as_secs_f64() / 3600.0,
            window_hours: self.window.as_secs_f64() / 3600.0,
        }
    }
}

/// Durations in config: a number of seconds, or text with a unit
/// (`500ms`, `30s`, `5m`, `2h`, `1d`). Written back as text in seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{de, Deserializer, Serializer};

    /// Parses `30`, `30s`, `1.5s`, `500ms`, `5m`, `2h`, `1d`.
    ///
    /// # Errors
    /// A sentence saying what was expected.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 2h)"))?;
        let scale = match unit.trim() {
            "" | "s" | "sec" | "secs" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            other => return Err(format!("unknown unit {other:?} in {text:?} (use ms, s, m, h or d)")),
        };
        from_secs(value * scale).ok_or_else(|| format!("{text:?} is out of range"))
    }

    fn from_secs(secs: f64) -> Option<Duration> {
        // 100 years is more than any interval or window means.
        (secs.is_finite() && (0.0..=3.2e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
    }

    /// Formats as seconds with an `s`, e.g. `300s` or `0.5s`.
    pub fn format(d: Duration) -> String {
        format!("{}s", d.as_secs_f64())
    }

    /// Serde serializer for `#[serde(with = "duration")]`.
    ///
    /// # Errors
    /// Only the serializer's own errors.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// Serde deserializer for `#[serde(with = "duration")]`.
    ///
    /// # Errors
    /// A value that is neither a non-negative number of seconds nor a duration text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration: seconds as a number, or text such as 30s, 5m, 2h")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                from_secs(v as f64).ok_or_else(|| E::custom(format!("{v} seconds is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                from_secs(v as f64).ok_or_else(|| E::custom(format!("{v} is not a duration (negative)")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                from_secs(v).ok_or_else(|| E::custom(format!("{v} is not a valid duration")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration::parse("30").unwrap(), Duration::from_secs(30));
        assert_eq!(duration::parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration::parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(duration::parse("5 fortnights").is_err());
        assert!(duration::parse("-3s").is_err());
        assert!(duration::parse("1e400").is_err());
    }

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        assert!(AutoConfig::default().validate().is_ok());
        assert!(HealthConfig::default().validate().is_ok());
        assert!(AdaptiveConfig::default().validate().is_ok());
        let auto = AutoConfig { min_agents: 5, max_agents: 2, ..AutoConfig::default() };
        assert_eq!(auto.validate().unwrap_err().key, "auto.min_agents");
        let auto = AutoConfig { min_confidence: 1.5, ..AutoConfig::default() };
        assert_eq!(auto.validate().unwrap_err().key, "auto.min_confidence");
    }
}
