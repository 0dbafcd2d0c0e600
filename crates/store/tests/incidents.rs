//! Incidents in the journal: opened once per (rule, target), walked through
//! their phases with a timeline, actions linked, closed by time or by hand.

use serde_json::json;
use steward_core::incident::{IncidentConfig, Phase, Signal};
use steward_store::audit::AuditKey;
use steward_store::{CycleAction, Journal};

const MIN: i64 = 60_000;

fn critical() -> Signal {
    Signal { rule: "system_critical", target: "/q".into(), severity: 1, summary: "health is critical".into() }
}

fn journal() -> (tempfile::TempDir, Journal) {
    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&tmp.path().join("journal.db")).unwrap();
    j.enable_audit(AuditKey::from_seed([3; 32]), "loop", None).unwrap();
    (tmp, j)
}

const RULES: [&str; 2] = ["system_critical", "system_degraded"];

#[test]
fn an_incident_walks_its_lifecycle_once() {
    let (_t, j) = journal();
    let cfg = IncidentConfig::default(); // recover after 2 min, close after 10
    let seen = json!({"metrics": {"health_state": "critical", "health_score": 0.1, "work_queue_size": 400, "in_flight": 0, "active_agents": 0, "failed": 0}});
    let t = j.observe_incidents(0, &RULES, &[critical()], &seen, &[], &cfg).unwrap();
    assert_eq!(t.iter().map(|t| t.phase).collect::<Vec<_>>(), [Phase::Detected, Phase::Assessed]);
    let id = t[0].id;
    // Still critical, every cycle: the same incident, no duplicate.
    for i in 1..5 {
        assert!(j.observe_incidents(i * 1000, &RULES, &[critical()], &seen, &[], &cfg).unwrap().is_empty());
    }
    assert_eq!(j.incidents(false, 10).unwrap().len(), 1);
    assert_eq!(j.incidents(false, 10).unwrap()[0].occurrences, 5);
    // An action is taken: linked, contained.
    let act = CycleAction { decision_id: "c6-01".into(), description: "scale_up 0 → 4: executed".into() };
    let t = j.observe_incidents(6000, &RULES, &[critical()], &seen, std::slice::from_ref(&act), &cfg).unwrap();
    assert_eq!(t[0].phase, Phase::Contained);
    assert!(j.observe_incidents(7000, &RULES, &[critical()], &seen, &[act], &cfg).unwrap().is_empty(), "linked once");
    // The condition goes: eradicated, then recovered, then closed.
    let t = j.observe_incidents(8000, &RULES, &[], &seen, &[], &cfg).unwrap();
    assert_eq!(t[0].phase, Phase::Eradicated);
    assert!(j.observe_incidents(8000 + MIN, &RULES, &[], &seen, &[], &cfg).unwrap().is_empty(), "not yet recovered");
    assert_eq!(j.observe_incidents(8000 + 2 * MIN, &RULES, &[], &seen, &[], &cfg).unwrap()[0].phase, Phase::Recovered);
    assert!(j.observe_incidents(8000 + 5 * MIN, &RULES, &[], &seen, &[], &cfg).unwrap().is_empty());
    assert_eq!(j.observe_incidents(8000 + 12 * MIN, &RULES, &[], &seen, &[], &cfg).unwrap()[0].phase, Phase::Closed);
    let steward_store::IncidentDetail { incident: inc, timeline, actions } = j.incident(id).unwrap().unwrap();
    assert_eq!(inc.phase, Phase::Closed);
    assert_eq!(inc.resolution.as_deref(), Some("auto"));
    assert_eq!(inc.phases.iter().map(|(p, _)| *p).collect::<Vec<_>>(), Phase::ALL);
    let whats: Vec<&str> = timeline.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["detected", "assessed", "action", "contained", "eradicated", "recovered", "closed"]);
    assert!(timeline[1].message.contains("queue 400"), "{timeline:?}");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].decision_id, "c6-01");
    assert_eq!(j.open_incident_counts().unwrap(), [0, 0, 0]);
    // Every transition is in the audit chain, and it verifies.
    let records = j.audit_records(None, Some("incident"), 0, 100).unwrap();
    assert_eq!(records.len(), 6);
    assert!(j.verify_audit(&AuditKey::from_seed([3; 32]).public(), None, None).unwrap().is_ok());
    // Critical again after closing: a new incident.
    let t = j.observe_incidents(9 * 60 * MIN, &RULES, &[critical()], &seen, &[], &cfg).unwrap();
    assert_ne!(t[0].id, id);
}

#[test]
fn a_recurrence_before_closing_reopens_the_same_incident() {
    let (_t, j) = journal();
    let cfg = IncidentConfig::default();
    let id = j.observe_incidents(0, &RULES, &[critical()], &json!({}), &[], &IncidentConfig::default()).unwrap()[0].id;
    j.observe_incidents(1000, &RULES, &[], &json!({}), &[], &cfg).unwrap();
    let t = j.observe_incidents(2000, &RULES, &[critical()], &json!({}), &[], &cfg).unwrap();
    assert_eq!((t[0].id, t[0].phase), (id, Phase::Assessed));
    assert!(t[0].message.starts_with("recurred"));
    assert_eq!(j.incidents(true, 10).unwrap().len(), 1);
}

#[test]
fn rules_not_evaluated_leave_their_incidents_alone() {
    let (_t, j) = journal();
    let cfg = IncidentConfig::default();
    let failed = Signal { rule: "component_failed", target: "inventory".into(), severity: 3, summary: "failing".into() };
    j.observe_incidents(0, &["component_failed"], &[failed], &json!({}), &[], &cfg).unwrap();
    // A CLI cycle evaluates only the system rules: the component incident stays active.
    assert!(j.observe_incidents(1000, &RULES, &[], &json!({}), &[], &cfg).unwrap().is_empty());
    assert_eq!(j.incidents(false, 10).unwrap()[0].phase, Phase::Assessed);
    assert_eq!(j.open_incident_counts().unwrap(), [0, 0, 1]);
}

#[test]
fn ack_and_resolve_by_hand() {
    let (_t, j) = journal();
    let cfg = IncidentConfig::default();
    let id = j.observe_incidents(0, &RULES, &[critical()], &json!({}), &[], &cfg).unwrap()[0].id;
    assert!(j.ack_incident(id, "cli:alice", 10).unwrap());
    assert_eq!(j.incidents(false, 10).unwrap()[0].acked, Some(("cli:alice".into(), 10)));
    assert!(j.resolve_incident(id, "cli:alice", 20, "restarted the database").unwrap());
    assert!(!j.resolve_incident(id, "cli:alice", 30, "").unwrap(), "closed already");
    assert!(!j.ack_incident(999, "cli:alice", 30).unwrap(), "unknown");
    let steward_store::IncidentDetail { incident: inc, timeline, .. } = j.incident(id).unwrap().unwrap();
    assert_eq!(inc.phase, Phase::Closed);
    assert_eq!(inc.resolution.as_deref(), Some("resolved by cli:alice: restarted the database"));
    assert_eq!(timeline.last().unwrap().actor, "cli:alice");
    let manual = j.audit_records(None, Some("incident"), 0, 100).unwrap();
    assert_eq!(manual.iter().filter(|r| r.actor == "cli:alice").count(), 2, "ack and resolve signed as alice, the refused one not at all");
}
