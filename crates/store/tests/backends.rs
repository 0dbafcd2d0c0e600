//! One journal suite, two databases: every test here runs once on the
//! embedded SQLite journal and once on a PostgreSQL journal (a real server,
//! Debian's package, started once for this test binary by the harness that
//! scripts/test installs for). What differs between them (SQL dialect,
//! types, identity keys, one writer at a time) must not show.

#[path = "../../queue/tests/support/servers.rs"]
mod servers;
#[macro_use]
#[path = "support/journal_backends.rs"]
mod journal_backends;
use journal_backends::{fresh_journal, Backend};

use serde_json::json;
use steward_core::assess::Metrics;
use steward_core::decision::{Action, DecisionType, Outcome, OutcomeResult, Proposal};
use steward_core::health::HealthState;
use steward_core::history::Sample;
use steward_core::incident::{IncidentConfig, Phase, Signal};
use steward_core::reconcile::{GapKind, Priority};
use steward_store::audit::{AuditKey, NewRecord};
use steward_store::{CycleAction, CycleStart, Journal, JournalAt, JournalError, NewTask, TaskOutcome, TaskState, VerdictRecord};

const KEY: [u8; 32] = [5; 32];

/// A fresh, empty journal location of one backend (its own file, or its
/// own schema on the shared server), kept alive by the fixture.
struct Place {
    at: JournalAt,
    schema: Option<String>,
    _tmp: tempfile::TempDir,
}

impl Place {
    fn new(b: Backend) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (at, schema) = fresh_journal(b, tmp.path(), "j");
        Self { at, schema, _tmp: tmp }
    }

    fn open(&self) -> Journal {
        Journal::open_at(&self.at).unwrap()
    }

    fn audited(&self, actor: &str) -> Journal {
        let mut j = self.open();
        j.enable_audit(AuditKey::from_seed(KEY), actor, None).unwrap();
        j
    }

    /// Raw SQL behind the journal's back (`T.` stands for the table's
    /// schema), as someone with write access to the database would.
    fn tamper(&self, sql: &str) {
        match &self.schema {
            None => {
                let c = rusqlite::Connection::open(self.at.file().unwrap()).unwrap();
                c.execute_batch(&sql.replace("T.", "")).unwrap();
            }
            Some(s) => {
                let out = servers::shared_postgres().psql(&format!("{}; SELECT 'done'", sql.replace("T.", &format!("{s}."))));
                assert!(out.contains("done"), "psql: {out}");
            }
        }
    }

    fn verify(&self) -> Result<steward_store::Verified, steward_store::ChainBreak> {
        let j = Journal::open_existing_at(&self.at).unwrap().unwrap();
        j.verify_audit(&AuditKey::from_seed(KEY).public(), None, None).unwrap()
    }
}

