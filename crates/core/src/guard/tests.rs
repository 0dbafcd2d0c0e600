use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::decision::{OutcomeResult, Proposal};
use crate::history::{ActionRecord, CycleSummary};

const NOW: UnixMs = 1_800_000_000_000;

fn scale(from: u32, to: u32, confidence: f64) -> Decision {
    let kind = if to > from { DecisionType::ScaleUp } else { DecisionType::ScaleDown };
    Proposal::scale(kind, 5, confidence, from, to, "test.").into_decision(format!("d-{from}-{to}"))
}

fn advisory(kind: DecisionType, confidence: f64) -> Decision {
    Proposal::new(kind, 1, confidence, Action::Advisory { note: String::new() }, "", "test.").into_decision("d-adv".into())
}

fn executed_scale(ts: UnixMs, from: u32, to: u32) -> ActionRecord {
    let kind = if to > from { DecisionType::ScaleUp } else { DecisionType::ScaleDown };
    ActionRecord { ts, kind, result: OutcomeResult::Executed, scale: Some((from, to)) }
}

fn run(decisions: Vec<Decision>, auto: &AutoConfig, history: &History, recommended: Option<u32>) -> Vec<Guarded> {
    let cx = GuardContext { auto, history, now: NOW, recommended_agents: recommended, force_confidence: None, target_exists: true };
    apply(decisions, &cx)
}

fn guard_of(g: &Guarded) -> Option<GuardKind> {
    match &g.verdict {
        Verdict::Execute => None,
        Verdict::Skip { guard, .. } => Some(*guard),
    }
}

fn target(g: &Guarded) -> u32 {
    match g.decision.action {
        Action::Scale { to, .. } => to,
        _ => panic!("not a scale"),
    }
}

#[test]
fn min_confidence_and_force_confidence() {
    let auto = AutoConfig::default();
    let out = run(vec![advisory(DecisionType::Optimize, 0.59), advisory(DecisionType::Optimize, 0.6)], &auto, &History::default(), None);
    assert_eq!(out.iter().map(guard_of).collect::<Vec<_>>(), [Some(GuardKind::MinConfidence), None]);

    let history = History::default();
    let cx = GuardContext {
        auto: &auto,
        history: &history,
        now: NOW,
        recommended_agents: None,
        force_confidence: Some(0.9),
        target_exists: true,
    };
    let out = apply(vec![advisory(DecisionType::Optimize, 0.1)], &cx);
    assert_eq!(guard_of(&out[0]), None);
    assert_eq!(out[0].decision.confidence, 0.9);
    assert!(out[0].notes[0].contains("forced"));
}

#[test]
fn max_decisions_counts_only_admitted() {
    let auto = AutoConfig { max_decisions: 2, ..AutoConfig::default() };
    let ds = vec![
        advisory(DecisionType::Optimize, 0.1),
        advisory(DecisionType::Optimize, 0.9),
        advisory(DecisionType::Optimize, 0.9),
        advisory(DecisionType::Optimize, 0.9),
    ];
    let out = run(ds, &auto, &History::default(), None);
    assert_eq!(out.iter().map(guard_of).collect::<Vec<_>>(), [Some(GuardKind::MinConfidence), None, None, Some(GuardKind::MaxDecisions)]);
}

#[test]
fn bounds_clamp_and_step() {
    let auto = AutoConfig { min_agents: 2, max_agents: 10, max_step: 3, ..AutoConfig::default() };
    let h = History::default();
    let out = run(vec![scale(4, 20, 0.9)], &auto, &h, None);
    assert_eq!((guard_of(&out[0]), target(&out[0])), (None, 7));
    assert_eq!(out[0].decision.inverse, Some(Action::Scale { from: 7, to: 4 }));
    assert_eq!(out[0].decision.parameters["target_agents"], 7);
    assert_eq!(out[0].notes.len(), 2, "{:?}", out[0].notes);
    // Already at the bound: nothing left to do.
    assert_eq!(guard_of(&run(vec![scale(10, 12, 0.9)], &auto, &h, None)[0]), Some(GuardKind::Bounds));
    // Above the max, a scale-up must not turn into a scale-down.
    assert_eq!(guard_of(&run(vec![scale(12, 13, 0.9)], &auto, &h, None)[0]), Some(GuardKind::Bounds));
    assert_eq!(guard_of(&run(vec![scale(2, 1, 0.9)], &auto, &h, None)[0]), Some(GuardKind::Bounds));
    let out = run(vec![scale(9, 0, 0.9)], &auto, &h, None);
    assert_eq!(target(&out[0]), 6);
}

