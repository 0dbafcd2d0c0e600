//! The `adaptive` policy: load-proportional sizing with a tolerance band
//! and bounds, restarts, requeues, and confidence from the data.

use std::time::Duration;
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

/// As [`snap`], with `busy` claims in flight (by the first agents).
fn snap_busy(n_agents: u64, busy: u64, queue: u64, completed: u64) -> Snapshot {
    let mut s = snap(n_agents, queue, completed);
    s.claims = (0..busy)
        .map(|i| ClaimRecord { id: format!("w{i}"), claimed_by: Some(format!("a{i}")), claimed_at: Some(NOW - 1000), ..Default::default() })
        .collect();
    s
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
    steady_busy(n, step, rate, agents, agents, queue, completed_now)
}

/// As [`steady`], with `busy` items in flight at every cycle.
#[allow(clippy::too_many_arguments)]
fn steady_busy(n: i64, step: i64, rate: f64, agents: u64, busy: u64, queue: u64, completed_now: u64) -> History {
    let cycles = (1..=n)
        .rev()
        .map(|k| CycleSummary {
            ts: NOW - k * step * 1000,
            work_queue_size: queue,
            in_flight: busy,
            completed: completed_now - (rate * (k * step) as f64) as u64,
            failed: 0,
            active_agents: agents,
            recommended_agents: None,
        })
        .collect();
    History { cycles, ..Default::default() }
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
    // An idle window brings the fleet to min_agents.
    let idle = History {
        cycles: (1..=3)
            .map(|k| CycleSummary {
                ts: NOW - k * 30_000,
                work_queue_size: 0,
                in_flight: 0,
                completed: 0,
                failed: 0,
                active_agents: 4,
                recommended_agents: None,
            })
            .collect(),
        ..Default::default()
    };
    let a = run(&snap(4, 0, 0), &idle);
    assert_eq!(scale_of(&a).map(|s| (s.0, s.2)), Some((DecisionType::ScaleDown, 1)), "min_agents");
    // Without history, no scale-down on a guess.
    assert_eq!(scale_of(&run(&snap(4, 0, 0), &History::default())), None);
}

#[test]
fn littles_law_with_measured_rates() {
    // 2 arrivals/s finished by 4 always-busy agents: each finishes 0.5/s.
    // At target utilization 0.8: 2 / (0.5 * 0.8) = 5 agents.
    let h = steady(6, 30, 2.0, 4, 0, 10_000);
    let a = run(&snap_busy(4, 4, 0, 10_000), &h);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert_eq!(d.action, Action::Scale { from: 4, to: 5 }, "{}", d.rationale);
    let lambda = d.parameters["arrival_per_sec"].as_f64().unwrap();
    let mu = d.parameters["service_per_agent_sec"].as_f64().unwrap();
    assert!((lambda - 2.0).abs() < 0.05 && (mu - 0.5).abs() < 0.02, "λ={lambda} μ={mu}");
    assert!(d.rationale.contains("rates from 6 cycles"), "{}", d.rationale);
}

/// Regression (found running the demo): idle agents are not slow agents.
/// 8 agents finish 1 item/s but only one is ever busy: one agent serves
/// 1/s, so 1 / (1 * 0.8) → 2 agents, not 8 / 0.8.
#[test]
fn idle_agents_are_not_mistaken_for_slow_ones() {
    let h = steady_busy(6, 30, 1.0, 8, 1, 0, 10_000);
    let a = run(&snap_busy(8, 1, 0, 10_000), &h);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert_eq!(d.action, Action::Scale { from: 8, to: 2 }, "{}", d.rationale);
}

