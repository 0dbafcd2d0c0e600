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
//!
//! One item that cannot be repaired (a claim steward may not read, a
//! rename refused) is quarantined with a backoff and a warning in the
//! outcome; the action fails, and counts toward the circuit breaker, only
//! when most of its items fail. So one bad file cannot stop the repair of
//! all the others.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;

use steward_core::decision::Action;
use steward_core::time::UnixMs;
use steward_protocol::{CoordinationDir, ItemOutcome, ProtocolError};

use crate::actuator::{action_kind, error_chain, Actuator, ActuatorError};

/// Applies coordination actions to a directory.
#[derive(Debug, Clone)]
pub struct CoordinationActuator {
    dir: CoordinationDir,
    /// Items whose repair failed, until when they are left alone.
    quarantine: HashMap<String, Quarantined>,
}

/// An item whose repair failed, and when to try it again.
#[derive(Debug, Clone, Copy)]
struct Quarantined {
    until: UnixMs,
    failures: u32,
}

/// The first retry of a quarantined item; each failure doubles it.
const QUARANTINE_MS: i64 = 30_000;
/// The longest an item is left alone.
const QUARANTINE_MAX_MS: i64 = 3_600_000;

#[derive(Default)]
struct Tally {
    requeued: usize,
    dead: usize,
    removed: usize,
    gone: usize,
    kept: usize,
    quarantined: usize,
    errors: Vec<String>,
    total: usize,
    first_kept: Option<String>,
    first_poison: Option<String>,
}

impl Tally {
    fn add(&mut self, id: &str, r: Result<ItemOutcome, ProtocolError>) {
        self.total += 1;
        match r {
            Ok(ItemOutcome::Requeued(_)) => self.requeued += 1,
            Ok(ItemOutcome::DeadLettered(_)) => self.dead += 1,
            Ok(ItemOutcome::Poisoned(why)) => {
                self.dead += 1;
                if self.first_poison.is_none() {
                    self.first_poison = Some(format!("{id}: {why}"));
                }
            }
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

    /// The report; an error only when most of the items attempted failed.
    fn finish(self) -> Result<String, ActuatorError> {
        let attempted = self.total - self.quarantined;
        if let Some(first) = self.errors.first() {
            if self.errors.len() * 2 > attempted {
                return Err(ActuatorError::Partial { failed: self.errors.len(), total: self.total, first: first.clone() });
            }
        }
        let kept = match &self.first_kept {
            Some(first) if self.kept > 1 => format!(" (first: {first})"),
            Some(first) => format!(" ({first})"),
            None => String::new(),
        };
        let mut report = format!(
            "requeued {}, dead-lettered {}, leftover claims removed {}, already gone {}, kept {}{kept}",
            self.requeued, self.dead, self.removed, self.gone, self.kept
        );
        if let Some(first) = &self.first_poison {
            report.push_str(&format!("; dead-lettered as is: {first}"));
        }
        if let Some(first) = self.errors.first() {
            report.push_str(&format!("; failed {} and quarantined (first: {first})", self.errors.len()));
        }
        if self.quarantined > 0 {
            report.push_str(&format!("; {} left alone in quarantine", self.quarantined));
        }
        Ok(report)
    }
}

impl CoordinationActuator {
    /// An actuator over `dir`; items without their own `max_attempts` use this one.
    pub fn new(dir: impl Into<PathBuf>, max_attempts: u32) -> Self {
        Self { dir: CoordinationDir::new(dir, max_attempts), quarantine: HashMap::new() }
    }

    /// Reads items up to `bytes` (`coordination.max_item_bytes`).
    #[must_use]
    pub fn with_max_item_bytes(mut self, bytes: u64) -> Self {
        self.dir = self.dir.with_max_item_bytes(bytes);
        self
    }

    /// Removes stale agent records of steward's own agents and stale temp
    /// files; says which (the outcome is journaled). A file that cannot be
    /// removed is named, never fatal: tidying is best effort.
    fn tidy(&self, agent_files: &[String], temp_files: &[String], unchanged_since: UnixMs) -> String {
        let mut removed_agents = Vec::new();
        let (mut temps, mut kept, mut errors) = (0, 0, Vec::new());
        for (name, is_agent) in agent_files.iter().map(|n| (n, true)).chain(temp_files.iter().map(|n| (n, false))) {
            match self.dir.remove_stale(name, unchanged_since) {
                Ok(true) if is_agent => removed_agents.push(name.as_str()),
                Ok(true) => temps += 1,
                Ok(false) => kept += 1,
                Err(e) => errors.push(format!("{name}: {}", error_chain(&e))),
            }
        }
        let mut report = format!("removed {} stale agent record(s)", removed_agents.len());
        if !removed_agents.is_empty() {
            report.push_str(&format!(" ({})", removed_agents.join(", ")));
        }
        report.push_str(&format!(" and {temps} temp file(s); {kept} changed since or gone"));
        if let Some(first) = errors.first() {
            report.push_str(&format!("; {} could not be removed (first: {first})", errors.len()));
        }
        report
    }

    /// Repairs one item unless it is in quarantine; a failure puts it
    /// there, with a backoff that doubles each time.
    fn repair(
        &mut self,
        tally: &mut Tally,
        id: &str,
        now: UnixMs,
        step: impl FnOnce(&CoordinationDir) -> Result<ItemOutcome, ProtocolError>,
    ) {
        if self.quarantine.get(id).is_some_and(|q| now < q.until) {
            tally.total += 1;
            tally.quarantined += 1;
            return;
        }
        let result = step(&self.dir);
        match &result {
            Ok(_) => {
                self.quarantine.remove(id);
            }
            Err(_) => {
                let failures = self.quarantine.get(id).map_or(0, |q| q.failures).saturating_add(1);
                let backoff = QUARANTINE_MS.saturating_mul(1 << (failures - 1).min(10)).min(QUARANTINE_MAX_MS);
                self.quarantine.insert(id.to_owned(), Quarantined { until: now.saturating_add(backoff), failures });
            }
        }
        tally.add(id, result);
    }
}

impl Actuator for CoordinationActuator {
    fn name(&self) -> &'static str {
        "coordination"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(
            action,
            Action::RequeueClaims { .. } | Action::RemoveLeftoverClaims { .. } | Action::ClearOldWork { .. } | Action::Tidy { .. }
        )
    }

    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError> {
        let mut tally = Tally::default();
        match action {
            Action::RequeueClaims { items } => {
                for id in items {
                    self.repair(&mut tally, id, now, |dir| dir.requeue(id, "claim went stale", now));
                }
            }
            Action::RemoveLeftoverClaims { items } => {
                for id in items {
                    self.repair(&mut tally, id, now, |dir| dir.adopt(id));
                }
            }
            Action::ClearOldWork { max_age_hours } => {
                let max_age_ms = (max_age_hours.max(0.0) * 3_600_000.0).min(i64::MAX as f64) as i64;
                let why = format!("claim older than {max_age_hours} h");
                for id in self.dir.claims_older_than(max_age_ms, now)? {
                    self.repair(&mut tally, &id, now, |dir| dir.requeue(&id, &why, now));
                }
            }
            Action::Tidy { agent_files, temp_files, unchanged_since } => return Ok(self.tidy(agent_files, temp_files, *unchanged_since)),
            other => return Err(ActuatorError::Unsupported { actuator: "coordination", action: action_kind(other) }),
        }
        self.dir.sync();
        tally.finish()
    }
}
