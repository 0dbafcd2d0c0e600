//! Real agents: the built-in worker, the supervisor under `loop` and
//! `execute`, crash safety, draining, rollback and the demo.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{kill_fleet, wait_for, Fixture};

fn names_with(dir: &Path, prefix: &str) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn items(f: &Fixture, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|i| {
            let id = format!("i{i:04}");
            f.write(&format!("work_{id}.json"), &format!(r#"{{"id":"{id}","status":"pending","payload":{{"n":{i}}}}}"#));
            id
        })
        .collect()
}

fn ids(dir: &Path, prefix: &str) -> BTreeSet<String> {
    names_with(dir, prefix).into_iter().map(|n| n.trim_start_matches(prefix).trim_end_matches(".json").to_owned()).collect()
}

fn config(f: &Fixture, yaml: &str) {
    fs::write(f.tmp.path().join("steward.yaml"), yaml).unwrap();
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let done = wait_for(30, || child.try_wait().unwrap().is_some());
    if !done {
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[test]
fn the_worker_follows_the_claim_protocol() {
    let f = Fixture::new();
    let want = items(&f, 20);
    let out = f.run(&["worker", "--id", "w1", "--exit-when-idle", "0.3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ids(&f.dir(), "completed_"), want);
    let rec = json_file(&f.dir().join("completed_i0003.json"));
    assert_eq!((rec["agent_id"].as_str(), rec["status"].as_str(), rec["payload"]["n"].as_u64()), (Some("w1"), Some("completed"), Some(3)));
    assert!(rec.get("claimed_by").is_none());
    // Nothing left behind: no claims, no temp files, no agent file of a gone agent.
    let left: Vec<String> = fs::read_dir(f.dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with("completed_"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn exec_work_gets_the_item_on_stdin_and_failures_retry_then_dead_letter() {
    let f = Fixture::new();
    items(&f, 2);
    let out = f.run(&["worker", "--exit-when-idle", "0.3", "--exec", "sh", "-c", r#"grep -q '"n":0' && echo '{"ok":1}'"#]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Item 0 matched and printed a result; item 1 made grep fail 3 times.
    assert_eq!(json_file(&f.dir().join("completed_i0000.json"))["result"]["ok"], 1);
    let dead = json_file(&f.dir().join("failed_i0001.json"));
    assert_eq!(dead["attempts"], 3);
    assert!(dead["error"].as_str().unwrap().contains("exited"), "{dead}");
}

#[test]
fn bad_worker_flags_are_exit_two() {
    let f = Fixture::new();
    assert_eq!(f.run(&["worker", "--service-time", "fast"]).status.code(), Some(2));
    assert_eq!(f.run(&["worker", "--fail-rate", "2"]).status.code(), Some(2));
    let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
    let out = c.current_dir(f.tmp.path()).args(["--coordination", "missing", "worker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Acceptance: 200 items, 4 workers, a random worker SIGKILLed every 0.5 s
/// for 10 s, then drain. Every item completed exactly once, by id, and no
/// claim or temporary file left behind.
#[test]
fn crash_safety_under_sigkill() {
    let f = Fixture::new();
    let want = items(&f, 200);
    let state = f.state();
    let ledger = state.join("duplicates.log");
    config(
        &f,
        &format!(
            r#"
coordination: {{agent_ttl: 5s, claim_ttl: 3s, max_attempts: 100}}
auto: {{min_agents: 4, max_agents: 4, interval: 1s}}
fleet:
  kind: supervisor
  args: ["--service-time", "const:0.15", "--ledger", "{}"]
  heartbeat_interval: 1s
  restart_backoff: 100ms
  restart_backoff_max: 500ms
  crash_loop: 1000
  drain_timeout: 5s
"#,
            ledger.display()
        ),
    );
    let child = f.cmd(&["loop"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_for(20, || fs::read(state.join("fleet.json"))
        .is_ok_and(|b| serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["workers"].as_array().is_some_and(|w| w.len() == 4)))));
    let mut kills = 0;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(v) = fs::read(state.join("fleet.json")).map(|b| serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null)) else {
            continue;
        };
        let pids: Vec<u64> = v["workers"].as_array().into_iter().flatten().filter_map(|w| w["pid"].as_u64()).collect();
        if pids.is_empty() {
            continue;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pid = pids[(seed % pids.len() as u64) as usize];
        if Command::new("kill").args(["-KILL", &pid.to_string()]).status().is_ok_and(|s| s.success()) {
            kills += 1;
        }
    }
    let drained = wait_for(90, || {
        ids(&f.dir(), "completed_").len() == 200 && names_with(&f.dir(), "claimed_").is_empty() && names_with(&f.dir(), "work_").is_empty()
    });
    stop(child);
    kill_fleet(&state);
    assert!(kills >= 15, "only {kills} kills landed");
    assert!(
        drained,
        "not drained: {} completed, {:?} claimed, {} pending",
        ids(&f.dir(), "completed_").len(),
        names_with(&f.dir(), "claimed_"),
        names_with(&f.dir(), "work_").len()
    );
    assert_eq!(ids(&f.dir(), "completed_"), want, "every item completed, by id");
    assert!(names_with(&f.dir(), "failed_").is_empty());
    assert!(names_with(&f.dir(), ".steward-").is_empty(), "temp files left: {:?}", names_with(&f.dir(), ".steward-"));
    assert_eq!(fs::read_to_string(&ledger).unwrap_or_default(), "", "no item was completed twice");
}

/// Runs a scale-down from 3 busy workers to 1 with items of 3 s, and
/// returns the attempts recorded on the completed items.
fn scale_down_busy_fleet(drain_timeout: &str) -> Vec<u64> {
    let f = Fixture::new();
    items(&f, 3);
    let state = f.state();
    let yaml = format!(
        r#"
auto: {{min_agents: 1, max_agents: 3, scale_down_window: 0s, scale_up_cooldown: 0s, interval: 1s}}
adaptive: {{target_per_agent: 1}}
fleet:
  kind: supervisor
  args: ["--service-time", "const:3"]
  heartbeat_interval: 500ms
  drain_timeout: {drain_timeout}
"#
    );
    config(&f, &yaml);
    let out = f.run(&["execute", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["executed"].as_array().unwrap().iter().any(|e| e["type"] == "scale_up"), "{report}");
    assert!(wait_for(10, || names_with(&f.dir(), "claimed_").len() == 3), "3 workers busy");
    // Now the fleet may have only one agent: the loop scales down while all three are mid-item.
    let child = f.cmd(&["loop"]).env("STEWARD_AUTO_MAX_AGENTS", "1").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let done = wait_for(30, || ids(&f.dir(), "completed_").len() == 3);
    stop(child);
    kill_fleet(&state);
    assert!(done, "items not completed: {:?}", names_with(&f.dir(), ""));
    ids(&f.dir(), "completed_")
        .iter()
        .map(|id| json_file(&f.dir().join(format!("completed_{id}.json")))["attempts"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn scale_down_lets_busy_workers_finish_their_item() {
    assert_eq!(scale_down_busy_fleet("10s"), [0, 0, 0], "no item was interrupted and retried");
}

/// The control: with a drain_timeout shorter than the item, the stopped
/// workers are killed mid-item and their items retried, so the test above
/// can tell the difference.
#[test]
fn a_short_drain_timeout_does_interrupt_items() {
    let attempts = scale_down_busy_fleet("500ms");
    assert_eq!(attempts.iter().filter(|&&a| a >= 1).count(), 2, "{attempts:?}");
}

#[test]
fn rollback_round_trips_and_refuses_where_it_must() {
    let f = Fixture::new();
    items(&f, 25);
    let state = f.state();
    config(
        &f,
        r#"
auto: {min_agents: 2, max_agents: 10, max_step: 10, scale_down_window: 0s, scale_up_cooldown: 0s}
adaptive: {rate_window: 1}
fleet: {kind: supervisor, command: ["sleep", "120"]}
"#,
    );
    let running = || -> usize {
        let v: Value = serde_json::from_slice(&fs::read(state.join("fleet.json")).unwrap()).unwrap();
        v["workers"].as_array().unwrap().iter().filter(|w| w["stop_requested_at"].is_null()).count()
    };
    let scale_id = |report: &Value, kind: &str| -> String {
        report["executed"].as_array().unwrap().iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind} in {report}"))
            ["decision_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let up = f.json(&["execute", "--format", "json"]);
    let first = scale_id(&up, "scale_up");
    assert_eq!(running(), 5);
    // The work goes away; after an idle cycle the policy brings the fleet to min_agents.
    for name in names_with(&f.dir(), "work_") {
        fs::rename(f.dir().join(&name), f.dir().join(name.replace("work_", "completed_"))).unwrap();
    }
    f.json(&["execute", "--format", "json"]);
    let down = f.json(&["execute", "--format", "json"]);
    let down_id = scale_id(&down, "scale_down");
    assert_eq!(running(), 2);

    // 5 → 2 rolled back: 2 → 5.
    let r1 = f.json(&["--json", "rollback", &down_id]);
    let r1_id = r1["data"]["decision"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r1["data"]["decision"]["parameters"]["rollback_of"], down_id.as_str());
    assert_eq!(running(), 5);
    // ... and that rolled back again: 5 → 2.
    f.json(&["--json", "rollback", &r1_id]);
    assert_eq!(running(), 2);

    let refuse = |id: &str, why: &str| {
        let out = f.run(&["rollback", id]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{id}: {err}");
        assert!(err.contains("refusing") && err.contains(why), "{id}: {err}");
    };
    refuse(&down_id, "already rolled back");
    // The first scale-up left 5 agents; there are 2 now.
    refuse(&first, "the fleet has changed since");
    let status = f.json(&["--json", "status"]);
    let no_inverse = status["data"]["recent_decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["inverse"].is_null())
        .map(|d| d["id"].as_str().unwrap().to_owned());
    if let Some(id) = no_inverse {
        refuse(&id, "no inverse");
    }
    assert_eq!(f.run(&["rollback", "no-such-decision"]).status.code(), Some(2));
    kill_fleet(&state);
}

/// Acceptance: the demo, with chaos, as a script would run it.
#[test]
fn demo_with_chaos_loses_nothing_and_scales_both_ways() {
    let f = Fixture::new();
    let dir = f.tmp.path().join("demo");
    let out = f.cmd(&["demo", "--duration", "60", "--chaos", "--json", "--dir"]).arg(&dir).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert!(out.status.success(), "{s}\n{stderr}");
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {s}"));
    assert!(n("produced") > 100, "{s}");
    assert_eq!(n("produced"), n("completed") + n("pending") + n("in_flight") + n("dead_lettered"), "{s}");
    assert_eq!(n("duplicates"), 0, "{s}");
    assert!(n("scale_ups") >= 1 && n("scale_downs") >= 1, "{s}");
    assert!(n("chaos_kills") >= 1, "{s}");
    assert!(matches!(s["state_end"].as_str(), Some("healthy" | "optimal")), "{s}");
    for k in ["max_agents", "health_start", "health_end"] {
        assert!(s.get(k).is_some(), "{k} missing in {s}");
    }
    // No worker outlives the demo.
    let fleet: Value = serde_json::from_slice(&fs::read(dir.join(".steward/fleet.json")).unwrap()).unwrap();
    assert!(fleet["workers"].as_array().unwrap().is_empty(), "{fleet}");
}

/// Regression (review of the real-agents issue): a handler that cannot run
/// must not fail every item into the dead letters.
#[test]
fn a_missing_exec_handler_is_refused_before_any_item_is_touched() {
    let f = Fixture::new();
    items(&f, 3);
    let before = names_with(&f.dir(), "");
    let out = f.run(&["worker", "--exit-when-idle", "0.3", "--exec", "./hadnle.sh"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hadnle.sh"));
    assert_eq!(names_with(&f.dir(), ""), before);
}

/// Regression (review of the real-agents issue): workers started in another
/// working directory (fleet.cwd) still find the coordination directory.
#[test]
fn workers_with_their_own_working_directory_find_the_queue() {
    let f = Fixture::new();
    let want = items(&f, 4);
    fs::create_dir(f.tmp.path().join("elsewhere")).unwrap();
    config(&f, "auto: {max_agents: 2}\nfleet: {kind: supervisor, cwd: elsewhere}\n");
    // A relative --coordination, as a user types it, with workers running elsewhere.
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(f.tmp.path())
        .args(["--coordination", "coordination", "execute", "--format", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["executed"].as_array().unwrap().iter().any(|e| e["type"] == "scale_up"), "{report}");
    let done = wait_for(20, || ids(&f.dir(), "completed_") == want);
    kill_fleet(&f.state());
    assert!(done, "{:?}", names_with(&f.dir(), ""));
}

/// Issue 10: in a directory with 3 live hand-made agents, `Scale 3 → 6`
/// started 6 workers named agent_1 … agent_6 over their records, and a
/// one-shot execute left its workers running without a word. Now the
/// supervisor starts 3 of its own under names nobody has, the others'
/// records are untouched, and the output says what is left running.
#[test]
fn the_supervisor_starts_only_its_share_and_never_writes_over_other_agents() {
    let f = Fixture::new();
    let now =
        steward_core::time::format_rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64);
    for i in 1..=3 {
        f.write(&format!("agent_{i}.json"), &format!(r#"{{"id":"agent_{i}","status":"active","heartbeat":"{now}","hand_made":true}}"#));
    }
    for i in 0..60 {
        f.write(&format!("work_q{i}.json"), "{}");
    }
    config(&f, "adaptive: {target_per_agent: 10}\nfleet: {kind: supervisor, command: [sleep, \"30\"]}\n");
    let out = f.run(&["execute"]);
    kill_fleet(&f.state());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Scale steward's agents 0 → 3") || text.contains("started 3"), "{text}");
    assert!(text.contains("3 worker(s) left running for the next run to adopt"), "{text}");
    for i in 1..=3 {
        assert!(fs::read_to_string(f.dir().join(format!("agent_{i}.json"))).unwrap().contains("hand_made"), "agent_{i} written over");
    }
    let fleet = json_file(&f.state().join("fleet.json"));
    let workers: Vec<&str> = fleet["workers"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(workers.len(), 3, "{fleet}");
    assert!(workers.iter().all(|w| w.starts_with("agent_sw")), "{workers:?}");
}

/// Issue 10: a failing `--exec` handler's item said only "exited with
/// exit status: 1"; the tail of what it wrote on stderr is the reason.
#[test]
fn a_failing_handlers_stderr_is_in_the_items_last_error() {
    let f = Fixture::new();
    f.write("work_x.json", r#"{"id":"x"}"#);
    let handler = f.tmp.path().join("h.sh");
    fs::write(&handler, "#!/bin/sh\necho 'noise' >&2\necho 'database refused the connection: too many clients' >&2\nexit 1\n").unwrap();
    Command::new("chmod").arg("+x").arg(&handler).status().unwrap();
    let out = f.run(&["worker", "--id", "w1", "--max-items", "1", "--exec", handler.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let item = json_file(&f.dir().join("work_x.json"));
    let err = item["last_error"].as_str().unwrap();
    assert!(err.contains("exited with exit status: 1") && err.contains("too many clients"), "{err}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("too many clients"), "and it still reaches the worker's log");
}

/// Issue 10, item 9: the demo says how long it runs at most and usually,
/// and what its agents and workers columns count.
#[test]
fn the_demo_explains_itself() {
    let f = Fixture::new();
    let dir = f.tmp.path().join("demo");
    let out = f.run(&["demo", "--duration", "6", "--interval", "0.5", "--dir", dir.to_str().unwrap()]);
    kill_fleet(&dir.join(".steward"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("It runs at most 6 s, usually"), "{text}");
    assert!(text.contains("agents: agent records alive") && text.contains("workers: the processes the supervisor runs"), "{text}");
    assert!(text.contains("Summary after"), "{text}");
}
