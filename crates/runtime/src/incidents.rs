//! The incident desk: after each cycle that acts, the rules of
//! `steward_core::incident` are evaluated on what the cycle saw, the
//! journal walks every incident one step (`Journal::observe_incidents`),
//! and the notifier tells Alertmanager and webhooks what fires and what
//! resolved.

use std::collections::BTreeMap;
use std::sync::Mutex;

use steward_core::control::Component;
use steward_core::guard::{GuardKind, Guarded, Verdict};
use steward_core::incident::{self, alert_name, IncidentConfig, Observed, Phase};
use steward_core::time::UnixMs;
use steward_store::{CycleAction, Journal, Transition};

use crate::error::error_chain;
use crate::notify::{Alert, Notifier, NotifyConfig};
use crate::report::CycleReport;

/// A poisoned lock still holds usable state here (counters, a notifier).
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports the daemon's other components (the reconciler, ...), so a
/// failing one raises an incident.
pub type ComponentWatch = Box<dyn Fn() -> Vec<Component> + Send + Sync>;

/// How long a resolved incident is still told to Alertmanager (as
/// Prometheus keeps sending a resolved alert for 15 minutes).
const RESOLVED_FOR_MS: i64 = 15 * 60_000;

/// The rules a cycle always evaluates; `component_failed` only with a watch.
const CYCLE_RULES: [&str; 4] = ["system_critical", "system_degraded", "circuit_breaker_open", "task_dead"];

/// Incidents and their notifications.
pub struct Desk {
    cfg: IncidentConfig,
    notifier: Mutex<Option<Notifier>>,
    watch: Mutex<Option<ComponentWatch>>,
    /// The last notification failure, for `/health`.
    last_error: Mutex<Option<(UnixMs, String)>>,
    /// Open incidents by severity after the last step.
    open: Mutex<[u64; 3]>,
    external_url: Option<String>,
}

impl Default for Desk {
    fn default() -> Self {
        Self::new(IncidentConfig::default(), None)
    }
}

impl Desk {
    /// A desk with these rules, notifying as `notify` says (none: the
    /// incidents are journaled and shown, not sent).
    pub fn new(cfg: IncidentConfig, notifier: Option<Notifier>) -> Self {
        Self {
            cfg,
            notifier: Mutex::new(notifier),
            watch: Mutex::new(None),
            last_error: Mutex::new(None),
            open: Mutex::new([0; 3]),
            external_url: None,
        }
    }

    /// A desk from the config's `incidents:` and `notify:` sections.
    ///
    /// # Errors
    /// The notify section is invalid (naming the key).
    pub fn from_config(cfg: IncidentConfig, notify: &NotifyConfig) -> Result<Self, steward_core::config::InvalidValue> {
        let notifier =
            if notify.alertmanagers.is_empty() && notify.webhooks.is_empty() { None } else { Some(Notifier::new(notify.clone())?) };
        let mut desk = Self::new(cfg, notifier);
        desk.external_url = (!notify.external_url.is_empty()).then(|| notify.external_url.clone());
        Ok(desk)
    }

    /// Watches the daemon's other components: a failing one raises
    /// `component_failed`.
    pub fn watch(&self, watch: ComponentWatch) {
        *lock_ignoring_poison(&self.watch) = Some(watch);
    }

    /// Whether notifications are configured, and the last failure.
    pub fn health(&self) -> Option<Component> {
        let configured = lock_ignoring_poison(&self.notifier).is_some();
        if !configured {
            return None;
        }
        let last = lock_ignoring_poison(&self.last_error).clone();
        Some(match last {
            // /health answers without a token: which receiver and why go to the log only
            // (a webhook's URL can carry its secret).
            Some((ts, e)) => Component {
                name: "notifications".into(),
                status: "failing".into(),
                message: format!(
                    "last send failed at {} ({} receiver(s)); the reasons are in the log",
                    steward_core::time::format_rfc3339(ts),
                    e.matches("; ").count() + 1
                ),
            },
            None => Component { name: "notifications".into(), status: "ok".into(), message: "alerts delivered".into() },
        })
    }

    /// One step after a cycle: rules, lifecycle, notifications. Failures
    /// are logged, never fail the cycle (its actions are done and journaled).
    pub(crate) fn after_cycle(&self, journal: &Journal, target: &str, report: &CycleReport, guarded: &[Guarded], now: UnixMs) {
        if let Err(e) = self.step(journal, target, report, guarded, now) {
            tracing::error!(error = %error_chain(&e), "Incident bookkeeping failed this cycle; it runs again next cycle.");
        }
    }

