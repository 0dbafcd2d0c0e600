//! Incident notifications the way Prometheus sends them, so that existing
//! Alertmanager setups and receivers work unchanged (spec/operations.md,
//! "Incidents"):
//!
//! - to **Alertmanager's v2 API** (`POST /api/v2/alerts`), as Prometheus
//!   does: a firing alert is re-sent every `resend_interval` with `endsAt` four
//!   intervals ahead, so Alertmanager keeps it active while steward lives and
//!   lets it expire by itself if steward dies; a resolved alert is sent with
//!   its resolution time, again on every resend for 15 minutes, so one lost
//!   POST does not leave it firing;
//! - to **webhooks**, with Alertmanager's own grouping (`group_by`,
//!   `group_wait`, `group_interval`, `repeat_interval`) and its webhook payload
//!   (version 4), so a receiver gets one notification per group and change,
//!   not one per cycle.
//!
//! [`Notifier::sync`] is level-triggered: after every cycle it is given the
//! alerts that fire now (and, if the caller likes, those resolved lately),
//! works out from its own memory and the time passed in what is due, and sends
//! it. An alert that fired and is no longer given is taken as resolved then.
//! The clock is an argument, so the timing is tested without sleeping; only
//! the POSTs themselves take wall time, each bounded by `timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use steward_actuators::http::{self, Url};
use steward_core::config::{duration, InvalidValue};
use steward_core::time::{format_rfc3339, UnixMs};

/// One alert: an incident as Alertmanager sees it. Its identity is its labels
/// (see [`fingerprint`]); two alerts with the same labels are the same alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Identifying labels, e.g. `alertname=SystemCritical`, `severity=1`,
    /// `target=/srv/queue`. A label with an empty value counts as absent (as
    /// in Prometheus); an alert needs at least one label to be sent.
    pub labels: BTreeMap<String, String>,
    /// Descriptive text that is not part of the identity, e.g. `summary`,
    /// `description`, `runbook_url`.
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: UnixMs,
    /// When it resolved: `None` while it fires.
    pub ends_at: Option<UnixMs>,
    /// A link back to what raised it (e.g. the incident in steward's API).
    pub generator_url: Option<String>,
}

impl Alert {
    /// Whether the alert has resolved.
    pub fn is_resolved(&self) -> bool {
        self.ends_at.is_some()
    }

    /// The alert's identity: [`fingerprint`] of its labels.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }
}

/// A stable hash of a label set, as 16 hex digits: FNV-1a (64 bits) over the
/// labels sorted by name, each name and value followed by a 0xff byte. This
/// is how Prometheus and Alertmanager fingerprint a label set, so it is the
/// `fingerprint` Alertmanager itself shows for the same labels.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

/// The `notify:` section: where incident alerts go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Alertmanager base URLs, e.g. `http://alertmanager:9093` (the
    /// `/api/v2/alerts` path is added unless given). Every alert goes to each.
    /// `http://` only. Default none.
    #[serde(default)]
    pub alertmanagers: Vec<String>,
    /// How often a firing alert is re-sent to Alertmanager; it is sent valid
    /// for four of these (or four of the time between syncs when that is
    /// longer), so Alertmanager resolves it by itself if steward stops.
    /// Default 1m, as Prometheus's `--rules.alert.resend-delay`.
    #[serde(default = "default_resend_interval", with = "duration")]
    pub resend_interval: Duration,
    /// Longest one sync waits for the answers to its POSTs (they are sent in
    /// parallel). Default 10s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Where webhooks' `externalURL` points, e.g. steward's HTTP address
    /// `http://steward.internal:8080`. Default empty.
    #[serde(default)]
    pub external_url: String,
    /// Webhook receivers, each sent Alertmanager's webhook payload with
    /// Alertmanager's grouping. Default none.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook receiver under `notify.webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, e.g. `http://chatops:5001/alerts`. `http://` only.
    pub url: String,
    /// The payload's `receiver` name. Default `steward`.
    #[serde(default = "default_receiver")]
    pub receiver: String,
    /// Label names whose values make a group: alerts that agree on them go in
    /// one notification. `["..."]` groups by every label (one alert per
    /// group). Default `["alertname"]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first
    /// notification (0 sends at once). Default 30s.
    #[serde(default = "default_group_wait", with = "duration")]
    pub group_wait: Duration,
    /// How long after a group's notification a change to it (a new alert, a
    /// resolution) is sent. Default 5m.
    #[serde(default = "default_group_interval", with = "duration")]
    pub group_interval: Duration,
    /// How long before an unchanged group that still fires is sent again.
    /// Default 4h.
    #[serde(default = "default_repeat_interval", with = "duration")]
    pub repeat_interval: Duration,
}

fn default_resend_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_receiver() -> String {
    "steward".to_owned()
}
fn default_group_by() -> Vec<String> {
    vec!["alertname".to_owned()]
}
fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            alertmanagers: Vec::new(),
            resend_interval: default_resend_interval(),
            timeout: default_timeout(),
            external_url: String::new(),
            webhooks: Vec::new(),
        }
    }
}

impl WebhookConfig {
    /// A receiver at `url` with Alertmanager's default grouping.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            receiver: default_receiver(),
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
        }
    }
}

fn invalid(key: String, message: impl Into<String>) -> InvalidValue {
    InvalidValue { key, message: message.into() }
}

fn parse_url(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| if url.starts_with("https://") { format!("{e}; send to a local relay over http") } else { e })
}