/// The acceptance scenario of the real-agents issue: a recorded sequence of
/// snapshots with a load step, fed through the policy and the guards as the
/// loop does. The fleet reaches its steady count within 3 cycles of the
/// step, and never reverses direction inside the stabilization window.
#[test]
fn a_load_step_is_met_within_three_cycles_without_reversal() {
    use steward_core::decision::OutcomeResult;
    use steward_core::guard::{self, GuardContext, Verdict};
    use steward_core::history::ActionRecord;

    let mut cfg = EngineConfig::default();
    cfg.auto.max_agents = 20;
    // The default max_step (4) alone would need four steps from 3 to 16;
    // here only scale_factor (double per step) limits the climb.
    cfg.auto.max_step = 16;
    let (dt, mu) = (30_i64, 1.0_f64); // a cycle every 30 s; an agent serves 1 item/s
    let mut agents = 3u32;
    let (mut queue, mut completed) = (0.0_f64, 10_000.0_f64);
    let mut history = History::default();
    let mut counts = Vec::new();
    for cycle in 0..14 {
        let now = NOW + cycle * dt * 1000;
        let lambda = if cycle < 5 { 2.0 } else { 12.0 };
        // Fluid model of the interval that just ended.
        let arrivals = lambda * dt as f64;
        let served = (queue + arrivals).min(f64::from(agents) * mu * dt as f64);
        queue += arrivals - served;
        completed += served;
        let busy = (served / dt as f64 / mu).round() as u64;
        let mut s = snap_busy(u64::from(agents), busy.min(u64::from(agents)), queue.round() as u64, completed.round() as u64);
        s.taken_at = now;
        for a in &mut s.agents {
            a.last_seen = Some(now - 1000);
        }
        for c in &mut s.claims {
            c.claimed_at = Some(now - 1000);
        }
        let analysis = steward_core::analyze(&s, &history, &cfg, &Adaptive, &format!("c{cycle}"), now);
        let cx = GuardContext {
            auto: &cfg.auto,
            history: &history,
            now,
            recommended_agents: analysis.recommended_agents,
            force_confidence: None,
            target_exists: true,
        };
        for g in guard::apply(analysis.decisions.clone(), &cx) {
            if let (Verdict::Execute, Action::Scale { from, to }) = (&g.verdict, &g.decision.action) {
                history.actions.push(ActionRecord {
                    ts: now,
                    kind: g.decision.kind.clone(),
                    result: OutcomeResult::Executed,
                    scale: Some((*from, *to)),
                });
                agents = *to;
            }
        }
        let mut summary = steward_core::policy::current_summary(&analysis.assessment);
        summary.recommended_agents = analysis.recommended_agents;
        history.cycles.push(summary);
        counts.push(agents);
    }
    // Steady state for 12/s at 1/s per agent and 80 % utilization: 15
    // agents, plus one while the backlog of the step drains.
    let steady = 15;
    assert_eq!(counts[..5], [3, 3, 3, 3, 3], "before the step: 2/s needs 3 agents ({counts:?})");
    let reached = counts.iter().skip(5).position(|&n| n >= steady).map(|i| i + 1);
    assert!(reached.is_some_and(|c| c <= 3), "steady count {steady} reached after {reached:?} cycles: {counts:?}");
    // No reversal: after the step, the count only rises, then holds.
    for w in counts[5..].windows(2) {
        assert!(w[1] >= w[0], "the fleet shrank while the load stayed high: {counts:?}");
    }
    assert!(counts[5..].iter().all(|&n| n <= 20));
}

/// Regression (review of the real-agents issue): right after a fleet starts
/// from zero, the empty cycle before it must not make each agent look
/// twice as fast. 4 agents at 2 s per item finish 14 items in 7 s: 0.5/s each.
#[test]
fn a_fleet_that_just_started_is_not_taken_for_a_fast_one() {
    let history = History {
        cycles: vec![CycleSummary {
            ts: NOW - 7000,
            work_queue_size: 42,
            in_flight: 0,
            completed: 0,
            failed: 0,
            active_agents: 0,
            recommended_agents: Some(4),
        }],
        ..Default::default()
    };
    let a = run(&snap_busy(4, 4, 24, 14), &history);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. }));
    if let Some(d) = d {
        let mu = d.parameters["service_per_agent_sec"].as_f64().unwrap();
        assert!((mu - 0.5).abs() < 0.01, "μ {mu}: {}", d.rationale);
    }
    // 24 queued to clear within drain_time (300 s) at 0.5/s per agent and
    // 80 % utilization: 24 / 300 / 0.4 = 0.2 → one agent is enough.
    let mut cfg = EngineConfig::default();
    cfg.adaptive.drain_time = Duration::from_secs(10);
    let a = steward_core::analyze(&snap_busy(4, 4, 24, 14), &history, &cfg, &Adaptive, "c", NOW);
    // With 10 s to clear it: 24 / 10 / 0.4 = 6 agents.
    assert_eq!(a.recommended_agents, Some(6));
}

