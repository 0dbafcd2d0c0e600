//! The `adaptive` policy: load-proportional sizing with a tolerance band
//! and bounds, restarts, requeues, and confidence from the data.

use steward_core::config::EngineConfig;
use steward_core::decision::{Action, DecisionType};
use steward_core::history::{CycleSummary, History};
use steward_core::policy::{Adaptive, Policy};
use steward_core::snapshot::{AgentRecord, ClaimRecord, Snapshot, SourceWarning};
use steward_core::Analysis;

const NOW: i64 = 1_800_000_000_000;

fn agents(n: u64) -> Vec<AgentRecord> {
    (0..n)
        .map(|i| AgentRecord {
            id: format!("a{i}"),
            status: "active".into(),
            last_seen: Some(NOW - 1000),
            capacity: 1,
            ..Default::default()
        })
        .collect()
}

fn snap(n_agents: u64, queue: u64, completed: u64) -> Snapshot {
    Snapshot { taken_at: NOW, target_exists: true, work_queue_size: queue, completed, agents: agents(n_agents), ..Default::default() }
}

fn run(s: &Snapshot, h: &History) -> Analysis {
    steward_core::analyze(s, h, &EngineConfig::default(), &Adaptive, "c", NOW)
}

fn scale_of(a: &Analysis) -> Option<(DecisionType, u32, u32, f64)> {
    a.decisions.iter().find_map(|d| match d.action {
        Action::Scale { from, to } => Some((d.kind.clone(), from, to, d.confidence)),
        _ => None,
    })
}

/// A history of `n` cycles, `step` seconds apart, ending one step before
/// NOW, with a constant queue and fleet and `rate` completions per second
/// (so arrivals run at `rate` too), leading up to `completed_now`.
fn steady(n: i64, step: i64, rate: f64, agents: u64, queue: u64, completed_now: u64) -> History {
    let cycles = (1..=n)
        .rev()
        .map(|k| CycleSummary {
            ts: NOW - k * step * 1000,
            work_queue_size: queue,
            in_flight: 0,
            completed: completed_now - (rate * (k * step) as f64) as u64,
            failed: 0,
            active_agents: agents,
            recommended_agents: None,
        })
        .collect();
    History { cycles, actions: vec![] }
}

#[test]
fn backlog_sizing_without_a_measured_rate() {
    // 12 queued at 5 per agent need 3; from 1 agent that is up.
    let a = run(&snap(1, 12, 0), &History::default());
    let (kind, from, to, conf) = scale_of(&a).unwrap();
    assert_eq!((kind, from, to), (DecisionType::ScaleUp, 1, 2), "scale_factor 2 caps one step at double");
    assert!((0.6..=0.75).contains(&conf), "backlog-only estimates are modestly confident: {conf}");
    assert_eq!(a.recommended_agents, Some(2));
}

#[test]
fn from_zero_agents_it_starts_what_the_backlog_needs() {
    let a = run(&snap(0, 12, 0), &History::default());
    assert_eq!(scale_of(&a).map(|s| (s.1, s.2)), Some((0, 3)));
}

#[test]
fn small_changes_inside_the_tolerance_band_are_no_change() {
    // 10 agents, 52 queued → 10.4 → 11 desired: ratio 1.1, inside 0.1.
    assert_eq!(scale_of(&run(&snap(10, 52, 0), &History::default())), None);
    // 56 queued → 12 desired: ratio 1.2, outside.
    let mut cfg = EngineConfig::default();
    cfg.auto.max_agents = 20;
    let a = steward_core::analyze(&snap(10, 56, 0), &History::default(), &cfg, &Adaptive, "c", NOW);
    assert_eq!(scale_of(&a).map(|s| s.2), Some(12));
}

#[test]
fn bounds_hold_in_the_recommendation() {
    let a = run(&snap(8, 10_000, 0), &History::default());
    assert_eq!(scale_of(&a).map(|s| s.2), Some(10), "max_agents");
    let a = run(&snap(4, 0, 0), &History::default());
    assert_eq!(scale_of(&a).map(|s| (s.0, s.2)), Some((DecisionType::ScaleDown, 1)), "min_agents");
}

