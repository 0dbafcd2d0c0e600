//! The daemon's control surface: [`Control`] implemented by the engine,
//! with the same lock, guards and journal as the loop, plus what the
//! daemon knows of its own loop for `/health` and `/status`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use steward_core::control::{Component, Control, ControlError};

use crate::ha::Fence;
use steward_core::time::{format_rfc3339, UnixMs};

use crate::clock::now_ms;
use crate::engine::{lock_ignoring_poison, Engine};
use crate::error::{error_chain, RuntimeError};
use crate::lock::TargetLock;
use crate::report::{CycleReport, RunOptions};

/// Called with every cycle that ran, the loop's and `POST /execute`'s
/// (the daemon feeds its Prometheus metrics from it).
pub type CycleObserver = Box<dyn Fn(&CycleReport) + Send + Sync>;

/// What the daemon knows about its own loop.
struct LoopState {
    started_at: UnixMs,
    interval: Duration,
    cycles: AtomicU64,
    consecutive_failures: AtomicU64,
    last: Mutex<Option<(UnixMs, Result<Value, String>)>>,
    /// The last cycle failed because the source could not be read.
    source_failed: AtomicBool,
}

/// The engine as the HTTP server sees it. Every action goes through the
/// engine's guards and journal, under the daemon's lock (or none, dry).
pub struct EngineControl {
    engine: Arc<Engine>,
    lock: Option<Arc<TargetLock>>,
    state: LoopState,
    observer: CycleObserver,
    extras: Option<Extras>,
}

/// What another part of the daemon adds to `/health` and `/tasks` (the
/// reconciliation service: its components and the task queue).
pub struct Extras {
    /// Components, replacing the idle ones of the same name.
    pub components: Box<dyn Fn() -> Vec<Component> + Send + Sync>,
    /// The `/tasks` document.
    pub tasks: Box<dyn Fn() -> Value + Send + Sync>,
}

impl EngineControl {
    /// Control over `engine`, acting under `lock` (`None`: the daemon runs
    /// dry and changes nothing). `interval` is the loop's, for judging
    /// whether it still cycles.
    pub fn new(engine: Arc<Engine>, lock: Option<Arc<TargetLock>>, interval: Duration, observer: CycleObserver) -> Self {
        let state = LoopState {
            started_at: now_ms(),
            interval,
            cycles: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            last: Mutex::new(None),
            source_failed: AtomicBool::new(false),
        };
        Self { engine, lock, state, observer, extras: None }
    }

    /// Adds components and the task queue of another service.
    #[must_use]
    pub fn with_extras(mut self, extras: Extras) -> Self {
        self.extras = Some(extras);
        self
    }

    /// Records a cycle's result: the loop calls this after each of its cycles.
    pub fn record(&self, result: &Result<CycleReport, RuntimeError>) {
        let now = now_ms();
        match result {
            Ok(r) => {
                (self.observer)(r);
                self.state.consecutive_failures.store(0, Ordering::SeqCst);
                self.state.source_failed.store(false, Ordering::SeqCst);
                let summary = json!({"cycle_id": r.cycle_id, "metrics": r.metrics, "executed": r.executed.len(), "failed": r.failed.len(), "skipped": r.skipped.len(), "target_exists": r.target_exists});
                *lock_ignoring_poison(&self.state.last) = Some((now, Ok(summary)));
            }
            Err(e) => {
                self.state.consecutive_failures.fetch_add(1, Ordering::SeqCst);
                self.state.source_failed.store(matches!(e, RuntimeError::Source(_)), Ordering::SeqCst);
                *lock_ignoring_poison(&self.state.last) = Some((now, Err(error_chain(e))));
            }
        }
        self.state.cycles.fetch_add(1, Ordering::SeqCst);
    }
}

fn internal(e: &RuntimeError) -> ControlError {
    ControlError::Internal(error_chain(e))
}

