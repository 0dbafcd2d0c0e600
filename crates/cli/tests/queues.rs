//! Real queues as sources, against real servers (Debian's redis-server and
//! postgresql, started once for this test binary on loopback ports):
//! chaos with SIGKILLed workers, analyze agreeing with the server's counts
//! and with the same load in a coordination directory, and the loop
//! riding out a Redis outage.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use steward_queue::{QueueUrl, WorkQueue};

mod common;
use common::{get_text, kill_fleet, wait_for, Fixture};

#[path = "../../queue/tests/support/servers.rs"]
mod servers;
use servers::{free_port, shared_postgres, shared_redis};

const ITEMS: usize = 2000;

fn queue(url: &str) -> Box<dyn WorkQueue> {
    let mut q = steward_queue::open(&QueueUrl::parse(url).unwrap(), Duration::from_secs(5));
    q.prepare().unwrap();
    q
}

fn items(n: usize, prefix: &str) -> Vec<Map<String, Value>> {
    (0..n).map(|i| json!({"id": format!("{prefix}{i:05}"), "n": i}).as_object().unwrap().clone()).collect()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    if !wait_for(30, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn worker_pids(state: &Path) -> Vec<u64> {
    let Ok(v) = fs::read(state.join("fleet.json")).map(|b| serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null)) else {
        return Vec::new();
    };
    v["workers"].as_array().into_iter().flatten().filter_map(|w| w["pid"].as_u64()).collect()
}

/// `steward.yaml` for a loop on `url` with `workers` supervised `worker
/// --queue` processes run with `args`; `ttl` is the agent TTL.
fn supervised(f: &Fixture, url: &str, ttl: &str, workers: u32, interval: &str, args: &str, extra: &str) {
    fs::write(
        f.tmp.path().join("steward.yaml"),
        format!(
            "source: {{url: \"{url}\", timeout: 2s}}\n\
             coordination: {{agent_ttl: {ttl}, claim_ttl: 1h, max_attempts: 100}}\n\
             auto: {{min_agents: {workers}, max_agents: {workers}, interval: {interval}}}\n\
             fleet:\n  kind: supervisor\n  args: [{args}]\n  heartbeat_interval: 500ms\n  restart_backoff: 100ms\n  restart_backoff_max: 300ms\n  crash_loop: 1000\n{extra}"
        ),
    )
    .unwrap();
}

/// 2,000 items, 6 supervised workers (40 ms an item: 150 items/s, so the
/// work outlasts the chaos), one SIGKILLed every 0.5 s for 10 s,
/// then drain: `done()` must reach the full set with nothing pending.
fn chaos(url: &str, prefix: &str, completed_ids: impl Fn() -> BTreeSet<String>, in_flight: impl Fn() -> u64) {
    let f = Fixture::new();
    let state = f.tmp.path().join("state");
    let ledger = f.tmp.path().join("duplicates.log");
    queue(url).push(&items(ITEMS, prefix)).unwrap();
    let args = format!(r#""--service-time", "const:0.04", "--batch", "4", "--ledger", "{}""#, ledger.display());
    supervised(&f, url, "3s", 6, "500ms", &args, "  drain_timeout: 5s\n");
    let child = f.cmd(&["--state-dir", state.to_str().unwrap(), "loop"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(wait_for(30, || worker_pids(&state).len() == 6), "the supervisor did not start 6 workers");
    let (mut kills, mut seed) = (0, 0x2545_f491_4f6c_dd1d_u64);
    let started = Instant::now();
    let mut done_during_chaos = 0;
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        let pids = worker_pids(&state);
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
        done_during_chaos = completed_ids().len();
    }
    let drained = wait_for(120, || completed_ids().len() == ITEMS && in_flight() == 0);
    stop(child);
    kill_fleet(&state);
    assert!(kills >= 15, "only {kills} kills landed");
    assert!(done_during_chaos < ITEMS, "the items were all done before the chaos ended: it tested nothing");
    assert!(drained, "not drained: {} of {ITEMS} completed, {} in flight", completed_ids().len(), in_flight());
    let want: BTreeSet<String> = (0..ITEMS).map(|i| format!("{prefix}{i:05}")).collect();
    assert_eq!(completed_ids(), want, "every item completed, by id");
    assert_eq!(fs::read_to_string(&ledger).unwrap_or_default(), "", "no item's completion was recorded twice");
}

#[test]
fn redis_streams_survive_sigkilled_workers_without_loss_or_duplicates() {
    let r = shared_redis();
    let url = r.url("chaos");
    chaos(
        &url,
        "r",
        || r.cli(&["HKEYS", "chaos:completed"]).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect(),
        || {
            let p = r.cli(&["XPENDING", "chaos", "workers"]);
            p.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or(u64::MAX)
        },
    );
    assert_eq!(r.int(&["XLEN", "chaos:dead"]), 0, "nothing dead-lettered");
    assert_eq!(r.int(&["HLEN", "chaos:completed"]), ITEMS as i64);
}

#[test]
fn postgres_job_tables_survive_sigkilled_workers_without_loss_or_duplicates() {
    let pg = shared_postgres();
    let url = pg.url("chaos");
    chaos(
        &url,
        "p",
        || pg.psql("SELECT item FROM chaos WHERE state = 'done'").lines().map(str::to_owned).filter(|l| !l.is_empty()).collect(),
        || u64::try_from(pg.int("SELECT count(*) FROM chaos WHERE state <> 'done'")).unwrap_or(u64::MAX),
    );
    assert_eq!(pg.int("SELECT count(*) FROM chaos"), ITEMS as i64, "no row was added or lost");
    assert_eq!(pg.int("SELECT count(DISTINCT item) FROM chaos WHERE state = 'done'"), ITEMS as i64);
}

/// The same load three ways: 30 waiting, 4 claimed by a live worker, 2
/// claimed by a worker that died (silent for longer than agent_ttl). Two
/// live agents.
fn decisions_of(f: &Fixture, source: Option<&str>) -> (Value, Vec<(String, Value)>) {
    let mut args = vec![];
    if let Some(s) = source {
        args.extend(["--source", s]);
    }
    args.extend(["analyze", "--json"]);
    let out = f.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decisions =
        v["decisions"].as_array().unwrap().iter().map(|d| (d["type"].as_str().unwrap().to_owned(), d["action"]["kind"].clone())).collect();
    (v["metrics"].clone(), decisions)
}

#[test]
fn analyze_agrees_with_the_servers_counts_and_with_a_coordination_directory() {
    let f = Fixture::new();
    fs::write(f.tmp.path().join("steward.yaml"), "coordination: {agent_ttl: 3s, claim_ttl: 1h}\n").unwrap();
    // The coordination directory: files as workers write them.
    let now = chrono_like_now();
    for i in 0..30 {
        f.write(&format!("work_w{i}.json"), &format!(r#"{{"id":"w{i}"}}"#));
    }
    for (agent, n, at) in [("alive", 4, now.clone()), ("dead", 2, "2020-01-01T00:00:00Z".to_owned())] {
        for i in 0..n {
            f.write(&format!("claimed_{agent}{i}.json"), &format!(r#"{{"id":"{agent}{i}","claimed_by":"{agent}","claimed_at":"{at}"}}"#));
        }
    }
    f.write("agent_alive.json", &format!(r#"{{"id":"alive","status":"busy","heartbeat":"{now}"}}"#));
    f.write("agent_idle.json", &format!(r#"{{"id":"idle","status":"idle","heartbeat":"{now}"}}"#));
    // The worker that died still holds its claims: a silent agent in both worlds.
    f.write("agent_dead.json", r#"{"id":"dead","status":"busy","heartbeat":"2020-01-01T00:00:00Z"}"#);
    let (dir_metrics, dir_decisions) = decisions_of(&f, None);

    // Redis: the same numbers.
    let r = shared_redis();
    let rurl = r.url("agree");
    let mut q = queue(&rurl);
    q.push(&items(36, "a")).unwrap();
    assert_eq!(q.claim("dead", 2, Duration::ZERO).unwrap().len(), 2);
    // PostgreSQL: the same numbers.
    let pg = shared_postgres();
    let purl = pg.url("agree");
    let mut p = queue(&purl);
    p.push(&items(36, "a")).unwrap();
    assert_eq!(p.claim("dead", 2, Duration::ZERO).unwrap().len(), 2);
    std::thread::sleep(Duration::from_millis(3200));
    for q in [&mut q, &mut p] {
        assert_eq!(q.claim("alive", 4, Duration::ZERO).unwrap().len(), 4);
    }
    // A worker that holds nothing: seen by its last read (Redis), its heartbeat (PostgreSQL).
    r.cli(&["XGROUP", "CREATECONSUMER", "agree", "workers", "idle"]);
    p.heartbeat("idle", &[]).unwrap();

    for (name, url) in [("redis", &rurl), ("postgres", &purl)] {
        let (m, d) = decisions_of(&f, Some(url));
        for key in ["work_queue_size", "in_flight", "active_agents", "stale_claims"] {
            assert_eq!(m[key], dir_metrics[key], "{name}: {key}: {m} vs the directory's {dir_metrics}");
        }
        assert_eq!(d, dir_decisions, "{name}: the same decisions for the same numbers");
    }
    // And the servers' own counts.
    let (m, _) = decisions_of(&f, Some(&rurl));
    assert_eq!(m["work_queue_size"], json!(r.int(&["XLEN", "agree"]) - 6));
    let pending: i64 = r.cli(&["XPENDING", "agree", "workers"]).lines().next().unwrap().trim().parse().unwrap();
    assert_eq!(m["in_flight"], json!(pending));
    let (m, _) = decisions_of(&f, Some(&purl));
    assert_eq!(m["work_queue_size"], json!(pg.int("SELECT count(*) FROM agree WHERE state = 'queued'")));
    assert_eq!(m["in_flight"], json!(pg.int("SELECT count(*) FROM agree WHERE state = 'running'")));
    for kind in ["restart", "requeue_claims", "scale"] {
        assert!(dir_decisions.iter().any(|(_, k)| k == kind), "the load calls for a {kind}: {dir_decisions:?}");
    }
}

fn chrono_like_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_loop_rides_out_a_redis_outage_deciding_nothing_on_stale_data() {
    // Its own server: this test stops it.
    let r = servers::Redis::start();
    let url = r.url("outage");
    queue(&url).push(&items(300, "o")).unwrap();
    let f = Fixture::new();
    let state = f.tmp.path().join("state");
    supervised(&f, &url, "3s", 2, "300ms", r#""--service-time", "const:0.05", "--batch", "2""#, "");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = f
        .cmd(&["--state-dir", state.to_str().unwrap(), "serve", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = || serde_json::from_str::<Value>(&get_text(port, "/health")).unwrap_or(Value::Null);
    let queue_status = || {
        health()["components"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "queue")
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
    };
    assert!(wait_for(30, || r.int(&["HLEN", "outage:completed"]) > 20), "no work got done before the outage");
    assert_eq!(queue_status().as_deref(), Some("ok"));

    r.stop();
    let down_at = now_ms();
    assert!(wait_for(15, || queue_status().as_deref() == Some("failing")), "/health never said the queue was failing: {}", health());
    let failing = health();
    std::thread::sleep(Duration::from_secs(2));
    let up_at = now_ms();
    r.start_again();
    assert!(
        wait_for(120, || r.int(&["HLEN", "outage:completed"]) == 300
            && r.cli(&["XPENDING", "outage", "workers"]).lines().next().is_some_and(|l| l.trim() == "0")),
        "not drained after the outage: {} completed",
        r.int(&["HLEN", "outage:completed"])
    );
    assert_eq!(queue_status().as_deref(), Some("ok"), "{}", health());
    // The loop kept cycling through the outage and journaled no decision meanwhile.
    let decisions: Value = serde_json::from_str(&get_text(port, "/decisions?limit=1000")).unwrap();
    stop(child);
    kill_fleet(&state);
    assert!(failing.to_string().contains("cannot be read"), "{failing}");
    let (from, to) = (rfc3339(down_at + 1000), rfc3339(up_at));
    let list = decisions["decisions"].as_array().or_else(|| decisions.as_array()).cloned().unwrap_or_default();
    assert!(!list.is_empty(), "no decision at all: {decisions}");
    let decided_while_down: Vec<&Value> =
        list.iter().filter(|d| d["timestamp"].as_str().is_some_and(|t| t > from.as_str() && t < to.as_str())).collect();
    assert!(decided_while_down.is_empty(), "decisions while Redis was down: {decided_while_down:?}");
    assert_eq!(r.int(&["XLEN", "outage:dead"]), 0);
}

/// `ms` as the journal writes times: 2026-01-02T03:04:05.678Z.
fn rfc3339(ms: i64) -> String {
    let out =
        Command::new("date").args(["-u", "-d", &format!("@{}.{:03}", ms / 1000, ms % 1000), "+%Y-%m-%dT%H:%M:%S.%3NZ"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn the_demo_runs_on_a_real_redis_and_accounts_for_every_item() {
    let r = shared_redis();
    let f = Fixture::new();
    let out = f
        .cmd(&["demo", "--queue", &r.url("demo"), "--duration", "12", "--interval", "1", "--chaos", "--json", "--dir"])
        .arg(f.tmp.path().join("demo"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(out.status.success(), "{s}");
    let n = |k: &str| s[k].as_u64().unwrap();
    assert!(n("produced") > 20, "{s}");
    assert_eq!(n("produced"), n("completed") + n("pending") + n("in_flight") + n("dead_lettered"), "{s}");
    // A 12 s demo may end before the queue drained; what it made is all accounted for.
    assert_eq!((n("unaccounted"), n("duplicates")), (0, 0), "{s}");
    // What the summary says is what Redis holds.
    assert_eq!(r.int(&["HLEN", "demo:completed"]) as u64, n("completed"));
    assert_eq!(r.int(&["XLEN", "demo:dead"]) as u64, n("dead_lettered"));
}

#[test]
fn a_worker_rides_out_a_dropped_connection_mid_batch() {
    // Its own server: every client connection is killed.
    let r = servers::Redis::start();
    let url = r.url("dropped");
    queue(&url).push(&items(8, "k")).unwrap();
    let f = Fixture::new();
    let mut worker = f
        .cmd(&["worker", "--queue", &url, "--id", "w1", "--batch", "4", "--service-time", "const:0.4", "--exit-when-idle", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || r.int(&["HLEN", "dropped:completed"]) >= 1 || r.cli(&["XPENDING", "dropped", "workers"]).starts_with('4')));
    std::thread::sleep(Duration::from_millis(300));
    r.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    let status = wait_for(30, || worker.try_wait().unwrap().is_some());
    let out = worker.wait_with_output().unwrap();
    assert!(status, "the worker did not finish");
    assert!(out.status.success(), "the worker died with the connection: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.int(&["HLEN", "dropped:completed"]), 8, "every item completed after the reconnect");
    assert!(r.cli(&["XPENDING", "dropped", "workers"]).starts_with('0'));
}

#[test]
fn a_killed_supervised_workers_claims_go_back_at_once() {
    let r = shared_redis();
    let url = r.url("killed");
    queue(&url).push(&items(4, "x")).unwrap();
    let f = Fixture::new();
    let state = f.tmp.path().join("state");
    // An agent TTL of an hour: only the supervisor's clean-up can bring the claims back quickly.
    supervised(&f, &url, "1h", 1, "500ms", r#""--service-time", "const:60", "--batch", "1""#, "  drain_timeout: 1s\n");
    let child = f.cmd(&["--state-dir", state.to_str().unwrap(), "loop"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let first = || r.cli(&["XPENDING", "killed", "workers", "-", "+", "10"]).lines().nth(1).map(str::to_owned);
    assert!(wait_for(20, || first().is_some()), "no worker claimed anything");
    let holder = first().unwrap();
    assert!(wait_for(10, || worker_pids(&state).len() == 1), "the registry does not list the worker");
    let pids = worker_pids(&state);
    Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap();
    // Its claim goes back and its replacement takes it, long before any TTL.
    let moved = wait_for(15, || first().is_some_and(|h| h != holder));
    let consumers = r.cli(&["XINFO", "CONSUMERS", "killed", "workers"]);
    stop(child);
    kill_fleet(&state);
    assert!(moved, "the dead worker's claim stayed with it: {holder}");
    assert!(!consumers.contains(&holder), "the dead worker's name is still in the group: {consumers}");
}