#[test]
fn confidence_grows_with_history_and_drops_with_missing_data() {
    // 2/s arriving and finished by 2 agents (1/s each), 40 queued:
    // (2 + 40/300) / (1 * 0.8) = 2.67 → 3 agents.
    let s = snap_busy(2, 2, 40, 10_000);
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
    assert!(a.decisions[0].rationale.contains("sick reports failed") && a.decisions[0].rationale.contains("dead silent for 60 min"));
}

#[test]
fn deterministic_given_the_same_inputs() {
    let s = snap(3, 40, 100);
    let h = steady(4, 30, 2.0, 3, 40, 10_000);
    assert_eq!(run(&s, &h), run(&s, &h));
    assert_eq!(Adaptive.name(), "adaptive");
}

/// A history whose arrivals follow a daily-like cycle of `period` cycles:
/// low, with a burst of 10/s in the last three cycles of each period.
fn periodic(n: usize, period: usize, dt: i64) -> (History, u64) {
    let mut seen = 0u64;
    let mut cycles = Vec::new();
    for i in 0..n {
        let rate = if i % period >= period - 3 { 10.0 } else { 2.0 };
        seen += (rate * dt as f64) as u64;
        cycles.push(CycleSummary {
            ts: NOW - (n - i) as i64 * dt * 1000,
            work_queue_size: 0,
            in_flight: 2,
            completed: seen,
            failed: 0,
            active_agents: 3,
            recommended_agents: None,
        });
    }
    (History { cycles, ..Default::default() }, seen)
}

#[test]
fn the_forecast_scales_up_ahead_of_a_predicted_peak_and_never_down() {
    let (dt, period) = (60_i64, 12_usize);
    // Just before a burst: the last cycle of history is period - 4.
    let (history, seen) = periodic(period * 8 - 3, period, dt);
    let now_snapshot = snap_busy(3, 2, 0, seen + 2 * dt as u64);
    let sized = |forecast: bool, startup: u64| {
        let mut cfg = EngineConfig::default();
        cfg.adaptive.forecast = forecast;
        cfg.adaptive.startup_time = Duration::from_secs(startup);
        cfg.auto.max_agents = 50;
        let a = steward_core::analyze(&now_snapshot, &history, &cfg, &Adaptive, "c", NOW);
        (a.recommended_agents.unwrap(), a.decisions)
    };
    let (without, _) = sized(false, 180);
    let (ahead, decisions) = sized(true, 180);
    assert!(ahead > without, "a peak within startup_time adds capacity ahead: {without} -> {ahead}");
    let d = decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert!(d.rationale.contains("forecast peak"), "{}", d.rationale);
    // A lead time too short to reach the burst changes nothing...
    assert_eq!(sized(true, 30).0, without);
    // ...and in the middle of a burst, with a trough ahead, the forecast never lowers the need.
    let (history, seen) = periodic(period * 8 - 1, period, dt);
    let s = snap_busy(3, 2, 0, seen + 10 * dt as u64);
    let mut cfg = EngineConfig::default();
    cfg.auto.max_agents = 50;
    let on = steward_core::analyze(&s, &history, &cfg, &Adaptive, "c", NOW).recommended_agents;
    cfg.adaptive.forecast = false;
    assert_eq!(steward_core::analyze(&s, &history, &cfg, &Adaptive, "c", NOW).recommended_agents, on);
}

