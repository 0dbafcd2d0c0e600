//! What the loop watches, chosen by URL: the `source:` section of the
//! config and the `--source URL` flag.
//!
//! | URL | source |
//! | --- | --- |
//! | a path, or `file:///path` | the coordination directory (as `--coordination`) |
//! | `redis://HOST:PORT/DB?stream=S&group=G` | a Redis stream and its consumer group |
//! | `redis://HOST:PORT/DB?list=L` | a Redis list (depth only) |
//! | `postgres://USER@HOST:PORT/DB?table=T` | a PostgreSQL job table |
//! | `prometheus://HOST:PORT?queue_depth=PROMQL…`, `http://…` | PromQL instant queries |

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::InvalidValue;
use steward_queue::QueueUrl;
use steward_sources::PrometheusConfig;

/// The `source:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// What to watch, by URL (see the module doc). Unset: the coordination directory.
    #[serde(default)]
    pub url: Option<String>,
    /// Time allowed per call to the server (connect, each read and write). Default 5s.
    #[serde(default = "default_timeout", with = "steward_core::config::duration")]
    pub timeout: Duration,
    /// Claims examined per cycle on a real queue, oldest first. Default 10000.
    #[serde(default = "default_max_claims")]
    pub max_claims: usize,
    /// Queries replacing the defaults: SQL for a PostgreSQL table (`counts`,
    /// `claims`, `consumers`, `requeue`), PromQL for Prometheus
    /// (`queue_depth`, `in_flight`, `consumers`, `completed`, `failed`,
    /// `error_rate`, `response_time_ms`).
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
    /// HTTP headers sent to Prometheus (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_claims() -> usize {
    10_000
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self { url: None, timeout: default_timeout(), max_claims: default_max_claims(), queries: BTreeMap::new(), headers: BTreeMap::new() }
    }
}

/// A source, resolved from its config.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// The coordination directory (given here, or the config's).
    Coordination(Option<PathBuf>),
    /// A Redis stream or list, or a PostgreSQL job table.
    Queue {
        /// Where.
        url: QueueUrl,
        /// The SQL to run instead of the defaults (PostgreSQL).
        queries: steward_queue::postgres::Queries,
    },
    /// PromQL instant queries.
    Prometheus(PrometheusConfig),
}

impl SourceKind {
    /// The target as the journal's owner and the state directory's name
    /// give it: a queue's URL without its password, the Prometheus server
    /// without its queries; `None` for the coordination directory.
    pub fn public_target(&self) -> Option<String> {
        match self {
            Self::Coordination(_) => None,
            Self::Queue { url, .. } => Some(url.without_password().0),
            Self::Prometheus(p) => Some(p.url.split('?').next().unwrap_or_default().to_owned()),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> InvalidValue {
    InvalidValue { key: key.to_owned(), message: message.into() }
}

impl SourceConfig {
    /// Resolves and checks the source.
    ///
    /// # Errors
    /// A URL of no known kind, a bad URL, or queries that do not fit the kind.
    pub fn kind(&self) -> Result<SourceKind, InvalidValue> {
        if self.timeout < Duration::from_millis(100) {
            return Err(invalid("source.timeout", "must be at least 100ms"));
        }
        if self.max_claims == 0 {
            return Err(invalid("source.max_claims", "must be at least 1"));
        }
        let Some(url) = self.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return self.no_extras("the coordination directory").map(|()| SourceKind::Coordination(None));
        };
        if QueueUrl::is_queue_url(url) {
            let parsed = QueueUrl::parse(url).map_err(|e| invalid("source.url", e.to_string()))?;
            let mut queries = steward_queue::postgres::Queries::default();
            match &parsed {
                QueueUrl::Postgres(_) => {
                    if !self.headers.is_empty() {
                        return Err(invalid("source.headers", "are for Prometheus; a PostgreSQL source has none"));
                    }
                    let given = serde_json::to_value(&self.queries).unwrap_or_default();
                    let mut defaults = serde_json::to_value(&queries).unwrap_or_default();
                    if let (Some(d), Some(g)) = (defaults.as_object_mut(), given.as_object()) {
                        for (k, v) in g {
                            if !d.contains_key(k) {
                                return Err(invalid(
                                    &format!("source.queries.{k}"),
                                    "is not a PostgreSQL query steward runs (counts, claims, consumers, requeue)",
                                ));
                            }
                            d.insert(k.clone(), v.clone());
                        }
                    }
                    queries = serde_json::from_value(defaults).map_err(|e| invalid("source.queries", e.to_string()))?;
                }
                QueueUrl::Redis(_) => self.no_extras("a Redis queue")?,
            }
            return Ok(SourceKind::Queue { url: parsed, queries });
        }
        if url.starts_with("prometheus://")
            || url.starts_with("prometheus+http://")
            || url.starts_with("http://")
            || url.starts_with("https://")
        {
            let mut cfg = PrometheusConfig::from_url(url);
            cfg.timeout = self.timeout;
            cfg.headers = self.headers.clone();
            const MEASURES: [&str; 7] = ["queue_depth", "in_flight", "consumers", "completed", "failed", "error_rate", "response_time_ms"];
            if let Some(k) = self.queries.keys().find(|k| !MEASURES.contains(&k.as_str())) {
                return Err(invalid(&format!("source.queries.{k}"), format!("is not a Prometheus measure ({})", MEASURES.join(", "))));
            }
            let q = serde_json::to_value(&self.queries).unwrap_or_default();
            cfg.queries = serde_json::from_value(q).map_err(|e| invalid("source.queries", e.to_string()))?;
            cfg.validate().map_err(|e| InvalidValue { key: e.key.replacen("prometheus.", "source.", 1), message: e.message })?;
            return Ok(SourceKind::Prometheus(cfg));
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(SourceKind::Coordination(Some(PathBuf::from(path))));
        }
        if !url.contains("://") {
            return Ok(SourceKind::Coordination(Some(PathBuf::from(url))));
        }
        Err(invalid(
            "source.url",
            format!(
                "{} is no source steward knows: a directory, redis://HOST:PORT/DB?stream=S&group=G, redis://HOST/DB?list=L, \
                 postgres://USER@HOST/DB?table=T or prometheus://HOST:PORT?queue_depth=PROMQL",
                steward_queue::url::redact(url)
            ),
        ))
    }

    fn no_extras(&self, what: &str) -> Result<(), InvalidValue> {
        if !self.queries.is_empty() {
            return Err(invalid("source.queries", format!("are for PostgreSQL or Prometheus sources, not {what}")));
        }
        if !self.headers.is_empty() {
            return Err(invalid("source.headers", format!("are for Prometheus sources, not {what}")));
        }
        Ok(())
    }
}