fn metrics(queue: u64, completed: u64, agents: u64) -> Metrics {
    Metrics {
        completion_rate: 0.5,
        active_agents: agents,
        work_queue_size: queue,
        telemetry_volume: 0,
        health_score: 0.25,
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

fn decisions_outcomes_and_history_round_trip(b: Backend) {
    let p = Place::new(b);
    let j = p.open();
    cycle(&j, "c1", 1000, &metrics(10, 0, 2), Some(4));
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 2, 4, "why.").into_decision("c1-01".into());
    let exec = VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &["target 5 clamped".to_owned()] };
    j.record_decision("c1", 1000, &d, &exec).unwrap();
    assert!(j.decision("c1-01").unwrap().unwrap().outcome.is_none(), "decided, not yet acted on");
    j.record_outcome("c1-01", 1500, &Outcome { result: OutcomeResult::Executed, reason: "ok".into(), duration_ms: 3 }).unwrap();
    j.finish_cycle("c1", 1600).unwrap();
    cycle(&j, "c2", 61_000, &metrics(5, 8, 4), None);
    let d2 = Proposal::new(DecisionType::Restart, 9, 0.9, Action::Restart { agents: vec!["a".into()] }, "r", "why.")
        .into_decision("c2-01".into());
    let skip = VerdictRecord { verdict: "skip", guard: Some("min_confidence"), reason: Some("low"), notes: &[] };
    j.record_decision("c2", 61_000, &d2, &skip).unwrap();
    j.record_outcome("c2-01", 61_000, &Outcome { result: OutcomeResult::Failed, reason: "boom".into(), duration_ms: 0 }).unwrap();
    // A second outcome for one decision replaces the first.
    j.record_outcome("c2-01", 61_001, &Outcome { result: OutcomeResult::Skipped, reason: "again".into(), duration_ms: 1 }).unwrap();

    let e = j.decision("c1-01").unwrap().unwrap();
    assert_eq!(e.decision, d);
    assert_eq!(e.notes, ["target 5 clamped"]);
    assert_eq!(e.outcome.as_ref().unwrap().result, OutcomeResult::Executed);
    let recent = j.recent_decisions(10).unwrap();
    assert_eq!(recent.iter().map(|e| e.decision.id.as_str()).collect::<Vec<_>>(), ["c2-01", "c1-01"]);
    assert_eq!(recent[0].guard.as_deref(), Some("min_confidence"));
    assert_eq!(recent[0].outcome.as_ref().map(|o| o.reason.as_str()), Some("again"));
    assert_eq!(j.decisions_since(2000, 10).unwrap().len(), 1);

    let h = j.history(100_000, 10, 3_600_000).unwrap();
    assert_eq!(h.cycles.iter().map(|c| c.ts).collect::<Vec<_>>(), [1000, 61_000]);
    assert_eq!((h.cycles[0].recommended_agents, h.cycles[1].recommended_agents), (Some(4), None));
    assert_eq!(h.cycles[1].completed, 8);
    assert_eq!(h.actions.len(), 2);
    assert_eq!(h.actions[0].scale, Some((2, 4)));
    assert_eq!(j.history(100_000, 1, 0).unwrap().cycles[0].ts, 61_000, "the cycle limit keeps the newest");
    assert_eq!(j.cycle_count().unwrap(), 2);
    assert_eq!(j.last_cycle_id().unwrap().as_deref(), Some("c2"));
    j.integrity_check().unwrap();

    // A decision left without an outcome (a killed cycle) is marked interrupted.
    cycle(&j, "c3", 70_000, &metrics(5, 8, 4), None);
    let d3 = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 4, 6, "why.").into_decision("c3-01".into());
    j.record_decision("c3", 70_000, &d3, &exec).unwrap();
    assert_eq!(j.mark_interrupted(80_000).unwrap(), ["c3-01"]);
    assert_eq!(j.decision("c3-01").unwrap().unwrap().outcome.unwrap().result, OutcomeResult::Interrupted);
    assert!(j.mark_interrupted(90_000).unwrap().is_empty());
}

fn the_owner_events_and_samples_come_back_in_order(b: Backend) {
    let p = Place::new(b);
    let mut j = p.open();
    assert_eq!(j.owner().unwrap(), None);
    j.claim("/srv/queue").unwrap();
    j.claim("/elsewhere").unwrap();
    assert_eq!(j.owner().unwrap().as_deref(), Some("/srv/queue"), "the first owner stays");
    for i in 0..5 {
        j.record_event(1000 + i, "started", &format!("w{i}"), "up", if i == 2 { Some("c1-01") } else { None }).unwrap();
    }
    let ev = j.recent_events(3).unwrap();
    assert_eq!(ev.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["w4", "w3", "w2"]);
    assert_eq!(ev[2].decision_id.as_deref(), Some("c1-01"));
    let samples: Vec<Sample> =
        (0..10).map(|i| Sample { ts: 100 * i, component: format!("w{}", i % 2), metric: "rss".into(), value: i as f64 * 1.5 }).collect();
    j.record_samples(&samples).unwrap();
    let back = j.samples(300, 4).unwrap();
    assert_eq!(back.iter().map(|s| s.ts).collect::<Vec<_>>(), [600, 700, 800, 900], "the newest 4, oldest first");
    assert_eq!(back[0].value, 9.0);
    // Retention removes old samples and cycles no decision refers to.
    cycle(&j, "old", 10, &metrics(1, 1, 1), None);
    let removed = j.prune_history(650).unwrap();
    assert_eq!(removed, 7 + 1);
    assert_eq!(j.samples(0, 100).unwrap().len(), 3);
}

