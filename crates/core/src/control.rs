//! The control surface of a running engine: what an HTTP server (or any
//! other front end) may ask of the loop. It lives in the core so that the
//! server depends on nothing but the core, and the runtime implements it.

use serde_json::Value;

/// Why a control call failed, mapped to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such thing (404).
    #[error("{0}")]
    NotFound(String),
    /// Refused now, for a stated reason (409): a rollback that is unsafe, ...
    #[error("{0}")]
    Refused(String),
    /// Something broke (500).
    #[error("{0}")]
    Internal(String),
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Component {
    /// Its name (loop, journal, queue, fleet, ...).
    pub name: String,
    /// `ok`, `idle` or `failing`. Only `failing` makes the daemon unhealthy.
    pub status: String,
    /// What it is doing, in a sentence.
    pub message: String,
}

/// What the server asks of the engine. The runtime implements it with the
/// same executor, guards and journal as the loop; the server knows nothing else.
pub trait Control: Send + Sync + 'static {
    /// One cycle through the guards and the journal, as the loop runs it,
    /// asked for by `caller` (`http:NAME`: recorded in the audit trail).
    ///
    /// # Errors
    /// The cycle could not run.
    fn execute(&self, caller: &str) -> Result<Value, ControlError>;
    /// Applies a decision's inverse (`steward rollback`), asked for by `caller`.
    ///
    /// # Errors
    /// Unknown id, refused, or failed.
    fn rollback(&self, id: &str, caller: &str) -> Result<Value, ControlError>;
    /// Components, assessment and daemon information.
    fn status(&self) -> Value;
    /// Recent decisions with outcomes, newest first.
    ///
    /// # Errors
    /// The journal cannot be read.
    fn decisions(&self, limit: usize) -> Result<Value, ControlError>;
    /// The task queue by priority.
    fn tasks(&self) -> Value;
    /// Each component's health.
    fn health(&self) -> Vec<Component>;

    /// `leader` or `standby` when replicas share the work (HA); `None` alone.
    fn role(&self) -> Option<&'static str> {
        None
    }
    /// Telemetry records received over OTLP (spans or metrics), counted
    /// into the telemetry volume.
    fn ingest(&self, records: u64);
    /// The last `window_ms` of the journal for the dashboard's charts:
    /// `cycles` (health, queue, agents, target, arrival rate), `decisions`
    /// and a `forecast` of the arrival rate ahead.
    ///
    /// # Errors
    /// The journal cannot be read.
    fn history(&self, window_ms: i64) -> Result<Value, ControlError> {
        let _ = window_ms;
        Ok(serde_json::json!({"cycles": [], "decisions": [], "forecast": []}))
    }
    /// Open and recent incidents.
    fn incidents(&self) -> Value {
        serde_json::json!({"incidents": []})
    }
}
