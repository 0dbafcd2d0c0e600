//! Reading the files whose content a metric needs: agents, claims, and a
//! bounded sample of recent telemetry.

use std::path::Path;
use std::sync::{mpsc, Mutex};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use steward_core::snapshot::{AgentRecord, ClaimRecord, LivenessSource, SourceWarning, TelemetrySummary};
use steward_core::time::{parse_json_timestamp, UnixMs};
use steward_protocol::{classify, completion_recorded, read_record, FileKind, Links, FUTURE_TOLERANCE_MS};

use super::Job;

/// A response time beyond a year is not a measurement.
const MAX_RESPONSE_TIME_MS: f64 = 365.0 * 86_400_000.0;

/// What one reader thread produced.
#[derive(Default)]
pub(super) struct Part {
    pub agents: Vec<AgentRecord>,
    pub claims: Vec<ClaimRecord>,
    pub warnings: Vec<SourceWarning>,
}

/// Reads jobs until the channel closes.
pub(super) fn drain(dir: &Path, rx: &Mutex<mpsc::Receiver<Job>>, now: UnixMs, limit: u64) -> Part {
    let mut part = Part::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Poisoning needs a panic in another reader; take the lock anyway.
        let job = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
        let Ok(job) = job else { break };
        match job {
            Job::Agents(names) => {
                for name in names {
                    read_agent(dir, name, &mut buf, &mut part, now, limit);
                }
            }
            Job::Claims(names) => {
                for name in names {
                    read_claim(dir, name, &mut buf, &mut part, now, limit);
                }
            }
        }
    }
    part
}

fn parse_error(e: &serde_json::Error, bytes: &[u8]) -> String {
    let what = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return "empty file".into(),
        Some(b'[') => "a JSON array",
        Some(b'"') => "a JSON string",
        Some(b'{') => "",
        Some(_) => "a JSON scalar",
    };
    if e.is_data() && !what.is_empty() {
        format!("not a JSON object ({what})")
    } else if e.is_data() {
        format!("a field has the wrong type ({e})")
    } else {
        format!("malformed JSON ({e})")
    }
}

/// The fields of an agent record steward uses; the rest is kept on disk
/// untouched and skipped here. Fields are borrowed raw JSON and decoded
/// only as far as needed: at 10,000 agents the parse is a large part of a
/// cycle's CPU.
#[derive(Deserialize)]
struct AgentFile<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    heartbeat: Option<&'a RawValue>,
    #[serde(borrow)]
    last_heartbeat: Option<&'a RawValue>,
    #[serde(borrow)]
    lifecycle: Option<&'a RawValue>,
    #[serde(borrow)]
    pid: Option<&'a RawValue>,
    #[serde(borrow)]
    capacity: Option<&'a RawValue>,
    #[serde(borrow)]
    started_at: Option<&'a RawValue>,
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    metrics: Option<&'a RawValue>,
    #[serde(borrow)]
    worker: Option<&'a RawValue>,
    #[serde(borrow)]
    managed_by: Option<&'a RawValue>,
}

/// A JSON string or number as text; `None` for null, bool, array, object.
fn text(v: Option<&RawValue>) -> Option<String> {
    let raw = v?.get();
    match raw.as_bytes().first()? {
        b'"' => serde_json::from_str::<&str>(raw).map(str::to_owned).or_else(|_| serde_json::from_str::<String>(raw)).ok(),
        b'-' | b'0'..=b'9' => Some(raw.to_owned()),
        _ => None,
    }
}

/// The finite numbers of a `metrics` object, by name (at most 64: a record
/// is not a time-series database).
fn numeric_metrics(v: Option<&RawValue>) -> std::collections::BTreeMap<String, f64> {
    let Some(raw) = v else { return Default::default() };
    let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, Value>>(raw.get()) else { return Default::default() };
    map.into_iter().filter_map(|(k, v)| v.as_f64().filter(|x| x.is_finite()).map(|x| (k, x))).take(64).collect()
}

fn is_null(v: &RawValue) -> bool {
    v.get() == "null"
}

fn number_u64(v: Option<&RawValue>) -> Option<u64> {
    let raw = v?.get();
    raw.parse::<u64>().ok().or_else(|| raw.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
}

/// A timestamp: RFC 3339 text or Unix seconds (as number or text).
fn timestamp(v: Option<&RawValue>) -> Option<UnixMs> {
    let raw = v?.get();
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => parse_json_timestamp(&Value::String(s.to_owned())),
        Err(_) => parse_json_timestamp(&serde_json::from_str::<Value>(raw).ok()?),
    }
}