fn tasks_are_queued_once_and_run_by_priority(b: Backend) {
    let p = Place::new(b);
    let mut j = p.open();
    let gap =
        |key: &str, priority| NewTask { dataset: "sales".into(), key: key.into(), partition: key.into(), kind: GapKind::Missing, priority };
    let tasks = [gap("2026-01-01", Priority::Low), gap("2026-01-02", Priority::Critical), gap("2026-01-01", Priority::High)];
    assert_eq!(j.queue_tasks(&tasks, 1000).unwrap(), 2, "an open gap is queued once");
    let ready = j.ready_tasks(1000, 10).unwrap();
    assert_eq!(ready.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["2026-01-02", "2026-01-01"], "critical first");
    assert!(j.ready_tasks_excluding(1000, 10, &["sales"]).unwrap().is_empty());
    assert!(j.has_ready_task("sales", 1000).unwrap());
    let first = ready[0].id;
    assert!(j.start_task(first, "orch-1", 1100).unwrap());
    assert!(!j.start_task(first, "orch-2", 1100).unwrap(), "taken once");
    j.finish_task(first, &TaskOutcome::Dead { error: "gave up".into() }, 1200).unwrap();
    assert_eq!(j.task(first).unwrap().unwrap().state, TaskState::Dead);
    assert_eq!(j.dead_tasks_by_dataset().unwrap(), [("sales".to_owned(), 1)]);
    assert_eq!(j.retry_dead(None, 1300).unwrap(), 1);
    let other = ready[1].id;
    assert!(j.start_task(other, "orch-gone", 1400).unwrap());
    assert_eq!(j.requeue_orphans(|o| o != "orch-gone", 1500).unwrap(), [other]);
    let counts = j.task_counts(2000).unwrap();
    assert_eq!(counts.ready, 2);
    assert_eq!(j.last_starts().unwrap(), [("sales".to_owned(), 1400)]);
    assert_eq!(j.next_ready_at().unwrap(), Some(1300));
    assert_eq!(j.resolve_tasks(&[first, other], 2100).unwrap(), 2);
    assert!(j.ready_tasks(3000, 10).unwrap().is_empty());
    // A new gap after the old ones closed gets a new, larger id.
    assert_eq!(j.queue_tasks(&[gap("2026-01-03", Priority::Low)], 3000).unwrap(), 1);
    assert!(j.ready_tasks(3000, 1).unwrap()[0].id > other);
}

fn an_incident_walks_its_lifecycle_with_a_signed_timeline(b: Backend) {
    let p = Place::new(b);
    let j = p.audited("loop");
    let cfg = IncidentConfig::default();
    let rules = ["system_critical"];
    let sig = Signal { rule: "system_critical", target: "/q".into(), severity: 1, summary: "health is critical".into() };
    let seen = json!({"metrics": {"health_state": "critical", "health_score": 0.1, "work_queue_size": 400, "in_flight": 0, "active_agents": 0, "failed": 0}});
    let t = j.observe_incidents(0, &rules, std::slice::from_ref(&sig), &seen, &[], &cfg).unwrap();
    assert_eq!(t.iter().map(|t| t.phase).collect::<Vec<_>>(), [Phase::Detected, Phase::Assessed]);
    let id = t[0].id;
    let worse = Signal { severity: 1, ..sig.clone() };
    assert!(j.observe_incidents(1000, &rules, &[worse], &seen, &[], &cfg).unwrap().is_empty(), "the same incident");
    let act = CycleAction { decision_id: "c6-01".into(), description: "scale_up 0 → 4: executed".into() };
    let t = j.observe_incidents(2000, &rules, std::slice::from_ref(&sig), &seen, std::slice::from_ref(&act), &cfg).unwrap();
    assert_eq!(t[0].phase, Phase::Contained);
    assert!(j.ack_incident(id, "cli:alice", 2500).unwrap());
    assert_eq!(j.open_incident_counts().unwrap(), [1, 0, 0]);
    assert_eq!(j.observe_incidents(3000, &rules, &[], &seen, &[], &cfg).unwrap()[0].phase, Phase::Eradicated);
    assert!(j.resolve_incident(id, "cli:alice", 4000, "fixed the disk").unwrap());
    assert!(!j.resolve_incident(id, "cli:alice", 4001, "twice").unwrap(), "closed once");
    let d = j.incident(id).unwrap().unwrap();
    assert_eq!(d.incident.phase, Phase::Closed);
    assert_eq!(d.incident.occurrences, 3);
    assert_eq!(d.incident.acked.as_ref().map(|(w, _)| w.as_str()), Some("cli:alice"));
    let whats: Vec<&str> = d.timeline.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["detected", "assessed", "action", "contained", "ack", "eradicated", "closed"]);
    assert_eq!(d.actions.len(), 1);
    // A new signal opens a new incident with a new id.
    let t = j.observe_incidents(5000, &rules, &[sig], &seen, &[], &cfg).unwrap();
    assert!(t[0].id > id);
    assert_eq!(j.incidents(true, 10).unwrap().len(), 2);
    assert_eq!(j.incidents_to_alert(0).unwrap().len(), 2);
    p.verify().unwrap();
}

