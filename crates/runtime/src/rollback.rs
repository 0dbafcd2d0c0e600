//! Rollback: a decision's recorded inverse, applied as a new journaled
//! decision linked to the original, under the same lock and gate as a cycle.

use steward_core::decision::{Action, DecisionType, OutcomeResult, Proposal};
use steward_core::guard::{Guarded, Verdict};
use steward_store::{CycleStart, VerdictRecord};

use crate::clock::{cycle_id, now_ms};
use crate::engine::{Engine, FleetSize};
use crate::error::RuntimeError;
use crate::lock::TargetLock;
use crate::report::RollbackReport;

impl Engine {
    /// Applies the recorded inverse of a decision, journaled as its own
    /// decision linked to the original (`parameters.rollback_of`).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownDecision`], [`RuntimeError::RollbackRefused`]
    /// when the inverse is missing or unsafe, a held lock, or a failed action.
    pub fn rollback(&self, id: &str) -> Result<RollbackReport, RuntimeError> {
        self.rollback_under(id, None)
    }

    /// [`Engine::rollback`] under a lock the caller already holds (the daemon).
    ///
    /// # Errors
    /// As [`Engine::rollback`].
    pub fn rollback_locked(&self, id: &str, lock: &TargetLock) -> Result<RollbackReport, RuntimeError> {
        self.rollback_under(id, Some(lock))
    }

    fn rollback_under(&self, id: &str, held: Option<&TargetLock>) -> Result<RollbackReport, RuntimeError> {
        self.check_target()?;
        let unknown = || RuntimeError::UnknownDecision { id: id.to_owned(), journal: self.journal_at().to_string() };
        // An unknown id is bad input whether or not another steward holds the lock.
        let known = match self.existing_journal()? {
            Some(j) => j.decision(id).map_err(RuntimeError::journal("reading the journal"))?.is_some(),
            None => false,
        };
        if !known {
            return Err(unknown());
        }
        let _own_lock = if held.is_none() { Some(self.lock()?) } else { None };
        let _gate = self.gate();
        let refuse = |why: String| RuntimeError::RollbackRefused { id: id.to_owned(), why };
        let (original, already) = {
            let guard = self.journal()?;
            let Some(journal) = guard.as_ref() else { return Err(RuntimeError::Incomplete("an open journal")) };
            // Under the lock: who asked for it, before anything is decided.
            self.flush_pending_audit(journal)?;
            let entry = journal.decision(id).map_err(RuntimeError::journal("reading the journal"))?.ok_or_else(unknown)?;
            let already = journal
                .recent_events(10_000)
                .map_err(RuntimeError::journal("reading the journal"))?
                .into_iter()
                .find(|e| e.kind == "rollback" && e.subject == id)
                .and_then(|e| e.decision_id);
            (entry, already)
        };
        let Some(inverse) = original.decision.inverse.clone() else {
            return Err(refuse(format!("a {} decision has no inverse action", original.decision.kind)));
        };
        match &original.outcome {
            Some(o) if o.result == OutcomeResult::Executed => {}
            Some(o) => return Err(refuse(format!("it was {} ({}), so there is nothing to undo", o.result.as_str(), o.reason))),
            None => return Err(refuse("it has no outcome (its cycle was interrupted); check the fleet by hand".into())),
        }
        if let Some(by) = already {
            return Err(refuse(format!("it was already rolled back by {by}")));
        }
        let Action::Scale { from: left, to: back } = inverse else {
            return Err(refuse("only scale decisions can be rolled back".into()));
        };
        let now = now_ms();
        let snapshot = self.snapshot(now)?;
        let assessment = steward_core::assess::assess(&snapshot, self.config(), now);
        // The supervisor knows its fleet exactly; other fleets are seen through agent records.
        let current = match self.fleet_size(now)? {
            FleetSize::Exact(n) => n,
            FleetSize::FromAgentRecords => u32::try_from(assessment.metrics.active_agents).unwrap_or(u32::MAX),
            FleetSize::NoFleet => return Err(refuse("no fleet actuator configured (fleet.kind is none)".into())),
        };
        if current != left {
            return Err(refuse(format!(
                "the fleet has changed since: {current} agent(s) now, the decision left {left}; going to {back} from here would undo changes made after it"
            )));
        }
        let auto = &self.config().auto;
        if back < auto.min_agents || back > auto.max_agents {
            return Err(refuse(format!("{back} agents is outside min_agents {} and max_agents {}", auto.min_agents, auto.max_agents)));
        }
        let kind = if back > left { DecisionType::ScaleUp } else { DecisionType::ScaleDown };
        let cycle = cycle_id(now);
        let decision = Proposal::scale(kind, 100, 1.0, left, back, format!("An operator rolled back {id}, restoring {back} agent(s)."))
            .param("rollback_of", id)
            .into_decision(format!("{cycle}-01"));
        let notes = [format!("manual rollback of {id}")];
        {
            let guard = self.journal()?;
            let Some(journal) = guard.as_ref() else { return Err(RuntimeError::Incomplete("an open journal")) };
            journal
                .record_cycle(&CycleStart {
                    id: &cycle,
                    ts: now,
                    policy: "rollback",
                    dry_run: false,
                    metrics: &assessment.metrics,
                    recommended_agents: Some(back),
                    warnings: snapshot.warnings.len(),
                })
                .map_err(RuntimeError::journal("journaling the rollback"))?;
            journal
                .record_decision(&cycle, now, &decision, &VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &notes })
                .map_err(RuntimeError::journal("journaling the rollback"))?;
        }
        let g = Guarded { decision: decision.clone(), verdict: Verdict::Execute, notes: notes.to_vec() };
        let (outcome, events) = self.act(&g)?;
        let guard = self.journal()?;
        let Some(journal) = guard.as_ref() else { return Err(RuntimeError::Incomplete("an open journal")) };
        for e in &events {
            journal
                .record_event(e.ts, e.kind, &e.agent, &e.message, Some(&decision.id))
                .map_err(RuntimeError::journal("journaling a fleet event"))?;
        }
        journal.record_outcome(&decision.id, now_ms(), &outcome).map_err(RuntimeError::journal("journaling the rollback's outcome"))?;
        if outcome.result == OutcomeResult::Executed {
            journal
                .record_event(now_ms(), "rollback", id, &format!("rolled back by {}", decision.id), Some(&decision.id))
                .map_err(RuntimeError::journal("journaling the rollback"))?;
        }
        journal.finish_cycle(&cycle, now_ms()).map_err(RuntimeError::journal("journaling the rollback"))?;
        match outcome.result {
            OutcomeResult::Executed => Ok(RollbackReport { decision, original: id.to_owned(), result: outcome.reason }),
            _ => Err(RuntimeError::RollbackFailed { id: id.to_owned(), reason: outcome.reason }),
        }
    }
}