#[test]
fn scale_up_cooldown_and_no_reversal() {
    let auto = AutoConfig::default();
    let h = History { actions: vec![executed_scale(NOW - 10_000, 2, 4)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![scale(4, 6, 0.9)], &auto, &h, None)[0]), Some(GuardKind::Cooldown));
    assert_eq!(guard_of(&run(vec![scale(4, 3, 0.9)], &auto, &h, Some(3))[0]), Some(GuardKind::Stabilization));
    let h = History { actions: vec![executed_scale(NOW - 31_000, 2, 4)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![scale(4, 6, 0.9)], &auto, &h, None)[0]), None);
    assert_eq!(guard_of(&run(vec![scale(4, 3, 0.9)], &auto, &h, Some(3))[0]), Some(GuardKind::Stabilization));
    let h = History { actions: vec![executed_scale(NOW - 301_000, 2, 4)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![scale(4, 3, 0.9)], &auto, &h, Some(3))[0]), None);
}

#[test]
fn scale_down_never_below_a_recent_recommendation() {
    let auto = AutoConfig::default();
    let cycle = |secs_ago: i64, rec: u32| CycleSummary {
        ts: NOW - secs_ago * 1000,
        work_queue_size: 0,
        in_flight: 0,
        completed: 0,
        failed: 0,
        active_agents: 8,
        recommended_agents: Some(rec),
    };
    let h = History { cycles: vec![cycle(400, 8), cycle(200, 5), cycle(100, 3)], ..Default::default() };
    let out = run(vec![scale(8, 2, 0.9)], &auto, &h, Some(2));
    assert_eq!((guard_of(&out[0]), target(&out[0])), (None, 5));
    let h = History { cycles: vec![cycle(100, 8)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![scale(8, 2, 0.9)], &auto, &h, Some(2))[0]), Some(GuardKind::Stabilization));
}

#[test]
fn one_scale_per_cycle() {
    let auto = AutoConfig::default();
    let out = run(vec![scale(2, 4, 0.9), scale(2, 5, 0.9)], &auto, &History::default(), None);
    assert_eq!(out.iter().map(guard_of).collect::<Vec<_>>(), [None, Some(GuardKind::Conflict)]);
}

#[test]
fn circuit_breaker_opens_after_consecutive_failures_and_half_opens() {
    let auto = AutoConfig::default();
    let fail =
        |secs_ago: i64| ActionRecord { ts: NOW - secs_ago * 1000, kind: DecisionType::Restart, result: OutcomeResult::Failed, scale: None };
    let skipped = ActionRecord { ts: NOW - 5000, kind: DecisionType::Restart, result: OutcomeResult::Skipped, scale: None };
    let d = || advisory(DecisionType::Restart, 0.9);
    let h = History { actions: vec![fail(30), fail(20), fail(10), skipped.clone()], ..Default::default() };
    assert_eq!(guard_of(&run(vec![d()], &auto, &h, None)[0]), Some(GuardKind::CircuitBreaker));
    // Another type is not affected.
    assert_eq!(guard_of(&run(vec![advisory(DecisionType::Optimize, 0.9)], &auto, &h, None)[0]), None);
    // Two failures do not open it; a success resets it.
    let h = History { actions: vec![fail(30), fail(20)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![d()], &auto, &h, None)[0]), None);
    let ok = ActionRecord { ts: NOW - 15_000, kind: DecisionType::Restart, result: OutcomeResult::Executed, scale: None };
    let h = History { actions: vec![fail(30), fail(25), ok, fail(10), fail(5)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![d()], &auto, &h, None)[0]), None);
    // After the cooldown one attempt goes through.
    let h = History { actions: vec![fail(330), fail(320), fail(310)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![d()], &auto, &h, None)[0]), None);
}

#[test]
fn dry_run_skips_what_would_run_and_reports_other_guards_first() {
    let auto = AutoConfig { dry_run: true, ..AutoConfig::default() };
    let out = run(vec![advisory(DecisionType::Optimize, 0.9), advisory(DecisionType::Optimize, 0.1)], &auto, &History::default(), None);
    assert_eq!(out.iter().map(guard_of).collect::<Vec<_>>(), [Some(GuardKind::DryRun), Some(GuardKind::MinConfidence)]);
}

fn arb_decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        (0u32..30, 0u32..30, 0.0f64..1.0).prop_map(|(f, t, c)| scale(f, t, c)),
        (0.0f64..1.0).prop_map(|c| advisory(DecisionType::Optimize, c)),
        (0.0f64..1.0).prop_map(|c| advisory(DecisionType::Restart, c)),
    ]
}