/// Alertmanager's POST path under a base URL (kept when already given).
fn alertmanager_url(base: &str) -> Result<Url, String> {
    let mut url = parse_url(base)?;
    if !url.path.ends_with("/api/v2/alerts") {
        url.path = format!("{}/api/v2/alerts", url.path.trim_end_matches('/'));
    }
    Ok(url)
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl NotifyConfig {
    /// Checks the section before anything is sent.
    ///
    /// # Errors
    /// The first unusable value, naming its key (`notify.webhooks[0].url`):
    /// a URL that is not plain http, a zero interval or timeout, a `group_by`
    /// entry that is not a label name.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (i, url) in self.alertmanagers.iter().enumerate() {
            alertmanager_url(url).map_err(|m| invalid(format!("notify.alertmanagers[{i}]"), m))?;
        }
        if self.resend_interval.is_zero() {
            return Err(invalid("notify.resend_interval".into(), "must be above zero (Prometheus uses 1m)"));
        }
        if self.timeout.is_zero() {
            return Err(invalid("notify.timeout".into(), "must be above zero"));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("notify.webhooks[{i}].{field}");
            parse_url(&w.url).map_err(|m| invalid(key("url"), m))?;
            if w.receiver.trim().is_empty() {
                return Err(invalid(key("receiver"), "must not be empty"));
            }
            if w.group_by.iter().any(|n| n == "...") && w.group_by.len() > 1 {
                return Err(invalid(key("group_by"), "\"...\" (every label) stands alone"));
            }
            if let Some(bad) = w.group_by.iter().find(|n| *n != "..." && !valid_label_name(n)) {
                return Err(invalid(key("group_by"), format!("{bad:?} is not a label name (letters, digits, _; not first a digit)")));
            }
            if w.group_interval.is_zero() {
                return Err(invalid(key("group_interval"), "must be above zero (Alertmanager uses 5m)"));
            }
            if w.repeat_interval.is_zero() {
                return Err(invalid(key("repeat_interval"), "must be above zero (Alertmanager uses 4h)"));
            }
        }
        Ok(())
    }
}

/// A notification that could not be delivered. [`Notifier::sync`] logs it
/// and sends it again at the next sync; the value is for health reporting.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The receiver could not be reached, or the exchange broke off.
    #[error("{receiver}: {source}")]
    Unreachable {
        /// Which receiver, e.g. `alertmanager http://am:9093/api/v2/alerts`.
        receiver: String,
        /// What the connection said.
        #[source]
        source: io::Error,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("{receiver} answered {status}: {body}")]
    Rejected {
        /// Which receiver.
        receiver: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body (at most 300 characters).
        body: String,
    },
    /// No answer within `timeout`; the request is left to finish on its own.
    #[error("{receiver}: no answer within {timeout:?}")]
    TimedOut {
        /// Which receiver.
        receiver: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Not sent: too many earlier requests are still waiting for an answer.
    #[error("{receiver}: not sent, {in_flight} earlier requests are still unanswered")]
    Busy {
        /// Which receiver.
        receiver: String,
        /// How many earlier requests are still open.
        in_flight: usize,
    },
}

impl NotifyError {
    /// Which receiver failed, e.g. `webhook http://chatops:5001/alerts
    /// {alertname="SystemCritical"}`.
    pub fn receiver(&self) -> &str {
        match self {
            Self::Unreachable { receiver, .. }
            | Self::Rejected { receiver, .. }
            | Self::TimedOut { receiver, .. }
            | Self::Busy { receiver, .. } => receiver,
        }
    }
}

/// How long a resolved alert is still sent (every `resend_interval`) after
/// it resolved: Prometheus's `resolvedRetention`.
const RESOLVED_RETENTION_MS: UnixMs = 15 * 60 * 1000;
/// Most POSTs that may still be open after a sync stopped waiting for them;
/// beyond this, new ones are refused rather than piling up threads.
const MAX_IN_FLIGHT: usize = 32;
/// How Alertmanager's webhook shows a firing alert's `endsAt` (Go's zero time).
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

fn ms(d: Duration) -> UnixMs {
    UnixMs::try_from(d.as_millis()).unwrap_or(UnixMs::MAX)
}

/// Sends incident alerts to Alertmanager and webhooks; see the module docs.
/// Built once from a validated config, then [`sync`](Self::sync)ed after
/// every cycle.
pub struct Notifier {
    cfg: NotifyConfig,
    alertmanagers: Vec<(String, Url)>,
    webhooks: Vec<Webhook>,
    /// Every alert that fires, or resolved less than the retention ago.
    tracked: BTreeMap<String, Tracked>,
    last_sync: Option<UnixMs>,
    /// POSTs whose thread has not finished (shared with those threads).
    in_flight: Arc<AtomicUsize>,
}

struct Tracked {
    alert: Alert,
    /// What Alertmanager was last sent about it (by every Alertmanager).
    sent: Option<Sent>,
}

#[derive(Clone, Copy)]
struct Sent {
    at: UnixMs,
    starts_at: UnixMs,
    resolved: bool,
}

struct Webhook {
    cfg: WebhookConfig,
    target: Url,
    groups: BTreeMap<BTreeMap<String, String>, Group>,
    /// Resolved alerts already notified and dropped from their group, with
    /// their resolution time, so that being given them again does not bring
    /// them back.
    retired: BTreeMap<String, UnixMs>,
}

/// An aggregation group: Alertmanager's `aggrGroup` plus its notification
/// log entry.
struct Group {
    alerts: BTreeMap<String, Alert>,
    next_flush: UnixMs,
    flushed: bool,
    last: Option<Notified>,
}

/// What a group's last notification said.
struct Notified {
    at: UnixMs,
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
}

/// One POST a sync makes, and what its success means.
struct Outgoing {
    receiver: String,
    target: Url,
    body: Vec<u8>,
    purpose: Purpose,
}

enum Purpose {
    /// These alerts (fingerprints) to one Alertmanager.
    Alertmanager(Vec<String>),
    /// A group's notification to a webhook, with the sets it reports.
    Webhook { webhook: usize, group: BTreeMap<String, String>, firing: BTreeSet<String>, resolved: BTreeSet<String> },
}

