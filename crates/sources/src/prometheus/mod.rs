//! The Prometheus source: a snapshot from PromQL instant queries, as
//! KEDA's Prometheus scaler reads a queue's depth.
//!
//! Each configured query (`queue_depth`, `in_flight`, `consumers`,
//! `completed`, `failed`, `error_rate`, `response_time_ms`) goes to the
//! server's `/api/v1/query` at the snapshot's `now`, all in parallel, and
//! must return one sample. A server that cannot be reached, answers
//! other than 200, or answers `status: error` fails the snapshot: every
//! query runs against the same server, so a half-read world is not one
//! the loop should act on. A query that returns no usable sample (none,
//! several, NaN, infinite, negative) is a warning and its field stays
//! unknown, except `queue_depth`, without which there is no snapshot.
//!
//! Prometheus knows numbers, not names: `consumers` becomes as many
//! synthesized agents, alive now, and `in_flight` as many synthesized
//! claims, claimed now. Those claims are never stale, since steward cannot
//! requeue a job it cannot name; the loop scales on these numbers but does
//! not repair the queue behind them.

mod answer;
mod config;

#[cfg(test)]
mod tests;

use steward_core::snapshot::{AgentRecord, ClaimRecord, LivenessSource, Snapshot, SourceWarning};
use steward_core::time::UnixMs;

pub use config::{PrometheusConfig, PrometheusQueries};

use crate::source::{Source, SourceError};
use answer::{Reading, Refusal};
use config::{Measure, Resolved};

/// The most agents or claims one snapshot synthesizes from a count: a
/// larger count is capped, with a warning (it is more likely a wrong
/// query than a fleet of that size).
pub const MAX_SYNTHESIZED: u64 = 100_000;

/// Reads a Prometheus server's query API into snapshots.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    cfg: PrometheusConfig,
    resolved: Result<Resolved, steward_core::config::InvalidValue>,
}

/// Why a Prometheus snapshot failed, in a sentence naming the server
/// (never with credentials or header values).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusError {
    /// The config is wrong.
    #[error("the Prometheus source's config: {0}")]
    Config(#[from] steward_core::config::InvalidValue),
    /// The server could not be reached, or the exchange failed.
    #[error("cannot query the Prometheus server at {server} for {query}: {source}")]
    Unreachable {
        /// The server, `http://host:port[/prefix]`.
        server: String,
        /// The query's name (`queue_depth`, ...).
        query: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server refused the query: an HTTP status other than 200, or
    /// `status: error`.
    #[error("the Prometheus server at {server} answered {query} (`{promql}`) with {status}: {detail}")]
    Refused {
        /// The server.
        server: String,
        /// The query's name.
        query: &'static str,
        /// The PromQL sent.
        promql: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus's error type and message, or the start of the body.
        detail: String,
    },
    /// The answer is not the query API's JSON: the URL is not a
    /// Prometheus server (or its path prefix is wrong).
    #[error(
        "the Prometheus server at {server} answered {query} with something that is not the query API's JSON ({reason}): is the URL right?"
    )]
    NotTheApi {
        /// The server.
        server: String,
        /// The query's name.
        query: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// `queue_depth` gave no usable sample.
    #[error(
        "the queue_depth query `{promql}` gave {reason} from the Prometheus server at {server}, \
         so the work queue's size is unknown (append `or vector(0)` to read no series as an empty queue)"
    )]
    NoQueueDepth {
        /// The server.
        server: String,
        /// The PromQL sent.
        promql: String,
        /// Why the sample cannot be used.
        reason: String,
    },
}

impl PrometheusSource {
    /// A source for `cfg`. A wrong config is reported by
    /// [`Source::check`] (and by every snapshot), not here.
    pub fn new(cfg: PrometheusConfig) -> Self {
        let resolved = cfg.resolve();
        Self { cfg, resolved }
    }

    /// A source from a URL alone, e.g.
    /// `prometheus://prom:9090?queue_depth=sum(jobs_queue_depth)`
    /// (percent-encoded), with the config's defaults for the rest.
    pub fn from_url(url: &str) -> Self {
        Self::new(PrometheusConfig::from_url(url))
    }

    /// The config this source was built from.
    pub fn config(&self) -> &PrometheusConfig {
        &self.cfg
    }

    fn resolved(&self) -> Result<&Resolved, SourceError> {
        self.resolved.as_ref().map_err(|e| SourceError::Other(Box::new(PrometheusError::Config(e.clone()))))
    }
}

impl Source for PrometheusSource {
    fn target(&self) -> String {
        match &self.resolved {
            Ok(resolved) => format!("prometheus {}", resolved.server),
            Err(_) => format!("prometheus {}", config::shown(&self.cfg.url)),
        }
    }