fn read_agent(dir: &Path, name: String, buf: &mut Vec<u8>, part: &mut Part, now: UnixMs, limit: u64) {
    // The listing let through regular files and links it checked lead to
    // one inside the directory; the read checks the type again.
    let mtime = match read_record(dir, &name, buf, limit, Links::Follow) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => return part.warnings.push(SourceWarning { file: name, reason: e.to_string() }),
    };
    let rec: AgentFile<'_> = match serde_json::from_slice(buf) {
        Ok(r) => r,
        Err(e) => return part.warnings.push(SourceWarning { file: name, reason: parse_error(&e, buf) }),
    };
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    let id = text(rec.id).unwrap_or_else(|| stem.to_owned());
    let beat = rec.heartbeat.or(rec.last_heartbeat).filter(|v| !is_null(v));
    let (last_seen, liveness_from) = match beat {
        None => (Some(mtime), LivenessSource::Mtime),
        Some(v) => match timestamp(Some(v)) {
            // A heartbeat from the future (clock skew, or milliseconds
            // written where seconds belong) would keep a dead agent alive
            // forever: trust the mtime instead, and say so.
            Some(t) if t > now.saturating_add(FUTURE_TOLERANCE_MS) => {
                part.warnings.push(SourceWarning {
                    file: name.clone(),
                    reason: format!("heartbeat {} is {} s in the future; using the file's modification time", v.get(), (t - now) / 1000),
                });
                (Some(mtime), LivenessSource::Mtime)
            }
            Some(t) => (Some(t), LivenessSource::Heartbeat),
            None => {
                part.warnings.push(SourceWarning {
                    file: name.clone(),
                    reason: format!("heartbeat {} is not a timestamp; using the file's modification time", v.get()),
                });
                (Some(mtime), LivenessSource::Mtime)
            }
        },
    };
    let lifecycle = rec.lifecycle.and_then(|v| match serde_json::from_str::<Value>(v.get()).ok()? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("phase").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    });
    part.agents.push(AgentRecord {
        id,
        file: name,
        status: text(rec.status).unwrap_or_else(|| "unknown".into()),
        last_seen,
        liveness_from,
        lifecycle,
        pid: number_u64(rec.pid).and_then(|p| u32::try_from(p).ok()),
        capacity: number_u64(rec.capacity).map_or(1, |c| u32::try_from(c).unwrap_or(u32::MAX).max(1)),
        started_at: timestamp(rec.started_at).or_else(|| timestamp(rec.created)),
        metrics: numeric_metrics(rec.metrics),
        // What steward's own worker and supervisor write into their records.
        managed_by_steward: text(rec.worker).as_deref() == Some("steward")
            || text(rec.managed_by).is_some_and(|m| m.starts_with("steward")),
    });
}

#[derive(Deserialize)]
struct ClaimFile<'a> {
    #[serde(borrow)]
    claimed_by: Option<&'a RawValue>,
    #[serde(borrow)]
    claimed_at: Option<&'a RawValue>,
    #[serde(borrow)]
    attempts: Option<&'a RawValue>,
    #[serde(borrow)]
    max_attempts: Option<&'a RawValue>,
}

fn read_claim(dir: &Path, name: String, buf: &mut Vec<u8>, part: &mut Part, now: UnixMs, limit: u64) {
    let id = match classify(name.as_bytes()) {
        Some((FileKind::Claimed, id)) => String::from_utf8_lossy(id).into_owned(),
        _ => name.clone(),
    };
    let completed_exists = completion_recorded(dir, &id);
    let mtime = match read_record(dir, &name, buf, limit, Links::Follow) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            // Unreadable, but still a claim: count it and let its age speak.
            part.warnings.push(SourceWarning { file: name.clone(), reason: e.to_string() });
            return part.claims.push(ClaimRecord { id, completed_exists, ..ClaimRecord::default() });
        }
    };
    let as_u32 = |v: Option<&RawValue>| number_u64(v).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let claim = match serde_json::from_slice::<ClaimFile<'_>>(buf) {
        Ok(r) => ClaimRecord {
            claimed_at: Some(match timestamp(r.claimed_at) {
                // A claim dated in the future would never go stale: trust
                // the mtime instead, and say so (as for heartbeats).
                Some(t) if t > now.saturating_add(FUTURE_TOLERANCE_MS) => {
                    part.warnings.push(SourceWarning {
                        file: name.clone(),
                        reason: format!("claimed_at is {} s in the future; using the file's modification time", (t - now) / 1000),
                    });
                    mtime
                }
                Some(t) => t,
                None => mtime,
            }),
            id,
            claimed_by: text(r.claimed_by),
            attempts: as_u32(r.attempts).unwrap_or(0),
            max_attempts: as_u32(r.max_attempts),
            completed_exists,
        },
        Err(e) => {
            part.warnings.push(SourceWarning { file: name.clone(), reason: parse_error(&e, buf) });
            ClaimRecord { id, claimed_at: Some(mtime), completed_exists, ..ClaimRecord::default() }
        }
    };
    part.claims.push(claim);
}