fn cycle_points_average_across_buckets(b: Backend) {
    let p = Place::new(b);
    let j = p.open();
    for i in 0..10 {
        cycle(&j, &format!("c{i}"), i * 1000, &metrics(10 * i as u64, 0, 2), Some(3));
    }
    let points = j.cycle_points(0, 9999, 2).unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points.iter().map(|p| p.cycles).sum::<u64>(), 10);
    assert!((points[0].queue - 20.0).abs() < 1e-9, "{points:?}");
    assert_eq!(points[0].target, Some(3.0));
    let m = j.cycle_metrics(0, 2000).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(j.unhealthy_since().unwrap(), Some(0));
}

fn the_audit_chain_verifies_and_names_what_was_tampered_with(b: Backend) {
    let p = Place::new(b);
    let j = p.audited("loop");
    for i in 1..=20 {
        j.audit(1_700_000_000_000 + i, &[NewRecord::new("command", json!({"i": i, "x": 0.5 * i as f64}))]).unwrap();
    }
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 2, 4, "why.").into_decision("c1-01".into());
    cycle(&j, "c1", 1000, &metrics(10, 0, 2), None);
    j.record_decision("c1", 1000, &d, &VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &[] }).unwrap();
    j.record_outcome("c1-01", 1001, &Outcome { result: OutcomeResult::Executed, reason: "ok".into(), duration_ms: 1 }).unwrap();
    assert!(j.audit_config(1002, &json!({"auto": {"interval": "30s"}})).unwrap());
    assert!(!j.audit_config(1003, &json!({"auto": {"interval": "30s"}})).unwrap(), "unchanged config is not recorded again");
    let v = p.verify().unwrap();
    assert_eq!((v.first_seq, v.last_seq, v.records), (1, 23, 23));
    assert_eq!(j.audit_records(None, Some("decision"), 0, 10).unwrap().len(), 1);
    assert_eq!(j.audit_pubkey().unwrap(), Some(AuditKey::from_seed(KEY).public_hex()));

    p.tamper("UPDATE T.audit SET payload = replace(payload, '\"i\":7', '\"i\":70') WHERE seq = 7");
    assert_eq!(p.verify().unwrap_err().seq, 7, "an edited payload");
    p.tamper("UPDATE T.audit SET payload = replace(payload, '\"i\":70', '\"i\":7') WHERE seq = 7");
    p.verify().unwrap();
    p.tamper("DELETE FROM T.audit WHERE seq = 12");
    assert_eq!(p.verify().unwrap_err().seq, 12, "a deleted record");
}