impl Notifier {
    /// A notifier for `cfg`; nothing is sent until [`sync`](Self::sync).
    ///
    /// # Errors
    /// What [`NotifyConfig::validate`] finds.
    pub fn new(cfg: NotifyConfig) -> Result<Self, InvalidValue> {
        cfg.validate()?;
        let mut alertmanagers = Vec::new();
        for (i, base) in cfg.alertmanagers.iter().enumerate() {
            let url = alertmanager_url(base).map_err(|m| invalid(format!("notify.alertmanagers[{i}]"), m))?;
            alertmanagers.push((format!("alertmanager http://{}:{}{}", url.host, url.port, url.path), url));
        }
        let mut webhooks = Vec::new();
        for (i, w) in cfg.webhooks.iter().enumerate() {
            let target = parse_url(&w.url).map_err(|m| invalid(format!("notify.webhooks[{i}].url"), m))?;
            webhooks.push(Webhook { cfg: w.clone(), target, groups: BTreeMap::new(), retired: BTreeMap::new() });
        }
        Ok(Self { cfg, alertmanagers, webhooks, tracked: BTreeMap::new(), last_sync: None, in_flight: Arc::new(AtomicUsize::new(0)) })
    }

    /// Call after every cycle with every alert that fires now (resolved ones
    /// may be given too, with `ends_at`; a firing alert no longer given is
    /// taken as resolved at `now`). Sends what is due to every receiver, in
    /// parallel, waiting at most `timeout`, and returns the failures (one per
    /// POST that failed), each also logged. A failed send is tried again at
    /// the next sync.
    pub fn sync(&mut self, alerts: &[Alert], now: UnixMs) -> Vec<NotifyError> {
        let outgoing = self.plan(alerts, now);
        if outgoing.is_empty() {
            return Vec::new();
        }
        let results = send_all(&outgoing, self.cfg.timeout, &self.in_flight);
        let errors = self.settle(outgoing, results, now);
        for error in &errors {
            tracing::warn!(%error, receiver = error.receiver(), "Notification failed; it is sent again at the next sync.");
        }
        errors
    }

    /// How many alerts are remembered (firing, or resolved less than 15
    /// minutes ago), and how many webhook groups are open.
    pub fn pending(&self) -> (usize, usize) {
        (self.tracked.len(), self.webhooks.iter().map(|w| w.groups.len()).sum())
    }

    /// Takes in the alerts given and works out every POST that is due.
    fn plan(&mut self, alerts: &[Alert], now: UnixMs) -> Vec<Outgoing> {
        // Sent valid for four resends, or four syncs when syncs are further
        // apart, so that Alertmanager never expires an alert between two.
        let gap = self.last_sync.map_or(0, |last| now.saturating_sub(last));
        self.last_sync = Some(now);
        let valid_for = ms(self.cfg.resend_interval).max(gap).saturating_mul(4);
        self.observe(alerts, now);
        let mut outgoing = Vec::new();
        if !self.alertmanagers.is_empty() {
            let resend = ms(self.cfg.resend_interval);
            let mut due: Vec<(&String, &Tracked)> = self.tracked.iter().filter(|(_, t)| alertmanager_due(t, now, resend)).collect();
            due.sort_by(|a, b| a.1.alert.labels.cmp(&b.1.alert.labels));
            if !due.is_empty() {
                let body = alertmanager_body(due.iter().map(|(_, t)| &t.alert), now, valid_for);
                let fingerprints: Vec<String> = due.iter().map(|(fp, _)| (*fp).clone()).collect();
                for (receiver, target) in &self.alertmanagers {
                    outgoing.push(Outgoing {
                        receiver: receiver.clone(),
                        target: target.clone(),
                        body: body.clone(),
                        purpose: Purpose::Alertmanager(fingerprints.clone()),
                    });
                }
            }
        }
        for (i, webhook) in self.webhooks.iter_mut().enumerate() {
            webhook.observe(&self.tracked, now);
            outgoing.extend(webhook.flush(i, &self.cfg.external_url, now));
        }
        outgoing
    }

    /// Updates the tracked alerts from those given.
    fn observe(&mut self, alerts: &[Alert], now: UnixMs) {
        let mut given: BTreeMap<String, Alert> = BTreeMap::new();
        for alert in alerts {
            let mut alert = alert.clone();
            // As in Prometheus, an empty label is no label; and Alertmanager
            // refuses an end before the start.
            alert.labels.retain(|_, v| !v.is_empty());
            alert.ends_at = alert.ends_at.map(|end| end.max(alert.starts_at));
            if alert.labels.is_empty() || alert.ends_at.is_some_and(|end| now.saturating_sub(end) > RESOLVED_RETENTION_MS) {
                continue;
            }
            let fp = alert.fingerprint();
            // Given twice, the firing one wins.
            if given.get(&fp).is_some_and(|seen| !seen.is_resolved() && alert.is_resolved()) {
                continue;
            }
            given.insert(fp, alert);
        }
        for (fp, tracked) in &mut self.tracked {
            if !given.contains_key(fp) && !tracked.alert.is_resolved() {
                tracked.alert.ends_at = Some(now.max(tracked.alert.starts_at));
            }
        }
        for (fp, alert) in given {
            match self.tracked.get_mut(&fp) {
                Some(tracked) => tracked.alert = alert,
                None => {
                    self.tracked.insert(fp, Tracked { alert, sent: None });
                }
            }
        }
        self.tracked.retain(|_, t| t.alert.ends_at.is_none_or(|end| now.saturating_sub(end) <= RESOLVED_RETENTION_MS));
    }

