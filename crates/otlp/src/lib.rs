//! The OTLP/HTTP messages steward sends and receives, as protobuf.
//!
//! Only the fields steward uses are declared (field numbers from
//! opentelemetry-proto's `trace.proto`, `common.proto`, `resource.proto`
//! and `metrics.proto`); protobuf decoding skips the rest, so any valid
//! OTLP payload decodes. Keeping this to a few prost structs spares every
//! build the OpenTelemetry SDK.

#![warn(missing_docs)]

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// Spans grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// Who produced them.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Spans grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name` and the rest.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// 8 bytes, empty for a root span.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// The span's name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// 1 internal.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, ns since the epoch.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// End, ns since the epoch.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// Attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// 1 ok, 2 error.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A message for errors.
    #[prost(string, tag = "2")]
    pub message: String,
    /// 0 unset, 1 ok, 2 error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// One of the value kinds.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<Value>,
}

/// The kinds of `AnyValue` steward writes.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A string.
    #[prost(string, tag = "1")]
    String(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    Bool(bool),
    /// An integer.
    #[prost(int64, tag = "3")]
    Int(i64),
    /// A double.
    #[prost(double, tag = "4")]
    Double(f64),
    /// An array.
    #[prost(message, tag = "5")]
    Array(ArrayValue),
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

impl KeyValue {
    /// A key with a value.
    pub fn new(key: &str, value: Value) -> Self {
        Self { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
    }
}

/// `ExportMetricsServiceRequest`, decoded only to count metrics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// Metrics grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// Metrics grouped by scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

/// `Metric` (its data is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// The metric's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Counts the spans (or metrics) of an OTLP/HTTP body, protobuf or JSON.
///
/// # Errors
/// A body that is neither valid protobuf nor OTLP JSON of that signal.
pub fn count(body: &[u8], json: bool, traces: bool) -> Result<u64, String> {
    use prost::Message as _;
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("malformed OTLP JSON: {e}"))?;
        let (outer, inner, leaf) =
            if traces { ("resourceSpans", "scopeSpans", "spans") } else { ("resourceMetrics", "scopeMetrics", "metrics") };
        let groups = v.get(outer).and_then(serde_json::Value::as_array).ok_or_else(|| format!("OTLP JSON without {outer}"))?;
        let mut n = 0u64;
        for g in groups {
            for s in g.get(inner).and_then(serde_json::Value::as_array).into_iter().flatten() {
                n += s.get(leaf).and_then(serde_json::Value::as_array).map_or(0, |a| a.len() as u64);
            }
        }
        return Ok(n);
    }
    if traces {
        let req = ExportTraceServiceRequest::decode(body).map_err(|e| format!("malformed OTLP protobuf: {e}"))?;
        Ok(req.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum())
    } else {
        let req = ExportMetricsServiceRequest::decode(body).map_err(|e| format!("malformed OTLP protobuf: {e}"))?;
        Ok(req.resource_metrics.iter().flat_map(|r| &r.scope_metrics).map(|s| s.metrics.len() as u64).sum())
    }
}