proptest! {
    #[test]
    fn guards_respect_caps_and_bounds(
        decisions in prop::collection::vec(arb_decision(), 0..12),
        max_decisions in 0u32..5,
        min_agents in 0u32..6,
        span in 0u32..10,
        max_step in 1u32..6,
    ) {
        let auto = AutoConfig { max_decisions, min_agents, max_agents: min_agents + span, max_step, ..AutoConfig::default() };
        let out = run(decisions, &auto, &History::default(), None);
        let executed: Vec<&Guarded> = out.iter().filter(|g| g.verdict == Verdict::Execute).collect();
        prop_assert!(executed.len() as u32 <= max_decisions);
        prop_assert!(executed.iter().filter(|g| matches!(g.decision.action, Action::Scale { .. })).count() <= 1, "more than one scale executed");
        for g in executed {
            if let Action::Scale { from, to } = g.decision.action {
                prop_assert!(to >= auto.min_agents && to <= auto.max_agents, "{from} -> {to}");
                prop_assert!(to != from);
                // max_step holds unless the fleet starts outside the bounds,
                // in which case the move goes no further than the nearest bound.
                let inside = from >= auto.min_agents && from <= auto.max_agents;
                let nearest = from.clamp(auto.min_agents, auto.max_agents);
                prop_assert!(to.abs_diff(from) <= max_step || (!inside && to == nearest), "{from} -> {to} step {max_step}");
                prop_assert_eq!(g.decision.inverse.clone(), Some(Action::Scale { from: to, to: from }));
            }
        }
    }

    /// Drive the guards through a random sequence of recommendations over
    /// time, execute what they allow, and check that no scale-down follows a
    /// scale-up inside the window and no scale-down goes below a
    /// recommendation made inside the window.
    #[test]
    fn no_scale_reversal_inside_the_stabilization_window(
        steps in prop::collection::vec((1u32..15, 5i64..120), 1..60),
    ) {
        let auto = AutoConfig { min_agents: 1, max_agents: 14, ..AutoConfig::default() };
        let window = auto.scale_down_window.as_millis() as i64;
        let mut history = History::default();
        let mut agents = 3u32;
        let mut now = NOW;
        for (desired, dt) in steps {
            now += dt * 1000;
            let ds = if desired == agents { vec![] } else { vec![scale(agents, desired, 0.9)] };
            let cx = GuardContext { auto: &auto, history: &history, now, recommended_agents: Some(desired), force_confidence: None, target_exists: true };
            for g in apply(ds, &cx) {
                if g.verdict != Verdict::Execute { continue; }
                if let Action::Scale { from, to } = g.decision.action {
                    if to < from {
                        if let Some(up) = history.last_scale(true) {
                            prop_assert!(now - up >= window, "scale-down {from}->{to} {} s after a scale-up", (now - up) / 1000);
                        }
                        let floor = history.cycles.iter().filter(|c| now - c.ts < window).filter_map(|c| c.recommended_agents).max().unwrap_or(0);
                        prop_assert!(to >= floor);
                    }
                    history.actions.push(executed_scale(now, from, to));
                    agents = to;
                }
            }
            history.cycles.push(CycleSummary { ts: now, work_queue_size: 0, in_flight: 0, completed: 0, failed: 0, active_agents: u64::from(agents), recommended_agents: Some(desired) });
        }
    }
}

#[test]
fn cooldown_durations_come_from_config() {
    let auto = AutoConfig { scale_up_cooldown: Duration::from_secs(5), ..AutoConfig::default() };
    let h = History { actions: vec![executed_scale(NOW - 10_000, 2, 4)], ..Default::default() };
    assert_eq!(guard_of(&run(vec![scale(4, 6, 0.9)], &auto, &h, None)[0]), None);
}

/// Issue 10: a target that is gone (an unmounted volume under a running
/// daemon) has every decision skipped, naming why.
#[test]
fn nothing_is_acted_on_while_the_target_is_gone() {
    let auto = AutoConfig::default();
    let history = History::default();
    let cx =
        GuardContext { auto: &auto, history: &history, now: NOW, recommended_agents: None, force_confidence: None, target_exists: false };
    let out = apply(vec![scale(1, 2, 0.99)], &cx);
    assert!(matches!(&out[0].verdict, Verdict::Skip { guard: GuardKind::Target, .. }), "{:?}", out[0].verdict);
}
