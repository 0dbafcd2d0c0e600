use steward_core::decision::Proposal;
use steward_core::health::HealthState;

use super::*;

fn metrics(queue: u64, completed: u64, agents: u64) -> Metrics {
    Metrics {
        completion_rate: 0.5,
        active_agents: agents,
        work_queue_size: queue,
        telemetry_volume: 0,
        health_score: 0.5,
        health_state: HealthState::Degraded,
        in_flight: 1,
        stale_claims: 0,
        completed,
        failed: 0,
        total_agents: agents,
        error_rate: None,
        response_time_ms: None,
    }
}

fn cycle(j: &Journal, id: &str, ts: i64, m: &Metrics, rec: Option<u32>) {
    j.record_cycle(&CycleStart { id, ts, policy: "adaptive", dry_run: false, metrics: m, recommended_agents: rec, warnings: 0 }).unwrap();
}

#[test]
fn decisions_outcomes_and_history_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::open(&tmp.path().join(JOURNAL_FILE)).unwrap();
    cycle(&j, "c1", 1000, &metrics(10, 0, 2), Some(4));
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 2, 4, "why.").into_decision("c1-01".into());
    let exec = VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &["target 5 clamped".to_owned()] };
    j.record_decision("c1", 1000, &d, &exec).unwrap();
    // Decided but not yet acted on: no outcome.
    assert!(j.decision("c1-01").unwrap().unwrap().outcome.is_none());
    j.record_outcome("c1-01", 1500, &Outcome { result: OutcomeResult::Executed, reason: "ok".into(), duration_ms: 3 }).unwrap();
    j.finish_cycle("c1", 1600).unwrap();

    cycle(&j, "c2", 61_000, &metrics(5, 8, 4), Some(4));
    let d2 = Proposal::new(DecisionType::Restart, 9, 0.9, Action::Restart { agents: vec!["a".into()] }, "r", "why.")
        .into_decision("c2-01".into());
    j.record_decision(
        "c2",
        61_000,
        &d2,
        &VerdictRecord { verdict: "skip", guard: Some("min_confidence"), reason: Some("low"), notes: &[] },
    )
    .unwrap();
    j.record_outcome("c2-01", 61_000, &Outcome { result: OutcomeResult::Failed, reason: "boom".into(), duration_ms: 0 }).unwrap();

    let e = j.decision("c1-01").unwrap().unwrap();
    assert_eq!(e.decision, d);
    assert_eq!(e.notes, ["target 5 clamped"]);
    assert_eq!(e.outcome.as_ref().unwrap().result, OutcomeResult::Executed);

    let recent = j.recent_decisions(10).unwrap();
    assert_eq!(recent.iter().map(|e| e.decision.id.as_str()).collect::<Vec<_>>(), ["c2-01", "c1-01"]);
    assert_eq!(recent[0].guard.as_deref(), Some("min_confidence"));

    let h = j.history(100_000, 10, 3_600_000).unwrap();
    assert_eq!(h.cycles.iter().map(|c| c.ts).collect::<Vec<_>>(), [1000, 61_000]);
    assert_eq!(h.cycles[1].completed, 8);
    assert_eq!(h.actions.len(), 2);
    assert_eq!(h.actions[0].scale, Some((2, 4)));
    assert_eq!(h.last_scale(true), Some(1500));
    assert_eq!(h.failure_streak(&DecisionType::Restart), (1, Some(61_000)));
    // The cycle limit keeps the newest.
    assert_eq!(j.history(100_000, 1, 0).unwrap().cycles[0].ts, 61_000);
    j.integrity_check().unwrap();
    assert_eq!(j.cycle_count().unwrap(), 2);
}

#[test]
fn read_only_open_never_creates_state() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(JOURNAL_FILE);
    assert!(Journal::open_existing(&path).unwrap().is_none());
    assert!(!path.exists());
    Journal::open(&path).unwrap();
    assert!(Journal::open_existing(&path).unwrap().is_some());
}

#[test]
fn a_newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(JOURNAL_FILE);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    assert!(matches!(Journal::open(&path), Err(JournalError::TooNew { found: 99, .. })));
    assert!(matches!(Journal::open_existing(&path), Err(JournalError::TooNew { .. })));
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(JOURNAL_FILE);
    std::fs::write(&path, "this is not sqlite, just text long enough to have a header page ........................................")
        .unwrap();
    assert!(Journal::open(&path).is_err());
}

#[test]
fn events_are_kept_in_order_and_a_v1_journal_gains_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(JOURNAL_FILE);
    {
        // A journal as schema 1 left it.
        let c = Connection::open(&path).unwrap();
        let v1 = SCHEMA.split("CREATE TABLE IF NOT EXISTS events").next().unwrap();
        c.execute_batch(&format!("{v1} PRAGMA user_version = 1;")).unwrap();
    }
    let j = Journal::open(&path).unwrap();
    j.record_event(1, "started", "agent_1", "pid 42", None).unwrap();
    j.record_event(2, "crashed", "agent_1", "SIGKILL", Some("d1")).unwrap();
    let e = j.recent_events(10).unwrap();
    assert_eq!(e.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["crashed", "started"]);
    assert_eq!(e[0].decision_id.as_deref(), Some("d1"));
}

#[test]
fn samples_come_back_in_order_within_the_window_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&tmp.path().join(JOURNAL_FILE)).unwrap();
    let s = |ts: i64, v: f64| Sample { ts, component: "agent_1".into(), metric: "memory_percent".into(), value: v };
    j.record_samples(&[s(1000, 50.0), s(2000, 51.0), s(3000, 52.0), s(4000, 53.0)]).unwrap();
    let got = j.samples(2000, 10).unwrap();
    assert_eq!(got.iter().map(|x| x.ts).collect::<Vec<_>>(), [2000, 3000, 4000]);
    let newest = j.samples(0, 2).unwrap();
    assert_eq!(newest.iter().map(|x| x.value).collect::<Vec<_>>(), [52.0, 53.0]);
}
