//! The `steward` binary, run for real on temporary directories.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

mod common;
use common::{wait_for, Fixture};

fn rfc3339_ago(secs: u64) -> String {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() - secs;
    // Unix seconds are accepted wherever a timestamp is.
    t.to_string()
}

/// A small system: 3 agents (one silent), a queue, completions, telemetry,
/// a stale claim (claimant silent) and a leftover claim.
fn sample(f: &Fixture) {
    f.write("agent_1.json", &format!(r#"{{"id":"agent_1","status":"active","heartbeat":{}}}"#, rfc3339_ago(5)));
    f.write("agent_2.json", &format!(r#"{{"id":"agent_2","status":"busy","heartbeat":{},"lifecycle":"active"}}"#, rfc3339_ago(10)));
    f.write("agent_3.json", &format!(r#"{{"id":"agent_3","status":"active","heartbeat":{}}}"#, rfc3339_ago(4000)));
    for i in 0..12 {
        f.write(&format!("work_{i}.json"), &format!(r#"{{"id":"{i}","status":"pending"}}"#));
    }
    for i in 0..6 {
        f.write(&format!("completed_c{i}.json"), &format!(r#"{{"id":"c{i}","status":"completed"}}"#));
    }
    for i in 0..4 {
        f.write(&format!("telemetry_{i}.json"), r#"{"id":"t","metrics":{"response_time":100,"error_rate":0.05}}"#);
    }
    f.write("claimed_s1.json", r#"{"id":"s1","claimed_by":"agent_3","attempts":0}"#);
    f.write("claimed_c0.json", r#"{"id":"c0","claimed_by":"agent_1"}"#);
}

/// Replaces what changes from run to run (times, ids, paths, ages).
fn normalize(v: &mut Value, dir: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "timestamp" | "last_updated" | "cycle_id" if x.is_string() => *x = Value::String(format!("[{k}]")),
                    "id" | "decision_id" if x.as_str().is_some_and(|s| s.contains('T') && s.contains('Z')) => {
                        *x = Value::String("[decision id]".into())
                    }
                    "duration_ms" => *x = Value::from(0),
                    "heartbeat_age_seconds" if x.is_number() => *x = Value::String("[age]".into()),
                    _ => normalize(x, dir),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalize(x, dir)),
        Value::String(s) if s.contains(dir) => *s = s.replace(dir, "[dir]"),
        // Ages depend on how long the test took to get here.
        Value::String(s) if s.contains("silent for ") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("silent for ") {
                out.push_str(&rest[..i + "silent for ".len()]);
                rest = rest[i + "silent for ".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
                out.push_str("[N]");
            }
            out.push_str(rest);
            *s = out;
        }
        _ => {}
    }
}

fn snapshot_json(f: &Fixture, args: &[&str]) -> String {
    let mut v = f.json(args);
    normalize(&mut v, &f.tmp.path().display().to_string());
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn json_shapes_of_analyze_execute_and_status() {
    let f = Fixture::new();
    sample(&f);
    insta::assert_snapshot!("analyze", snapshot_json(&f, &["analyze", "--format", "json"]));
    // The same document under the global flag.
    let a = f.json(&["--json", "analyze"]);
    assert!(a["decisions"].as_array().unwrap().iter().all(|d| d["confidence"].is_f64()));
    insta::assert_snapshot!("execute", snapshot_json(&f, &["execute", "--format", "json"]));
    insta::assert_snapshot!("status", snapshot_json(&f, &["--json", "status"]));
    insta::assert_snapshot!("agents", snapshot_json(&f, &["--json", "agents"]));
}

#[test]
fn the_spec_jq_paths_resolve() {
    let f = Fixture::new();
    sample(&f);
    f.run(&["execute"]);
    let status = f.json(&["--json", "status"]);
    assert!(status["data"]["status"]["health_score"].is_f64());
    assert!(status["data"]["recent_decisions"].as_array().is_some_and(|d| !d.is_empty()));
    let d = &status["data"]["recent_decisions"][0];
    for key in ["id", "type", "priority", "confidence", "rationale", "parameters", "action", "outcome"] {
        assert!(d.get(key).is_some(), "recent decision lacks {key}: {d}");
    }
    let analyze = f.json(&["analyze", "--format", "json"]);
    for d in analyze["decisions"].as_array().unwrap() {
        for key in ["id", "type", "priority", "confidence", "rationale", "description", "parameters", "action", "inverse"] {
            assert!(d.get(key).is_some(), "decision lacks {key}: {d}");
        }
    }
}

#[test]
fn malformed_files_are_warnings_that_name_them_and_exit_zero() {
    let f = Fixture::new();
    f.write("agent_ok.json", r#"{"id":"ok","status":"active"}"#);
    f.write("agent_broken.json", r#"{"id": "x", "status": "#);
    f.write("agent_list.json", "[1, 2, 3]");
    f.write("claimed_bad.json", "\u{0}\u{1}binary");
    f.write("work_1.json", "never opened");
    let out = f.run(&["--json", "analyze"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for name in ["agent_broken.json", "agent_list.json", "claimed_bad.json"] {
        assert!(warnings.iter().any(|w| w.starts_with(name)), "no warning names {name}: {warnings:?}");
    }
    assert_eq!(v["metrics"]["active_agents"], 1);
    assert_eq!(v["metrics"]["work_queue_size"], 1);
    assert_eq!(v["metrics"]["in_flight"], 1);
    // The table says so too, on stdout, and still exits 0.
    let out = f.run(&["analyze"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent_broken.json: malformed JSON"));
}

/// Issue 10: `--coordination ./cordination analyze` exited 0, scored an
/// empty system, proposed `scale_up 0 → 1`, and `execute` created state.
/// A directory that does not exist is now an error naming it (with a
/// hint at a close name); `--create` makes it.
#[test]
fn a_mistyped_directory_is_refused_and_create_makes_it() {
    let f = Fixture::new();
    for args in [&["analyze"][..], &["execute"], &["loop", "--max-cycles", "1"], &["serve"], &["start"], &["status"], &["agents"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_steward"))
            .current_dir(f.tmp.path())
            .args(["--coordination", "./cordination"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("./cordination does not exist") && err.contains("Did you mean ./coordination?") && err.contains("--create"),
            "{err}"
        );
    }
    assert!(!f.tmp.path().join("cordination").exists() && !f.tmp.path().join(".steward").exists(), "nothing was created");
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(f.tmp.path())
        .args(["--coordination", "fresh", "--create", "--json", "analyze"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.tmp.path().join("fresh").is_dir());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["metrics"]["health_state"], "critical", "an empty system, now on purpose");
}

/// Issue 10: `./a` and `./b` in one parent shared `./.steward`, and
/// `status --coordination ./b` showed `./a`'s decisions. Each directory
/// has its own state directory now, and a journal refuses another one.
#[test]
fn each_directory_has_its_own_journal_and_a_journal_refuses_another() {
    let f = Fixture::new();
    for d in ["a", "b"] {
        fs::create_dir(f.tmp.path().join(d)).unwrap();
        fs::write(f.tmp.path().join(d).join("claimed_x.json"), r#"{"id":"x","claimed_at":"2001-01-01T00:00:00Z"}"#).unwrap();
    }
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_steward")).current_dir(f.tmp.path()).args(args).output().unwrap();
    assert!(run(&["--coordination", "a", "execute"]).status.success());
    let b: Value = serde_json::from_slice(&run(&["--coordination", "b", "--json", "status"]).stdout).unwrap();
    assert_eq!(b["data"]["recent_decisions"], serde_json::json!([]), "b sees none of a's decisions: {b}");
    assert!(f.tmp.path().join(".steward/a/journal.db").exists() && !f.tmp.path().join(".steward/b").exists());
    // A journal given to another directory by hand says whose it is.
    let out = run(&["--coordination", "b", "--state-dir", ".steward/a", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to") && err.contains("/a") && err.contains("--state-dir"), "{err}");
}

#[test]
fn dry_run_leaves_the_directory_byte_identical() {
    let f = Fixture::new();
    sample(&f);
    let before = f.contents();
    let out = f.json(&["execute", "--dry-run", "--format", "json"]);
    assert!(out["dry_run"].as_bool().unwrap());
    assert!(out["executed"].as_array().unwrap().is_empty());
    assert!(
        out["skipped"].as_array().unwrap().iter().any(|s| s["reason"].as_str().unwrap().starts_with("dry_run: would execute: ")),
        "{out}"
    );
    assert_eq!(f.contents(), before);
    // It was journaled all the same.
    let status = f.json(&["--json", "status"]);
    assert!(!status["data"]["recent_decisions"].as_array().unwrap().is_empty());
    assert_eq!(f.contents(), before);
}

#[test]
fn stale_claims_are_requeued_and_nothing_is_deleted() {
    let f = Fixture::new();
    sample(&f);
    let ids = |f: &Fixture| -> Vec<String> {
        let mut v: Vec<String> = f
            .names()
            .into_iter()
            .filter_map(|n| {
                ["work_", "claimed_", "failed_"].iter().find_map(|p| n.strip_prefix(p).map(|s| s.trim_end_matches(".json").to_owned()))
            })
            .collect();
        v.sort();
        v
    };
    let before = ids(&f);
    let report = f.json(&["execute", "--format", "json"]);
    let executed: Vec<&str> = report["executed"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(executed.contains(&"coordination_improve"), "{report}");
    let names = f.names();
    assert!(names.contains(&"work_s1.json".to_owned()) && !names.contains(&"claimed_s1.json".to_owned()), "{names:?}");
    let requeued: Value = serde_json::from_slice(&fs::read(f.dir().join("work_s1.json")).unwrap()).unwrap();
    assert_eq!(requeued["attempts"], 1);
    // The leftover claim went (its completion exists); every other item is still there.
    assert!(!names.contains(&"claimed_c0.json".to_owned()));
    let after = ids(&f);
    let expected: Vec<String> = before.into_iter().filter(|i| i != "c0").collect();
    assert_eq!(after, expected);
    // Restart and scale have no fleet actuator yet: skipped, saying so.
    assert!(report["skipped"].as_array().unwrap().iter().any(|s| s["reason"] == "no fleet actuator configured"), "{report}");
}

#[test]
fn a_held_lock_makes_execute_refuse_clearly() {
    let f = Fixture::new();
    sample(&f);
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(f.dir().join(".steward.lock")).unwrap();
    lock.lock().unwrap();
    let out = f.run(&["execute"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already executing"), "{err}");
    assert!(f.names().contains(&"claimed_s1.json".to_owned()), "the refused executor touched nothing");
    drop(lock);
    // Another test's child may hold a copy of our descriptor for an instant
    // between its fork and exec (flock follows the open file): retry briefly.
    assert!(wait_for(5, || f.run(&["execute"]).status.success()));
}

#[test]
fn two_executes_at_once_act_once() {
    let f = Fixture::new();
    f.write("agent_1.json", r#"{"id":"agent_1","status":"active"}"#);
    // Enough stale claims that one execute takes a while.
    for i in 0..1500 {
        f.write(&format!("claimed_{i:04}.json"), r#"{"claimed_by":"gone","claimed_at":"2001-01-01T00:00:00Z"}"#);
    }
    let spawn = || f.cmd(&["execute", "--format", "json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert!(ok >= 1);
    for o in &outs {
        if !o.status.success() {
            assert!(String::from_utf8_lossy(&o.stderr).contains("already executing"), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    // Whatever the interleaving, every item was requeued exactly once.
    let names = f.names();
    assert_eq!(names.iter().filter(|n| n.starts_with("work_")).count(), 1500);
    for i in [0, 777, 1499] {
        let v: Value = serde_json::from_slice(&fs::read(f.dir().join(format!("work_{i:04}.json"))).unwrap()).unwrap();
        assert_eq!(v["attempts"], 1);
    }
}

#[test]
fn bad_config_is_exit_two_naming_key_and_file() {
    let f = Fixture::new();
    fs::write(f.tmp.path().join("steward.yaml"), "auto:\n  max_agents: lots\n").unwrap();
    let out = f.run(&["analyze"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auto.max_agents") && err.contains("steward.yaml"), "{err}");
    let out = f.cmd(&["--config", "/nonexistent.yaml", "analyze"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --json failures are JSON too.
    let out = f.run(&["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], false);
    assert!(v["errors"][0].as_str().unwrap().contains("auto.max_agents"));
    fs::remove_file(f.tmp.path().join("steward.yaml")).unwrap();
    let out = f.cmd(&["analyze"]).env("STEWARD_AUTO_MIN_CONFIDENCE", "2").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STEWARD_AUTO_MIN_CONFIDENCE"));
}

#[test]
fn bad_flags_are_exit_two() {
    let f = Fixture::new();
    assert_eq!(f.run(&["execute", "--min-confidence", "7"]).status.code(), Some(2));
    assert_eq!(f.run(&["loop", "--interval", "-1"]).status.code(), Some(2));
    assert_eq!(f.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn env_and_flags_change_behaviour() {
    let f = Fixture::new();
    sample(&f);
    // Nothing passes a confidence threshold of 1.
    let out = f.cmd(&["execute", "--format", "json"]).env("DSLMODEL_AUTO_MIN_CONFIDENCE", "1").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["executed"].as_array().unwrap().is_empty(), "{v}");
    assert!(f.names().contains(&"claimed_s1.json".to_owned()));
    // --max 0 admits nothing either.
    let v = f.json(&["execute", "--max", "0", "--format", "json"]);
    assert!(
        v["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["reason"].as_str().unwrap().starts_with("max_decisions")
                || s["reason"].as_str().unwrap().starts_with("min_confidence")),
        "{v}"
    );
}

#[test]
fn loop_runs_its_cycles_and_stops_gracefully_on_sigterm() {
    let f = Fixture::new();
    sample(&f);
    let out = f.run(&["loop", "--interval", "0.1", "--max-cycles", "3", "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    let mut child = f.cmd(&["loop", "--interval", "60"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let db = f.state().join("journal.db");
    wait_for(20, || db.exists());
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "loop did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_example_parses_as_a_config() {
    let f = Fixture::new();
    let out = f.run(&["config", "--example"]);
    assert!(out.status.success());
    fs::write(f.tmp.path().join("from-example.yaml"), &out.stdout).unwrap();
    let out = f.run(&["--config", "from-example.yaml", "config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The reference generator's own expected metrics (the Python engine's
/// arithmetic) match ours to the bit.
#[test]
fn metrics_match_the_reference_generator() {
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen_coordination.py");
    let f = Fixture::new();
    for (i, counts) in [[2, 8, 3, 4], [5, 0, 1, 0], [2, 3, 7, 12], [7, 40, 13, 25], [0, 0, 0, 0]].iter().enumerate() {
        let out_dir = f.tmp.path().join(format!("gen{i}"));
        let out = Command::new("python3")
            .arg(&gen)
            .args([
                "--agents",
                &counts[0].to_string(),
                "--work",
                &counts[1].to_string(),
                "--completed",
                &counts[2].to_string(),
                "--telemetry",
                &counts[3].to_string(),
            ])
            .args(["--seed", "42", "--print-expected", "--out"])
            .arg(&out_dir)
            .output()
            .expect("python3 runs the shared generator");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = &info["expected"];
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        let out = c.current_dir(f.tmp.path()).arg("--coordination").arg(&out_dir).args(["--json", "analyze"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in ["completion_rate", "active_agents", "work_queue_size", "telemetry_volume", "health_score", "health_state"] {
            assert_eq!(v["metrics"][key], expected[key], "{key} for {counts:?}");
        }
    }
}

/// Regression (review of issue 2): a running loop holds the target, so an
/// `execute` in between its cycles refuses instead of acting.
#[test]
fn a_running_loop_keeps_other_executors_out() {
    let f = Fixture::new();
    sample(&f);
    let mut child = f.cmd(&["loop", "--interval", "60"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let db = f.state().join("journal.db");
    wait_for(20, || db.exists());
    std::thread::sleep(Duration::from_millis(300));
    let out = f.run(&["execute"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already executing"));
}

#[test]
fn a_file_named_as_the_directory_is_bad_input_and_creates_nothing() {
    let f = Fixture::new();
    fs::write(f.tmp.path().join("afile"), "").unwrap();
    for args in [&["analyze"][..], &["execute"], &["status"], &["agents"]] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
        let out = c.current_dir(f.tmp.path()).args(["--coordination", "afile"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
    }
    assert!(!f.state().exists());
}

#[test]
fn usage_errors_under_json_are_json() {
    let f = Fixture::new();
    let out = f.run(&["--json", "execute", "--max", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], false);
}

/// Issue 10: `execute --dry-run` said "would execute" for scale and restart
/// decisions that a real run skips for want of a fleet; `loop` lines said
/// `skipped 2` without why.
#[test]
fn a_dry_run_gives_the_verdict_a_real_run_would_and_loop_lines_say_why() {
    let f = Fixture::new();
    for i in 0..30 {
        f.write(&format!("work_{i}.json"), "{}");
    }
    let report = f.json(&["execute", "--dry-run", "--format", "json", "--force-confidence", "1"]);
    let skipped = report["skipped"].as_array().unwrap();
    let scale = skipped.iter().find(|s| s["type"] == "scale_up").unwrap_or_else(|| panic!("a scale-up: {report}"));
    assert_eq!(scale["reason"], "dry_run: would be skipped: no fleet actuator configured", "{report}");
    let out = f.run(&["loop", "--dry-run", "--max-cycles", "1", "--interval", "0.1"]);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("scale_up skipped (dry_run: would be skipped: no fleet actuator configured)"), "{line}");
}

/// Issue 10, item 7: numbers for people. Ages in days, not 59946215 s;
/// "1 record"; a max_decisions verdict that reads; the documented
/// `add_capacity`; a time-to-failure column that says its unit; logs as
/// text on request and JSON lines when piped.
#[test]
fn numbers_and_words_for_people() {
    let f = Fixture::new();
    f.write("claimed_old.json", r#"{"id":"old","claimed_at":"2024-01-01T00:00:00Z"}"#);
    f.write("telemetry_1.json", r#"{"metrics":{"error_rate":0.1}}"#);
    let out = f.run(&["analyze"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("claim_ttl 10 min; oldest ") && text.contains(" d)."), "{text}");
    assert!(text.contains("telemetry   1 record,") || text.contains("telemetry   1 record\n"), "{text}");
    for i in 0..5 {
        f.write(&format!("claimed_c{i}.json"), &format!(r#"{{"id":"c{i}","claimed_at":"2024-01-01T00:00:00Z"}}"#));
    }
    let report = f.json(&["execute", "--dry-run", "--format", "json", "--max", "0"]);
    assert!(report["skipped"].to_string().contains("max_decisions: 0 decision(s) already admitted this cycle"), "{report}");

    let csv = f.tmp.path().join("disk.csv");
    let rows: String = (0..48)
        .map(|h| format!("2026-01-01T{:02}:{:02}:00Z,a,disk_percent,{}\n", h / 2, (h % 2) * 30, 80.0 + f64::from(h) * 0.3))
        .collect();
    fs::write(&csv, format!("timestamp,component,metric,value\n{rows}")).unwrap();
    let out = f.run(&["predict", "--input", csv.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILS IN") && text.contains(" h ") && text.contains("add_capacity") && !text.contains("addcapacity"), "{text}");

    // Piped stderr gets JSON lines; --log-format text gives text.
    let out = f.run(&["-v", "analyze"]);
    let first = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").to_owned();
    assert!(serde_json::from_str::<Value>(&first).is_ok(), "JSON when piped: {first}");
    let out = f.run(&["-v", "--log-format", "text", "analyze"]);
    let first = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").to_owned();
    assert!(serde_json::from_str::<Value>(&first).is_err() && first.contains("Snapshot taken."), "text on request: {first}");
}

/// Issue 10, item 8: a subcommand's help shows its own flags first and the
/// global ones under their own heading; `--format json` works for every
/// command that prints; `detect` writes to stdout by default with a
/// summary on stderr; the seed-era `--verbose` is accepted.
#[test]
fn help_formats_and_flags_a_newcomer_reaches_for() {
    let f = Fixture::new();
    let help = String::from_utf8_lossy(&f.run(&["execute", "--help"]).stdout).into_owned();
    let (own, global) = help.split_once("Global options:").expect("a Global options heading");
    assert!(own.contains("--max") && own.contains("--dry-run") && !own.contains("--coordination"), "{help}");
    assert!(global.contains("--coordination") && global.contains("--format"), "{help}");
    for args in [
        &["status", "--format", "json"][..],
        &["agents", "--format", "json"],
        &["config", "--format", "json"],
        &["--format", "json", "analyze"],
    ] {
        let out = f.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok(), "{args:?} printed JSON");
    }
    let series = f.tmp.path().join("s.csv");
    fs::write(&series, (0..30).fold(String::from("timestamp,value\n"), |s, i| s + &format!("2026-01-01T00:{i:02}:00Z,{}\n", i % 3)))
        .unwrap();
    let out = f.run(&["detect", "--input", series.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("timestamp,value,anomaly_score\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("30 rows scored to stdout"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = f.run(&["--verbose", "execute", "--dry-run", "--format", "json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["decisions"].is_array(), "--verbose prints every decision in full: {report}");
}