    /// Records what was delivered; returns what was not.
    fn settle(&mut self, outgoing: Vec<Outgoing>, results: Vec<Result<(), NotifyError>>, now: UnixMs) -> Vec<NotifyError> {
        let mut errors = Vec::new();
        // Alertmanager's alerts count as sent only when every Alertmanager
        // took them: otherwise all are sent again at the next sync, which an
        // Alertmanager that has them already merges.
        let mut alertmanager_ok = true;
        let mut alertmanager_sent: Vec<String> = Vec::new();
        for (post, result) in outgoing.into_iter().zip(results) {
            let ok = result.is_ok();
            if let Err(e) = result {
                errors.push(e);
            }
            match post.purpose {
                Purpose::Alertmanager(fps) => {
                    alertmanager_ok &= ok;
                    alertmanager_sent = fps;
                }
                Purpose::Webhook { webhook, group, firing, resolved } => {
                    if let (true, Some(w)) = (ok, self.webhooks.get_mut(webhook)) {
                        w.notified(&group, firing, resolved, now);
                    }
                }
            }
        }
        if alertmanager_ok {
            for fp in alertmanager_sent {
                if let Some(t) = self.tracked.get_mut(&fp) {
                    t.sent = Some(Sent { at: now, starts_at: t.alert.starts_at, resolved: t.alert.is_resolved() });
                }
            }
        }
        errors
    }
}

/// Prometheus's `needsSending`: never sent, changed since (resolved, or
/// firing anew), or sent a resend interval ago.
fn alertmanager_due(t: &Tracked, now: UnixMs, resend: UnixMs) -> bool {
    match t.sent {
        None => true,
        Some(s) => s.resolved != t.alert.is_resolved() || s.starts_at != t.alert.starts_at || now.saturating_sub(s.at) >= resend,
    }
}

/// Alertmanager's `postableAlert`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

fn alertmanager_body<'a>(alerts: impl Iterator<Item = &'a Alert>, now: UnixMs, valid_for: UnixMs) -> Vec<u8> {
    let postable: Vec<PostableAlert<'_>> = alerts
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: format_rfc3339(a.starts_at),
            ends_at: format_rfc3339(a.ends_at.unwrap_or_else(|| now.saturating_add(valid_for))),
            generator_url: a.generator_url.as_deref(),
        })
        .collect();
    serde_json::to_vec(&postable).expect("maps of strings and strings always serialize")
}

/// Alertmanager's webhook payload, version 4.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookPayload<'a> {
    version: &'static str,
    group_key: String,
    truncated_alerts: u64,
    status: &'static str,
    receiver: &'a str,
    group_labels: &'a BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    alerts: Vec<WebhookAlert<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert<'a> {
    status: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: &'a str,
}

fn status(resolved: bool) -> &'static str {
    if resolved {
        "resolved"
    } else {
        "firing"
    }
}

/// The pairs every map has with the same value.
fn common<'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut common = maps.next().cloned().unwrap_or_default();
    for m in maps {
        common.retain(|k, v| m.get(k) == Some(v));
    }
    common
}

/// A label set as Prometheus prints it: `{alertname="X", severity="1"}`.
fn label_set_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

impl Webhook {
    fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.cfg.group_by.iter().any(|n| n == "...") {
            return labels.clone();
        }
        self.cfg.group_by.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone()))).collect()
    }

    /// Puts every tracked alert in its group (Alertmanager's `insert`).
    fn observe(&mut self, tracked: &BTreeMap<String, Tracked>, now: UnixMs) {
        self.retired.retain(|fp, end| tracked.get(fp).is_some_and(|t| t.alert.ends_at == Some(*end)));
        let wait = ms(self.cfg.group_wait);
        for (fp, t) in tracked {
            if t.alert.ends_at.is_some_and(|end| self.retired.get(fp) == Some(&end)) {
                continue;
            }
            let key = self.group_labels(&t.alert.labels);
            let group = self.groups.entry(key).or_insert_with(|| Group {
                alerts: BTreeMap::new(),
                next_flush: now.saturating_add(wait),
                flushed: false,
                last: None,
            });
            // An alert older than group_wait is not held back (Alertmanager
            // does the same, e.g. after a restart).
            if !group.flushed && t.alert.starts_at.saturating_add(wait) <= now {
                group.next_flush = group.next_flush.min(now);
            }
            group.alerts.insert(fp.clone(), t.alert.clone());
        }
    }

    /// Flushes every group that is due: Alertmanager's `flush` and its
    /// `DedupStage`. Groups with nothing new are settled here; the others
    /// become a POST, settled by [`Webhook::notified`] when it succeeds.
    fn flush(&mut self, index: usize, external_url: &str, now: UnixMs) -> Vec<Outgoing> {
        let interval = ms(self.cfg.group_interval);
        let repeat = ms(self.cfg.repeat_interval);
        let mut outgoing = Vec::new();
        let mut quiet = Vec::new();
        for (key, group) in &mut self.groups {
            if now < group.next_flush {
                continue;
            }
            let firing: BTreeSet<String> = group.alerts.iter().filter(|(_, a)| !a.is_resolved()).map(|(fp, _)| fp.clone()).collect();
            let resolved: BTreeSet<String> = group.alerts.iter().filter(|(_, a)| a.is_resolved()).map(|(fp, _)| fp.clone()).collect();
            let needed = match &group.last {
                // The first notification is about something firing.
                None => !firing.is_empty(),
                Some(last) if !firing.is_subset(&last.firing) => true,
                // All resolved: say so once, if the receiver knew of any.
                Some(last) if firing.is_empty() => !last.firing.is_empty(),
                Some(last) if !resolved.is_subset(&last.resolved) => true,
                Some(last) => now.saturating_sub(last.at) >= repeat,
            };
            if !needed {
                group.next_flush = now.saturating_add(interval);
                group.flushed = true;
                quiet.push((key.clone(), resolved));
                continue;
            }
            let mut alerts: Vec<(&String, &Alert)> = group.alerts.iter().collect();
            alerts.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
            let payload = WebhookPayload {
                version: "4",
                group_key: format!("{{}}:{}", label_set_text(key)),
                truncated_alerts: 0,
                status: status(firing.is_empty()),
                receiver: &self.cfg.receiver,
                group_labels: key,
                common_labels: common(alerts.iter().map(|(_, a)| &a.labels)),
                common_annotations: common(alerts.iter().map(|(_, a)| &a.annotations)),
                external_url,
                alerts: alerts
                    .iter()
                    .map(|(fp, a)| WebhookAlert {
                        status: status(a.is_resolved()),
                        labels: &a.labels,
                        annotations: &a.annotations,
                        starts_at: format_rfc3339(a.starts_at),
                        ends_at: a.ends_at.map_or_else(|| NOT_ENDED.to_owned(), format_rfc3339),
                        generator_url: a.generator_url.as_deref().unwrap_or(""),
                        fingerprint: fp,
                    })
                    .collect(),
            };
            let body = serde_json::to_vec(&payload).expect("maps of strings and strings always serialize");
            outgoing.push(Outgoing {
                receiver: format!("webhook {} {}", self.cfg.url, label_set_text(key)),
                target: self.target.clone(),
                body,
                purpose: Purpose::Webhook { webhook: index, group: key.clone(), firing, resolved },
            });
        }
        for (key, resolved) in quiet {
            self.drop_resolved(&key, &resolved);
        }
        outgoing
    }

    /// A group's notification went out.
    fn notified(&mut self, key: &BTreeMap<String, String>, firing: BTreeSet<String>, resolved: BTreeSet<String>, now: UnixMs) {
        let interval = ms(self.cfg.group_interval);
        if let Some(group) = self.groups.get_mut(key) {
            group.next_flush = now.saturating_add(interval);
            group.flushed = true;
            group.last = Some(Notified { at: now, firing, resolved: resolved.clone() });
        }
        self.drop_resolved(key, &resolved);
    }

    /// After a flush, the resolved alerts it covered leave the group, and a
    /// group left empty is forgotten.
    fn drop_resolved(&mut self, key: &BTreeMap<String, String>, resolved: &BTreeSet<String>) {
        let Some(group) = self.groups.get_mut(key) else { return };
        for fp in resolved {
            if let Some(end) = group.alerts.get(fp).and_then(|a| a.ends_at) {
                group.alerts.remove(fp);
                self.retired.insert(fp.clone(), end);
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(key);
        }
    }
}

