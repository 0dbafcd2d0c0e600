//! The `classic` policy, row by row against spec/engine.md's table, plus the
//! float edges of the health formula and the missing directory.

use steward_core::config::EngineConfig;
use steward_core::health::HealthState;
use steward_core::history::History;
use steward_core::policy::Classic;
use steward_core::snapshot::{AgentRecord, Snapshot};

const NOW: i64 = 1_800_000_000_000;

fn snapshot(agents: u64, queue: u64, completed: u64, telemetry: u64) -> Snapshot {
    Snapshot {
        taken_at: NOW,
        target_exists: true,
        work_queue_size: queue,
        completed,
        telemetry_volume: telemetry,
        agents: (0..agents)
            .map(|i| AgentRecord {
                id: format!("agent_{i}"),
                file: format!("agent_{i}.json"),
                status: "active".into(),
                last_seen: Some(NOW - 1000),
                capacity: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// (type, priority, confidence, parameters as JSON)
type Expect<'a> = (&'a str, i32, f64, serde_json::Value);

fn check_snapshot(snap: &Snapshot, score: f64, state: HealthState, expect: &[Expect<'_>]) {
    let cfg = EngineConfig::default();
    let analysis = steward_core::analyze(snap, &History::default(), &cfg, &Classic, "c1", NOW);
    let m = &analysis.assessment.metrics;
    assert_eq!(m.health_score.to_bits(), score.to_bits(), "score {} != {score}", m.health_score);
    assert_eq!(m.health_state, state);
    let got: Vec<Expect<'_>> = analysis
        .decisions
        .iter()
        .map(|d| {
            let mut params = serde_json::to_value(&d.parameters).unwrap();
            params.as_object_mut().unwrap().remove("current_agents");
            (d.kind.as_str(), d.priority, d.confidence, params)
        })
        .collect();
    assert_eq!(got, expect);
    for d in &analysis.decisions {
        assert!(!d.rationale.is_empty() && d.rationale.ends_with('.'), "rationale is a sentence: {:?}", d.rationale);
    }
}

fn check(a: u64, q: u64, c: u64, t: u64, score: f64, state: HealthState, expect: &[Expect<'_>]) {
    check_snapshot(&snapshot(a, q, c, t), score, state, expect);
}

use serde_json::json;
use HealthState::*;

#[test]
fn critical_few_agents_scales_up_to_two() {
    check(0, 0, 0, 0, 0.2, Critical, &[("scale_up", 10, 0.95, json!({"target_agents": 2}))]);
    let mut s = 0.0 * 0.4;
    s += 1.0 / 5.0 * 0.3;
    s += (1.0 - 3.0 / 10.0) * 0.2;
    check(1, 3, 0, 0, s, Critical, &[("scale_up", 10, 0.95, json!({"target_agents": 2}))]);
}

#[test]
fn critical_long_queue_clears_old_work() {
    check(2, 20, 0, 0, 0.12, Critical, &[("coordination_improve", 9, 0.8, json!({"method": "clear_old_work", "max_age_hours": 2}))]);
}

#[test]
fn critical_both_rules_sorted_by_priority() {
    check(
        0,
        20,
        0,
        0,
        0.0,
        Critical,
        &[
            ("scale_up", 10, 0.95, json!({"target_agents": 2})),
            ("coordination_improve", 9, 0.8, json!({"method": "clear_old_work", "max_age_hours": 2})),
        ],
    );
}

#[test]
fn degraded_low_completion_adds_one_agent() {
    let score = 2.0 / 6.0 * 0.4 + 3.0 / 5.0 * 0.3 + (1.0 - 4.0 / 10.0) * 0.2;
    check(3, 4, 2, 0, score, Degraded, &[("scale_up", 7, 0.8, json!({"target_agents": 4}))]);
}

#[test]
fn degraded_queue_optimizes_distribution() {
    let score = 10.0 / 16.0 * 0.4 + 3.0 / 5.0 * 0.3 + (1.0 - 6.0 / 10.0) * 0.2;
    check(3, 6, 10, 0, score, Degraded, &[("coordination_improve", 6, 0.8, json!({"method": "optimize_distribution"}))]);
}

#[test]
fn degraded_both_rules() {
    let mut s = 2.0 / 10.0 * 0.4;
    s += 0.3;
    s += (1.0 - 8.0 / 10.0) * 0.2;
    check(
        5,
        8,
        2,
        0,
        s,
        Degraded,
        &[("scale_up", 7, 0.8, json!({"target_agents": 6})), ("coordination_improve", 6, 0.8, json!({"method": "optimize_distribution"}))],
    );
}

#[test]
fn healthy_low_completion_optimizes() {
    let mut s = 5.0 / 7.0 * 0.4;
    s += 0.3;
    s += (1.0 - 2.0 / 10.0) * 0.2;
    s += 0.1;
    check(5, 2, 5, 20, s, Healthy, &[("optimize", 4, 0.8, json!({"focus": "completion_rate"}))]);
}

#[test]
fn healthy_good_completion_does_nothing() {
    let mut s = 0.9 * 0.4;
    s += 0.3;
    s += (1.0 - 1.0 / 10.0) * 0.2;
    check(5, 1, 9, 0, s, Healthy, &[]);
}

#[test]
fn optimal_many_agents_scale_down_by_one() {
    let mut s = 20.0 / 21.0 * 0.4;
    s += 0.3;
    s += (1.0 - 1.0 / 10.0) * 0.2;
    s += 0.1;
    check(9, 1, 20, 20, s, Optimal, &[("scale_down", 2, 0.8, json!({"target_agents": 8}))]);
}

#[test]
fn optimal_idle_agents_scale_down_by_one() {
    let mut s = 0.4;
    s += 4.0 / 5.0 * 0.3;
    s += 0.2;
    s += 0.1;
    check(4, 0, 10, 20, s, Optimal, &[("scale_down", 2, 0.8, json!({"target_agents": 3}))]);
}

#[test]
fn optimal_little_telemetry_enhances_it() {
    let mut s = 0.4;
    s += 0.3;
    s += 0.2;
    s += 8.0 / 20.0 * 0.1;
    check(
        5,
        0,
        10,
        8,
        s,
        Optimal,
        &[("scale_down", 2, 0.8, json!({"target_agents": 4})), ("telemetry_enhance", 1, 0.8, json!({"action": "increase_sampling"}))],
    );
}

#[test]
fn optimal_with_nothing_to_do() {
    let mut s = 30.0 / 31.0 * 0.4;
    s += 0.3;
    s += (1.0 - 1.0 / 10.0) * 0.2;
    s += 0.1;
    check(5, 1, 30, 20, s, Optimal, &[]);
}

#[test]
fn float_edge_point_nine_is_healthy_not_optimal() {
    check(5, 0, 1, 0, 0.8999999999999999, Healthy, &[]);
}

#[test]
fn float_edge_point_six_is_degraded_not_healthy() {
    check(2, 3, 7, 12, 0.5999999999999999, Degraded, &[]);
}

#[test]
fn missing_directory_is_an_empty_critical_system() {
    let snap = Snapshot { taken_at: NOW, target_exists: false, ..Default::default() };
    check_snapshot(&snap, 0.2, Critical, &[("scale_up", 10, 0.95, json!({"target_agents": 2}))]);
}

#[test]
fn scale_decisions_carry_their_inverse() {
    let analysis = steward_core::analyze(&snapshot(4, 0, 10, 20), &History::default(), &EngineConfig::default(), &Classic, "c1", NOW);
    let d = &analysis.decisions[0];
    assert_eq!(serde_json::to_value(&d.action).unwrap(), json!({"kind": "scale", "from": 4, "to": 3}));
    assert_eq!(serde_json::to_value(&d.inverse).unwrap(), json!({"kind": "scale", "from": 3, "to": 4}));
    assert_eq!(d.id, "c1-01");
}