#[test]
fn littles_law_with_measured_rates() {
    // 2 arrivals/s, each agent finishes 0.5/s, target utilization 0.8:
    // 2 / (0.5 * 0.8) = 5 agents, with an empty queue.
    let h = steady(6, 30, 2.0, 4, 0, 10_000);
    let a = run(&snap(4, 0, 10_000), &h);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert_eq!(d.action, Action::Scale { from: 4, to: 5 }, "{}", d.rationale);
    let lambda = d.parameters["arrival_per_sec"].as_f64().unwrap();
    let mu = d.parameters["service_per_agent_sec"].as_f64().unwrap();
    assert!((lambda - 2.0).abs() < 0.05 && (mu - 0.5).abs() < 0.02, "λ={lambda} μ={mu}");
    assert!(d.rationale.contains("rates from 6 cycles"), "{}", d.rationale);
}

#[test]
fn confidence_grows_with_history_and_drops_with_missing_data() {
    // 2/s arriving and finished by 2 agents (1/s each), 40 queued:
    // (2 + 40/300) / (1 * 0.8) = 2.67 → 3 agents.
    let s = snap(2, 40, 10_000);
    let conf = |h: &History, s: &Snapshot| scale_of(&run(s, h)).unwrap().3;
    let none = conf(&History::default(), &s);
    let two = conf(&steady(2, 30, 2.0, 2, 40, 10_000), &s);
    let six = conf(&steady(6, 30, 2.0, 2, 40, 10_000), &s);
    assert!(none < two && two < six, "{none} < {two} < {six}");
    let mut broken = s.clone();
    broken.warnings.push(SourceWarning { file: "agent_x.json".into(), reason: "malformed".into() });
    assert!(conf(&steady(6, 30, 2.0, 2, 40, 10_000), &broken) < six);
    assert_eq!(scale_of(&run(&s, &steady(6, 30, 2.0, 2, 40, 10_000))).map(|x| x.2), Some(3));
}

#[test]
fn counters_that_go_backwards_fall_back_to_the_backlog() {
    // Someone archived completed records: no rate can be trusted.
    let h = steady(6, 30, 2.0, 4, 0, 10_000);
    let a = run(&snap(4, 30, 5), &h);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert!(d.rationale.contains("no service rate measured yet"), "{}", d.rationale);
    assert_eq!(d.action, Action::Scale { from: 4, to: 6 });
}

#[test]
fn restarts_failed_and_silent_agents_and_requeues_their_claims() {
    let mut s = snap(2, 0, 0);
    s.agents.push(AgentRecord { id: "dead".into(), status: "active".into(), last_seen: Some(NOW - 3_600_000), ..Default::default() });
    s.agents.push(AgentRecord { id: "sick".into(), status: "failed".into(), last_seen: Some(NOW), ..Default::default() });
    s.agents.push(AgentRecord { id: "done".into(), status: "stopped".into(), last_seen: Some(NOW - 3_600_000), ..Default::default() });
    s.claims.push(ClaimRecord { id: "w1".into(), claimed_by: Some("dead".into()), claimed_at: Some(NOW - 5000), ..Default::default() });
    let a = run(&s, &History::default());
    let kinds: Vec<&str> = a.decisions.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds[..2], ["restart", "coordination_improve"]);
    assert_eq!(a.decisions[0].action, Action::Restart { agents: vec!["dead".into(), "sick".into()] });
    assert_eq!(a.decisions[1].action, Action::RequeueClaims { items: vec!["w1".into()] });
    assert!(a.decisions[0].rationale.contains("sick reports failed") && a.decisions[0].rationale.contains("dead silent for 3600 s"));
}

#[test]
fn deterministic_given_the_same_inputs() {
    let s = snap(3, 40, 100);
    let h = steady(4, 30, 2.0, 3, 40, 10_000);
    assert_eq!(run(&s, &h), run(&s, &h));
    assert_eq!(Adaptive.name(), "adaptive");
}
