//! Prometheus's `/api/v1/query` answer, read down to one sample.

use serde::Deserialize;
use serde_json::Value;

/// The answer's envelope, as the HTTP API documents it.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

/// What one query's answer says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    /// The sample, or why the query gave none that can be used.
    pub(crate) value: Result<f64, String>,
    /// The server's own warnings about the query.
    pub(crate) warnings: Vec<String>,
}

/// Why an answer fails the snapshot: the server, not the data, is wrong.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// `status: error`, with Prometheus's error type and message.
    Error { error_type: String, error: String },
    /// Not the query API's JSON.
    NotTheApi(String),
}

/// Reads a body the server sent (with any status): the reading, or the
/// refusal the body carries. `Ok` only for `status: success`.
pub(crate) fn read(body: &str) -> Result<Reading, Refusal> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| Refusal::NotTheApi(e.to_string()))?;
    match envelope.status.as_str() {
        "success" => {}
        "error" => {
            return Err(Refusal::Error {
                error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
                error: envelope.error.unwrap_or_default(),
            })
        }
        other => return Err(Refusal::NotTheApi(format!("status {other:?}"))),
    }
    let data = envelope.data.ok_or_else(|| Refusal::NotTheApi("a success without data".into()))?;
    let value = match data.result_type.as_str() {
        "scalar" => sample_value(&data.result),
        "vector" => match data.result.as_array() {
            None => Err("a vector that is not an array".to_owned()),
            Some(series) if series.is_empty() => Err("no sample (the query matched no series)".to_owned()),
            Some(series) if series.len() > 1 => {
                Err(format!("{} samples where one was expected (aggregate it, e.g. with sum(..))", series.len()))
            }
            Some(series) => series
                .first()
                .and_then(|s| s.get("value"))
                .ok_or_else(|| "a sample without a plain value (a native histogram?)".to_owned())
                .and_then(sample_value),
        },
        other => Err(format!("a {other} where an instant vector or a scalar was expected")),
    };
    Ok(Reading { value: value.and_then(usable), warnings: envelope.warnings })
}

/// `[timestamp, "value"]` to the value.
fn sample_value(sample: &Value) -> Result<f64, String> {
    let text = sample.as_array().and_then(|pair| pair.get(1)).and_then(Value::as_str).ok_or("a sample that is not [time, \"value\"]")?;
    text.parse::<f64>().map_err(|_| format!("a sample value {text:?} that is not a number"))
}

/// Counts, rates and times are finite and never negative.
fn usable(value: f64) -> Result<f64, String> {
    if value.is_nan() {
        Err("NaN (a division by zero?)".into())
    } else if value.is_infinite() {
        Err(format!("{value}, which is no count"))
    } else if value < 0.0 {
        Err(format!("{value}, a negative value"))
    } else {
        Ok(value)
    }
}
