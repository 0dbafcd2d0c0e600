//! The Prometheus source's config, and the `prometheus://` source URL.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::{duration, InvalidValue};
use steward_http::{form_decode, Url};

/// Prometheus's own port, for a `prometheus://` URL that names none.
const DEFAULT_PORT: u16 = 9090;

/// Where the Prometheus server is and what to ask it.
///
/// ```yaml
/// url: http://prometheus.internal:9090
/// timeout: 5s
/// queries:
///   queue_depth: sum(jobs_queue_depth)
///   in_flight: sum(jobs_in_flight)
///   consumers: count(up{job="workers"} == 1)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// The Prometheus server: `http://host:port`, with its path prefix when
    /// it serves under one (`--web.route-prefix`), e.g.
    /// `http://prometheus.internal:9090` or `http://gateway/prometheus`.
    /// The source URL form, `prometheus://HOST[:PORT][/prefix]?queue_depth=...`
    /// (port 9090 when not given; also `prometheus+http://`), is accepted
    /// too: its percent-encoded queries fill those `queries` leaves out.
    /// Plain http only; no credentials in the URL (use `headers`).
    pub url: String,
    /// PromQL instant queries, by what they measure. `queue_depth` is
    /// required (here or in the URL); the others are optional.
    #[serde(default)]
    pub queries: PrometheusQueries,
    /// Longest one query may take, from connecting to the last byte of the
    /// answer. The queries of a snapshot run in parallel. Default 5s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Extra request headers, e.g. `{Authorization: "Bearer ..."}` for a
    /// server behind an authenticating proxy, or `{X-Scope-OrgID: tenant}`
    /// for Mimir or Cortex. Values never appear in messages.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The PromQL instant queries. Each must return one sample: a vector of
/// one element (aggregate with `sum(..)` or `count(..)`) or a scalar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusQueries {
    /// Pending jobs, e.g. `sum(jobs_queue_depth)`: the snapshot's work
    /// queue size. Required; a snapshot fails without it. Append
    /// `or vector(0)` to read no series as an empty queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<String>,
    /// Jobs being processed, e.g. `sum(jobs_in_flight)`: as many claims,
    /// which are never stale (they have no names to requeue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<String>,
    /// Live consumers, e.g. `count(up{job="workers"} == 1)`: as many
    /// active agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<String>,
    /// Jobs completed so far, a counter's total, e.g.
    /// `sum(jobs_completed_total)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// Jobs that failed for good so far, a counter's total, e.g.
    /// `sum(jobs_failed_total)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The fraction of jobs failing, between 0 and 1, e.g.
    /// `sum(rate(jobs_failed_total[5m])) / sum(rate(jobs_done_total[5m]))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<String>,
    /// The mean response (or processing) time in milliseconds, e.g.
    /// `1000 * sum(rate(job_seconds_sum[5m])) / sum(rate(job_seconds_count[5m]))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// What a query measures, in the order the snapshot asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    QueueDepth,
    InFlight,
    Consumers,
    Completed,
    Failed,
    ErrorRate,
    ResponseTimeMs,
}

impl Measure {
    pub(crate) const ALL: [Measure; 7] = [
        Measure::QueueDepth,
        Measure::InFlight,
        Measure::Consumers,
        Measure::Completed,
        Measure::Failed,
        Measure::ErrorRate,
        Measure::ResponseTimeMs,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Measure::QueueDepth => "queue_depth",
            Measure::InFlight => "in_flight",
            Measure::Consumers => "consumers",
            Measure::Completed => "completed",
            Measure::Failed => "failed",
            Measure::ErrorRate => "error_rate",
            Measure::ResponseTimeMs => "response_time_ms",
        }
    }
}

impl PrometheusQueries {
    fn slot(&mut self, measure: Measure) -> &mut Option<String> {
        match measure {
            Measure::QueueDepth => &mut self.queue_depth,
            Measure::InFlight => &mut self.in_flight,
            Measure::Consumers => &mut self.consumers,
            Measure::Completed => &mut self.completed,
            Measure::Failed => &mut self.failed,
            Measure::ErrorRate => &mut self.error_rate,
            Measure::ResponseTimeMs => &mut self.response_time_ms,
        }
    }

    fn get(&self, measure: Measure) -> Option<&String> {
        match measure {
            Measure::QueueDepth => self.queue_depth.as_ref(),
            Measure::InFlight => self.in_flight.as_ref(),
            Measure::Consumers => self.consumers.as_ref(),
            Measure::Completed => self.completed.as_ref(),
            Measure::Failed => self.failed.as_ref(),
            Measure::ErrorRate => self.error_rate.as_ref(),
            Measure::ResponseTimeMs => self.response_time_ms.as_ref(),
        }
    }
}

