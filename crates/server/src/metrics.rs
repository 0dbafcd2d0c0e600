//! Prometheus exposition with the names of spec/observability.md.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use steward_core::assess::Metrics as CycleMetrics;
use steward_core::health::HealthState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    r#type: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatasetLabel {
    dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// The daemon's metrics, updated after every cycle, encoded on scrape.
pub struct Metrics {
    registry: Registry,
    health_score: Gauge<f64, AtomicU64>,
    health_state: Family<StateLabel, Gauge>,
    active_agents: Gauge,
    work_queue_size: Gauge,
    in_flight: Gauge,
    completion_rate: Gauge<f64, AtomicU64>,
    telemetry_volume: Gauge,
    decisions: Family<DecisionLabels, Counter>,
    cycle_duration: Histogram,
    cycles: Counter,
    tasks: Family<PriorityLabel, Gauge>,
    coverage: Family<DatasetLabel, Gauge<f64, AtomicU64>>,
    gaps: Family<DatasetLabel, Gauge>,
    incidents_open: Family<SeverityLabel, Gauge>,
    leader: Gauge,
    /// Told after every cycle (the dashboard's `/events` listen).
    cycle_done: tokio::sync::broadcast::Sender<()>,
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric of the spec, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let m = Self {
            health_score: Gauge::default(),
            health_state: Family::default(),
            active_agents: Gauge::default(),
            work_queue_size: Gauge::default(),
            in_flight: Gauge::default(),
            completion_rate: Gauge::default(),
            telemetry_volume: Gauge::default(),
            decisions: Family::default(),
            cycle_duration: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            cycles: Counter::default(),
            tasks: Family::default(),
            coverage: Family::default(),
            gaps: Family::default(),
            incidents_open: Family::default(),
            leader: Gauge::default(),
            cycle_done: tokio::sync::broadcast::channel(16).0,
            registry: Registry::default(),
        };
        registry.register("health_score", "Health score of the last cycle, 0 to 1", m.health_score.clone());
        registry.register("health_state", "1 for the health state of the last cycle, 0 for the others", m.health_state.clone());
        registry.register("active_agents", "Agents alive and not failed or stopped", m.active_agents.clone());
        registry.register("work_queue_size", "Pending work items", m.work_queue_size.clone());
        registry.register("in_flight", "Claimed work items", m.in_flight.clone());
        registry.register("completion_rate", "Completed / (queued + completed)", m.completion_rate.clone());
        registry.register("telemetry_volume", "Telemetry records", m.telemetry_volume.clone());
        registry.register("decisions", "Decisions by type and result (executed, failed, skipped)", m.decisions.clone());
        registry.register("cycle_duration_seconds", "Time one cycle took", m.cycle_duration.clone());
        registry.register("cycles", "Cycles run", m.cycles.clone());
        registry.register("tasks", "Queued reconciliation tasks by priority", m.tasks.clone());
        registry.register("coverage", "Share of a dataset's expected keys present and valid, 0 to 1", m.coverage.clone());
        registry.register("gaps", "A dataset's open gaps (missing, truncated or stale keys)", m.gaps.clone());
        registry.register("incidents_open", "Open incidents by severity", m.incidents_open.clone());
        registry.register("leader", "1 while this replica holds the HA lease (or runs without HA), 0 on a standby", m.leader.clone());
        m.leader.set(1);
        let build: Family<VersionLabel, Gauge> = Family::default();
        build.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("build_info", "Build information (always 1)", build);
        for p in ["critical", "high", "medium", "low"] {
            m.tasks.get_or_create(&PriorityLabel { priority: p.into() }).set(0);
        }
        for s in ["1", "2", "3"] {
            m.incidents_open.get_or_create(&SeverityLabel { severity: s.into() }).set(0);
        }
        Self { registry, ..m }
    }

    /// Records the task queue: open tasks (queued or running) by priority.
    pub fn observe_tasks(&self, by_priority: &[(&str, u64)]) {
        for (p, n) in by_priority {
            self.tasks.get_or_create(&PriorityLabel { priority: (*p).into() }).set(as_i64(*n));
        }
    }

    /// A receiver told after every cycle.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.cycle_done.subscribe()
    }

    /// Records whether this replica leads (HA).
    pub fn observe_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records open incidents by severity 1, 2, 3.
    pub fn observe_incidents(&self, open: [u64; 3]) {
        for (i, n) in open.iter().enumerate() {
            self.incidents_open.get_or_create(&SeverityLabel { severity: (i + 1).to_string() }).set(as_i64(*n));
        }
    }

    /// Records a reconciliation: each dataset's coverage and open gaps.
    pub fn observe_coverage(&self, datasets: &[(String, f64, u64)]) {
        for (name, ratio, gaps) in datasets {
            self.coverage.get_or_create(&DatasetLabel { dataset: name.clone() }).set(*ratio);
            self.gaps.get_or_create(&DatasetLabel { dataset: name.clone() }).set(as_i64(*gaps));
        }
    }

    /// Records a finished cycle: its metrics, each decision's (type,
    /// result), and how long it took.
    pub fn observe_cycle(&self, metrics: &CycleMetrics, decisions: &[(String, String)], duration_secs: f64) {
        // Nobody listening is fine.
        let _ = self.cycle_done.send(());
        self.health_score.set(metrics.health_score);
        for state in HealthState::ALL {
            self.health_state.get_or_create(&StateLabel { state: state.as_str().into() }).set(i64::from(state == metrics.health_state));
        }
        self.active_agents.set(as_i64(metrics.active_agents));
        self.work_queue_size.set(as_i64(metrics.work_queue_size));
        self.in_flight.set(as_i64(metrics.in_flight));
        self.completion_rate.set(metrics.completion_rate);
        self.telemetry_volume.set(as_i64(metrics.telemetry_volume));
        for (kind, result) in decisions {
            self.decisions.get_or_create(&DecisionLabels { r#type: kind.clone(), result: result.clone() }).inc();
        }
        self.cycle_duration.observe(duration_secs);
        self.cycles.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_spec_names_with_values() {
        let m = Metrics::new();
        let cm = CycleMetrics {
            completion_rate: 0.5,
            active_agents: 3,
            work_queue_size: 7,
            telemetry_volume: 2,
            health_score: 0.62,
            health_state: HealthState::Healthy,
            in_flight: 1,
            stale_claims: 0,
            completed: 7,
            failed: 0,
            total_agents: 3,
            error_rate: None,
            response_time_ms: None,
        };
        m.observe_cycle(&cm, &[("scale_up".into(), "executed".into()), ("restart".into(), "skipped".into())], 0.004);
        let text = m.encode();
        for line in [
            "steward_health_score 0.62",
            "steward_health_state{state=\"healthy\"} 1",
            "steward_health_state{state=\"critical\"} 0",
            "steward_active_agents 3",
            "steward_work_queue_size 7",
            "steward_in_flight 1",
            "steward_completion_rate 0.5",
            "steward_telemetry_volume 2",
            "steward_decisions_total{type=\"scale_up\",result=\"executed\"} 1",
            "steward_cycles_total 1",
            "steward_tasks{priority=\"critical\"} 0",
            "steward_incidents_open{severity=\"1\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("steward_cycle_duration_seconds_count 1"), "{text}");
        assert!(text.contains("steward_build_info{version="), "{text}");
    }
}
