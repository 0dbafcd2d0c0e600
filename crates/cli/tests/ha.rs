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
        let rest = format!(
            "auto: {{interval: {INTERVAL_MS}ms, scale_up_cooldown: 0s, min_confidence: 0.5}}\n\
             fleet:\n  kind: command\n  scale: [\"sh\", \"-c\", \"echo {{current}} {{target}} >> {}\"]\n",
            log.display()
        );
        Self::start_with(f, name, name, &format!("ha-test-{}", std::process::id()), &rest)
    }

    /// A replica named `name` keeping its state in `state-<state>`, with
    /// `rest` of the config after its `ha:` section.
    fn start_with(f: &Fixture, name: &'static str, state: &str, lease: &str, rest: &str) -> Self {
        let ha = format!(
            "ha: {{url: \"postgres://steward@127.0.0.1:{pg}/postgres\", lease: {LEASE_MS}ms, renew: 500ms, name: \"{lease}\"}}\n",
            pg = shared_postgres().port,
        );
        Self::start_config(f, name, state, &format!("{ha}{rest}"))
    }

    /// A replica named `name` keeping its state in `state-<state>`, with this config.
    fn start_config(f: &Fixture, name: &'static str, state: &str, yaml: &str) -> Self {
        let log = f.tmp.path().join(format!("{name}.scaled"));
        let config = f.tmp.path().join(format!("{name}.yaml"));
        fs::write(&config, yaml).unwrap();
        let port = free_port();
        let state = f.tmp.path().join(format!("state-{state}"));
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

/// `POST path` (empty body) to a daemon on loopback: the status and the body.
fn post(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
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
    // `steward status` says who leads, as the lease does.
    let status = f.json(&[
        "--config",
        f.tmp.path().join("a.yaml").to_str().unwrap(),
        "--state-dir",
        f.tmp.path().join("state-look").to_str().unwrap(),
        "status",
        "--json",
    ]);
    let holder = status["data"]["ha"]["holder"].as_str().unwrap_or_default().to_owned();
    assert!(holder.contains(&format!(":{}:", a.child.as_ref().unwrap().id())), "{status}");
    assert!(status["data"]["ha"]["token"].as_u64().unwrap_or(0) >= 1, "{status}");
    // A rollback goes to the leader; a standby refuses it.
    let decisions: Value = serde_json::from_str(&get_text(a.port, "/decisions")).unwrap();
    let id = decisions["decisions"].as_array().and_then(|d| d.first()).and_then(|d| d["id"].as_str()).unwrap().to_owned();
    let (code, body) = post(b.port, &format!("/rollback/{id}"));
    assert!(code == 409 && body.contains("stands by"), "{code} {body}");
    let (code, body) = post(a.port, &format!("/rollback/{id}"));
    // The leader runs it: done, or refused by the rollback's own safety check.
    assert!(code == 200 || body.contains("refusing to roll back"), "{code} {body}");

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

/// The executed decisions of a journal: (when, fencing token, what).
fn executed(j: &steward_store::Journal) -> Vec<(String, u64, String)> {
    j.recent_decisions(100_000)
        .unwrap()
        .into_iter()
        .filter(|d| d.outcome.as_ref().is_some_and(|o| o.result == steward_core::decision::OutcomeResult::Executed))
        .map(|d| {
            let token =
                d.decision.parameters.get("fencing_token").and_then(Value::as_u64).expect("an executed decision without its fencing token");
            (d.timestamp.clone(), token, format!("{} {}", d.decision.id, d.decision.kind))
        })
        .collect()
}

#[test]
fn twenty_failovers_under_load_never_let_two_leaders_act() {
    let f = Fixture::new();
    let dir = f.dir();
    let size = f.tmp.path().join("fleet.size");
    let calls = f.tmp.path().join("fleet.calls");
    // The fleet: a command that sets N agents (their records in the
    // directory), writes N down and logs the call.
    let script = f.tmp.path().join("scale.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nrm -f {d}/agent_r*.json\ni=1\nwhile [ $i -le $1 ]; do\n  printf '{{\"id\":\"r%s\",\"status\":\"active\",\"heartbeat\":\"%s\"}}' $i $(date -u +%Y-%m-%dT%H:%M:%SZ) > {d}/agent_r$i.json\n  i=$((i+1))\ndone\necho $1 > {s}.tmp && mv {s}.tmp {s}\necho $1 >> {c}\n",
            d = dir.display(),
            s = size.display(),
            c = calls.display()
        ),
    )
    .unwrap();
    Command::new("chmod").args(["755", script.to_str().unwrap()]).status().unwrap();
    // One journal both replicas share, on the PostgreSQL that holds the lease.
    let schema = format!("failovers_{}", std::process::id());
    let journal = format!("postgres://steward@127.0.0.1:{}/postgres?schema={schema}", shared_postgres().port);
    let lease = format!("ha-failovers-{}", std::process::id());
    let yaml = format!(
        "state: {{journal: \"{journal}\"}}\n\
         ha: {{name: \"{lease}\", lease: {LEASE_MS}ms, renew: 500ms}}\n\
         coordination: {{agent_ttl: 1h}}\n\
         auto: {{interval: {INTERVAL_MS}ms, scale_up_cooldown: 0s, scale_down_window: 1s, min_confidence: 0.5, min_agents: 1, max_agents: 12}}\n\
         adaptive: {{target_per_agent: 5}}\n\
         fleet:\n  kind: command\n  scale: [\"{}\", \"{{target}}\"]\n",
        script.display()
    );
    let x = Replica::start_config(&f, "x", "x", &yaml);
    until_role(&x, "leader", 30);
    // Replicas sign one chain with one key: the second gets the first's.
    let key = f.tmp.path().join("state-x").join("audit.key");
    let recorded = || shared_postgres().psql(&format!("SELECT value FROM {schema}.meta WHERE key = 'audit_pubkey'"));
    assert!(wait_for(10, || key.exists() && !recorded().trim().is_empty()), "the leader made no audit key");
    // Without it, the second replica is refused, and says what to do.
    let keyless = f.run(&[
        "--config",
        f.tmp.path().join("x.yaml").to_str().unwrap(),
        "--state-dir",
        f.tmp.path().join("state-keyless").to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let said = String::from_utf8_lossy(&keyless.stderr);
    assert!(!keyless.status.success() && said.contains("copy audit.key"), "{said}");
    fs::create_dir_all(f.tmp.path().join("state-y")).unwrap();
    fs::copy(&key, f.tmp.path().join("state-y").join("audit.key")).unwrap();
    let y = Replica::start_config(&f, "y", "y", &yaml);
    until_role(&y, "standby", 30);
    // The standby serves the leader's decisions from the shared journal.
    assert!(wait_for(20, || get_text(y.port, "/decisions").contains("fencing_token")), "the standby does not show the shared journal");
    let mut replicas = [x, y];

    // The load: bursts of work come and go, so leaders scale both ways.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for i in 0..40 {
                    let _ = fs::write(dir.join(format!("work_{n}_{i}.json")), format!(r#"{{"id":"{n}_{i}"}}"#));
                }
                std::thread::sleep(Duration::from_millis(2500));
                // Worked off: completions give the policy a service rate, so it may scale down.
                for i in 0..40 {
                    let _ = fs::rename(dir.join(format!("work_{n}_{i}.json")), dir.join(format!("completed_{n}_{i}.json")));
                }
                std::thread::sleep(Duration::from_millis(2500));
                n += 1;
            }
        })
    };

    let mut times = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..20 {
        let leader =
            replicas.iter().position(|r| r.role().as_deref() == Some("leader")).unwrap_or_else(|| panic!("round {round}: no leader"));
        let other = 1 - leader;
        until_role(&replicas[other], "standby", 30);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let graceful = seed.is_multiple_of(2);
        let started = Instant::now();
        replicas[leader].signal(if graceful { "-TERM" } else { "-KILL" });
        until_role(&replicas[other], "leader", 30);
        times.push((started.elapsed(), graceful));
        replicas[leader].wait_exit();
        // The replica comes back on the same state directory, as a standby.
        let (name, state) = if leader == 0 { ("x", "x") } else { ("y", "y") };
        replicas[leader] = Replica::start_config(&f, name, state, &yaml);
        std::thread::sleep(Duration::from_millis(700));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = load.join();
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));
    for r in &mut replicas {
        r.signal("-TERM");
        r.wait_exit();
    }

    // One journal holds every leader's decisions.
    let at = steward_store::JournalAt::parse(&journal).unwrap();
    let j = steward_store::Journal::open_existing_at(&at).unwrap().expect("the shared journal");
    let all = executed(&j);
    let mut all = all;
    all.sort();
    assert!(all.len() >= 10, "too few actions to judge: {all:?}");
    // In time order the tokens never go back: no two leaders acted at once.
    for w in all.windows(2) {
        assert!(w[0].1 <= w[1].1, "a decision under token {} came after one under {}: {:?} then {:?}", w[1].1, w[0].1, w[0], w[1]);
    }
    // No cycle ran while another leader's was still running: each cycle
    // starts after the previous one finished, or, for a cycle its leader
    // was killed in, after the last thing it journaled.
    let cycles = shared_postgres().psql(&format!(
        "SELECT c.ts, COALESCE(c.finished_ts, (SELECT MAX(GREATEST(d.ts, COALESCE(o.ts, d.ts))) FROM {schema}.decisions d \
         LEFT JOIN {schema}.outcomes o ON o.decision_id = d.id AND o.result <> 'interrupted' WHERE d.cycle_id = c.id), c.ts) \
         FROM {schema}.cycles c ORDER BY c.ts, c.id"
    ));
    let spans: Vec<(i64, i64)> =
        cycles.lines().filter_map(|l| l.split_once('|')).map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())).collect();
    assert!(spans.len() >= 20, "{cycles}");
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "two cycles at once: one from {} to {}, the next from {}", w[0].0, w[0].1, w[1].0);
    }
    // No decision executed twice: every call of the fleet command is one
    // executed scale, or one a killed leader left interrupted.
    let scales = all.iter().filter(|a| a.2.contains("scale_")).count();
    let interrupted = j
        .recent_decisions(100_000)
        .unwrap()
        .into_iter()
        .filter(|d| d.outcome.as_ref().is_some_and(|o| o.result == steward_core::decision::OutcomeResult::Interrupted))
        .count();
    let ran = fs::read_to_string(&calls).unwrap().lines().count();
    assert!(ran >= scales && ran <= scales + interrupted, "{ran} fleet calls for {scales} executed scales ({interrupted} interrupted)");
    let scaled_up = all.iter().any(|a| a.2.ends_with("scale_up"));
    let scaled_down = all.iter().any(|a| a.2.ends_with("scale_down"));
    assert!(scaled_up && scaled_down, "the load should scale both ways: {all:?}");
    // The fleet ends at the size the last leader chose.
    let last_scale = all.iter().rev().find(|a| a.2.contains("scale_")).unwrap();
    let size_now: u32 = fs::read_to_string(&size).unwrap().trim().parse().unwrap();
    let d = j.decision(last_scale.2.split(' ').next().unwrap()).unwrap().unwrap();
    let steward_core::decision::Action::Scale { to, .. } = d.decision.action else { panic!("{d:?}") };
    assert_eq!(size_now, to, "the fleet is not at the size the last leader chose");
    // The one audit chain, written by both, verifies from either replica.
    for name in ["x", "y"] {
        let out = f.run(&[
            "--config",
            f.tmp.path().join(format!("{name}.yaml")).to_str().unwrap(),
            "--state-dir",
            f.tmp.path().join(format!("state-{name}")).to_str().unwrap(),
            "audit",
            "verify",
        ]);
        assert!(out.status.success(), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let mut graceful: Vec<Duration> = times.iter().filter(|t| t.1).map(|t| t.0).collect();
    let mut killed: Vec<Duration> = times.iter().filter(|t| !t.1).map(|t| t.0).collect();
    graceful.sort();
    killed.sort();
    eprintln!(
        "20 failovers on one shared journal: graceful {} (median {:?}, worst {:?}), SIGKILL {} (median {:?}, worst {:?}); {} executed decisions, tokens {}..{}, {} cycles, {ran} fleet calls, {interrupted} interrupted",
        graceful.len(),
        graceful.get(graceful.len() / 2),
        graceful.last(),
        killed.len(),
        killed.get(killed.len() / 2),
        killed.last(),
        all.len(),
        all.first().map_or(0, |a| a.1),
        all.last().map_or(0, |a| a.1),
        spans.len()
    );
    assert!(killed.last().is_none_or(|w| *w <= Duration::from_millis(LEASE_MS + 2 * INTERVAL_MS + 1000)), "{times:?}");
    assert!(graceful.last().is_none_or(|w| *w < Duration::from_secs(2)), "{times:?}");
}

#[test]
fn ha_settings_that_cannot_work_are_refused_and_its_password_is_masked() {
    let f = Fixture::new();
    let pg = format!("postgres://steward:s3cretPW@127.0.0.1:{}/postgres", shared_postgres().port);
    for (yaml, key, words) in [
        (format!("ha: {{url: \"{pg}\"}}\n"), "ha.name", "is required"),
        (format!("ha: {{url: \"{pg}\", name: \"\"}}\n"), "ha.name", "empty"),
        ("ha: {url: \"redis://h:6379/0?list=q\", name: x}\n".to_owned(), "ha.url", "PostgreSQL"),
        (format!("ha: {{url: \"{pg}?sslmode=require\", name: x}}\n"), "ha.url", "without TLS"),
        (format!("ha: {{url: \"{pg}\", name: x}}\nfleet: {{kind: supervisor}}\n"), "fleet.kind", "supervisor does not go with ha"),
    ] {
        fs::write(f.tmp.path().join("steward.yaml"), &yaml).unwrap();
        let out = f.run(&["analyze"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(err.contains(key) && err.contains(words), "{yaml}: {err}");
        assert!(!err.contains("s3cretPW"), "{err}");
    }
    fs::write(f.tmp.path().join("steward.yaml"), format!("ha: {{url: \"{pg}\", name: x}}\n")).unwrap();
    let out = f.run(&["config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("ha.url") && !text.contains("s3cretPW"), "{text}");
}

#[test]
fn a_steward_without_ha_holding_the_target_keeps_the_leader_from_acting() {
    let f = Fixture::new();
    for i in 0..30 {
        f.write(&format!("work_{i}.json"), &format!(r#"{{"id":"{i}"}}"#));
    }
    // A plain loop (no ha) holds the target's lock for its whole life, acting through its own command.
    let plain_log = f.tmp.path().join("plain.scaled");
    let plain_cfg = f.tmp.path().join("plain.yaml");
    fs::write(
        &plain_cfg,
        format!(
            "auto: {{interval: 500ms, scale_up_cooldown: 0s, min_confidence: 0.5}}\nfleet:\n  kind: command\n  scale: [\"sh\", \"-c\", \"echo {{current}} {{target}} >> {}\"]\n",
            plain_log.display()
        ),
    )
    .unwrap();
    let mut plain = f
        .cmd(&["--config", plain_cfg.to_str().unwrap(), "--state-dir", f.tmp.path().join("state-plain").to_str().unwrap(), "loop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || plain_log.exists()), "the plain loop did not act");
    let a = Replica::start(&f, "lonely");
    until_role(&a, "leader", 30);
    std::thread::sleep(Duration::from_millis(4 * INTERVAL_MS));
    assert_eq!(a.acted(), 0, "the leader acted while another steward held the target");
    let _ = Command::new("kill").args(["-TERM", &plain.id().to_string()]).status();
    let _ = plain.wait();
    assert!(wait_for(10, || a.acted() >= 1), "the leader did not act once the target was free");
}