/// POSTs everything in parallel and waits at most `timeout` for the answers.
/// A request still open then is reported as timed out and left to finish on
/// its thread (the client's own timeouts end it); at most [`MAX_IN_FLIGHT`]
/// are open at once.
fn send_all(outgoing: &[Outgoing], timeout: Duration, in_flight: &Arc<AtomicUsize>) -> Vec<Result<(), NotifyError>> {
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<Result<(), NotifyError>>> = outgoing.iter().map(|_| None).collect();
    let mut waiting = 0;
    for (i, post) in outgoing.iter().enumerate() {
        let open = in_flight.fetch_add(1, Ordering::SeqCst);
        if open >= MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            results[i] = Some(Err(NotifyError::Busy { receiver: post.receiver.clone(), in_flight: open }));
            continue;
        }
        let (tx, counter) = (tx.clone(), Arc::clone(in_flight));
        let (receiver, target, body) = (post.receiver.clone(), post.target.clone(), post.body.clone());
        let spawned = std::thread::Builder::new().name("steward-notify".into()).spawn(move || {
            let result = post_json(receiver, &target, &body, timeout);
            counter.fetch_sub(1, Ordering::SeqCst);
            // The sync may have stopped listening; then nobody needs this.
            let _ = tx.send((i, result));
        });
        match spawned {
            Ok(_) => waiting += 1,
            Err(source) => {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                results[i] = Some(Err(NotifyError::Unreachable { receiver: post.receiver.clone(), source }));
            }
        }
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    while waiting > 0 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, result)) => {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result);
                }
                waiting -= 1;
            }
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .zip(outgoing)
        .map(|(result, post)| result.unwrap_or_else(|| Err(NotifyError::TimedOut { receiver: post.receiver.clone(), timeout })))
        .collect()
}

