use std::fs;
use std::path::Path;
use std::time::Duration;

use steward_core::snapshot::LivenessSource;

use super::*;

fn write(dir: &Path, name: &str, body: &str) {
    fs::write(dir.join(name), body).unwrap();
}

fn now_ms() -> UnixMs {
    std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn source(dir: &Path) -> CoordinationSource {
    CoordinationSource::new(CoordinationConfig { dir: dir.to_owned(), ..CoordinationConfig::default() })
}

#[test]
fn reads_a_directory_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let now = now_ms();
    write(d, "agent_1.json", r#"{"id":"agent_1","status":"active"}"#);
    write(
        d,
        "agent_2.json",
        &format!(r#"{{"id":"a2","status":"busy","heartbeat":{},"pid":42,"capacity":3,"lifecycle":"monitoring"}}"#, now / 1000 - 10),
    );
    write(d, "agent_3.json", r#"{"id":"a3","status":"active","heartbeat":"2001-01-01T00:00:00Z"}"#);
    write(d, "agent_bad.json", "{not json");
    write(d, "agent_status.json", r#"[{"agent_id":"x"}]"#);
    write(d, "agent_hb.json", r#"{"status":"idle","heartbeat":"soon"}"#);
    for i in 0..4 {
        write(d, &format!("work_{i}.json"), "this is never opened, so it may be anything");
    }
    write(d, "completed_1.json", "{}");
    write(d, "completed_w9.json", "{}");
    write(d, "failed_1.json", "{}");
    write(d, "claimed_w9.json", r#"{"id":"w9","claimed_by":"a2","claimed_at":"2001-01-01T00:00:00Z","attempts":1}"#);
    write(d, "claimed_w8.json", r#"{"id":"w8","claimed_by":"a2","attempts":2,"max_attempts":5}"#);
    write(d, "telemetry_1.json", r#"{"id":"t1","metrics":{"response_time":100,"error_rate":0.1}}"#);
    write(d, "telemetry_2.json", r#"{"id":"t2","metrics":{"response_time_ms":300,"success_rate":0.7}}"#);
    write(d, "telemetry_3.json", r#"{"id":"t3"}"#);
    write(d, "README.md", "ignored");
    write(d, "Work_9.json", "ignored: case-sensitive");
    fs::create_dir(d.join("work_dir.json")).unwrap();

    let s = source(d).snapshot(now).unwrap();
    assert!(s.target_exists);
    assert_eq!((s.work_queue_size, s.completed, s.failed, s.telemetry_volume), (4, 2, 1, 3));
    let ids: Vec<&str> = s.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["agent_1", "a2", "a3", "agent_hb"]);
    let a2 = &s.agents[1];
    assert_eq!(
        (a2.pid, a2.capacity, a2.lifecycle.as_deref(), a2.liveness_from),
        (Some(42), 3, Some("monitoring"), LivenessSource::Heartbeat)
    );
    assert_eq!(a2.last_seen, Some((now / 1000 - 10) * 1000));
    assert_eq!(s.agents[0].liveness_from, LivenessSource::Mtime);
    assert!(s.agents[0].last_seen.unwrap() > now - 60_000);
    assert_eq!(s.agents[3].status, "idle");
    assert_eq!(s.agents[3].liveness_from, LivenessSource::Mtime);

    let files: Vec<&str> = s.warnings.iter().map(|w| w.file.as_str()).collect();
    // A directory named like an item is a warning too (issue 9: only regular files are read).
    assert_eq!(files, ["agent_bad.json", "agent_hb.json", "agent_status.json", "work_dir.json"], "{:?}", s.warnings);
    assert!(s.warnings[3].reason.contains("not a regular file (a directory)"));
    assert!(s.warnings[0].reason.contains("malformed JSON"));
    assert!(s.warnings[2].reason.contains("not a JSON object"));

    assert_eq!(s.claims.len(), 2);
    assert_eq!(
        (s.claims[0].id.as_str(), s.claims[0].attempts, s.claims[0].max_attempts, s.claims[0].completed_exists),
        ("w8", 2, Some(5), false)
    );
    assert_eq!((s.claims[1].id.as_str(), s.claims[1].completed_exists), ("w9", true));

    assert_eq!(s.telemetry.sampled, 3);
    // error_rate only where reported (t1); success_rate is not turned into one.
    assert_eq!(s.telemetry.error_rate, Some(0.1));
    assert_eq!(s.agent_files, 6, "every agent file counts by name, readable or not");
    assert_eq!(s.telemetry.response_time_ms, Some(200.0));
}

#[test]
fn missing_directory_is_reported_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let s = source(&tmp.path().join("nope")).snapshot(1).unwrap();
    assert!(!s.target_exists);
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].reason.contains("does not exist"));
}

#[test]
fn a_file_where_the_directory_should_be_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("file");
    fs::write(&f, "").unwrap();
    assert!(matches!(source(&f).snapshot(1), Err(SourceError::NotADirectory { .. })));
}

#[test]
fn symlinks_are_not_followed_out_of_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    fs::create_dir(&d).unwrap();
    write(tmp.path(), "outside.json", r#"{"id":"evil","status":"active"}"#);
    write(&d, "real.json", r#"{"id":"linked","status":"active"}"#);
    std::os::unix::fs::symlink(tmp.path().join("outside.json"), d.join("agent_out.json")).unwrap();
    std::os::unix::fs::symlink(d.join("real.json"), d.join("agent_in.json")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside.json"), d.join("work_out.json")).unwrap();
    let s = source(&d).snapshot(now_ms()).unwrap();
    assert_eq!(s.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["linked"]);
    assert_eq!(s.work_queue_size, 0);
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings.iter().all(|w| w.reason.contains("leads out of the directory")));
}

#[test]
fn telemetry_means_use_only_the_recent_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..10 {
        write(d, &format!("telemetry_{i}.json"), &format!(r#"{{"metrics":{{"error_rate":{}}}}}"#, f64::from(i) / 10.0));
    }
    let mut cfg = CoordinationConfig { dir: d.to_owned(), telemetry_sample: 4, ..CoordinationConfig::default() };
    let s = CoordinationSource::new(cfg.clone()).snapshot(now_ms()).unwrap();
    assert_eq!((s.telemetry_volume, s.telemetry.sampled), (10, 4));
    // Outside the window: counted, not read.
    cfg.telemetry_window = Duration::from_secs(60);
    let s = CoordinationSource::new(cfg).snapshot(now_ms() + 3_600_000).unwrap();
    assert_eq!((s.telemetry_volume, s.telemetry.sampled, s.telemetry.error_rate), (10, 0, None));
}

#[test]
fn many_agents_across_threads_are_all_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..1000 {
        write(d, &format!("agent_{i:04}.json"), &format!(r#"{{"id":"a{i:04}","status":"active"}}"#));
    }
    for threads in [1, 2, 4] {
        let cfg = CoordinationConfig { dir: d.to_owned(), read_threads: threads, ..CoordinationConfig::default() };
        let s = CoordinationSource::new(cfg).snapshot(now_ms()).unwrap();
        let ids: Vec<String> = s.agents.iter().map(|a| a.id.clone()).collect();
        let want: Vec<String> = (0..1000).map(|i| format!("a{i:04}")).collect();
        assert_eq!(ids, want, "threads={threads}");
    }
}

#[test]
fn oversized_records_are_refused_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let big =
        format!(r#"{{"id":"big","status":"active","pad":"{}"}}"#, "x".repeat((steward_protocol::DEFAULT_MAX_ITEM_BYTES + 1) as usize));
    write(d, "agent_big.json", &big);
    let s = source(d).snapshot(now_ms()).unwrap();
    assert!(s.agents.is_empty());
    assert!(s.warnings[0].reason.contains("larger than a record"));
}

#[test]
fn natural_order_reads_numbers_as_numbers() {
    let mut names =
        vec!["telemetry_10.json", "telemetry_9.json", "telemetry_100.json", "telemetry_a.json", "telemetry_09.json", "telemetry_1.json"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(
        names,
        ["telemetry_1.json", "telemetry_9.json", "telemetry_09.json", "telemetry_10.json", "telemetry_100.json", "telemetry_a.json"]
    );
}

#[test]
fn the_telemetry_sample_is_the_newest_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Old records report errors; the three newest (by sequence) do not.
    for i in 1..=12 {
        let e = if i > 9 { 0.0 } else { 1.0 };
        write(d, &format!("telemetry_{i}.json"), &format!(r#"{{"metrics":{{"error_rate":{e}}}}}"#));
    }
    let cfg = CoordinationConfig { dir: d.to_owned(), telemetry_sample: 3, ..CoordinationConfig::default() };
    let s = CoordinationSource::new(cfg).snapshot(now_ms()).unwrap();
    assert_eq!((s.telemetry_volume, s.telemetry.sampled, s.telemetry.error_rate), (12, 3, Some(0.0)));
}

/// Regression (review of issue 2): a heartbeat from the future must not
/// keep an agent alive forever.
#[test]
fn future_heartbeats_are_distrusted_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let now = now_ms();
    write(d, "agent_ms.json", &format!(r#"{{"status":"active","heartbeat":{now}}}"#));
    write(d, "agent_2099.json", r#"{"status":"active","heartbeat":"2099-01-01T00:00:00Z"}"#);
    write(d, "agent_skew.json", &format!(r#"{{"status":"active","heartbeat":{}}}"#, now / 1000 + 30));
    let s = source(d).snapshot(now).unwrap();
    let from: Vec<_> = s.agents.iter().map(|a| (a.id.as_str(), a.liveness_from)).collect();
    assert_eq!(
        from,
        [("agent_2099", LivenessSource::Mtime), ("agent_ms", LivenessSource::Mtime), ("agent_skew", LivenessSource::Heartbeat)]
    );
    assert_eq!(s.warnings.len(), 2);
    assert!(s.warnings.iter().all(|w| w.reason.contains("in the future")));
}

/// The record's own timestamp decides whether it is inside the window; the
/// mtime stands in only where there is none.
#[test]
fn telemetry_window_follows_the_record_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let now = now_ms();
    write(d, "telemetry_1.json", r#"{"timestamp":"2001-01-01T00:00:00Z","metrics":{"error_rate":0.9}}"#);
    write(d, "telemetry_2.json", &format!(r#"{{"timestamp":{},"metrics":{{"error_rate":0.1}}}}"#, now / 1000));
    write(d, "telemetry_3.json", r#"{"metrics":{"error_rate":0.3}}"#);
    let s = source(d).snapshot(now).unwrap();
    assert_eq!(s.telemetry.sampled, 2);
    assert!((s.telemetry.error_rate.unwrap() - 0.2).abs() < 1e-12);
}
