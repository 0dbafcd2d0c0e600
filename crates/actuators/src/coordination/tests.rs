use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;
use steward_core::time::format_rfc3339;

use steward_protocol::ProtocolError;

use super::*;

const NOW: UnixMs = 1_800_000_000_000;

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

fn json(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn stale_claims_go_back_with_one_more_attempt_then_to_the_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_a.json"), r#"{"id":"a","claimed_by":"agent_1","claimed_at":"2020-01-01T00:00:00Z","payload":{"k":1}}"#)
        .unwrap();
    fs::write(d.join("claimed_b.json"), r#"{"id":"b","attempts":2,"claimed_by":"agent_1"}"#).unwrap();
    fs::write(d.join("claimed_c.json"), r#"{"id":"c","attempts":2,"max_attempts":10}"#).unwrap();
    let mut act = CoordinationActuator::new(d, 3);
    let report = act.apply(&Action::RequeueClaims { items: vec!["a".into(), "b".into(), "c".into(), "gone".into()] }, NOW).unwrap();
    assert_eq!(report, "requeued 2, dead-lettered 1, leftover claims removed 0, already gone 1, kept 0");
    assert_eq!(names(d), ["failed_b.json", "work_a.json", "work_c.json"].map(String::from).into());
    let a = json(d, "work_a.json");
    assert_eq!((a["attempts"].as_u64(), a["status"].as_str(), a["last_claimed_by"].as_str()), (Some(1), Some("pending"), Some("agent_1")));
    assert_eq!(a["payload"]["k"], 1, "unknown fields are kept");
    assert!(a.get("claimed_by").is_none() && a.get("claimed_at").is_none());
    let b = json(d, "failed_b.json");
    assert_eq!((b["attempts"].as_u64(), b["status"].as_str()), (Some(3), Some("failed")));
    assert!(b["error"].as_str().unwrap().contains("attempts exhausted"));
    assert_eq!(json(d, "work_c.json")["attempts"], 3);
}

#[test]
fn leftover_claims_are_removed_only_when_completed_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_x.json"), "{}").unwrap();
    fs::write(d.join("completed_x.json"), "{}").unwrap();
    fs::write(d.join("claimed_y.json"), "{}").unwrap();
    let mut act = CoordinationActuator::new(d, 3);
    act.apply(&Action::RemoveLeftoverClaims { items: vec!["x".into(), "y".into()] }, NOW).unwrap();
    assert_eq!(names(d), ["claimed_y.json", "completed_x.json"].map(String::from).into());
    // A requeue of a leftover removes it rather than running it again.
    fs::write(d.join("completed_y.json"), "{}").unwrap();
    act.apply(&Action::RequeueClaims { items: vec!["y".into()] }, NOW).unwrap();
    assert_eq!(names(d), ["completed_x.json", "completed_y.json"].map(String::from).into());
}

#[test]
fn nothing_is_ever_overwritten_or_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_a.json"), r#"{"id":"a"}"#).unwrap();
    fs::write(d.join("work_a.json"), r#"{"id":"a","other":"producer reused the id"}"#).unwrap();
    fs::write(d.join("claimed_p.json"), "not json at all").unwrap();
    let mut act = CoordinationActuator::new(d, 3);
    act.apply(&Action::RequeueClaims { items: vec!["a".into(), "p".into(), "../etc".into()] }, NOW).unwrap();
    assert_eq!(names(d), ["claimed_a.json", "failed_p.json", "work_a.json"].map(String::from).into());
    assert_eq!(json(d, "work_a.json")["other"], "producer reused the id");
    assert_eq!(fs::read_to_string(d.join("failed_p.json")).unwrap(), "not json at all");
}

#[test]
fn clear_old_work_takes_claims_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old = format_rfc3339(NOW - 3 * 3_600_000);
    let new = format_rfc3339(NOW - 600_000);
    fs::write(d.join("claimed_old.json"), format!(r#"{{"id":"old","claimed_at":"{old}"}}"#)).unwrap();
    fs::write(d.join("claimed_new.json"), format!(r#"{{"id":"new","claimed_at":"{new}"}}"#)).unwrap();
    fs::write(d.join("work_1.json"), "{}").unwrap();
    let mut act = CoordinationActuator::new(d, 3);
    let report = act.apply(&Action::ClearOldWork { max_age_hours: 2.0 }, NOW).unwrap();
    assert!(report.starts_with("requeued 1,"), "{report}");
    assert_eq!(names(d), ["claimed_new.json", "work_1.json", "work_old.json"].map(String::from).into());
}

#[test]
fn fleet_actions_are_not_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let mut act = CoordinationActuator::new(tmp.path(), 3);
    assert!(!act.handles(&Action::Scale { from: 1, to: 2 }));
    assert!(matches!(act.apply(&Action::Scale { from: 1, to: 2 }, NOW), Err(ActuatorError::Unsupported { .. })));
}

/// Regression (review of issue 2): only a non-empty regular completed
/// file justifies removing a claim; anything else and the claim is
/// requeued, never deleted.
#[test]
fn only_a_real_completed_record_removes_a_claim() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for id in ["dir", "dangling", "outside", "empty", "real"] {
        fs::write(d.join(format!("claimed_{id}.json")), format!(r#"{{"id":"{id}"}}"#)).unwrap();
    }
    fs::create_dir(d.join("completed_dir.json")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("completed_dangling.json")).unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    fs::write(outside.path(), "{}").unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("completed_outside.json")).unwrap();
    fs::write(d.join("completed_empty.json"), "").unwrap();
    fs::write(d.join("completed_real.json"), "{}").unwrap();
    let mut act = CoordinationActuator::new(d, 3);
    let items: Vec<String> = ["dir", "dangling", "outside", "empty", "real"].map(String::from).into();
    act.apply(&Action::RemoveLeftoverClaims { items: items.clone() }, NOW).unwrap();
    let left = names(d);
    for id in ["dir", "dangling", "outside", "empty"] {
        assert!(left.contains(&format!("claimed_{id}.json")), "claim {id} must stay: {left:?}");
    }
    assert!(!left.contains("claimed_real.json"));
    act.apply(&Action::RequeueClaims { items }, NOW).unwrap();
    let left = names(d);
    for id in ["dir", "dangling", "outside", "empty"] {
        assert!(left.contains(&format!("work_{id}.json")), "claim {id} goes back to the queue: {left:?}");
    }
}

/// Regression (review of issue 2): attempts written as text or as a
/// fraction are counted, not reset.
#[test]
fn attempts_in_any_numeric_form_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_s.json"), r#"{"attempts":"1"}"#).unwrap();
    fs::write(d.join("claimed_f.json"), r#"{"attempts":0.5}"#).unwrap();
    fs::write(d.join("claimed_big.json"), r#"{"attempts":18446744073709551615,"max_attempts":"100"}"#).unwrap();
    fs::write(d.join("claimed_junk.json"), r#"{"attempts":{"no":1}}"#).unwrap();
    let mut act = CoordinationActuator::new(d, 5);
    act.apply(&Action::RequeueClaims { items: ["s", "f", "big", "junk"].map(String::from).into() }, NOW).unwrap();
    assert_eq!(json(d, "work_s.json")["attempts"], 2);
    assert_eq!(json(d, "work_f.json")["attempts"], 2);
    assert_eq!(json(d, "failed_big.json")["attempts"], u64::MAX, "saturates, and is past any limit");
    assert_eq!(json(d, "work_junk.json")["attempts"], 1);
}

fn broken(id: &str) -> Result<ItemOutcome, ProtocolError> {
    Err(ProtocolError::Io {
        op: "read",
        path: format!("claimed_{id}.json").into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    })
}

/// Regression (issue 9): one claim steward cannot repair (here: permission
/// denied) used to fail the whole action, so three cycles later the
/// circuit breaker stopped every requeue. Now it is quarantined with a
/// backoff, and the action fails only when most of its items fail.
#[test]
fn one_failing_item_is_quarantined_and_does_not_fail_the_action() {
    let tmp = tempfile::tempdir().unwrap();
    let mut act = CoordinationActuator::new(tmp.path(), 3);
    let run = |act: &mut CoordinationActuator, now: UnixMs| {
        let mut tally = Tally::default();
        act.repair(&mut tally, "ok", now, |_| Ok(ItemOutcome::Requeued(1)));
        act.repair(&mut tally, "bad", now, |_| broken("bad"));
        tally.finish()
    };
    let report = run(&mut act, NOW).unwrap();
    assert!(
        report.starts_with("requeued 1,") && report.contains("failed 1 and quarantined (first: bad: read claimed_bad.json"),
        "{report}"
    );
    // Within the backoff the bad item is left alone.
    let report = run(&mut act, NOW + 10_000).unwrap();
    assert!(report.contains("1 left alone in quarantine") && !report.contains("failed"), "{report}");
    // After it, it is tried again; a second failure doubles the backoff.
    assert!(run(&mut act, NOW + 31_000).unwrap().contains("failed 1"));
    assert!(run(&mut act, NOW + 31_000 + 59_000).unwrap().contains("left alone"));
    assert!(run(&mut act, NOW + 31_000 + 61_000).unwrap().contains("failed 1"));
}

#[test]
fn an_action_whose_items_mostly_fail_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut act = CoordinationActuator::new(tmp.path(), 3);
    let mut tally = Tally::default();
    act.repair(&mut tally, "a", NOW, |_| broken("a"));
    act.repair(&mut tally, "b", NOW, |_| broken("b"));
    act.repair(&mut tally, "c", NOW, |_| Ok(ItemOutcome::Requeued(1)));
    assert!(matches!(tally.finish(), Err(ActuatorError::Partial { failed: 2, total: 3, .. })));
}