impl Control for EngineControl {
    fn execute(&self, caller: &str) -> Result<Value, ControlError> {
        let result = match (&self.lock, self.engine.leadership()) {
            (Some(lock), _) => {
                // Who asked, in the audit trail, before the cycle acts.
                self.engine.audit_command(caller, "execute", json!({})).map_err(|e| internal(&e))?;
                self.engine.execute_locked(&RunOptions::default(), lock)
            }
            (None, Some(l)) => {
                if !l.is_leader() {
                    return Err(ControlError::Refused(format!("this replica ({}) stands by: ask the leader", l.holder())));
                }
                self.engine.audit_command(caller, "execute", json!({})).map_err(|e| internal(&e))?;
                self.engine.execute(&RunOptions::default())
            }
            (None, None) => self.engine.execute(&RunOptions { dry_run: true, ..RunOptions::default() }),
        };
        self.record(&result);
        result.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).map_err(|e| internal(&e))
    }

    fn rollback(&self, id: &str, caller: &str) -> Result<Value, ControlError> {
        let result = match (&self.lock, self.engine.leadership()) {
            (Some(lock), _) => {
                self.engine.audit_command(caller, "rollback", json!({"decision_id": id})).map_err(|e| internal(&e))?;
                self.engine.rollback_locked(id, lock)
            }
            (None, Some(l)) => {
                if !l.is_leader() {
                    return Err(ControlError::Refused(format!("this replica ({}) stands by: ask the leader", l.holder())));
                }
                // The leader's rollback: under the target lock for its duration, fenced like any action.
                self.engine.audit_command(caller, "rollback", json!({"decision_id": id})).map_err(|e| internal(&e))?;
                self.engine.rollback(id)
            }
            (None, None) => return Err(ControlError::Refused("the daemon runs dry (--dry-run): nothing is changed".into())),
        };
        match result {
            Ok(r) => Ok(serde_json::to_value(r).unwrap_or(Value::Null)),
            Err(e @ RuntimeError::UnknownDecision { .. }) => Err(ControlError::NotFound(e.to_string())),
            Err(e @ RuntimeError::RollbackRefused { .. }) => Err(ControlError::Refused(e.to_string())),
            Err(e) => Err(internal(&e)),
        }
    }

    fn status(&self) -> Value {
        let last = lock_ignoring_poison(&self.state.last).clone();
        let (metrics, last_cycle) = match &last {
            Some((ts, Ok(summary))) => (summary["metrics"].clone(), json!({"at": format_rfc3339(*ts), "ok": true, "summary": summary})),
            Some((ts, Err(e))) => (Value::Null, json!({"at": format_rfc3339(*ts), "ok": false, "error": e})),
            None => (Value::Null, Value::Null),
        };
        json!({
            "components": self.health(),
            "metrics": metrics,
            "assessment": {"metrics": metrics, "last_cycle": last_cycle},
            "daemon": {
                "running": true,
                "pid": std::process::id(),
                "uptime_seconds": (now_ms() - self.state.started_at).max(0) / 1000,
                "cycles": self.state.cycles.load(Ordering::SeqCst),
                "coordination_dir": self.engine.target(),
                "dry_run": self.lock.is_none(),
            },
        })
    }

    fn decisions(&self, limit: usize) -> Result<Value, ControlError> {
        let entries = self.engine.recent_decisions(limit).map_err(|e| internal(&e))?;
        Ok(json!({"decisions": entries}))
    }

    fn ingest(&self, records: u64) {
        self.engine.ingest(records);
    }

    fn history(&self, window_ms: i64) -> Result<Value, ControlError> {
        let now = now_ms();
        let from = now.saturating_sub(window_ms.max(60_000));
        let empty = json!({"now": now, "window_ms": window_ms, "interval_ms": self.state.interval.as_millis() as u64, "cycles": [], "decisions": [], "forecast": null});
        let Some(j) = self.engine.existing_journal().map_err(|e| internal(&e))? else { return Ok(empty) };
        let journal_error = |e: steward_store::JournalError| ControlError::Internal(error_chain(&e));
        let points = j.cycle_points(from, now, 360).map_err(journal_error)?;
        // Arrivals between buckets: the growth of what has been seen.
        let mut rates: Vec<Option<f64>> = vec![None];
        for w in points.windows(2) {
            let dt = (w[1].ts - w[0].ts) as f64 / 1000.0;
            rates.push((dt > 0.0).then(|| ((w[1].seen - w[0].seen) / dt).max(0.0)));
        }
        let cycles: Vec<Value> = points
            .iter()
            .zip(&rates)
            .map(|(p, r)| json!({"ts": p.ts, "score": p.score, "queue": p.queue, "in_flight": p.in_flight, "agents": p.agents, "target": p.target, "rate": r}))
            .collect();
        let decisions: Vec<Value> = j
            .decisions_since(from, 300)
            .map_err(journal_error)?
            .into_iter()
            .map(|d| {
                json!({
                    "id": d.decision.id, "ts": steward_core::time::parse_rfc3339(&d.timestamp), "type": d.decision.kind,
                    "verdict": d.verdict, "result": d.outcome.as_ref().map(|o| o.result.as_str()),
                })
            })
            .collect();
        // The arrival rate ahead: a forecast once there are enough points.
        let (ts, values): (Vec<i64>, Vec<f64>) = points.iter().zip(&rates).filter_map(|(p, r)| r.map(|r| (p.ts, r))).unzip();
        let forecast = steward_core::predict::series::Series::new(ts, values)
            .filter(|s| s.len() >= steward_core::predict::forecast::MIN_MODEL_POINTS)
            .and_then(|s| {
                let horizon = (s.len() / 4).clamp(5, 60);
                steward_core::predict::forecast::forecast(&s, horizon, &steward_core::predict::forecast::ForecastConfig::default()).ok()
            })
            .map(|f| json!({"model": f.model, "points": f.forecast}));
        Ok(json!({
            "now": now, "window_ms": window_ms, "interval_ms": self.state.interval.as_millis() as u64,
            "cycles": cycles, "decisions": decisions, "forecast": forecast,
        }))
    }

    fn incidents(&self) -> Value {
        match self.engine.existing_journal() {
            Ok(Some(j)) => {
                json!({"incidents": j.incidents(true, 20).unwrap_or_default(), "open": j.open_incident_counts().unwrap_or_default()})
            }
            _ => json!({"incidents": [], "open": [0, 0, 0]}),
        }
    }

    fn tasks(&self) -> Value {
        match &self.extras {
            Some(x) => (x.tasks)(),
            // No datasets configured: no reconciliation, an empty queue.
            None => json!({"tasks": [], "by_priority": {"critical": 0, "high": 0, "medium": 0, "low": 0}}),
        }
    }

    fn role(&self) -> Option<&'static str> {
        self.engine.leadership().map(crate::ha::Leadership::role)
    }

    fn health(&self) -> Vec<Component> {
        let c = |name: &str, status: &str, message: String| Component { name: name.into(), status: status.into(), message };
        let now = now_ms();
        let late_after = i64::try_from(self.state.interval.as_millis()).unwrap_or(i64::MAX).saturating_mul(3).saturating_add(30_000);
        let last = lock_ignoring_poison(&self.state.last).clone();
        let failures = self.state.consecutive_failures.load(Ordering::SeqCst);
        let standby = self.engine.leadership().is_some_and(|l| !l.is_leader());
        let loop_c = match &last {
            _ if standby => c("loop", "ok", "standby: the leader runs the cycles".into()),
            None if now - self.state.started_at < late_after => c("loop", "ok", "starting: no cycle yet".into()),
            None => c("loop", "failing", format!("no cycle in {} s", (now - self.state.started_at) / 1000)),
            Some((ts, _)) if now - ts > late_after => {
                c("loop", "failing", format!("last cycle {} s ago (interval {} s)", (now - ts) / 1000, self.state.interval.as_secs()))
            }
            Some((_, Err(e))) if failures >= 3 => c("loop", "failing", format!("{failures} cycles failed in a row: {e}")),
            Some((ts, Err(e))) => c("loop", "ok", format!("last cycle {} s ago failed ({e}); retrying", (now - ts) / 1000)),
            Some((ts, Ok(_))) => c("loop", "ok", format!("last cycle {} s ago", (now - ts) / 1000)),
        };
        let journal_c = match &last {
            Some((_, Err(e))) if e.contains("journal") && failures >= 3 => c("journal", "failing", e.clone()),
            _ => c("journal", "ok", self.engine.journal_at().to_string()),
        };
        // A non-empty queue is work, not a failure; a queue that is not
        // there at all (unmounted volume, wrong path) is one.
        let queue_c = match &last {
            // No decision was made on it: a source that cannot be read is
            // failing at once, not after three cycles.
            Some((ts, Err(e))) if self.state.source_failed.load(Ordering::SeqCst) => {
                c("queue", "failing", format!("{} cannot be read ({} s ago): {e}", self.engine.target(), (now - ts) / 1000))
            }
            Some((_, Ok(s))) if s["target_exists"] == false => {
                c("queue", "failing", format!("the coordination directory {} does not exist", self.engine.target()))
            }
            Some((_, Ok(s))) => {
                c("queue", "ok", format!("{} pending, {} in flight", s["metrics"]["work_queue_size"], s["metrics"]["in_flight"]))
            }
            _ => c("queue", "ok", "not read yet".into()),
        };
        let mut out = vec![
            loop_c,
            journal_c,
            queue_c,
            c("reconciler", "idle", "no datasets configured".into()),
            c("orchestrator", "idle", "no datasets configured".into()),
            c("inventory", "idle", "no inventory configured".into()),
        ];
        if let Some(n) = self.engine.desk().health() {
            out.push(n);
        }
        if let Some(l) = self.engine.leadership() {
            out.push(match (l.token(), l.last_error()) {
                _ if l.stuck_for().is_some() => c(
                    "lease",
                    "failing",
                    format!("the lease thread has not finished a round in {} s: a call to PostgreSQL is stuck", l.stuck_for().unwrap_or(0)),
                ),
                (Some(t), Some(e)) => {
                    c("lease", "ok", format!("leader of {} with fencing token {t}, but the last renewal failed: {e}", l.name()))
                }
                (Some(t), None) => c("lease", "ok", format!("leader of {} with fencing token {t} ({})", l.name(), l.holder())),
                (None, Some(e)) => c("lease", "failing", format!("cannot reach the lease {}: {e}", l.name())),
                (None, None) => c("lease", "ok", format!("standby for {}: another replica holds the lease", l.name())),
            });
        }
        if let Some(x) = &self.extras {
            for comp in (x.components)() {
                match out.iter_mut().find(|o| o.name == comp.name) {
                    Some(slot) => *slot = comp,
                    None => out.push(comp),
                }
            }
        }
        out
    }
}