    fn check(&self) -> Result<(), SourceError> {
        self.resolved().map(drop)
    }

    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError> {
        let resolved = self.resolved()?;
        let time = format!("{:.3}", now as f64 / 1000.0);
        let readings: Vec<Result<Reading, PrometheusError>> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                resolved.queries.iter().map(|(measure, promql)| scope.spawn(|| ask(resolved, *measure, promql, &time))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        });
        let mut snapshot = Snapshot { taken_at: now, target_exists: true, ..Snapshot::default() };
        // The first failure in the queries' order (queue_depth first) fails the snapshot.
        let readings: Vec<Reading> = readings.into_iter().collect::<Result<_, _>>().map_err(|e| SourceError::Other(Box::new(e)))?;
        for (reading, (measure, promql)) in readings.into_iter().zip(&resolved.queries) {
            let measure = *measure;
            let input = format!("prometheus query {}", measure.name());
            for warning in reading.warnings {
                snapshot.warnings.push(SourceWarning { file: input.clone(), reason: format!("Prometheus warns: {warning}") });
            }
            let value = match reading.value {
                Ok(value) => value,
                Err(reason) if measure == Measure::QueueDepth => {
                    return Err(SourceError::Other(Box::new(PrometheusError::NoQueueDepth {
                        server: resolved.server.clone(),
                        promql: promql.clone(),
                        reason,
                    })));
                }
                Err(reason) => {
                    snapshot
                        .warnings
                        .push(SourceWarning { file: input, reason: format!("`{promql}` gave {reason}; {} is unknown", measure.name()) });
                    continue;
                }
            };
            fill(&mut snapshot, measure, value, now, &input);
        }
        Ok(snapshot)
    }
}

/// One query, to a reading or the error that fails the snapshot.
fn ask(resolved: &Resolved, measure: Measure, promql: &str, time: &str) -> Result<Reading, PrometheusError> {
    let server = || resolved.server.clone();
    let query = measure.name();
    let answer = steward_http::get(&resolved.endpoint, &[("query", promql), ("time", time)], &resolved.headers, resolved.timeout)
        .map_err(|source| PrometheusError::Unreachable { server: server(), query, source })?;
    let refused =
        |detail: String| PrometheusError::Refused { server: server(), query, promql: promql.to_owned(), status: answer.status, detail };
    match (answer.status, answer::read(&answer.body)) {
        (200, Ok(reading)) => Ok(reading),
        (_, Err(Refusal::Error { error_type, error })) => Err(refused(format!("{error_type}: {error}"))),
        (200, Err(Refusal::NotTheApi(reason))) => Err(PrometheusError::NotTheApi { server: server(), query, reason }),
        (status, _) => {
            // The start of the body, on one line, as the server's own words.
            let start: String = answer.body.trim().chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect();
            let hint = if status == 404 { " (is the URL's path prefix right?)" } else { "" };
            Err(refused(format!("{}{hint}", if start.is_empty() { "an empty body" } else { &start })))
        }
    }
}

/// Puts one usable value where it belongs.
fn fill(snapshot: &mut Snapshot, measure: Measure, value: f64, now: UnixMs, input: &str) {
    // `as` saturates: a value above u64::MAX reads as u64::MAX.
    let count = value.round() as u64;
    let capped = |what: &str, warnings: &mut Vec<SourceWarning>| {
        if count > MAX_SYNTHESIZED {
            warnings.push(SourceWarning {
                file: input.to_owned(),
                reason: format!("{count} {what} is more than the {MAX_SYNTHESIZED} this source synthesizes; counted as {MAX_SYNTHESIZED}"),
            });
        }
        count.min(MAX_SYNTHESIZED)
    };
    match measure {
        Measure::QueueDepth => snapshot.work_queue_size = count,
        Measure::Completed => snapshot.completed = count,
        Measure::Failed => snapshot.failed = count,
        Measure::Consumers => {
            let n = capped("consumers", &mut snapshot.warnings);
            snapshot.agent_files = n;
            snapshot.agents = (1..=n)
                .map(|i| AgentRecord {
                    id: format!("prometheus-consumer-{i}"),
                    status: "active".into(),
                    last_seen: Some(now),
                    liveness_from: LivenessSource::Heartbeat,
                    capacity: 1,
                    ..AgentRecord::default()
                })
                .collect();
        }
        Measure::InFlight => {
            let n = capped("jobs in flight", &mut snapshot.warnings);
            snapshot.claims = (1..=n)
                .map(|i| ClaimRecord { id: format!("prometheus-in-flight-{i}"), claimed_at: Some(now), ..ClaimRecord::default() })
                .collect();
        }
        Measure::ErrorRate if value > 1.0 => snapshot.warnings.push(SourceWarning {
            file: input.to_owned(),
            reason: format!("error_rate {value} is above 1, and a rate is a fraction (a percentage? divide by 100); it is unknown"),
        }),
        Measure::ErrorRate => snapshot.telemetry.error_rate = Some(value),
        Measure::ResponseTimeMs => snapshot.telemetry.response_time_ms = Some(value),
    }
}