#[test]
fn a_predicted_memory_leak_becomes_a_restart_decision() {
    use steward_core::history::Sample;
    let mut s = snap(2, 0, 0);
    // agent a1 leaks: memory up 1 %/h from 50 %, 30 h of readings every 30
    // min, so it is near 80 % now and 95 % about 15 h from now.
    let samples: Vec<Sample> = (0..60)
        .map(|i| {
            let noise = [0.3, -0.2, 0.1, -0.4, 0.2][i % 5];
            Sample {
                ts: NOW - (60 - i as i64) * 1_800_000,
                component: "a1".into(),
                metric: "memory_percent".into(),
                value: 50.0 + i as f64 * 0.5 + noise,
            }
        })
        .chain((0..60).map(|i| Sample {
            ts: NOW - (60 - i as i64) * 1_800_000,
            component: "a0".into(),
            metric: "memory_percent".into(),
            value: 40.0 + [0.3, -0.2, 0.1][i % 3],
        }))
        .collect();
    s.agents[1].metrics.insert("memory_percent".into(), 80.0);
    let history = History { samples, ..Default::default() };
    let a = run(&s, &history);
    let restarts: Vec<_> = a.decisions.iter().filter(|d| d.kind == DecisionType::Restart).collect();
    assert_eq!(restarts.len(), 1, "{:#?}", a.decisions);
    let d = restarts[0];
    assert_eq!(d.action, Action::Restart { agents: vec!["a1".into()] });
    assert!(d.confidence > 0.7, "{}", d.confidence);
    let ttf = d.parameters["time_to_failure_hours"].as_f64().unwrap();
    assert!((14.0..=17.0).contains(&ttf), "{ttf}: {}", d.rationale);
    // With predict.act off, nothing is proposed.
    let mut cfg = EngineConfig::default();
    cfg.predict.act = false;
    let a = steward_core::analyze(&s, &history, &cfg, &Adaptive, "c", NOW);
    assert!(a.decisions.iter().all(|d| d.kind != DecisionType::Restart));
}

/// Issue 9: what dead writers leave (steward's own agent records silent
/// for long, temp files unchanged for long) becomes one tidy decision;
/// other agents' records, fresh files and `agent_ttl = 0` never do.
#[test]
fn leftovers_of_dead_writers_become_a_tidy_decision() {
    use steward_core::snapshot::TempFile;
    let mut s = snap(2, 0, 0);
    let stale = |id: &str, managed: bool| AgentRecord {
        id: id.into(),
        file: format!("agent_{id}.json"),
        status: "busy".into(),
        last_seen: Some(NOW - 3_600_000),
        capacity: 1,
        managed_by_steward: managed,
        ..Default::default()
    };
    s.agents.push(stale("w9", true));
    s.agents.push(stale("theirs", false));
    s.temp_files = vec![
        TempFile { name: ".steward-tmp-1-old".into(), modified: NOW - 3_600_000 },
        TempFile { name: ".steward-tmp-2-new".into(), modified: NOW - 1000 },
    ];
    let a = run(&s, &History::default());
    let tidy: Vec<&Action> = a.decisions.iter().map(|d| &d.action).filter(|x| matches!(x, Action::Tidy { .. })).collect();
    assert_eq!(tidy.len(), 1, "{:?}", a.decisions);
    let Action::Tidy { agent_files, temp_files, unchanged_since } = tidy[0] else { unreachable!("filtered to tidy") };
    assert_eq!(agent_files, &["agent_w9.json"]);
    assert_eq!(temp_files, &[".steward-tmp-1-old"]);
    assert!(*unchanged_since <= NOW - 600_000);

    let mut cfg = EngineConfig::default();
    cfg.liveness.agent_ttl = Duration::ZERO;
    let a = steward_core::analyze(&s, &History::default(), &cfg, &Adaptive, "c", NOW);
    let Some(Action::Tidy { agent_files, .. }) = a.decisions.iter().map(|d| &d.action).find(|x| matches!(x, Action::Tidy { .. })) else {
        panic!("the temp file is still tidied");
    };
    assert!(agent_files.is_empty(), "agent_ttl 0 counts every agent file as alive");
}