/// The config, checked: the server and the queries to send.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// `http://host:port[/prefix]`, for messages and the target.
    pub(crate) server: String,
    /// The query endpoint: the prefix and `/api/v1/query`.
    pub(crate) endpoint: Url,
    /// The queries given, in [`Measure::ALL`]'s order.
    pub(crate) queries: Vec<(Measure, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
}

fn invalid(key: &str, message: impl Into<String>) -> InvalidValue {
    InvalidValue { key: key.to_owned(), message: message.into() }
}

impl PrometheusConfig {
    /// A config from a URL alone (`http://` or `prometheus://`), with the
    /// defaults for the rest: what `--source URL` gives.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), queries: PrometheusQueries::default(), timeout: default_timeout(), headers: BTreeMap::new() }
    }

    /// Checks the URL, the queries (with the URL's), the timeout and the
    /// headers.
    ///
    /// # Errors
    /// The first key whose value is wrong, in a sentence that never
    /// repeats credentials or header values.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        self.resolve().map(drop)
    }

    pub(crate) fn resolve(&self) -> Result<Resolved, InvalidValue> {
        let (base, from_url) = parse_url(&self.url).map_err(|m| invalid("prometheus.url", m))?;
        let mut queries = Vec::new();
        for measure in Measure::ALL {
            let key = format!("prometheus.queries.{}", measure.name());
            let Some(query) = self.queries.get(measure).or(from_url.get(measure)) else { continue };
            if query.trim().is_empty() {
                return Err(invalid(&key, "is empty: give a PromQL query, or leave the key out"));
            }
            queries.push((measure, query.clone()));
        }
        if queries.first().is_none_or(|(m, _)| *m != Measure::QueueDepth) {
            return Err(invalid(
                "prometheus.queries.queue_depth",
                "is required: the PromQL query for the number of pending jobs, e.g. sum(jobs_queue_depth) \
                 (in the config, or as ?queue_depth=... in a prometheus:// URL)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("prometheus.timeout", "must be above zero"));
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let key = format!("prometheus.headers.{name}");
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                return Err(invalid(&key, "is not a header name (letters, digits and -_. only)"));
            }
            if ["host", "connection", "content-length", "transfer-encoding"].iter().any(|h| h.eq_ignore_ascii_case(name)) {
                return Err(invalid(&key, "is set by the client itself"));
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(invalid(&key, "has a control character (a line break?) in its value"));
            }
            headers.push((name.clone(), value.clone()));
        }
        let prefix = base.path.trim_end_matches('/');
        let server = format!("http://{}:{}{prefix}", base.host, base.port);
        let endpoint = Url { path: format!("{prefix}/api/v1/query"), ..base };
        Ok(Resolved { server, endpoint, queries, headers, timeout: self.timeout })
    }
}

/// The server's base URL and the queries a source URL carries.
fn parse_url(url: &str) -> Result<(Url, PrometheusQueries), String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{:?} is not a URL (http://HOST:PORT or prometheus://HOST:PORT?queue_depth=...)", shown(url)))?;
    let (default_port, takes_queries) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (80, false),
        "prometheus" | "prometheus+http" => (DEFAULT_PORT, true),
        "https" | "prometheus+https" => return Err("https is not supported (plain http only)".into()),
        other => return Err(format!("the scheme {other:?} is not one of http, prometheus, prometheus+http")),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    if location.split('/').next().unwrap_or_default().contains('@') {
        return Err(format!("{:?} carries credentials, which are not supported in the URL (send them in `headers`)", shown(url)));
    }
    if location.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return Err(format!("{:?} has a fragment ('#'): percent-encode it as %23 in a query", shown(url)));
    }
    let base = Url::parse_with_default_port(&format!("http://{location}"), default_port)?;
    let mut queries = PrometheusQueries::default();
    let Some(query) = query else { return Ok((base, queries)) };
    if !takes_queries {
        return Err(format!(
            "{:?}: an http:// URL takes no query string; put them under `queries`, \
             or use prometheus://HOST:PORT?queue_depth=...",
            shown(url)
        ));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name).map_err(|e| format!("a query name in the URL: {e}"))?;
        let measure = Measure::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Measure::ALL.iter().map(|m| m.name()).collect();
            format!("the URL names an unknown query {name:?} (known: {})", known.join(", "))
        })?;
        let value = form_decode(value).map_err(|e| format!("the URL's {name}: {e}"))?;
        if value.trim().is_empty() {
            return Err(format!("the URL's {name} is empty"));
        }
        let slot = queries.slot(measure);
        if slot.is_some() {
            return Err(format!("the URL names {name} twice"));
        }
        *slot = Some(value);
    }
    Ok((base, queries))
}

/// The URL for a message: no query string, no credentials.
pub(crate) fn shown(url: &str) -> String {
    let url = url.trim();
    let url = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}
