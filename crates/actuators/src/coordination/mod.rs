//! The coordination actuator: repairs the claim protocol's leftovers
//! (spec/coordination.md) through the transitions of `steward_protocol`.
//!
//! - a stale claim goes back to the queue as `work_<id>.json` with
//!   `attempts + 1`, or to the dead letters as `failed_<id>.json` once its
//!   attempts reach `max_attempts` ([`CoordinationDir::requeue`]);
//! - a claim whose `completed_<id>.json` exists is removed: the completion
//!   is authoritative ([`CoordinationDir::adopt`]).
//!
//! It never deletes a work item: that is the protocol's invariant, kept in
//! one place.

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use steward_core::decision::Action;
use steward_core::time::UnixMs;
use steward_protocol::{CoordinationDir, ItemOutcome, ProtocolError};

use crate::actuator::{action_kind, error_chain, Actuator, ActuatorError};

/// Applies coordination actions to a directory.
#[derive(Debug, Clone)]
pub struct CoordinationActuator {
    dir: CoordinationDir,
}

#[derive(Default)]
struct Tally {
    requeued: usize,
    dead: usize,
    removed: usize,
    gone: usize,
    kept: usize,
    errors: Vec<String>,
    total: usize,
    first_kept: Option<String>,
}

impl Tally {
    fn add(&mut self, id: &str, r: Result<ItemOutcome, ProtocolError>) {
        self.total += 1;
        match r {
            Ok(ItemOutcome::Requeued(_)) => self.requeued += 1,
            Ok(ItemOutcome::DeadLettered(_)) => self.dead += 1,
            Ok(ItemOutcome::LeftoverRemoved) => self.removed += 1,
            Ok(ItemOutcome::Gone) => self.gone += 1,
            Ok(ItemOutcome::Kept(why)) => {
                self.kept += 1;
                if self.first_kept.is_none() {
                    self.first_kept = Some(format!("{id}: {why}"));
                }
            }
            Err(e) => self.errors.push(format!("{id}: {}", error_chain(&e))),
        }
    }

    fn finish(self) -> Result<String, ActuatorError> {
        if let Some(first) = self.errors.first() {
            return Err(ActuatorError::Partial { failed: self.errors.len(), total: self.total, first: first.clone() });
        }
        let kept = match &self.first_kept {
            Some(first) if self.kept > 1 => format!(" (first: {first})"),
            Some(first) => format!(" ({first})"),
            None => String::new(),
        };
        Ok(format!(
            "requeued {}, dead-lettered {}, leftover claims removed {}, already gone {}, kept {}{kept}",
            self.requeued, self.dead, self.removed, self.gone, self.kept
        ))
    }
}

impl CoordinationActuator {
    /// An actuator over `dir`; items without their own `max_attempts` use this one.
    pub fn new(dir: impl Into<PathBuf>, max_attempts: u32) -> Self {
        Self { dir: CoordinationDir::new(dir, max_attempts) }
    }
}

impl Actuator for CoordinationActuator {
    fn name(&self) -> &'static str {
        "coordination"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::RequeueClaims { .. } | Action::RemoveLeftoverClaims { .. } | Action::ClearOldWork { .. })
    }

    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError> {
        let mut tally = Tally::default();
        match action {
            Action::RequeueClaims { items } => {
                for id in items {
                    tally.add(id, self.dir.requeue(id, "claim went stale", now));
                }
            }
            Action::RemoveLeftoverClaims { items } => {
                for id in items {
                    tally.add(id, self.dir.adopt(id));
                }
            }
            Action::ClearOldWork { max_age_hours } => {
                let max_age_ms = (max_age_hours.max(0.0) * 3_600_000.0).min(i64::MAX as f64) as i64;
                for id in self.dir.claims_older_than(max_age_ms, now)? {
                    let r = self.dir.requeue(&id, &format!("claim older than {max_age_hours} h"), now);
                    tally.add(&id, r);
                }
            }
            other => return Err(ActuatorError::Unsupported { actuator: "coordination", action: action_kind(other) }),
        }
        self.dir.sync();
        tally.finish()
    }
}
