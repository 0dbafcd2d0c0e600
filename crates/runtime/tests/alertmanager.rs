//! The notifier against the real thing: Debian's `prometheus-alertmanager`
//! on a loopback port, routing to a webhook receiver inside the test, and
//! steward's own webhook mode against the same receiver. scripts/test
//! installs Alertmanager; without it the test fails (it does not skip).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use steward_core::time::{parse_rfc3339, UnixMs};
use steward_runtime::notify::{Alert, Notifier, NotifyConfig, NotifyError, WebhookConfig};
use steward_runtime::now_ms;

#[path = "support/am.rs"]
mod am;
use am::{Alertmanager, Receiver};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn incident(alertname: &str, target: &str, starts_at: UnixMs) -> Alert {
    Alert {
        labels: labels(&[("alertname", alertname), ("severity", "1"), ("target", target)]),
        annotations: labels(&[("summary", "health critical"), ("description", "score 0.12 for 3 cycles")]),
        starts_at,
        ends_at: None,
        generator_url: Some("http://127.0.0.1:8080/incidents/1".into()),
    }
}

fn time(v: &Value) -> UnixMs {
    parse_rfc3339(v.as_str().unwrap()).unwrap_or_else(|| panic!("{v} is not RFC 3339"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Calls `sync` every 250 ms for `secs`, as the loop would each cycle,
/// expecting every send to succeed.
fn sync_for(n: &mut Notifier, alerts: &[Alert], secs: f64, until: impl Fn() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(secs) && !until() {
        let errors = n.sync(alerts, now_ms());
        assert!(errors.is_empty(), "{errors:?}");
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn alertmanager_keeps_one_alert_active_and_notifies_once_per_change() {
    let receiver = Receiver::start(200);
    let am = Alertmanager::start(&receiver.url("/am"));
    let cfg = NotifyConfig {
        alertmanagers: vec![am.url()],
        resend_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        ..NotifyConfig::default()
    };
    let mut n = Notifier::new(cfg).unwrap();

    // Firing: re-sent every second; Alertmanager notifies once (after
    // group_wait, 1 s), and its flushes every group_interval (2 s) after
    // that are quiet.
    let t0 = now_ms();
    let firing = incident("SystemCritical", "/srv/queue", t0);
    sync_for(&mut n, std::slice::from_ref(&firing), 10.0, || !receiver.bodies("/am").is_empty());
    sync_for(&mut n, std::slice::from_ref(&firing), 3.0, || false);
    let active = am.alerts();
    assert_eq!(active.len(), 1, "{active:#?}");
    let held = &active[0];
    assert_eq!(held["labels"], serde_json::to_value(&firing.labels).unwrap());
    assert_eq!(held["annotations"]["summary"], "health critical");
    assert_eq!(held["status"]["state"], "active");
    assert_eq!(held["fingerprint"], firing.fingerprint(), "steward's fingerprint is Alertmanager's");
    assert_eq!(held["generatorURL"], "http://127.0.0.1:8080/incidents/1");
    assert_eq!(time(&held["startsAt"]), t0);
    let ends = time(&held["endsAt"]) - now_ms();
    assert!((1000..=4500).contains(&ends), "valid for four resends from the last one, {ends} ms left");

    let notes = receiver.bodies("/am");
    assert_eq!(notes.len(), 1, "one grouped notification, not one per sync: {notes:#?}");
    let note = &notes[0];
    assert_eq!(note["version"], "4");
    assert_eq!(note["status"], "firing");
    assert_eq!(note["receiver"], "test");
    assert_eq!(note["groupKey"], "{}:{alertname=\"SystemCritical\"}");
    assert_eq!(note["groupLabels"], serde_json::json!({"alertname": "SystemCritical"}));
    assert_eq!(note["commonLabels"], held["labels"]);
    assert_eq!(note["alerts"].as_array().unwrap().len(), 1);
    let sent = &note["alerts"][0];
    assert_eq!(sent["status"], "firing");
    assert_eq!(sent["fingerprint"], firing.fingerprint());
    assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z", "a firing alert's end is not shown");

    // steward's webhook mode says the same thing in the same shape.
    let mut own = Notifier::new(NotifyConfig {
        external_url: "http://127.0.0.1:8080".into(),
        webhooks: vec![WebhookConfig { receiver: "test".into(), ..WebhookConfig::new(receiver.url("/steward")) }],
        ..NotifyConfig::default()
    })
    .unwrap();
    assert!(own.sync(std::slice::from_ref(&firing), t0 + 30_000).is_empty());
    let ours = receiver.bodies("/steward");
    assert_eq!(ours.len(), 1);
    let ours = &ours[0];
    assert_eq!(keys(ours), keys(note), "the payload's fields are Alertmanager's");
    assert_eq!(keys(&ours["alerts"][0]), keys(sent));
    for field in ["version", "status", "receiver", "groupKey", "groupLabels", "commonLabels", "commonAnnotations", "truncatedAlerts"] {
        assert_eq!(ours[field], note[field], "{field}");
    }
    for field in ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"] {
        let (a, b) = (&ours["alerts"][0][field], &sent[field]);
        if field == "startsAt" {
            assert_eq!(time(a), time(b));
        } else {
            assert_eq!(a, b, "alerts[0].{field}");
        }
    }

    // Resolved: Alertmanager drops it from its active alerts and tells the
    // receiver once, at the group's next flush.
    let resolved_at = now_ms();
    let resolved = Alert { ends_at: Some(resolved_at), ..firing.clone() };
    sync_for(&mut n, std::slice::from_ref(&resolved), 8.0, || receiver.bodies("/am").len() >= 2);
    let active = am.alerts();
    assert!(active.is_empty(), "a resolved alert is not active: {active:#?}");
    let notes = receiver.bodies("/am");
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let note = &notes[1];
    assert_eq!(note["status"], "resolved");
    assert_eq!(note["alerts"][0]["status"], "resolved");
    assert_eq!(note["alerts"][0]["fingerprint"], firing.fingerprint());
    assert_eq!(time(&note["alerts"][0]["endsAt"]), resolved_at);
    // Nothing more, though the resolved alert is still re-sent.
    sync_for(&mut n, std::slice::from_ref(&resolved), 2.5, || false);
    assert_eq!(receiver.bodies("/am").len(), 2);
    assert!(am.alerts().is_empty());
}

#[test]
fn steward_webhook_sends_alertmanagers_payload_once_per_group_and_change() {
    let receiver = Receiver::start(200);
    let mut n = Notifier::new(NotifyConfig {
        external_url: "http://steward:8080".into(),
        webhooks: vec![WebhookConfig::new(receiver.url("/hook"))],
        ..NotifyConfig::default()
    })
    .unwrap();
    // The clock is steward's to give: minutes pass without waiting.
    let t0 = now_ms();
    let alerts =
        [incident("SystemCritical", "/srv/a", t0), incident("SystemCritical", "/srv/b", t0), incident("MajorDegradation", "/srv/a", t0)];
    for t in (0..30).step_by(10) {
        assert!(n.sync(&alerts, t0 + t * 1000).is_empty());
    }
    assert!(receiver.bodies("/hook").is_empty(), "group_wait holds the first notification");
    for t in (30..300).step_by(10) {
        assert!(n.sync(&alerts, t0 + t * 1000).is_empty());
    }
    // The groups' POSTs go out in parallel: arrival order is not theirs.
    let mut notes = receiver.bodies("/hook");
    notes.sort_by_key(|n| n["groupKey"].to_string());
    assert_eq!(notes.len(), 2, "one per group: {notes:#?}");
    let (major, critical) = (&notes[0], &notes[1]);
    assert_eq!(major["groupKey"], "{}:{alertname=\"MajorDegradation\"}");
    assert_eq!(major["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(critical["version"], "4");
    assert_eq!(critical["groupKey"], "{}:{alertname=\"SystemCritical\"}");
    assert_eq!(critical["truncatedAlerts"], 0);
    assert_eq!(critical["status"], "firing");
    assert_eq!(critical["receiver"], "steward");
    assert_eq!(critical["externalURL"], "http://steward:8080");
    assert_eq!(critical["groupLabels"], serde_json::json!({"alertname": "SystemCritical"}));
    assert_eq!(critical["commonLabels"], serde_json::json!({"alertname": "SystemCritical", "severity": "1"}));
    assert_eq!(critical["commonAnnotations"], serde_json::to_value(&alerts[0].annotations).unwrap());
    let sent = critical["alerts"].as_array().unwrap();
    assert_eq!(sent.len(), 2);
    for (sent, alert) in sent.iter().zip(&alerts) {
        assert_eq!(sent["status"], "firing");
        assert_eq!(sent["labels"], serde_json::to_value(&alert.labels).unwrap());
        assert_eq!(sent["fingerprint"], alert.fingerprint());
        assert_eq!(time(&sent["startsAt"]), t0);
        assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(sent["generatorURL"], "http://127.0.0.1:8080/incidents/1");
    }

    // All resolve (no longer given): one resolved notification per group at
    // its next flush (30 s + 5 min), then nothing.
    for t in (300..=900).step_by(10) {
        assert!(n.sync(&[], t0 + t * 1000).is_empty());
    }
    let notes = receiver.bodies("/hook");
    assert_eq!(notes.len(), 4, "{notes:#?}");
    let mut resolved: Vec<String> = notes[2..].iter().map(|n| n["groupKey"].as_str().unwrap().to_owned()).collect();
    resolved.sort();
    assert_eq!(resolved, ["{}:{alertname=\"MajorDegradation\"}", "{}:{alertname=\"SystemCritical\"}"]);
    for note in &notes[2..] {
        assert_eq!(note["status"], "resolved");
        for alert in note["alerts"].as_array().unwrap() {
            assert_eq!(alert["status"], "resolved");
            assert_eq!(time(&alert["endsAt"]), t0 + 300_000);
        }
    }
    assert_eq!(n.pending().1, 0, "resolved groups are forgotten");
}

#[test]
fn a_failing_receiver_is_reported_within_the_timeout() {
    let timeout = Duration::from_millis(500);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refusing = Receiver::start(500);
    let urls = [
        format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port()),
        format!("http://127.0.0.1:{closed}"),
        refusing.url("/api/v2/alerts"),
    ];
    let mut n = Notifier::new(NotifyConfig { alertmanagers: urls.to_vec(), timeout, ..NotifyConfig::default() }).unwrap();
    let start = Instant::now();
    let errors = n.sync(&[incident("SystemCritical", "/srv/a", now_ms())], now_ms());
    let took = start.elapsed();
    assert!(took < timeout + Duration::from_millis(300), "took {took:?}");
    assert_eq!(errors.len(), 3, "{errors:?}");
    // The silent one answers nothing: timed out, or the client's own read
    // timeout ends it as an exchange without a status.
    assert!(matches!(errors[0], NotifyError::TimedOut { .. } | NotifyError::Unreachable { .. }), "{:?}", errors[0]);
    assert!(matches!(errors[1], NotifyError::Unreachable { .. }), "{:?}", errors[1]);
    match &errors[2] {
        NotifyError::Rejected { status, body, .. } => assert_eq!((*status, body.as_str()), (500, "nope")),
        other => panic!("{other:?}"),
    }
    assert!(errors[2].to_string().starts_with(&format!("alertmanager {} answered 500", refusing.url("/api/v2/alerts"))), "{}", errors[2]);
    // Not marked as sent: the next sync tries every one again.
    assert_eq!(n.sync(&[], now_ms()).len(), 3);
    drop(silent);
}
