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
    assert_eq!(q.pending().ids, ["w1"]);
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
    assert_eq!(q.claim("p", "a", NOW, Durability::Visible).unwrap(), Claim::Poison("not JSON (expected ident at line 1 column 2)".into()));
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

/// Regression (review of the move into this crate): a claim larger than
/// the old fixed 1 MiB record bound, but within `max_item_bytes`, is still
/// found as a dead worker's, so the supervisor requeues it at once.
#[test]
fn a_large_claim_is_still_found_by_its_claimant() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pad = "x".repeat((crate::io::DEFAULT_MAX_ITEM_BYTES + 1) as usize);
    fs::write(d.join("claimed_big.json"), format!(r#"{{"claimed_by":"agent_7","pad":"{pad}"}}"#)).unwrap();
    let q = CoordinationDir::new(d, 3).with_max_item_bytes(4 << 20);
    assert_eq!(q.claims_of("agent_7"), ["big"]);
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

/// Regression (issue 9): links, FIFOs and directories named like items are
/// never claimed, and a claim that turned into one is dead-lettered as it
/// is, never read through.
#[test]
fn only_regular_files_are_claimed_and_a_planted_link_is_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), r#"{"password":"hunter2"}"#).unwrap();
    std::os::unix::fs::symlink(secret.path(), d.join("work_leak.json")).unwrap();
    fs::create_dir(d.join("work_dir.json")).unwrap();
    fs::write(d.join("work_ok.json"), "{}").unwrap();
    let q = CoordinationDir::new(d, 3);
    let p = q.pending();
    assert_eq!(p.ids, ["ok"]);
    let mut refused = p.refused.clone();
    refused.sort();
    assert_eq!(refused, [("work_dir.json".to_owned(), "a directory"), ("work_leak.json".to_owned(), "a symbolic link")]);
    // Raced: the link is claimed anyway (a rename moves the link itself).
    let Claim::Poison(why) = q.claim("leak", "a", NOW, Durability::Visible).unwrap() else { panic!("a link is poison") };
    assert!(why.contains("symbolic link"), "{why}");
    assert!(fs::symlink_metadata(d.join("failed_leak.json")).unwrap().file_type().is_symlink(), "dead-lettered as it was");
    assert!(!names(d).iter().any(|n| n.starts_with("completed_")));
}

/// Regression (issue 9): an item larger than `max_item_bytes` is
/// dead-lettered with the reason, never read whole.
#[test]
fn an_oversized_item_is_dead_lettered_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let f = fs::File::create(d.join("work_huge.json")).unwrap();
    f.set_len(3 << 30).unwrap();
    let q = CoordinationDir::new(d, 3).with_max_item_bytes(1 << 20);
    let Claim::Poison(why) = q.claim("huge", "a", NOW, Durability::Visible).unwrap() else { panic!("too large is poison") };
    assert!(why.contains("larger than"), "{why}");
    assert!(d.join("failed_huge.json").exists());
    fs::write(d.join("claimed_big.json"), "x".repeat(2 << 20)).unwrap();
    assert!(matches!(q.requeue("big", "stale", NOW).unwrap(), ItemOutcome::Poisoned(why) if why.contains("larger than")));
}

/// Regression (issue 9): something that is not a completed record at the
/// completion's name (a planted link) is not taken for a duplicate: the
/// claim stays, so the item is not lost.
#[test]
fn a_fake_completion_does_not_swallow_the_item() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_w1.json"), r#"{"id":"w1"}"#).unwrap();
    std::os::unix::fs::symlink("/nowhere", d.join("completed_w1.json")).unwrap();
    let q = CoordinationDir::new(d, 3);
    let item = serde_json::from_str(r#"{"id":"w1"}"#).unwrap();
    assert!(matches!(q.complete("w1", item, done("a"), Durability::Visible), Err(ProtocolError::NotARecord(_))));
    assert!(d.join("claimed_w1.json").exists());
}

/// Regression (issue 9): a claim dated in the future still goes stale, by
/// its file's modification time.
#[test]
fn a_claim_from_the_future_still_goes_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("claimed_f.json"), r#"{"claimed_at":"2999-01-01T00:00:00Z"}"#).unwrap();
    let q = CoordinationDir::new(d, 3);
    let later = crate::io::unix_ms(std::time::SystemTime::now()) + 3 * 3_600_000;
    assert_eq!(q.claims_older_than(3_600_000, later).unwrap(), ["f"]);
}
