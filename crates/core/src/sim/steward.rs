//! steward's own policies in the simulator: every decision period the
//! simulated world becomes a [`Snapshot`], the policy runs through
//! [`crate::analyze`] and the guards through [`crate::guard::apply`], with
//! the history the loop would read from its journal. An executed scale
//! decision sets the fleet's size; nothing else differs from the loop.

use crate::config::EngineConfig;
use crate::decision::{Action, OutcomeResult};
use crate::guard::{self, GuardContext, Verdict};
use crate::history::{ActionRecord, CycleSummary, History};
use crate::policy::{current_summary, Policy};
use crate::snapshot::{AgentRecord, ClaimRecord, LivenessSource, Snapshot};
use crate::time::UnixMs;

use super::engine::{Controller, Observation};

/// A steward policy as a simulated controller.
pub struct Steward {
    policy: Box<dyn Policy + Send + Sync>,
    cfg: EngineConfig,
    history: History,
    snapshot: Snapshot,
    /// The trace's first row, in Unix milliseconds (the simulated clock's zero).
    base: UnixMs,
    cycles: u64,
    depth: (usize, i64),
}

impl Steward {
    /// `policy` under `cfg`, on a clock that starts at `base` (Unix ms).
    pub fn new(policy: Box<dyn Policy + Send + Sync>, cfg: EngineConfig, base: UnixMs) -> Self {
        let (cycles, window) = crate::history::depth(&cfg);
        let snapshot = Snapshot { target_exists: true, ..Snapshot::default() };
        Self {
            policy,
            history: History::default(),
            snapshot,
            base,
            cycles: 0,
            depth: (cycles, i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
            cfg,
        }
    }

    fn ms(&self, secs: f64) -> UnixMs {
        self.base.saturating_add((secs * 1000.0).round() as i64)
    }

    /// The world as a source would have read it: one record per agent
    /// asked for (a supervisor writes its workers' records when it starts
    /// them), one claim per item in service, the queue and the completions.
    fn observe(&mut self, obs: &Observation<'_>, now: UnixMs) {
        let s = &mut self.snapshot;
        s.taken_at = now;
        s.work_queue_size = obs.queued;
        s.completed = obs.completed;
        // Each finished item sent a span.
        s.telemetry_volume = obs.completed;
        s.agent_files = u64::from(obs.provisioned);
        s.agents.resize_with(obs.provisioned as usize, || AgentRecord {
            capacity: 1,
            liveness_from: LivenessSource::Heartbeat,
            managed_by_steward: true,
            ..AgentRecord::default()
        });
        for a in &mut s.agents {
            a.last_seen = Some(now);
        }
        s.claims.resize_with(obs.in_service.len(), ClaimRecord::default);
        for (c, &since) in s.claims.iter_mut().zip(obs.in_service) {
            c.claimed_at = Some(self.base.saturating_add((since * 1000.0).round() as i64));
        }
    }
}

impl Controller for Steward {
    fn name(&self) -> String {
        self.policy.name().into()
    }

    fn period(&self) -> f64 {
        self.cfg.auto.interval.as_secs_f64()
    }

    fn decide(&mut self, obs: &Observation<'_>) -> Option<u32> {
        let now = self.ms(obs.now);
        self.observe(obs, now);
        self.cycles += 1;
        let id = format!("sim-{}", self.cycles);
        let analysis = crate::analyze(&self.snapshot, &self.history, &self.cfg, self.policy.as_ref(), &id, now);
        let cx = GuardContext {
            auto: &self.cfg.auto,
            history: &self.history,
            now,
            recommended_agents: analysis.recommended_agents,
            force_confidence: None,
            target_exists: true,
        };
        let mut want = None;
        let mut executed = Vec::new();
        for g in guard::apply(analysis.decisions, &cx) {
            if g.verdict != Verdict::Execute {
                continue;
            }
            // Only scaling acts on the simulated world; nothing else fails in it.
            let scale = match g.decision.action {
                Action::Scale { from, to } => {
                    want = Some(to);
                    Some((from, to))
                }
                _ => None,
            };
            executed.push(ActionRecord { ts: now, kind: g.decision.kind, result: OutcomeResult::Executed, scale });
        }
        let mut summary: CycleSummary = current_summary(&analysis.assessment);
        summary.recommended_agents = analysis.recommended_agents;
        let h = &mut self.history;
        h.cycles.push(summary);
        if h.cycles.len() > self.depth.0 {
            h.cycles.remove(0);
        }
        h.actions.extend(executed);
        let since = now.saturating_sub(self.depth.1);
        let keep_last = h.actions.len().saturating_sub(crate::history::MIN_ACTIONS);
        let mut i = 0;
        h.actions.retain(|a| {
            i += 1;
            i > keep_last || a.ts >= since
        });
        want
    }
}