fn post_json(receiver: String, target: &Url, body: &[u8], timeout: Duration) -> Result<(), NotifyError> {
    match http::request("POST", target, &[], Some(("application/json", body)), timeout) {
        Err(source) => Err(NotifyError::Unreachable { receiver, source }),
        Ok(answer) if (200..300).contains(&answer.status) => Ok(()),
        Ok(answer) => Err(NotifyError::Rejected { receiver, status: answer.status, body: answer.body.trim().chars().take(300).collect() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: UnixMs = 1000;
    const T0: UnixMs = 1_750_000_000_000;

    fn alert(name: &str, target: &str, starts_at: UnixMs) -> Alert {
        let labels = [("alertname", name), ("severity", "1"), ("target", target)];
        Alert {
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            annotations: BTreeMap::from([("summary".to_owned(), format!("{name} on {target}"))]),
            starts_at,
            ends_at: None,
            generator_url: Some("http://steward:8080/incidents/1".into()),
        }
    }

    fn resolved(mut a: Alert, at: UnixMs) -> Alert {
        a.ends_at = Some(at);
        a
    }

    fn webhook(group_by: &[&str]) -> WebhookConfig {
        WebhookConfig {
            url: "http://receiver:5001/hook".into(),
            receiver: "ops".into(),
            group_by: group_by.iter().map(|s| (*s).to_owned()).collect(),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }

    fn notifier(alertmanagers: &[&str], webhooks: Vec<WebhookConfig>) -> Notifier {
        let cfg = NotifyConfig {
            alertmanagers: alertmanagers.iter().map(|s| (*s).to_owned()).collect(),
            external_url: "http://steward:8080".into(),
            webhooks,
            ..NotifyConfig::default()
        };
        Notifier::new(cfg).unwrap()
    }

    /// One sync with every POST answered as `ok` says; returns the bodies
    /// sent (as JSON) with the receiver they went to.
    fn sync(n: &mut Notifier, alerts: &[Alert], now: UnixMs, ok: bool) -> Vec<(String, serde_json::Value)> {
        let outgoing = n.plan(alerts, now);
        let sent: Vec<(String, serde_json::Value)> =
            outgoing.iter().map(|o| (o.receiver.clone(), serde_json::from_slice(&o.body).unwrap())).collect();
        let results = outgoing
            .iter()
            .map(
                |o| if ok { Ok(()) } else { Err(NotifyError::Rejected { receiver: o.receiver.clone(), status: 503, body: String::new() }) },
            )
            .collect();
        let errors = n.settle(outgoing, results, now);
        assert_eq!(errors.len(), if ok { 0 } else { sent.len() });
        sent
    }

    fn names(payload: &serde_json::Value) -> Vec<(String, String)> {
        payload["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["labels"]["target"].as_str().unwrap().to_owned(), a["status"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn pair(target: &str, status: &str) -> (String, String) {
        (target.to_owned(), status.to_owned())
    }

    #[test]
    fn fingerprints_are_alertmanagers() {
        // FNV-1a's offset basis for no labels, as Prometheus's emptyLabelSignature.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        // Prometheus's own test vector (model.TestMetricToFingerprint).
        let labels = [("name", "garland, briggs"), ("fear", "love is not enough")];
        let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(fingerprint(&labels), format!("{:016x}", 5_799_056_148_416_392_346_u64));
        assert_ne!(alert("X", "/srv/q", T0).fingerprint(), alert("X", "/srv/r", T0).fingerprint());
        // Name/value boundaries count: {a="bc"} is not {ab="c"}.
        let one = BTreeMap::from([("a".to_owned(), "bc".to_owned())]);
        let two = BTreeMap::from([("ab".to_owned(), "c".to_owned())]);
        assert_ne!(fingerprint(&one), fingerprint(&two));
    }

    #[test]
    fn config_defaults_and_errors_name_the_key() {
        let cfg: NotifyConfig = serde_json::from_str(r#"{"webhooks": [{"url": "http://x:1/h"}]}"#).unwrap();
        assert_eq!(cfg.resend_interval, Duration::from_secs(60));
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert_eq!(cfg.webhooks[0], WebhookConfig::new("http://x:1/h"));
        let cfg: NotifyConfig =
            serde_json::from_str(r#"{"resend_interval": "30s", "webhooks": [{"url": "http://x/", "group_wait": 0, "group_by": ["..."]}]}"#)
                .unwrap();
        assert_eq!(cfg.resend_interval, Duration::from_secs(30));
        assert!(cfg.validate().is_ok());
        assert!(serde_json::from_str::<NotifyConfig>(r#"{"alertmanager": []}"#).is_err());

        let bad = |edit: &dyn Fn(&mut NotifyConfig)| {
            let mut cfg = NotifyConfig {
                alertmanagers: vec!["http://am:9093".into()],
                webhooks: vec![WebhookConfig::new("http://x/")],
                ..NotifyConfig::default()
            };
            edit(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        assert!(bad(&|c| c.alertmanagers.push("https://am".into())).starts_with("notify.alertmanagers[1]: "));
        assert!(bad(&|c| c.resend_interval = Duration::ZERO).starts_with("notify.resend_interval: "));
        assert!(bad(&|c| c.timeout = Duration::ZERO).starts_with("notify.timeout: "));
        assert!(bad(&|c| c.webhooks[0].url = "x".into()).starts_with("notify.webhooks[0].url: "));
        assert!(bad(&|c| c.webhooks[0].group_interval = Duration::ZERO).starts_with("notify.webhooks[0].group_interval: "));
        assert!(bad(&|c| c.webhooks[0].repeat_interval = Duration::ZERO).starts_with("notify.webhooks[0].repeat_interval: "));
        assert!(bad(&|c| c.webhooks[0].group_by = vec!["1x".into()]).starts_with("notify.webhooks[0].group_by: "));
        assert!(bad(&|c| c.webhooks[0].group_by = vec!["...".into(), "a".into()]).starts_with("notify.webhooks[0].group_by: "));
        assert!(Notifier::new(NotifyConfig { timeout: Duration::ZERO, ..NotifyConfig::default() }).is_err());
    }

    #[test]
    fn alertmanager_gets_firing_alerts_every_resend_interval_valid_for_four() {
        let mut n = notifier(&["http://am1:9093", "http://am2:9093/prefix/"], vec![]);
        let a = alert("SystemCritical", "/srv/q", T0);
        let sent = sync(&mut n, std::slice::from_ref(&a), T0, true);
        let receivers: Vec<&str> = sent.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(receivers, ["alertmanager http://am1:9093/api/v2/alerts", "alertmanager http://am2:9093/prefix/api/v2/alerts"]);
        let body = &sent[0].1;
        assert_eq!(sent[1].1, *body, "every Alertmanager gets the same alerts");
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["labels"]["alertname"], "SystemCritical");
        assert_eq!(body[0]["annotations"]["summary"], "SystemCritical on /srv/q");
        assert_eq!(body[0]["startsAt"], format_rfc3339(T0));
        assert_eq!(body[0]["endsAt"], format_rfc3339(T0 + 240 * S));
        assert_eq!(body[0]["generatorURL"], "http://steward:8080/incidents/1");

        // Cycles every 10 s: nothing until a minute has passed, then again.
        for t in (10..60).step_by(10) {
            assert!(sync(&mut n, std::slice::from_ref(&a), T0 + t * S, true).is_empty(), "at {t}s");
        }
        let sent = sync(&mut n, std::slice::from_ref(&a), T0 + 60 * S, true);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].1[0]["endsAt"], format_rfc3339(T0 + 300 * S));
        assert_eq!(sent[0].1[0]["startsAt"], format_rfc3339(T0), "the start stays");

        // A failed POST is tried again at the next sync, not a minute later.
        assert_eq!(sync(&mut n, std::slice::from_ref(&a), T0 + 120 * S, false).len(), 2);
        assert_eq!(sync(&mut n, std::slice::from_ref(&a), T0 + 130 * S, true).len(), 2);
        assert!(sync(&mut n, std::slice::from_ref(&a), T0 + 140 * S, true).is_empty());

        // Syncs further apart than four resends: valid for four syncs.
        let sent = sync(&mut n, std::slice::from_ref(&a), T0 + 740 * S, true);
        assert_eq!(sent[0].1[0]["endsAt"], format_rfc3339(T0 + 740 * S + 4 * 600 * S));
    }

    #[test]
    fn alertmanager_gets_resolved_alerts_for_fifteen_minutes_then_never() {
        let mut n = notifier(&["http://am:9093"], vec![]);
        let a = alert("SystemCritical", "/srv/q", T0);
        let b = alert("SystemCritical", "/srv/r", T0);
        sync(&mut n, &[a.clone(), b.clone()], T0, true);
        // `a` resolves explicitly, `b` by no longer being given.
        let sent = sync(&mut n, &[resolved(a.clone(), T0 + 25 * S)], T0 + 30 * S, true);
        assert_eq!(sent.len(), 1, "a resolution is sent at once");
        let body = sent[0].1.as_array().unwrap();
        assert_eq!(body.len(), 2);
        assert_eq!(body[0]["endsAt"], format_rfc3339(T0 + 25 * S));
        assert_eq!(body[1]["endsAt"], format_rfc3339(T0 + 30 * S));
        // Re-sent every minute while within 15 minutes of resolving, even if
        // the caller stops giving them.
        let mut resends = 0;
        for t in (40..=1200).step_by(10) {
            for (_, body) in sync(&mut n, &[], T0 + t * S, true) {
                assert!(body.as_array().unwrap().iter().all(|x| x["endsAt"] != format_rfc3339(T0 + t * S + 240 * S)));
                resends += 1;
            }
        }
        assert_eq!(resends, 15);
        assert_eq!(n.pending(), (0, 0));
        // Given again long after: not sent.
        assert!(sync(&mut n, &[resolved(a.clone(), T0 + 25 * S)], T0 + 1300 * S, true).is_empty());
        // Firing again: sent at once.
        let again = alert("SystemCritical", "/srv/q", T0 + 1300 * S);
        let sent = sync(&mut n, &[again], T0 + 1300 * S, true);
        assert_eq!(sent[0].1[0]["startsAt"], format_rfc3339(T0 + 1300 * S));
    }

    #[test]
    fn alertmanager_is_not_sent_what_it_would_refuse() {
        let mut n = notifier(&["http://am:9093"], vec![]);
        let mut a = alert("X", "t", T0);
        a.labels.insert("empty".into(), String::new());
        let mut none = alert("X", "t", T0);
        none.labels.clear();
        let early = resolved(alert("Y", "t", T0), T0 - 5 * S);
        let sent = sync(&mut n, &[a, none, early], T0, true);
        let body = sent[0].1.as_array().unwrap();
        assert_eq!(body.len(), 2, "the alert without labels is dropped");
        assert_eq!(body[0]["labels"], serde_json::json!({"alertname": "X", "severity": "1", "target": "t"}), "no empty label");
        assert_eq!(body[1]["labels"]["alertname"], "Y");
        assert_eq!(body[1]["endsAt"], body[1]["startsAt"], "an end before the start is the start");
    }

    #[test]
    fn webhook_waits_group_wait_then_sends_one_grouped_notification() {
        let mut n = notifier(&[], vec![webhook(&["alertname"])]);
        let a = alert("SystemCritical", "/srv/q", T0);
        let b = alert("SystemCritical", "/srv/r", T0 + 10 * S);
        assert!(sync(&mut n, std::slice::from_ref(&a), T0, true).is_empty());
        assert!(sync(&mut n, &[a.clone(), b.clone()], T0 + 10 * S, true).is_empty());
        assert!(sync(&mut n, &[a.clone(), b.clone()], T0 + 20 * S, true).is_empty());
        let sent = sync(&mut n, &[a.clone(), b.clone()], T0 + 30 * S, true);
        assert_eq!(sent.len(), 1, "one notification for the group");
        let (receiver, p) = &sent[0];
        assert_eq!(receiver, "webhook http://receiver:5001/hook {alertname=\"SystemCritical\"}");
        assert_eq!(p["version"], "4");
        assert_eq!(p["groupKey"], "{}:{alertname=\"SystemCritical\"}");
        assert_eq!(p["truncatedAlerts"], 0);
        assert_eq!(p["status"], "firing");
        assert_eq!(p["receiver"], "ops");
        assert_eq!(p["groupLabels"], serde_json::json!({"alertname": "SystemCritical"}));
        assert_eq!(p["commonLabels"], serde_json::json!({"alertname": "SystemCritical", "severity": "1"}));
        assert_eq!(p["commonAnnotations"], serde_json::json!({}));
        assert_eq!(p["externalURL"], "http://steward:8080");
        assert_eq!(names(p), [pair("/srv/q", "firing"), pair("/srv/r", "firing")]);
        let first = &p["alerts"][0];
        assert_eq!(first["startsAt"], format_rfc3339(T0));
        assert_eq!(first["endsAt"], NOT_ENDED);
        assert_eq!(first["generatorURL"], "http://steward:8080/incidents/1");
        assert_eq!(first["fingerprint"], a.fingerprint());
        assert_eq!(first["annotations"]["summary"], "SystemCritical on /srv/q");

        // Unchanged: nothing more, cycle after cycle, until repeat_interval.
        let mut repeats = Vec::new();
        for t in (40..=4 * 3600 + 300).step_by(10) {
            if !sync(&mut n, &[a.clone(), b.clone()], T0 + t * S, true).is_empty() {
                repeats.push(t);
            }
        }
        // Flushes fall every group_interval after the first (30 s + k·300 s);
        // the first one at least 4 h after the last notification repeats it.
        assert_eq!(repeats, [30 + 48 * 300]);
    }

    #[test]
    fn webhook_sends_changes_after_group_interval_and_resolution_once() {
        let mut n = notifier(&[], vec![webhook(&["alertname"])]);
        let a = alert("SystemCritical", "/srv/q", T0);
        let b = alert("SystemCritical", "/srv/r", T0 + 60 * S);
        assert_eq!(sync(&mut n, std::slice::from_ref(&a), T0 + 30 * S, true).len(), 1);
        // A new alert in the group waits for the group interval.
        for t in (60..330).step_by(10) {
            assert!(sync(&mut n, &[a.clone(), b.clone()], T0 + t * S, true).is_empty(), "at {t}s");
        }
        let sent = sync(&mut n, &[a.clone(), b.clone()], T0 + 330 * S, true);
        assert_eq!(names(&sent[0].1), [pair("/srv/q", "firing"), pair("/srv/r", "firing")]);

        // One resolves: told at the next flush, with the other still firing.
        let ra = resolved(a.clone(), T0 + 400 * S);
        assert!(sync(&mut n, &[ra.clone(), b.clone()], T0 + 400 * S, true).is_empty());
        let sent = sync(&mut n, &[ra.clone(), b.clone()], T0 + 630 * S, true);
        assert_eq!(sent[0].1["status"], "firing");
        assert_eq!(names(&sent[0].1), [pair("/srv/q", "resolved"), pair("/srv/r", "firing")]);
        assert_eq!(sent[0].1["alerts"][0]["endsAt"], format_rfc3339(T0 + 400 * S));
        // The resolved one is gone from the group, though still given.
        assert!(sync(&mut n, &[ra.clone(), b.clone()], T0 + 930 * S, true).is_empty());

        // The last one resolves (no longer given): one resolved notification.
        assert!(sync(&mut n, std::slice::from_ref(&ra), T0 + 1000 * S, true).is_empty());
        let sent = sync(&mut n, std::slice::from_ref(&ra), T0 + 1230 * S, true);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1["status"], "resolved");
        assert_eq!(names(&sent[0].1), [pair("/srv/r", "resolved")]);
        assert_eq!(sent[0].1["alerts"][0]["endsAt"], format_rfc3339(T0 + 1000 * S));
        // Then the group is forgotten, and nothing more is sent.
        assert_eq!(n.pending().1, 0);
        for t in (1240..3000).step_by(10) {
            assert!(sync(&mut n, std::slice::from_ref(&ra), T0 + t * S, true).is_empty(), "at {t}s");
        }
        // Firing again is a new group, with a new group_wait.
        let again = alert("SystemCritical", "/srv/q", T0 + 3000 * S);
        assert!(sync(&mut n, std::slice::from_ref(&again), T0 + 3000 * S, true).is_empty());
        assert_eq!(sync(&mut n, std::slice::from_ref(&again), T0 + 3030 * S, true).len(), 1);
    }

    #[test]
    fn webhook_says_nothing_of_what_fired_and_resolved_unseen() {
        let mut n = notifier(&[], vec![webhook(&["alertname"])]);
        let a = alert("Flap", "/srv/q", T0);
        assert!(sync(&mut n, std::slice::from_ref(&a), T0, true).is_empty());
        assert!(sync(&mut n, &[resolved(a, T0 + 10 * S)], T0 + 10 * S, true).is_empty());
        assert!(sync(&mut n, &[], T0 + 30 * S, true).is_empty());
        assert_eq!(n.pending().1, 0);
    }

    #[test]
    fn webhook_keeps_groups_apart_by_group_by() {
        let mut n = notifier(&[], vec![webhook(&["alertname"]), webhook(&["..."])]);
        let a = alert("SystemCritical", "/srv/q", T0);
        let b = alert("SystemCritical", "/srv/r", T0);
        let c = alert("MajorDegradation", "/srv/q", T0);
        let sent = sync(&mut n, &[a, b, c], T0 + 30 * S, true);
        let groups: Vec<(String, usize)> =
            sent.iter().map(|(_, p)| (p["groupKey"].as_str().unwrap().to_owned(), p["alerts"].as_array().unwrap().len())).collect();
        assert_eq!(
            groups,
            [
                ("{}:{alertname=\"MajorDegradation\"}".to_owned(), 1),
                ("{}:{alertname=\"SystemCritical\"}".to_owned(), 2),
                ("{}:{alertname=\"MajorDegradation\", severity=\"1\", target=\"/srv/q\"}".to_owned(), 1),
                ("{}:{alertname=\"SystemCritical\", severity=\"1\", target=\"/srv/q\"}".to_owned(), 1),
                ("{}:{alertname=\"SystemCritical\", severity=\"1\", target=\"/srv/r\"}".to_owned(), 1),
            ]
        );
        assert_eq!(sent[0].1["groupLabels"], serde_json::json!({"alertname": "MajorDegradation"}));
    }

    #[test]
    fn webhook_retries_a_failed_notification_at_the_next_sync() {
        let mut n = notifier(&[], vec![webhook(&["alertname"])]);
        let a = alert("SystemCritical", "/srv/q", T0);
        assert_eq!(sync(&mut n, std::slice::from_ref(&a), T0 + 30 * S, false).len(), 1);
        assert_eq!(sync(&mut n, std::slice::from_ref(&a), T0 + 40 * S, true).len(), 1);
        assert!(sync(&mut n, std::slice::from_ref(&a), T0 + 50 * S, true).is_empty());
        // A failed resolved notification too: the group stays until told.
        assert!(sync(&mut n, &[], T0 + 60 * S, true).is_empty());
        assert_eq!(sync(&mut n, &[], T0 + 340 * S, false).len(), 1);
        let sent = sync(&mut n, &[], T0 + 350 * S, true);
        assert_eq!(sent[0].1["status"], "resolved");
        assert_eq!(n.pending(), (1, 0), "still sent to Alertmanagers, if any, until 15 min");
    }

    #[test]
    fn an_old_alert_is_not_held_back_by_group_wait() {
        let mut n = notifier(&[], vec![webhook(&["alertname"])]);
        let old = alert("SystemCritical", "/srv/q", T0 - 3600 * S);
        assert_eq!(sync(&mut n, &[old], T0, true).len(), 1);
    }
}
