//! Two `steward serve` replicas on one PostgreSQL lease and one
//! coordination directory: one leads, the other stands by; a SIGKILLed
//! leader is replaced within the lease and an interval, a paused one wakes
//! unable to act, and a graceful stop hands over in under a second.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{get_text, wait_for, Fixture};

#[path = "../../queue/tests/support/servers.rs"]
mod servers;
use servers::{free_port, shared_postgres};

const LEASE_MS: u64 = 2000;
const INTERVAL_MS: u64 = 500;

struct Replica {
    name: &'static str,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn start(f: &Fixture, name: &'static str) -> Self {
        let log = f.tmp.path().join(format!("{name}.scaled"));
        let config = f.tmp.path().join(format!("{name}.yaml"));
        fs::write(
            &config,
            format!(
                r#"
ha: {{url: "postgres://steward@127.0.0.1:{pg}/postgres", lease: {LEASE_MS}ms, renew: 500ms, name: "ha-test-{pid}"}}
auto: {{interval: {INTERVAL_MS}ms, scale_up_cooldown: 0s, min_confidence: 0.5}}
fleet:
  kind: command
  scale: ["sh", "-c", "echo {{current}} {{target}} >> {log}"]
"#,
                pg = shared_postgres().port,
                pid = std::process::id(),
                log = log.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let state = f.tmp.path().join(format!("state-{name}"));
        let child = f
            .cmd(&[
                "--config",
                config.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { name, port, log, child: Some(child) }
    }

    fn role(&self) -> Option<String> {
        serde_json::from_str::<Value>(&get_text(self.port, "/health")).ok().and_then(|v| v["role"].as_str().map(str::to_owned))
    }

    /// Scale commands this replica has run.
    fn acted(&self) -> usize {
        fs::read_to_string(&self.log).map_or(0, |s| s.lines().count())
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
    }

    fn wait_exit(&mut self) {
        if let Some(mut c) = self.child.take() {
            if !wait_for(30, || c.try_wait().unwrap().is_some()) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `r` says `role`; returns how long it took.
fn until_role(r: &Replica, role: &str, secs: u64) -> Duration {
    let started = Instant::now();
    assert!(wait_for(secs, || r.role().as_deref() == Some(role)), "{} never became {role} (is {:?})", r.name, r.role());
    started.elapsed()
}

#[test]
fn replicas_fail_over_on_kill_pause_and_graceful_stop() {
    let f = Fixture::new();
    // Work and no agents: every cycle of a leader scales up, so acting shows.
    for i in 0..30 {
        f.write(&format!("work_{i}.json"), &format!(r#"{{"id":"{i}"}}"#));
    }
    let mut a = Replica::start(&f, "a");
    until_role(&a, "leader", 30);
    let mut b = Replica::start(&f, "b");
    until_role(&b, "standby", 30);
    assert!(wait_for(10, || a.acted() >= 1), "the leader did not act");
    assert_eq!(b.acted(), 0, "the standby acted");
    let metrics = get_text(b.port, "/metrics");
    assert!(metrics.contains("steward_leader 0"), "{metrics}");

    // A graceful stop hands over at once.
    let stopped = Instant::now();
    a.signal("-TERM");
    assert!(wait_for(5, || b.role().as_deref() == Some("leader")), "no handover");
    let handover = stopped.elapsed();
    a.wait_exit();
    assert!(handover < Duration::from_secs(1), "graceful handover took {handover:?}");
    assert!(wait_for(10, || b.acted() >= 1), "the new leader did not act");

    // A SIGKILLed leader: the standby acts within the lease and an interval.
    let a = Replica::start(&f, "a2");
    until_role(&a, "standby", 30);
    let killed = Instant::now();
    b.signal("-KILL");
    b.wait_exit();
    let before = a.acted();
    assert!(wait_for(20, || a.acted() > before), "the standby never acted after the leader died");
    let failover = killed.elapsed();
    let bound = Duration::from_millis(LEASE_MS + INTERVAL_MS + 1000);
    assert!(failover <= bound, "failover took {failover:?}, over lease + interval (+1 s for the command and polling)");
    eprintln!("graceful handover {handover:?}, failover after SIGKILL {failover:?}");

    // A leader paused past its lease wakes up unable to act.
    let b = Replica::start(&f, "b2");
    until_role(&b, "standby", 30);
    a.signal("-STOP");
    let paused = Instant::now();
    let before_b = b.acted();
    assert!(wait_for(20, || b.acted() > before_b), "the standby did not take over from a paused leader");
    assert!(paused.elapsed() >= Duration::from_millis(LEASE_MS), "taken over before the lease ran out");
    let before_a = a.acted();
    a.signal("-CONT");
    until_role(&a, "standby", 10);
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));
    assert_eq!(a.acted(), before_a, "the paused leader acted after it woke");
    assert_eq!(b.role().as_deref(), Some("leader"));
    // By hand, while a replica leads: refused, nothing done.
    let lines = |name: &str| fs::read_to_string(f.tmp.path().join(name)).map_or(0, |s| s.lines().count());
    let before = lines("a.scaled");
    let out = f.run(&[
        "--config",
        f.tmp.path().join("a.yaml").to_str().unwrap(),
        "--state-dir",
        f.tmp.path().join("state-hand").to_str().unwrap(),
        "execute",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot take the HA lease"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines("a.scaled"), before, "the refused execute acted");
    drop(a);
    drop(b);
}
