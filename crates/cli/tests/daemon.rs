//! The daemon run for real: start, HTTP, status, stop, crash recovery.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{wait_for, Fixture};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

fn setup(f: &Fixture, port: u16) {
    f.write("agent_1.json", r#"{"id":"agent_1","status":"active"}"#);
    f.write("agent_2.json", r#"{"id":"agent_2","status":"active"}"#);
    for i in 0..6 {
        f.write(&format!("work_{i}.json"), "{}");
    }
    f.write("completed_x.json", "{}");
    fs::write(f.tmp.path().join("steward.yaml"), format!("server: {{listen: \"127.0.0.1:{port}\"}}\nauto: {{interval: 1s}}\n")).unwrap();
}

fn pidfile(f: &Fixture) -> std::path::PathBuf {
    f.state().join("steward.pid")
}

/// Kills whatever daemon a fixture's pidfile names when the test ends, so a
/// failing assertion never leaves a daemon running.
struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = fs::read_to_string(&self.0).ok().and_then(|t| t.split_whitespace().next().map(str::to_owned)) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// Acceptance: start on a free port, talk to it, stop it.
#[test]
fn start_serve_status_stop() {
    let f = Fixture::new();
    let port = free_port();
    setup(&f, port);
    let _guard = KillOnDrop(pidfile(&f));
    let out = f.run(&["start"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pid: u32 = fs::read_to_string(pidfile(&f)).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pid.to_string()));

    let (code, body) = get(port, "/health");
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy");

    // The metrics' health score is the one `status` reports for the same directory.
    assert!(wait_for(10, || get(port, "/metrics").1.contains("steward_cycles_total 1")
        || get(port, "/metrics").1.contains("steward_cycles_total 2")));
    let (code, metrics) = get(port, "/metrics");
    assert_eq!(code, 200);
    for line in metrics.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "not Prometheus text: {line:?}");
    }
    let score: f64 = metrics.lines().find_map(|l| l.strip_prefix("steward_health_score ")).unwrap().parse().unwrap();
    let status = f.json(&["--json", "status"]);
    assert_eq!(status["data"]["status"]["health_score"].as_f64().unwrap(), score);
    assert_eq!(status["data"]["daemon"]["running"], true);
    assert_eq!(status["data"]["daemon"]["pid"].as_u64(), Some(u64::from(pid)));
    assert!(String::from_utf8_lossy(&f.run(&["status"]).stdout).contains(&format!("pid {pid}")));

    for path in ["/status", "/tasks", "/decisions?limit=5", "/"] {
        assert_eq!(get(port, path).0, 200, "{path}");
    }
    let health = f.run(&["health"]);
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stdout));

    // A second start refuses, clearly.
    let again = f.run(&["start"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already runs"), "{}", String::from_utf8_lossy(&again.stderr));

    let stop = f.run(&["stop"]);
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(!alive(pid), "the daemon is gone");
    assert!(!pidfile(&f).exists(), "the pidfile is gone");
    assert_eq!(f.run(&["health"]).status.code(), Some(1), "no daemon answers now");
    // The daemon logged JSON lines.
    let log = fs::read_to_string(f.state().join("logs/steward.log")).unwrap();
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{log}");
    assert!(log.contains("Daemon started."));
}

/// Acceptance: SIGKILL the daemon; `start` sees the stale pidfile, starts,
/// and the journal passes SQLite's integrity check.
#[test]
fn a_killed_daemon_leaves_a_stale_pidfile_that_start_cleans() {
    let f = Fixture::new();
    let port = free_port();
    setup(&f, port);
    let _guard = KillOnDrop(pidfile(&f));
    assert!(f.run(&["start"]).status.success());
    let pid = fs::read_to_string(pidfile(&f)).unwrap().split_whitespace().next().unwrap().to_owned();
    assert!(wait_for(10, || get(port, "/metrics").1.contains("steward_cycles_total 2")));
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(wait_for(10, || !alive(pid.parse().unwrap())));
    assert!(pidfile(&f).exists(), "a SIGKILL leaves the pidfile");
    assert_eq!(f.json(&["--json", "status"])["data"]["daemon"]["stale_pidfile"], true);

    let out = f.run(&["start"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(port, "/health").0, 200);
    let journal = steward_store::Journal::open_existing(&f.state().join("journal.db")).unwrap().unwrap();
    journal.integrity_check().unwrap();
    assert!(f.run(&["stop"]).status.success());
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused() {
    let f = Fixture::new();
    fs::write(f.tmp.path().join("steward.yaml"), "server: {listen: \"0.0.0.0:8089\"}\n").unwrap();
    let out = f.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.token"));
    assert!(!Path::new(&f.state().join("steward.pid")).exists());
}

fn raw(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Acceptance: hostile HTTP against the real daemon, which keeps serving;
/// and with a token, everything but /health needs it.
#[test]
fn hostile_http_against_the_real_daemon() {
    let f = Fixture::new();
    let port = free_port();
    setup(&f, port);
    fs::write(
        f.tmp.path().join("steward.yaml"),
        format!("server: {{listen: \"127.0.0.1:{port}\", token: s3cret, max_body_bytes: 4096}}\nauto: {{interval: 1s}}\n"),
    )
    .unwrap();
    let _guard = KillOnDrop(pidfile(&f));
    assert!(f.run(&["start"]).status.success());
    let auth = "Authorization: Bearer s3cret\r\n";
    assert_eq!(raw(port, format!("GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").as_bytes()), 404);
    assert_eq!(raw(port, format!("DELETE /status HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").as_bytes()), 405);
    let big = format!(
        "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 100000\r\nConnection: close\r\n\r\n{}",
        "x".repeat(100_000)
    );
    assert_eq!(raw(port, big.as_bytes()), 413);
    let bad_otlp = format!("POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/x-protobuf\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\u{ff}\u{ff}\u{ff}");
    assert_eq!(raw(port, bad_otlp.as_bytes()), 400);
    assert_eq!(raw(port, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), 401);
    assert_eq!(raw(port, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n"), 401);
    assert_eq!(raw(port, b"\x00\x01\x02 garbage\r\n\r\n"), 400);
    // Still serving, and /health needs no token.
    assert_eq!(get(port, "/health").0, 200);
    assert_eq!(raw(port, format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").as_bytes()), 200);
    assert!(f.run(&["health"]).status.success());
    assert!(f.run(&["stop"]).status.success());
}

/// Regressions (operator review of the daemon): the cycle-duration histogram
/// holds cycle times, not the interval; a vanished coordination directory
/// makes /health fail; a pidfile naming another process is never obeyed.
#[test]
fn operator_review_regressions() {
    let f = Fixture::new();
    let port = free_port();
    setup(&f, port);
    let _guard = KillOnDrop(pidfile(&f));
    assert!(f.run(&["start"]).status.success());
    assert!(wait_for(15, || get(port, "/metrics").1.contains("steward_cycles_total 3")));
    let metrics = get(port, "/metrics").1;
    let sum: f64 = metrics.lines().find_map(|l| l.strip_prefix("steward_cycle_duration_seconds_sum ")).unwrap().parse().unwrap();
    assert!(sum < 1.0, "3 cycles of a few ms, not 3 intervals of 1 s: {sum}");

    fs::rename(f.dir(), f.tmp.path().join("moved")).unwrap();
    assert!(wait_for(10, || get(port, "/health").0 == 503), "a missing coordination directory fails /health");
    let body: Value = serde_json::from_str(&get(port, "/health").1).unwrap();
    assert_eq!(body["failing"][0]["name"], "queue");
    fs::rename(f.tmp.path().join("moved"), f.dir()).unwrap();
    assert!(f.run(&["stop"]).status.success());

    // A pidfile left pointing at some other process: not running, and never signalled.
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let ticks = fs::read_to_string(format!("/proc/{}/stat", other.id()))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_owned();
    fs::write(pidfile(&f), format!("{} {ticks} 127.0.0.1:{port}\n", other.id())).unwrap();
    assert_eq!(f.json(&["--json", "status"])["data"]["daemon"]["running"], false);
    assert!(f.run(&["stop"]).status.success());
    assert!(other.try_wait().unwrap().is_none(), "the unrelated process was not killed");
    let _ = other.kill();
    let _ = other.wait();
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
}

/// `steward_cycles_total` from /metrics.
fn cycles(port: u16) -> u64 {
    get(port, "/metrics").1.lines().find_map(|l| l.strip_prefix("steward_cycles_total ")).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Raises this process's soft limit on descriptors to the hard one, and returns it.
fn raise_own_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim);
    }
    lim.rlim_cur
}

/// Regression (issue 9): idle clients with half-sent headers were never
/// closed and had no cap: at about 21,000 the daemon ran out of file
/// descriptors, /health timed out and the loop failed. With 2,000 such
/// clients held open, /health answers, the loop keeps cycling, and when
/// they go, memory comes back.
#[test]
fn slowloris_clients_cannot_starve_the_daemon() {
    const CLIENTS: usize = 2_000;
    let limit = raise_own_fd_limit();
    assert!(limit >= CLIENTS as u64 + 200, "this test needs {} file descriptors; the hard limit is {limit}", CLIENTS + 200);
    let f = Fixture::new();
    let port = free_port();
    setup(&f, port);
    fs::write(
        f.tmp.path().join("steward.yaml"),
        format!("server: {{listen: \"127.0.0.1:{port}\", header_timeout: 3s}}\nauto: {{interval: 1s}}\n"),
    )
    .unwrap();
    let _guard = KillOnDrop(pidfile(&f));
    assert!(f.run(&["start"]).status.success());
    let pid: u32 = fs::read_to_string(pidfile(&f)).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(wait_for(15, || cycles(port) >= 2));
    let idle_rss = rss_kib(pid);

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
        clients.push(s);
    }
    let before = cycles(port);
    let started = std::time::Instant::now();
    let (code, body) = get(port, "/health");
    let latency = started.elapsed();
    assert_eq!(code, 200, "/health answers with {CLIENTS} idle clients: {body}");
    assert!(wait_for(10, || cycles(port) >= before + 2), "the loop keeps cycling");
    let loaded_rss = rss_kib(pid);
    eprintln!("with {CLIENTS} idle clients: /health in {latency:?}, RSS {idle_rss} KiB idle, {loaded_rss} KiB loaded");

    // The header timeout closes them; memory comes back.
    drop(clients);
    assert!(wait_for(30, || rss_kib(pid) <= idle_rss * 2), "RSS {} KiB after the clients left, idle was {idle_rss} KiB", rss_kib(pid));
    assert!(f.run(&["stop"]).status.success());
}

/// Issue 10: `steward health` where no daemon ran probed the default
/// address and reported another directory's daemon as healthy. Health
/// speaks only of the daemon this directory's pidfile names; `--listen`
/// picks the address; a port in use names the ways to choose another.
#[test]
fn health_speaks_only_of_this_directorys_daemon_and_listen_is_a_flag() {
    let other = Fixture::new();
    let port = free_port();
    setup(&other, port);
    let _guard = KillOnDrop(pidfile(&other));
    assert!(other.run(&["start"]).status.success());

    let f = Fixture::new();
    fs::write(f.tmp.path().join("steward.yaml"), format!("server: {{listen: \"127.0.0.1:{port}\"}}\n")).unwrap();
    let out = f.run(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no steward daemon for"), "{}", String::from_utf8_lossy(&out.stdout));

    // The port is taken by the other daemon: the error says how to choose another.
    let out = f.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("--listen") && err.contains("STEWARD_SERVER_LISTEN"), "{err}");

    let mine = free_port();
    let _mine_guard = KillOnDrop(pidfile(&f));
    let out = f.run(&["start", "--listen", &format!("127.0.0.1:{mine}")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(mine, "/health").0, 200);
    assert!(f.run(&["health"]).status.success(), "now this directory has its daemon");
    assert!(f.run(&["stop"]).status.success());
    assert!(other.run(&["stop"]).status.success());
}
