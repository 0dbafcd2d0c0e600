//! Recovery on a real queue (Redis stream, PostgreSQL job table): stale
//! claims are requeued the queue's own way (`XCLAIM`/`XAUTOCLAIM` then one
//! `MULTI`/`EXEC`; one `UPDATE` of the claim columns), through
//! [`steward_queue::WorkQueue`], so the worker and the loop share one protocol.

use std::time::Duration;

use steward_core::decision::Action;
use steward_core::time::UnixMs;
use steward_queue::{QueueUrl, WorkQueue};

use crate::actuator::{action_kind, Actuator, ActuatorError};

/// Applies claim repairs to a queue on a server.
pub struct QueueActuator {
    queue: Box<dyn WorkQueue>,
    max_attempts: u32,
    min_idle: Duration,
}

impl QueueActuator {
    /// An actuator on the queue a URL names. A claim is requeued only if it
    /// is still idle for at least `min_idle` when the action runs (the
    /// shorter of the agent and claim TTLs): a worker that came back since
    /// the snapshot keeps its item.
    pub fn new(url: &QueueUrl, timeout: Duration, max_attempts: u32, min_idle: Duration) -> Self {
        Self::from_queue(steward_queue::open(url, timeout), max_attempts, min_idle)
    }

    /// The same on any [`WorkQueue`].
    pub fn from_queue(queue: Box<dyn WorkQueue>, max_attempts: u32, min_idle: Duration) -> Self {
        Self { queue, max_attempts: max_attempts.max(1), min_idle }
    }
}

impl Actuator for QueueActuator {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::RequeueClaims { .. } | Action::RemoveLeftoverClaims { .. } | Action::ClearOldWork { .. })
    }

    fn apply(&mut self, action: &Action, _now: UnixMs) -> Result<String, ActuatorError> {
        let queue_err = |e: steward_queue::QueueError| ActuatorError::Refused(crate::actuator::error_chain(&e));
        let rec = match action {
            Action::RequeueClaims { items } => self.queue.requeue(items, self.min_idle, self.max_attempts).map_err(queue_err)?,
            // A queue records completions itself: recovery removes such claims
            // (see `requeue`), and the source never reports one apart.
            Action::RemoveLeftoverClaims { items } => {
                return Ok(format!("{} leftover claim(s): the queue removes them as it requeues", items.len()))
            }
            Action::ClearOldWork { max_age_hours } => {
                let age = Duration::from_secs_f64((max_age_hours.max(0.0) * 3600.0).min(1e12));
                self.queue.requeue_idle(age, self.max_attempts).map_err(queue_err)?
            }
            other => return Err(ActuatorError::Unsupported { actuator: "queue", action: action_kind(other) }),
        };
        Ok(format!("{rec} on {}", self.queue.target()))
    }
}
