use std::collections::BTreeSet;

use super::*;

const NOW: UnixMs = 1_800_000_000_000;

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

fn json(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join(name)).unwrap()).unwrap()
}

fn done(agent: &str) -> Finished<'_> {
    Finished { agent, at: NOW, duration_ms: 5, result: Some(Value::from("ok")) }
}

#[test]
fn an_item_goes_from_work_to_claimed_to_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("work_w1.json"), r#"{"id":"w1","payload":{"k":1}}"#).unwrap();
    let q = CoordinationDir::new(d, 3);
    assert_eq!(q.pending(), ["w1"]);
    let Claim::Won(item) = q.claim("w1", "agent_a", NOW, Durability::Visible).unwrap() else { panic!("the claim must win") };
    assert_eq!(names(d), ["claimed_w1.json"].map(String::from).into());
    let on_disk = json(d, "claimed_w1.json");
    assert_eq!((on_disk["claimed_by"].as_str(), on_disk["status"].as_str()), (Some("agent_a"), Some("claimed")));
    assert_eq!(q.claim("w1", "agent_b", NOW, Durability::Visible).unwrap(), Claim::Lost, "exactly one claimant wins");
    assert_eq!(q.claims_of("agent_a"), ["w1"]);
    assert_eq!(q.complete("w1", item, done("agent_a"), Durability::Visible).unwrap(), Completion::Recorded);
    assert_eq!(names(d), ["completed_w1.json"].map(String::from).into());
    let c = json(d, "completed_w1.json");
    assert_eq!((c["status"].as_str(), c["agent_id"].as_str(), c["result"].as_str()), (Some("completed"), Some("agent_a"), Some("ok")));
    assert!(c.get("claimed_by").is_none() && c["payload"]["k"] == 1);
}

#[test]
fn a_second_completion_is_a_duplicate_and_never_replaces_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_w1.json"), r#"{"id":"w1"}"#).unwrap();
    fs::write(d.join("completed_w1.json"), r#"{"id":"w1","agent_id":"first"}"#).unwrap();
    let q = CoordinationDir::new(d, 3);
    let item = serde_json::from_str(r#"{"id":"w1"}"#).unwrap();
    assert_eq!(q.complete("w1", item, done("second"), Durability::Flushed).unwrap(), Completion::Duplicate);
    assert_eq!(json(d, "completed_w1.json")["agent_id"], "first");
    assert_eq!(names(d), ["completed_w1.json"].map(String::from).into(), "the claim is gone, no temp file is left");
}

#[test]
fn a_claim_of_a_completed_item_is_adopted_not_worked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("work_w1.json"), r#"{"id":"w1"}"#).unwrap();
    fs::write(d.join("completed_w1.json"), r#"{"id":"w1"}"#).unwrap();
    let q = CoordinationDir::new(d, 3);
    assert_eq!(q.claim("w1", "a", NOW, Durability::Visible).unwrap(), Claim::AlreadyCompleted);
    assert_eq!(names(d), ["completed_w1.json"].map(String::from).into());
}

#[test]
fn a_poison_item_is_dead_lettered_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("work_p.json"), "not json").unwrap();
    let q = CoordinationDir::new(d, 3);
    assert_eq!(q.claim("p", "a", NOW, Durability::Visible).unwrap(), Claim::Poison);
    assert_eq!(fs::read(d.join("failed_p.json")).unwrap(), b"not json");
}

#[test]
fn retries_count_attempts_until_the_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("work_w1.json"), r#"{"id":"w1","max_attempts":2}"#).unwrap();
    let q = CoordinationDir::new(d, 5);
    for expected in [ItemOutcome::Requeued(1), ItemOutcome::DeadLettered(2)] {
        assert!(matches!(q.claim("w1", "a", NOW, Durability::Visible).unwrap(), Claim::Won(_)));
        assert_eq!(q.retry("w1", "boom", NOW).unwrap(), expected);
    }
    let f = json(d, "failed_w1.json");
    assert_eq!((f["attempts"].as_u64(), f["last_claimed_by"].as_str()), (Some(2), Some("a")));
    assert!(f["error"].as_str().unwrap().starts_with("boom"));
}

#[test]
fn release_puts_an_item_back_uncounted_and_never_over_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("work_w1.json"), r#"{"id":"w1"}"#).unwrap();
    let q = CoordinationDir::new(d, 3);
    assert!(matches!(q.claim("w1", "a", NOW, Durability::Visible).unwrap(), Claim::Won(_)));
    q.release("w1").unwrap();
    assert_eq!(json(d, "work_w1.json").get("attempts"), None);
    assert!(matches!(q.claim("w1", "a", NOW, Durability::Visible).unwrap(), Claim::Won(_)));
    fs::write(d.join("work_w1.json"), r#"{"id":"w1","new":true}"#).unwrap();
    q.release("w1").unwrap();
    assert_eq!(json(d, "work_w1.json")["new"], true, "a newer item is never replaced");
    assert!(d.join("claimed_w1.json").exists());
}

#[test]
fn the_census_counts_states_and_ids_in_two_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for name in
        ["work_1.json", "claimed_2.json", "completed_3.json", "failed_4.json", "completed_1.json", "agent_a.json", ".steward-tmp-1-1"]
    {
        fs::write(d.join(name), "{}").unwrap();
    }
    let c = CoordinationDir::new(d, 3).census();
    assert_eq!(
        c,
        Census { pending: 1, in_flight: 1, completed: 2, dead_lettered: 1, distinct: 4, in_several_states: 1 },
        "agents and temp files are not items"
    );
}

#[test]
fn old_claims_are_found_by_claimed_at_and_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_old.json"), r#"{"claimed_at":"2020-01-01T00:00:00Z"}"#).unwrap();
    fs::write(d.join("claimed_new.json"), format!(r#"{{"claimed_at":"{}"}}"#, format_rfc3339(NOW))).unwrap();
    fs::write(d.join("claimed_done.json"), format!(r#"{{"claimed_at":"{}"}}"#, format_rfc3339(NOW))).unwrap();
    fs::write(d.join("completed_done.json"), "{}").unwrap();
    let q = CoordinationDir::new(d, 3);
    assert_eq!(q.claims_older_than(3_600_000, NOW).unwrap(), ["done", "old"]);
}

/// Regression (review of the move into this crate): claims are work items
/// of any size; a claim larger than a record's bound is still found as a
/// dead worker's, so the supervisor requeues it at once.
#[test]
fn a_large_claim_is_still_found_by_its_claimant() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pad = "x".repeat((crate::io::MAX_RECORD_BYTES + 1) as usize);
    fs::write(d.join("claimed_big.json"), format!(r#"{{"claimed_by":"agent_7","pad":"{pad}"}}"#)).unwrap();
    assert_eq!(CoordinationDir::new(d, 3).claims_of("agent_7"), ["big"]);
}

/// Regression (review of the move into this crate): the temp files of a
/// worker started by steward 0.1.0 (`.steward-worker-<pid>-N`) are swept
/// after it dies, as they were before.
#[test]
fn a_dead_writers_temp_files_are_swept_under_both_names() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for name in [".steward-tmp-42-1", ".steward-worker-42-3", ".steward-tmp-421-1", "work_1.json"] {
        fs::write(d.join(name), "{}").unwrap();
    }
    CoordinationDir::new(d, 3).remove_temp_files_of(42);
    assert_eq!(names(d), [".steward-tmp-421-1", "work_1.json"].map(String::from).into());
}
