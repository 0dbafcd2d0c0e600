//! Incidents through a real Alertmanager: `steward serve` drives a
//! coordination directory that is critical; Alertmanager holds one firing
//! alert with steward's labels and its receiver gets one grouped
//! notification, however many cycles stay critical; workers then drain the
//! queue, the alert resolves in Alertmanager, and the incident walks to
//! recovered and closed with its timeline and the actions taken.

mod common;

#[path = "../../runtime/tests/support/am.rs"]
mod am;

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{wait_for, Fixture};
use serde_json::Value;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn incidents(f: &Fixture, all: bool) -> Vec<Value> {
    let args: &[&str] = if all { &["incidents", "list", "--all", "--json"] } else { &["incidents", "list", "--json"] };
    f.json(args)["incidents"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_critical_directory_pages_once_and_recovery_resolves_it() {
    let receiver = am::Receiver::start(200);
    let alertmanager = am::Alertmanager::start(&receiver.url("/am"));
    let f = Fixture::new();
    for i in 0..300 {
        f.write(&format!("work_item{i:03}.json"), &format!(r#"{{"id":"item{i:03}"}}"#));
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "auto: {{interval: 200ms, max_agents: 4}}\n\
         coordination: {{agent_ttl: 5s}}\n\
         incidents: {{recover_after: 1s, close_after: 1s}}\n\
         notify: {{alertmanagers: [\"{}\"], resend_interval: 1s, timeout: 5s}}\n",
        alertmanager.url()
    );
    std::fs::write(f.tmp.path().join("steward.yaml"), config).unwrap();
    let daemon = Daemon(
        f.cmd(&["serve"])
            .env("STEWARD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Critical: no agent for 300 items. One alert, one notification.
    assert!(wait_for(20, || !receiver.bodies("/am").is_empty()), "no notification; Alertmanager log:\n{}", alertmanager.log());
    // Many more cycles while it stays critical.
    std::thread::sleep(Duration::from_secs(4));
    let active = alertmanager.alerts();
    assert_eq!(active.len(), 1, "{active:#?}");
    let labels = &active[0]["labels"];
    assert_eq!(labels["alertname"], "SystemCritical");
    assert_eq!(labels["severity"], "1");
    assert_eq!(labels["source"], "steward");
    assert!(labels["target"].as_str().unwrap().ends_with("coordination"), "{labels}");
    assert!(active[0]["annotations"]["summary"].as_str().unwrap().contains("critical"));
    let notes = receiver.bodies("/am");
    assert_eq!(notes.len(), 1, "one grouped notification, not one per cycle: {notes:#?}");
    assert_eq!(notes[0]["status"], "firing");
    let open = incidents(&f, false);
    assert_eq!(open.len(), 1, "one incident while critical, not one per cycle: {open:#?}");
    let id = open[0]["id"].as_i64().unwrap();
    assert!(open[0]["occurrences"].as_u64().unwrap() >= 10, "{open:#?}");
    let metrics = common::get_text(port, "/metrics");
    assert!(metrics.contains("steward_incidents_open{severity=\"1\"} 1"), "{metrics}");

    // Workers drain the queue: health recovers.
    let workers: Vec<Daemon> = (0..3)
        .map(|n| {
            Daemon(
                f.cmd(&["worker", "--id", &format!("w{n}"), "--service-time", "const:0.005", "--heartbeat-interval", "0.5"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    assert!(
        wait_for(60, || incidents(&f, true).iter().any(|i| i["id"] == id && i["phase"] == "closed")),
        "not closed: {:#?}",
        incidents(&f, true)
    );
    // Alertmanager no longer holds it, and the receiver was told.
    assert!(wait_for(20, || alertmanager.alerts().is_empty()), "{:#?}", alertmanager.alerts());
    assert!(wait_for(20, || receiver.bodies("/am").iter().any(|n| n["status"] == "resolved")), "{:#?}", receiver.bodies("/am"));
    let firing = receiver.bodies("/am").iter().filter(|n| n["status"] == "firing").count();
    assert_eq!(firing, 1, "still one firing notification");
    assert_eq!(incidents(&f, true).len(), 1, "the same incident throughout");
    drop(workers);
    drop(daemon);

    // Its timeline and report.
    let detail = f.json(&["incidents", "show", &id.to_string(), "--json"]);
    let whats: Vec<&str> = detail["timeline"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap()).collect();
    for phase in ["detected", "assessed", "eradicated", "recovered", "closed"] {
        assert!(whats.contains(&phase), "{phase} missing from {whats:?}");
    }
    assert_eq!(detail["incident"]["resolution"], "auto");
    let report = String::from_utf8(f.run(&["incidents", "show", &id.to_string()]).stdout).unwrap();
    for section in ["# Incident", "## Timeline", "## Metrics", "## Actions", "## Outcome", "Closed automatically"] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    // Every transition is in the audit chain, which verifies.
    let out = f.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = f.json(&["audit", "show", "--kind", "incident", "--limit", "100", "--json"]);
    assert!(records["records"].as_array().unwrap().len() >= 5);
}

/// The same directory named two ways (relative from a shell, absolute as
/// `steward start` passes it) is one target: one incident, not two.
#[test]
fn one_directory_named_two_ways_has_one_incident() {
    let f = Fixture::new();
    for i in 0..50 {
        f.write(&format!("work_{i}.json"), &format!(r#"{{"id":"{i}"}}"#));
    }
    let relative = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
        c.current_dir(f.tmp.path()).args(["--coordination", "./coordination"]).args(args);
        c.output().unwrap()
    };
    assert!(relative(&["execute"]).status.success());
    assert!(f.run(&["execute"]).status.success(), "absolute");
    assert!(relative(&["execute"]).status.success());
    let all = incidents(&f, true);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["occurrences"], 3);
    // Nor is it a config change.
    let changes = f.json(&["audit", "show", "--kind", "config", "--json"])["records"].as_array().unwrap().len();
    assert_eq!(changes, 1, "one config record for one config");
}
