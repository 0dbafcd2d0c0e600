//! OpenTelemetry spans over OTLP/HTTP (protobuf), one trace per cycle, with
//! the four `swarmsh.autonomous.*` spans of spec/observability.md.
//!
//! On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set;
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_PROTOCOL` and
//! `OTEL_SDK_DISABLED` are honoured. Export runs on its own thread so a
//! slow collector never holds a cycle back; `flush` waits for it.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use prost::Message as _;
use steward_actuators::http::{self, Url};
use steward_core::time::UnixMs;
use steward_otlp::{
    AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, Status,
    Value,
};

use crate::report::CycleReport;

/// Where and how to export.
pub struct Exporter {
    tx: Mutex<Option<mpsc::SyncSender<Vec<u8>>>>,
    /// Told when the export thread has sent everything and ended.
    done: Mutex<Option<mpsc::Receiver<()>>>,
    resource: Vec<KeyValue>,
    dropped: std::sync::atomic::AtomicU64,
}

/// Traces waiting for a slow collector; more are dropped, not buffered
/// without bound.
const QUEUE: usize = 64;
/// How long `flush` (at exit) waits for the queue to drain.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

struct Target {
    url: Url,
    headers: Vec<(String, String)>,
}

fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

impl Exporter {
    /// From the standard environment; `None` when export is off or cannot work.
    pub fn from_env() -> Option<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let url = match (env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), env("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(full), _) => full,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return None,
        };
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        if protocol != "http/protobuf" {
            tracing::warn!(%protocol, "Only OTLP http/protobuf is supported; spans are not exported.");
            return None;
        }
        let parsed = match Url::parse(&url) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(%url, error = %e, "Unusable OTLP endpoint (for TLS, use a local collector); spans are not exported.");
                return None;
            }
        };
        let headers = env("OTEL_EXPORTER_OTLP_HEADERS").map(|h| parse_pairs(&h)).unwrap_or_default();
        let mut attrs: BTreeMap<String, String> =
            env("OTEL_RESOURCE_ATTRIBUTES").map(|a| parse_pairs(&a).into_iter().collect()).unwrap_or_default();
        if let Some(name) = env("OTEL_SERVICE_NAME") {
            attrs.insert("service.name".into(), name);
        }
        attrs.entry("service.name".into()).or_insert_with(|| "steward".into());
        attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
        let resource = attrs.into_iter().map(|(k, v)| KeyValue::new(&k, Value::String(v))).collect();
        let target = Target { url: parsed, headers };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let mut failures = 0u64;
                for body in rx {
                    match post(&target, &body) {
                        Ok(()) => {
                            if failures > 0 {
                                tracing::info!(failures, "OTLP export works again.");
                            }
                            failures = 0;
                        }
                        Err(e) => {
                            failures += 1;
                            // The first failure, then every 100th: a dead collector is not worth a line per cycle.
                            if failures == 1 || failures.is_multiple_of(100) {
                                tracing::warn!(error = %e, failures, "OTLP export failed.");
                            }
                        }
                    }
                }
                let _ = done_tx.send(());
            })
            .ok()?;
        Some(Self { tx: Mutex::new(Some(tx)), done: Mutex::new(Some(done_rx)), resource, dropped: std::sync::atomic::AtomicU64::new(0) })
    }

    /// Queues the spans of one cycle: `started` and `ended` in Unix ms;
    /// `previous_score` is the last cycle's health score, if known.
    pub fn export_cycle(&self, report: &CycleReport, started: UnixMs, ended: UnixMs, previous_score: Option<f64>) {
        let body = encode_cycle(&self.resource, report, started, ended, previous_score);
        if let Some(tx) = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            if tx.try_send(body).is_err() {
                let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(dropped = n, "OTLP export queue full (collector slow or down); dropping traces.");
                }
            }
        }
    }

    /// Sends what is queued, for at most a few seconds, and stops the
    /// export thread (at exit): a dead collector never holds a stop.
    pub fn flush(&self) {
        self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(done) = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            if done.recv_timeout(FLUSH_DEADLINE).is_err() {
                tracing::warn!("OTLP export did not finish within the flush deadline; remaining traces dropped.");
            }
        }
    }
}

fn post(t: &Target, body: &[u8]) -> std::io::Result<()> {
    let answer = http::request("POST", &t.url, &t.headers, Some(("application/x-protobuf", body)), Duration::from_secs(5))?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("collector answered {}", answer.status)))
    }
}

/// Random ids without a dependency: the process's randomly seeded hasher.
fn random_bytes(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.write_usize(out.len());
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn nanos(ms: UnixMs) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// The protobuf body for one cycle's trace.
pub fn encode_cycle(resource: &[KeyValue], r: &CycleReport, started: UnixMs, ended: UnixMs, previous_score: Option<f64>) -> Vec<u8> {
    let trace_id = random_bytes(16);
    let root_id = random_bytes(8);
    let int = |k: &str, v: u64| KeyValue::new(k, Value::Int(i64::try_from(v).unwrap_or(i64::MAX)));
    let span = |name: &str, parent: &[u8], start: UnixMs, end: UnixMs, attributes: Vec<KeyValue>, ok: bool| Span {
        trace_id: trace_id.clone(),
        span_id: random_bytes(8),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind: 1,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(end.max(start)),
        attributes,
        status: Some(Status { message: String::new(), code: if ok { 1 } else { 2 } }),
    };
    let m = &r.metrics;
    let decisions = r.decisions.clone().unwrap_or_default();
    let mut root = span(
        "swarmsh.autonomous.cycle_complete",
        &[],
        started,
        ended,
        vec![
            int("cycle_duration_ms", u64::try_from(ended - started).unwrap_or(0)),
            int("decisions_executed", r.executed.len() as u64),
            int("decisions_failed", r.failed.len() as u64),
            KeyValue::new("system_improvement", Value::Bool(previous_score.is_some_and(|p| m.health_score > p))),
        ],
        r.failed.is_empty(),
    );
    root.span_id = root_id.clone();
    let mut spans = vec![root];
    spans.push(span(
        "swarmsh.autonomous.system_analysis",
        &root_id,
        started,
        started,
        vec![
            KeyValue::new("completion_rate", Value::Double(m.completion_rate)),
            int("active_agents", m.active_agents),
            int("work_queue_size", m.work_queue_size),
            KeyValue::new("health_score", Value::Double(m.health_score)),
            KeyValue::new("health_state", Value::String(m.health_state.as_str().into())),
        ],
        true,
    ));
    let types: Vec<AnyValue> = decisions.iter().map(|d| AnyValue { value: Some(Value::String(d.kind.to_string())) }).collect();
    spans.push(span(
        "swarmsh.autonomous.decision_generation",
        &root_id,
        started,
        started,
        vec![
            int("decision_count", decisions.len() as u64),
            KeyValue::new("highest_priority", Value::Int(i64::from(decisions.iter().map(|d| d.priority).max().unwrap_or(0)))),
            KeyValue::new("decision_types", Value::Array(ArrayValue { values: types })),
        ],
        true,
    ));
    for d in &decisions {
        let (result, ms, ok) = if let Some(e) = r.executed.iter().find(|e| e.decision_id == d.id) {
            ("executed", e.duration_ms, true)
        } else if r.failed.iter().any(|e| e.decision_id == d.id) {
            ("failed", 0, false)
        } else {
            ("skipped", 0, true)
        };
        spans.push(span(
            "swarmsh.autonomous.decision_execution",
            &root_id,
            started,
            started + i64::try_from(ms).unwrap_or(0),
            vec![
                KeyValue::new("decision_id", Value::String(d.id.clone())),
                KeyValue::new("decision_type", Value::String(d.kind.to_string())),
                KeyValue::new("execution_result", Value::String(result.into())),
                KeyValue::new("confidence", Value::Double(d.confidence)),
            ],
            ok,
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource.to_vec() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "steward".into(), version: env!("CARGO_PKG_VERSION").into() }),
                spans,
            }],
        }],
    }
    .encode_to_vec()
}