fn pruning_leaves_a_signed_checkpoint(b: Backend) {
    let p = Place::new(b);
    let j = p.audited("loop");
    for i in 1..=30 {
        j.audit(1_700_000_000_000 + i, &[NewRecord::new("command", json!({"i": i}))]).unwrap();
    }
    assert_eq!(j.prune_audit(1_700_000_000_000 + 21, 1_800_000_000_000).unwrap(), 20);
    let v = p.verify().unwrap();
    assert_eq!((v.checkpoint, v.first_seq, v.last_seq), (Some(20), 21, 31));
    p.tamper("UPDATE T.audit_checkpoint SET seq = 25");
    assert!(p.verify().is_err(), "a moved checkpoint is found");
}

fn two_writers_on_one_journal_make_one_chain(b: Backend) {
    let p = Place::new(b);
    p.open();
    std::thread::scope(|s| {
        for actor in ["loop", "cli:bob", "http:ci"] {
            let p = &p;
            s.spawn(move || {
                let j = p.audited(actor);
                for i in 0..40 {
                    j.record_event(i, "tick", actor, "one", None).unwrap();
                }
            });
        }
    });
    assert_eq!(p.verify().unwrap().records, 120);
    assert_eq!(p.open().recent_events(1000).unwrap().len(), 120);
}

fn a_newer_schema_is_refused_and_a_missing_journal_is_none(b: Backend) {
    let p = Place::new(b);
    assert!(Journal::open_existing_at(&p.at).unwrap().is_none(), "looking creates nothing");
    p.open();
    assert!(Journal::open_existing_at(&p.at).unwrap().is_some());
    match b {
        Backend::Sqlite => p.tamper("PRAGMA user_version = 99"),
        Backend::Postgres => p.tamper("UPDATE T.journal_version SET version = 99"),
    }
    assert!(matches!(Journal::open_at(&p.at), Err(JournalError::TooNew { found: 99, .. })));
    assert!(matches!(Journal::open_existing_at(&p.at), Err(JournalError::TooNew { found: 99, .. })));
}

fn a_journal_copied_to_the_other_database_and_back_is_the_same(b: Backend) {
    let p = Place::new(b);
    let mut j = p.audited("loop");
    // Rows read in insertion order keep it (ties in time, names out of order).
    let s = |c: &str| Sample { ts: 5, component: c.into(), metric: "rss".into(), value: 1.0 };
    j.record_samples(&[s("z"), s("a"), s("m")]).unwrap();
    j.claim("/srv/queue").unwrap();
    cycle(&j, "c1", 1000, &metrics(10, 0, 2), Some(4));
    let d = Proposal::scale(DecisionType::ScaleUp, 6, 0.8, 2, 4, "why.").into_decision("c1-01".into());
    j.record_decision("c1", 1000, &d, &VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &[] }).unwrap();
    j.record_event(1001, "started", "w1", "up", Some("c1-01")).unwrap();
    let sig = Signal { rule: "system_critical", target: "/q".into(), severity: 1, summary: "down".into() };
    j.observe_incidents(1002, &["system_critical"], &[sig], &json!({}), &[], &IncidentConfig::default()).unwrap();
    let other = Place::new(match b {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    });
    let copy = other.open();
    let rows = copy.replace_with(&j).unwrap();
    assert!(rows >= 10, "{rows}");
    assert_eq!(other.verify().unwrap().records, p.verify().unwrap().records);
    assert_eq!(copy.owner().unwrap().as_deref(), Some("/srv/queue"));
    assert_eq!(copy.decision("c1-01").unwrap().unwrap().decision, d);
    assert_eq!(copy.incidents(true, 10).unwrap().len(), 1);
    let names = |j: &Journal| j.samples(0, 10).unwrap().into_iter().map(|s| s.component).collect::<Vec<_>>();
    assert_eq!(names(&copy), ["z", "a", "m"]);
    let timeline = |j: &Journal| {
        let id = j.incidents(true, 1).unwrap()[0].id;
        j.incident(id).unwrap().unwrap().timeline.into_iter().map(|e| e.what).collect::<Vec<_>>()
    };
    assert_eq!(timeline(&copy), timeline(&j));
    assert_eq!(timeline(&copy), ["detected", "assessed"]);
    // Back into a journal that already has rows: replaced, not merged, and
    // its keys go on after the copied ones.
    let back = Place::new(b);
    let mut target = back.audited("loop");
    target.record_event(5, "noise", "x", "to be replaced", None).unwrap();
    target.replace_with(&copy).unwrap();
    target.enable_audit(AuditKey::from_seed(KEY), "loop", None).unwrap();
    assert_eq!(target.recent_events(10).unwrap().len(), 1);
    target.record_event(2000, "started", "w2", "up", None).unwrap();
    assert_eq!(target.recent_events(10).unwrap()[0].subject, "w2", "the new event is the newest");
    back.verify().unwrap();
    assert_eq!(names(&target), ["z", "a", "m"]);
    target.record_samples(&[s("n")]).unwrap();
    assert_eq!(names(&target), ["z", "a", "m", "n"], "new rows go after the copied ones");
}