    fn step(
        &self,
        journal: &Journal,
        target: &str,
        report: &CycleReport,
        guarded: &[Guarded],
        now: UnixMs,
    ) -> Result<(), steward_store::JournalError> {
        if !self.cfg.enabled {
            return Ok(());
        }
        let m = &report.metrics;
        let failing: Option<Vec<(String, String)>> = lock_ignoring_poison(&self.watch)
            .as_ref()
            .map(|w| w().into_iter().filter(|c| c.status == "failing").map(|c| (c.name, c.message)).collect());
        let observed = Observed {
            target,
            health: Some((m.health_state, m.health_score)),
            unhealthy_since: journal.unhealthy_since()?,
            breakers: guarded
                .iter()
                .filter_map(|g| match &g.verdict {
                    Verdict::Skip { guard: GuardKind::CircuitBreaker, reason } => Some((g.decision.kind.to_string(), reason.clone())),
                    _ => None,
                })
                .collect(),
            dead_tasks: journal.dead_tasks_by_dataset()?,
            failing_components: failing.clone().unwrap_or_default(),
        };
        let signals = incident::evaluate(&observed, &self.cfg, now);
        let mut rules: Vec<&str> = CYCLE_RULES.to_vec();
        if failing.is_some() {
            rules.push("component_failed");
        }
        // The actions this cycle took (executed or failed: both were tried).
        let results: BTreeMap<&str, &str> = report
            .executed
            .iter()
            .map(|e| (e.decision_id.as_str(), "executed"))
            .chain(report.failed.iter().map(|f| (f.decision_id.as_str(), "failed")))
            .collect();
        let actions: Vec<CycleAction> = guarded
            .iter()
            .filter_map(|g| {
                let result = results.get(g.decision.id.as_str())?;
                let what = match g.decision.action {
                    steward_core::decision::Action::Scale { from, to } => format!("{} {from} → {to}", g.decision.kind),
                    _ => g.decision.kind.to_string(),
                };
                Some(CycleAction { decision_id: g.decision.id.clone(), description: format!("{what}: {result} ({})", g.decision.id) })
            })
            .collect();
        let assessment = serde_json::json!({"metrics": m, "cycle_id": report.cycle_id});
        let transitions = journal.observe_incidents(now, &rules, &signals, &assessment, &actions, &self.cfg)?;
        for t in &transitions {
            log_transition(t);
        }
        *lock_ignoring_poison(&self.open) = journal.open_incident_counts()?;
        self.notify(journal, now)
    }

    /// Tells the receivers what fires and what resolved lately.
    fn notify(&self, journal: &Journal, now: UnixMs) -> Result<(), steward_store::JournalError> {
        let mut guard = lock_ignoring_poison(&self.notifier);
        let Some(notifier) = guard.as_mut() else { return Ok(()) };
        let mut alerts = Vec::new();
        for inc in journal.incidents_to_alert(now - RESOLVED_FOR_MS)? {
            let ended = inc.phases.iter().rev().find(|(p, _)| *p == Phase::Eradicated).map(|(_, t)| *t);
            let ends_at = if inc.phase.is_active() {
                None
            } else {
                // Resolved when its condition went (or when it was closed by hand).
                let end = ended.or_else(|| inc.phases.last().map(|(_, t)| *t)).unwrap_or(now);
                if now - end > RESOLVED_FOR_MS {
                    continue;
                }
                Some(end)
            };
            let labels = BTreeMap::from([
                ("alertname".to_owned(), alert_name(&inc.rule)),
                ("severity".to_owned(), inc.severity.to_string()),
                ("target".to_owned(), inc.target.clone()),
                ("incident".to_owned(), inc.id.to_string()),
                ("source".to_owned(), "steward".to_owned()),
            ]);
            let annotations = BTreeMap::from([
                ("summary".to_owned(), inc.summary.clone()),
                (
                    "description".to_owned(),
                    format!("incident {} ({}), phase {}: steward incidents show {}", inc.id, inc.rule, inc.phase.as_str(), inc.id),
                ),
            ]);
            alerts.push(Alert {
                labels,
                annotations,
                starts_at: inc.opened_at,
                ends_at,
                generator_url: self.external_url.as_ref().map(|u| format!("{}/incidents", u.trim_end_matches('/'))),
            });
        }
        let errors = notifier.sync(&alerts, now);
        let mut last = lock_ignoring_poison(&self.last_error);
        if errors.is_empty() {
            *last = None;
        } else {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::warn!(errors = ?text, "Sending incident alerts failed; retried next cycle.");
            *last = Some((now, text.join("; ")));
        }
        Ok(())
    }

    /// Open incidents by severity 1, 2, 3 as of the last cycle that acted
    /// (for `steward_incidents_open`; read from the journal the cycle had open).
    pub fn open_counts(&self) -> [u64; 3] {
        *lock_ignoring_poison(&self.open)
    }
}

fn log_transition(t: &Transition) {
    match t.phase {
        Phase::Detected => tracing::warn!(incident = t.id, rule = %t.rule, target = %t.target, "Incident detected: {}", t.message),
        _ => tracing::info!(incident = t.id, rule = %t.rule, target = %t.target, phase = t.phase.as_str(), "Incident: {}", t.message),
    }
}
