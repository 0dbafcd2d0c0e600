//! Issue 9, through the binary: anyone who can write into the coordination
//! directory (a shared spool by design) plants what a hostile user would,
//! where steward reads and writes, and steward must neither follow it,
//! block on it, read it whole, nor lose work because of it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

mod common;
use common::{wait_for, Fixture};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago)).unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 1: `ln -s ../.steward/journal.db c/.steward.lock` made execute
/// truncate the journal and write a pid into it.
#[test]
fn a_lock_file_planted_as_a_link_to_the_journal_is_refused_and_the_journal_kept() {
    let f = Fixture::new();
    f.write("work_1.json", "{}");
    assert!(f.run(&["execute"]).status.success(), "a first run creates the journal");
    let journal = f.state().join("journal.db");
    let before = fs::read(&journal).unwrap();
    fs::remove_file(f.dir().join(".steward.lock")).unwrap();
    symlink("../.steward/coordination/journal.db", f.dir().join(".steward.lock")).unwrap();
    let out = f.run(&["execute"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("refusing to use the lock file") && stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(fs::read(&journal).unwrap(), before, "the journal is untouched");
    // With the link gone, steward works, and the journal is still a journal.
    fs::remove_file(f.dir().join(".steward.lock")).unwrap();
    let out = f.run(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Item 1: temp names were predictable, and links planted at the next
/// ones made a requeue write an item out of the directory and leave a
/// work item that was a link out of it.
#[test]
fn links_planted_at_temp_names_are_never_written_through() {
    let f = Fixture::new();
    let outside = f.tmp.path().join("outside.txt");
    fs::write(&outside, "keep").unwrap();
    let me = std::process::id();
    // The old scheme's next names, for the pids the next processes will likely get.
    for pid in me..me + 200 {
        for seq in 0..4 {
            symlink(&outside, f.dir().join(format!(".steward-tmp-{pid}-{seq}"))).unwrap();
        }
    }
    for i in 0..5 {
        f.write(&format!("claimed_s{i}.json"), &format!(r#"{{"id":"s{i}","claimed_by":"gone","claimed_at":"2001-01-01T00:00:00Z"}}"#));
    }
    let out = f.run(&["execute", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    for i in 0..5 {
        let meta = fs::symlink_metadata(f.dir().join(format!("work_s{i}.json"))).unwrap();
        assert!(meta.is_file(), "work_s{i}.json is a regular file in the directory");
    }
}

/// Item 2: a `work_` link to a secret ended with the secret inside a
/// completed record.
#[test]
fn a_work_item_that_is_a_link_is_never_claimed_or_read() {
    let f = Fixture::new();
    let secret = f.tmp.path().join("creds.json");
    fs::write(&secret, r#"{"password":"hunter2"}"#).unwrap();
    symlink(&secret, f.dir().join("work_leak.json")).unwrap();
    f.write("work_ok.json", r#"{"id":"ok"}"#);
    let out = f.run(&["worker", "--id", "w1", "--exit-when-idle", "0.3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("work_leak.json") && stderr(&out).contains("never claimed"), "{}", stderr(&out));
    let all = names(&f.dir());
    assert!(all.contains(&"completed_ok.json".to_owned()), "{all:?}");
    assert!(all.contains(&"work_leak.json".to_owned()), "the link is left where it was: {all:?}");
    for name in &all {
        let path = f.dir().join(name);
        if !fs::symlink_metadata(&path).unwrap().is_file() {
            continue;
        }
        if let Ok(text) = fs::read_to_string(&path) {
            assert!(!text.contains("hunter2"), "{name} holds the secret");
        }
    }
}

/// Item 3: `ln -s /dev/zero c/claimed_z.json` with the classic policy grew
/// the executor until the kernel killed it; a 3 GB sparse item took a
/// worker to 3 GB.
#[test]
fn endless_and_huge_files_are_never_read_whole() {
    let f = Fixture::new();
    symlink("/dev/zero", f.dir().join("claimed_z.json")).unwrap();
    f.write("claimed_old.json", r#"{"id":"old","claimed_at":"2001-01-01T00:00:00Z"}"#);
    for i in 0..20 {
        f.write(&format!("work_q{i}.json"), "{}");
    }
    let out = f.run(&["--policy", "classic", "--json", "execute"]);
    assert!(out.status.success() || out.status.code() == Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("claimed_z.json")), "{report}");

    let g = Fixture::new();
    fs::File::create(g.dir().join("work_huge.json")).unwrap().set_len(3 << 30).unwrap();
    g.write("work_fine.json", "{}");
    let out = g.run(&["worker", "--id", "w1", "--exit-when-idle", "0.3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert!(g.dir().join("failed_huge.json").exists() && g.dir().join("completed_fine.json").exists());
}

/// Item 4: a FIFO as a work item hung the worker for good (blocked in
/// open, deaf to SIGTERM); a directory named like an item made it exit 1.
#[test]
fn fifos_and_directories_named_like_items_are_skipped_with_a_warning() {
    let f = Fixture::new();
    mkfifo(&f.dir().join("work_fifo.json"));
    mkfifo(&f.dir().join("agent_fifo.json"));
    fs::create_dir(f.dir().join("work_dir.json")).unwrap();
    f.write("work_ok.json", "{}");
    let mut child =
        f.cmd(&["worker", "--id", "w1", "--exit-when-idle", "0.3"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    assert!(wait_for(20, || child.try_wait().unwrap().is_some()), "the worker did not hang");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(stderr(&out).contains("work_fifo.json") && stderr(&out).contains("work_dir.json"), "{}", stderr(&out));
    assert!(f.dir().join("completed_ok.json").exists());
    // A cycle skips them too, and says so.
    let report = f.json(&["--json", "analyze"]);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("agent_fifo.json") && warnings.contains("work_fifo.json") && warnings.contains("work_dir.json"),
        "{warnings}"
    );
}

/// Item 7: a claim dated in the future never went stale.
#[test]
fn a_claim_from_the_future_is_requeued_by_its_age() {
    let f = Fixture::new();
    f.write("claimed_f.json", r#"{"id":"f","claimed_by":"agent_x","claimed_at":"2999-01-01T00:00:00Z"}"#);
    set_mtime(&f.dir().join("claimed_f.json"), 7200);
    let report = f.json(&["execute", "--format", "json"]);
    assert!(report["warnings"].to_string().contains("in the future"), "{report}");
    assert!(f.dir().join("work_f.json").exists(), "{:?}", names(&f.dir()));
}

/// Item 9: a negative error rate and a response time of -1e300 were
/// averaged into the assessment.
#[test]
fn telemetry_outside_its_domain_is_a_warning_not_an_input() {
    let f = Fixture::new();
    f.write("telemetry_1.json", r#"{"metrics":{"error_rate":-5.0,"response_time_ms":-1e300}}"#);
    f.write("telemetry_2.json", r#"{"metrics":{"error_rate":0.25,"response_time_ms":120}}"#);
    let report = f.json(&["--json", "analyze"]);
    assert_eq!(report["metrics"]["error_rate"], 0.25, "{report}");
    assert_eq!(report["metrics"]["response_time_ms"], 120.0, "{report}");
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("error_rate -5") && warnings.contains("response_time_ms"), "{warnings}");
}

/// Item 10: decisions of a cycle killed mid-action stayed pending for good.
#[test]
fn decisions_of_a_killed_cycle_are_marked_interrupted() {
    let f = Fixture::new();
    f.write("claimed_a.json", r#"{"id":"a","claimed_at":"2001-01-01T00:00:00Z"}"#);
    let first = f.json(&["execute", "--format", "json", "--dry-run"]);
    assert!(first["decisions_generated"].as_u64().unwrap() >= 1, "{first}");
    // What a SIGKILL between journaling a decision and its outcome leaves.
    let journal = steward_store::Journal::open_existing(&f.state().join("journal.db")).unwrap().unwrap();
    let entry = journal.recent_decisions(1).unwrap().remove(0);
    let conn_path = f.state().join("journal.db");
    drop(journal);
    let id = entry.decision.id.clone();
    let sql = format!("DELETE FROM outcomes WHERE decision_id = '{id}';");
    assert!(Command::new("python3")
        .arg("-c")
        .arg(format!("import sqlite3; c = sqlite3.connect('{}'); c.executescript(\"{sql}\"); c.commit()", conn_path.display()))
        .status()
        .unwrap()
        .success());
    let status = f.json(&["--json", "status"]);
    assert!(status["data"]["recent_decisions"][0]["outcome"].is_null(), "pending before: {status}");
    assert!(f.run(&["execute"]).status.success());
    let status = f.json(&["--json", "status"]);
    let marked = status["data"]["recent_decisions"].as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).unwrap().clone();
    assert_eq!(marked["outcome"]["result"], "interrupted", "{marked}");
}

/// Item 10: temp files of dead writers and agent files of killed workers
/// piled up.
#[test]
fn what_dead_writers_left_is_tidied_and_journaled_but_foreign_agents_are_kept() {
    let f = Fixture::new();
    for (name, body) in [
        (".steward-tmp-999999-abc", "half"),
        (".steward-tmp-1-fresh", "in flight"),
        ("agent_w9.json", r#"{"id":"agent_w9","status":"busy","worker":"steward"}"#),
        ("agent_m3.json", r#"{"id":"agent_m3","status":"active","managed_by":"steward-supervisor"}"#),
        ("agent_theirs.json", r#"{"id":"agent_theirs","status":"active"}"#),
    ] {
        f.write(name, body);
        if name != ".steward-tmp-1-fresh" {
            set_mtime(&f.dir().join(name), 3600);
        }
    }
    let report = f.json(&["execute", "--format", "json"]);
    let executed = report["executed"].to_string();
    assert!(executed.contains("removed 2 stale agent record(s) (agent_m3.json, agent_w9.json) and 1 temp file(s)"), "{report}");
    let left = names(&f.dir());
    assert_eq!(left, [".steward-tmp-1-fresh", ".steward.lock", "agent_theirs.json"], "{left:?}");
    let status = f.json(&["--json", "status"]);
    assert!(status["data"]["recent_decisions"].to_string().contains("Tidy 2 stale agent record(s)"), "journaled: {status}");
}

/// Item 10: `interval: 0.0001s` was accepted; a token of spaces was a
/// token; `STEWARD_FOO_BAR` was ignored without a word.
#[test]
fn config_floors_blank_tokens_and_unknown_sections() {
    let f = Fixture::new();
    let out = f.run(&["loop", "--interval", "0.0001", "--max-cycles", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("floor"), "{}", stderr(&out));
    fs::write(f.tmp.path().join("steward.yaml"), "auto:\n  interval: 1ms\n").unwrap();
    let out = f.run(&["analyze"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("auto.interval") && stderr(&out).contains("100ms"), "{}", stderr(&out));
    fs::write(f.tmp.path().join("steward.yaml"), "server:\n  token: \"   \"\n").unwrap();
    let out = f.run(&["analyze"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("server.token"), "{}", stderr(&out));
    fs::remove_file(f.tmp.path().join("steward.yaml")).unwrap();
    let out = f.cmd(&["analyze"]).env("STEWARD_FOO_BAR", "1").output().unwrap();
    assert!(out.status.success());
    assert!(stderr(&out).contains("STEWARD_FOO_BAR"), "{}", stderr(&out));
}