/// Issue 10: with 3 live agents that are not the supervisor's, a fleet
/// sized to 6 must start 3 of its own, not 6, and never restart theirs.
#[test]
fn only_the_fleets_own_agents_are_scaled_and_restarted() {
    use steward_core::config::Ownership;
    let mut cfg = EngineConfig { fleet_owns: Ownership::StewardManaged, ..EngineConfig::default() };
    cfg.adaptive.target_per_agent = 10.0;
    let mut s = snap(3, 60, 0);
    s.agents.push(AgentRecord {
        id: "theirs-dead".into(),
        status: "active".into(),
        last_seen: Some(NOW - 3_600_000),
        capacity: 1,
        ..Default::default()
    });
    let a = steward_core::analyze(&s, &History::default(), &cfg, &Adaptive, "c", NOW);
    let (kind, from, to, _) = scale_of(&a).expect("a scale-up");
    assert_eq!((kind, from, to), (DecisionType::ScaleUp, 0, 3), "{:?}", a.decisions);
    let d = a.decisions.iter().find(|d| matches!(d.action, Action::Scale { .. })).unwrap();
    assert!(d.rationale.contains("3 other agent(s)"), "{}", d.rationale);
    assert_eq!(a.recommended_agents, Some(3));
    assert!(!a.decisions.iter().any(|d| matches!(&d.action, Action::Restart { .. })), "not ours to restart: {:?}", a.decisions);

    // Every agent is the fleet's when a command or webhook scales it.
    let a = run(&s, &History::default());
    assert!(a.decisions.iter().any(|d| matches!(&d.action, Action::Restart { agents } if agents == &["theirs-dead"])));
}

/// The config of sizing for a wait: 300 s, agents start in 30 s, 30-s cycles.
fn wait_cfg() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.adaptive.max_wait = Duration::from_secs(300);
    cfg.auto.max_agents = 50;
    cfg
}

/// The scale decision under `wait_cfg` for a load of 0.3 items/s served
/// at 1/30 s per agent (9 agents' worth, all 9 busy), with `fleet` agents
/// and `queue` items waiting.
fn wait_decision(fleet: u64, queue: u64) -> Option<(u32, u32, String)> {
    let h = steady_busy(20, 30, 0.3, fleet, 9, queue, 100_000);
    let s = snap_busy(fleet, 9, queue, 100_000);
    let a = steward_core::analyze(&s, &h, &wait_cfg(), &Adaptive, "c", NOW);
    a.decisions.iter().find_map(|d| match d.action {
        Action::Scale { from, to } => Some((from, to, d.rationale.clone())),
        _ => None,
    })
}

#[test]
fn with_a_wait_target_idle_capacity_goes_and_the_queue_carries_the_load() {
    // 12 agents for 9 agents' worth, nothing queued: 8 will do, for the
    // queue grows by only 20 items in the next 10 minutes, and 8 agents
    // serve 40 in half of max_wait.
    let (from, to, why) = wait_decision(12, 0).unwrap();
    assert_eq!((from, to), (12, 8), "{why}");
    assert!(why.contains("keep the wait"), "{why}");
    // Without a wait target, the same numbers size for 80 % utilization:
    // 9 / 0.8 = 11.25, so the 12 stay.
    let h = steady_busy(20, 30, 0.3, 12, 9, 0, 100_000);
    let mut cfg = wait_cfg();
    cfg.adaptive.max_wait = Duration::ZERO;
    let a = steward_core::analyze(&snap_busy(12, 9, 0, 100_000), &h, &cfg, &Adaptive, "c", NOW);
    assert_eq!(scale_of(&a), None);
    assert_eq!(a.recommended_agents, Some(12));
}

#[test]
fn with_a_wait_target_a_queue_inside_the_band_changes_nothing() {
    // 9 agents, 30 queued: the wait stays under 85 % of max_wait until a
    // change could take effect, and 8 would let it grow past half of
    // max_wait within ten minutes.
    assert_eq!(wait_decision(9, 30), None);
}

#[test]
fn with_a_wait_target_a_queue_past_the_band_brings_enough_agents() {
    // 9 agents, 80 queued: past 85 % of max_wait. 10 would work it off
    // too slowly; 11 bring it under half of max_wait within ten minutes.
    let (from, to, why) = wait_decision(9, 80).unwrap();
    assert_eq!((from, to), (9, 11), "{why}");
    assert!(why.contains("would let the wait pass"), "{why}");
}