fn a_journal_of_several_pages_copies_whole_and_in_order(b: Backend) {
    let p = Place::new(b);
    let mut j = p.open();
    // 12,001 samples (three pages and one row), ties in time, names out of order.
    let samples: Vec<Sample> = (0..12_001)
        .map(|i| Sample { ts: i / 3, component: format!("c{}", (i * 7919) % 12_001), metric: "m".into(), value: i as f64 })
        .collect();
    j.record_samples(&samples).unwrap();
    let other = Place::new(match b {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    });
    let copy = other.open();
    assert_eq!(copy.replace_with(&j).unwrap(), 12_001);
    let back = copy.samples(0, 20_000).unwrap();
    assert_eq!(back.len(), 12_001);
    assert!(back.iter().zip(&samples).all(|(a, b)| a.component == b.component && a.value == b.value), "order or rows differ");
}

#[test]
fn a_schema_named_like_a_keyword_works_and_looking_creates_nothing() {
    let pg = servers::shared_postgres();
    let url = format!("postgres://steward@127.0.0.1:{}/postgres?schema=user", pg.port);
    let at = JournalAt::parse(&url).unwrap();
    assert!(Journal::open_existing_at(&at).unwrap().is_none());
    assert_eq!(pg.int("SELECT count(*) FROM pg_namespace WHERE nspname = 'user'"), 0, "a reader created the schema");
    let j = Journal::open_at(&at).unwrap();
    j.record_event(1, "started", "w", "up", None).unwrap();
    assert_eq!(Journal::open_existing_at(&at).unwrap().unwrap().recent_events(5).unwrap().len(), 1);
}

#[test]
fn a_lock_wait_that_times_out_leaves_the_journal_usable() {
    let p = Place::new(Backend::Postgres);
    let j = p.audited("loop");
    j.record_event(1, "first", "w", "ok", None).unwrap();
    // Another session holds the journal's writer lock past the statement timeout (10 s).
    let key = {
        let schema = p.schema.clone().unwrap();
        format!("steward-journal:{schema}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) as i64
    };
    let port = servers::shared_postgres().port;
    let holder = std::thread::spawn(move || {
        std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "steward", "-d", "postgres", "-Atqc"])
            .arg(format!("BEGIN; SELECT pg_advisory_xact_lock({key}); SELECT pg_sleep(11); COMMIT;"))
            .output()
            .unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let err = j.record_event(2, "second", "w", "waits", None).unwrap_err();
    assert!(err.to_string().contains("timeout") || err.to_string().contains("57014"), "{err}");
    let _ = holder.join();
    // The connection was not left in an aborted transaction.
    j.record_event(3, "third", "w", "ok", None).unwrap();
    assert_eq!(j.recent_events(10).unwrap().len(), 2);
    p.verify().unwrap();
}

on_both!(
    decisions_outcomes_and_history_round_trip,
    the_owner_events_and_samples_come_back_in_order,
    tasks_are_queued_once_and_run_by_priority,
    an_incident_walks_its_lifecycle_with_a_signed_timeline,
    cycle_points_average_across_buckets,
    the_audit_chain_verifies_and_names_what_was_tampered_with,
    pruning_leaves_a_signed_checkpoint,
    two_writers_on_one_journal_make_one_chain,
    a_newer_schema_is_refused_and_a_missing_journal_is_none,
    a_journal_copied_to_the_other_database_and_back_is_the_same,
    a_journal_of_several_pages_copies_whole_and_in_order,
);