#[derive(Deserialize)]
struct TelemetryFile<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    metrics: Option<Value>,
}

#[derive(Default)]
struct Means {
    error_sum: f64,
    error_n: u64,
    rt_sum: f64,
    rt_n: u64,
    read: u64,
}

/// Means over the `sample` telemetry files with the greatest names in
/// natural order, counting only those modified since `since`.
pub(super) fn telemetry_summary(
    dir: &Path,
    mut names: Vec<String>,
    since: UnixMs,
    sample: usize,
    threads: usize,
    limit: u64,
    warnings: &mut Vec<SourceWarning>,
) -> TelemetrySummary {
    if sample == 0 || names.is_empty() {
        return TelemetrySummary::default();
    }
    if names.len() > sample {
        names.select_nth_unstable_by(sample - 1, |a, b| super::natural_cmp(b, a));
        names.truncate(sample);
    }
    let chunk = names.len().div_ceil(threads.max(1));
    let results: Vec<(Means, Vec<SourceWarning>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = names.chunks(chunk).map(|names| scope.spawn(move || read_telemetry(dir, names, since, limit))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut total = Means::default();
    for (m, mut w) in results {
        total.error_sum += m.error_sum;
        total.error_n += m.error_n;
        total.rt_sum += m.rt_sum;
        total.rt_n += m.rt_n;
        total.read += m.read;
        warnings.append(&mut w);
    }
    TelemetrySummary {
        sampled: total.read,
        error_rate: (total.error_n > 0).then(|| total.error_sum / total.error_n as f64),
        response_time_ms: (total.rt_n > 0).then(|| total.rt_sum / total.rt_n as f64),
    }
}

fn read_telemetry(dir: &Path, names: &[String], since: UnixMs, limit: u64) -> (Means, Vec<SourceWarning>) {
    let mut m = Means::default();
    let mut warnings = Vec::new();
    let mut buf = Vec::with_capacity(1024);
    for name in names {
        let mtime = match read_record(dir, name, &mut buf, limit, Links::Follow) {
            Ok(Some(mtime)) => mtime,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(SourceWarning { file: name.clone(), reason: e.to_string() });
                continue;
            }
        };
        let rec: TelemetryFile<'_> = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(SourceWarning { file: name.clone(), reason: parse_error(&e, &buf) });
                continue;
            }
        };
        // The record's own timestamp says when it happened; the file's
        // mtime stands in only where it has none (spec/coordination.md).
        if timestamp(rec.timestamp).unwrap_or(mtime) < since {
            continue;
        }
        m.read += 1;
        let Some(Value::Object(metrics)) = rec.metrics else {
            continue;
        };
        let num = |k: &str| metrics.get(k).and_then(Value::as_f64);
        // Only where reported: never derived or invented. A value outside
        // its domain is a warning, not an input to the health score.
        if let Some(e) = num("error_rate") {
            if (0.0..=1.0).contains(&e) {
                m.error_sum += e;
                m.error_n += 1;
            } else {
                warnings.push(SourceWarning { file: name.clone(), reason: format!("error_rate {e} is not between 0 and 1; ignored") });
            }
        }
        if let Some((key, rt)) =
            num("response_time_ms").map(|v| ("response_time_ms", v)).or_else(|| num("response_time").map(|v| ("response_time", v)))
        {
            if rt.is_finite() && (0.0..=MAX_RESPONSE_TIME_MS).contains(&rt) {
                m.rt_sum += rt;
                m.rt_n += 1;
            } else {
                warnings.push(SourceWarning {
                    file: name.clone(),
                    reason: format!("{key} {rt} is not a duration between 0 and {MAX_RESPONSE_TIME_MS} ms; ignored"),
                });
            }
        }
    }
    (m, warnings)
}
