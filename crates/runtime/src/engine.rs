//! The engine: one cycle of snapshot → analyze → guard → journal → act →
//! journal, built from parts the caller hands in.
//!
//! This is where the layers meet. Everything above the actuators is the
//! pure core; the engine supplies the clock, the source, the journal and
//! the actuators, and keeps the order that makes it safe: every decision
//! and its verdict is journaled before any action starts, and every
//! outcome after. A journal write that fails stops the cycle before any
//! action.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use steward_actuators::supervisor::FleetEvent;
use steward_actuators::{action_kind, Actuator};
use steward_core::config::EngineConfig;
use steward_core::decision::{Action, Decision, Outcome, OutcomeResult};
use steward_core::guard::{self, GuardContext, GuardKind, Guarded, Verdict};
use steward_core::history::{History, Sample};
use steward_core::policy::{self, Policy};
use steward_core::snapshot::Snapshot;
use steward_core::time::{format_rfc3339, UnixMs};
use steward_core::Analysis;
use steward_sources::Source;
use steward_store::audit::{self, AuditKey, NewRecord};
use steward_store::{CycleStart, DecisionEntry, Journal, JournalAt, VerdictRecord, JOURNAL_FILE};

use crate::clock::{cycle_id, now_ms};
use crate::error::{error_chain, RuntimeError};
use crate::fleet::{unhandled, Fleet};
use crate::ha::{Fence, Leadership};
use crate::incidents::Desk;
use crate::lock::TargetLock;
use crate::otel::Exporter;
use crate::report::{CycleReport, Executed, Failed, RunOptions, Skipped};

/// Most metric readings loaded for failure prediction per cycle.
const MAX_SAMPLES: usize = 200_000;

/// Builds a fleet on first use, so `analyze` never starts or adopts workers.
type FleetFactory = Box<dyn Fn() -> Result<Fleet, RuntimeError> + Send>;

/// The fleet, before and after its first use.
pub(crate) enum FleetSlot {
    /// Not built yet.
    Pending(FleetFactory),
    /// Built.
    Built(Fleet),
}

/// The loop's engine: a source, a policy, actuators and a journal, and
/// the order in which they are used. Shared between threads (the loop and
/// the HTTP server); a cycle gate keeps two cycles from running at once.
pub struct Engine {
    cfg: EngineConfig,
    source: Box<dyn Source + Send + Sync>,
    policy: Box<dyn Policy + Send + Sync>,
    /// Actuators for everything but fleet actions, tried in order.
    actuators: Mutex<Vec<Box<dyn Actuator>>>,
    fleet: Mutex<FleetSlot>,
    state_dir: PathBuf,
    journal_at: JournalAt,
    lock_dir: Option<PathBuf>,
    target: String,
    /// Who the journal belongs to: recorded in it, checked at every open.
    owner: String,
    /// Opened on first write, then kept.
    journal: Mutex<Option<Journal>>,
    /// Held for a whole cycle or rollback.
    cycle_gate: Mutex<()>,
    /// Telemetry records received over OTLP, with when, for the window.
    ingested: Mutex<VecDeque<(UnixMs, u64)>>,
    telemetry_window_ms: i64,
    exporter: Option<Exporter>,
    /// The last cycle's health score, for `system_improvement`.
    last_score: Mutex<Option<f64>>,
    journal_settings: JournalSettings,
    /// When retention last ran.
    last_prune: Mutex<Option<UnixMs>>,
    /// Incidents and their notifications.
    desk: Desk,
    /// Audit records to append when this engine next acts under the
    /// target lock (the config and the command that started it).
    pending_audit: Mutex<(Option<serde_json::Value>, Vec<NewRecord>)>,
    /// High availability: the lease this replica competes for; it acts
    /// only while it leads, and every action is fenced by its token.
    leadership: Option<Leadership>,
}

/// How the journal keeps its records (the config's `journal:` section).
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// Sign every decision, action, outcome, rollback, config change and
    /// command into the audit chain (`<state_dir>/audit.key`). Default on.
    pub audit: bool,
    /// Who acts: `loop` for the loop and the daemon, `cli:USER` for a
    /// command run by hand.
    pub actor: String,
    /// Cycles, samples and finished tasks older than this are removed
    /// (decisions, their cycles, incidents and events are kept). Default 30 days.
    pub retain: Duration,
    /// Audit records older than this are removed, leaving a signed
    /// checkpoint. Default: kept forever.
    pub retain_audit: Option<Duration>,
}

impl Default for JournalSettings {
    fn default() -> Self {
        Self { audit: true, actor: "loop".into(), retain: Duration::from_secs(30 * 86_400), retain_audit: None }
    }
}

/// Retention runs at most this often.
const PRUNE_EVERY_MS: i64 = 3_600_000;

/// Builds an [`Engine`]; see [`Engine::builder`].
pub struct EngineBuilder {
    cfg: EngineConfig,
    source: Option<Box<dyn Source + Send + Sync>>,
    policy: Option<Box<dyn Policy + Send + Sync>>,
    actuators: Vec<Box<dyn Actuator>>,
    fleet: FleetSlot,
    state_dir: Option<PathBuf>,
    journal_at: Option<JournalAt>,
    lock_dir: Option<PathBuf>,
    owner: Option<String>,
    telemetry_window: Duration,
    exporter: Option<Exporter>,
    journal_settings: JournalSettings,
    desk: Desk,
    leadership: Option<Leadership>,
}

impl EngineBuilder {
    /// High availability: act only while holding this lease, and fence
    /// every action with its token (the target lock is then not taken:
    /// the lease is the exclusion between replicas).
    #[must_use]
    pub fn leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// Incident rules and notifications (default: the spec's rules, no
    /// notifications).
    #[must_use]
    pub fn incidents(mut self, desk: Desk) -> Self {
        self.desk = desk;
        self
    }

    /// The audit chain and retention (default: audit on as `loop`, 30 days).
    #[must_use]
    pub fn journal_settings(mut self, settings: JournalSettings) -> Self {
        self.journal_settings = settings;
        self
    }

    /// The name the journal records as its owner, and refuses any other
    /// (so two targets never mix their decisions in one journal). Default:
    /// the source's target; give a canonical path when there is one.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Where the snapshots come from (required).
    #[must_use]
    pub fn source(mut self, source: impl Source + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The policy that plans decisions. Default: the built-in one named by
    /// `auto.policy` (`adaptive`).
    #[must_use]
    pub fn policy(mut self, policy: impl Policy + Send + Sync + 'static) -> Self {
        self.policy = Some(Box::new(policy));
        self
    }

    /// An actuator for actions other than scaling and restarts (requeues,
    /// leftover claims, ...). Actuators are asked in the order added; the
    /// first that handles an action applies it.
    #[must_use]
    pub fn actuator(mut self, actuator: impl Actuator + 'static) -> Self {
        self.actuators.push(Box::new(actuator));
        self
    }

    /// The fleet actuator for scale and restart decisions. Default: none
    /// (such decisions are journaled as skipped).
    #[must_use]
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = FleetSlot::Built(fleet);
        self
    }

    /// The fleet actuator is this actuator (scale and restart actions go to
    /// it when it handles them): a shorthand for `fleet(Fleet::Actuator(..))`.
    #[must_use]
    pub fn fleet_actuator(self, actuator: impl Actuator + 'static) -> Self {
        self.fleet(Fleet::Actuator(Box::new(actuator)))
    }

    /// A fleet built on first use (and again after a failed build): at the
    /// driver's first tick or the first fleet action, so that commands that
    /// only look never start or adopt workers.
    #[must_use]
    pub fn fleet_with(mut self, build: impl Fn() -> Result<Fleet, RuntimeError> + Send + 'static) -> Self {
        self.fleet = FleetSlot::Pending(Box::new(build));
        self
    }

    /// The state directory (required): the journal lives there unless
    /// [`journal_path`](Self::journal_path) says otherwise, and the lock
    /// when there is no lock directory. Created on the first write.
    #[must_use]
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The journal's file. Default `<state_dir>/journal.db`.
    #[must_use]
    pub fn journal_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal_at = Some(JournalAt::File(path.into()));
        self
    }

    /// Where the journal lives: a file, or a PostgreSQL database that
    /// replicas share (`state.journal: postgres://…`).
    #[must_use]
    pub fn journal(mut self, at: JournalAt) -> Self {
        self.journal_at = Some(at);
        self
    }

    /// Where the target lock (`.steward.lock`) is taken: the target's own
    /// directory, so every steward acting on it meets the same lock. While
    /// it does not exist, and by default, the lock is in the state directory.
    #[must_use]
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// How long telemetry received through [`Engine::ingest`] counts into
    /// the telemetry volume. Default 15 minutes.
    #[must_use]
    pub fn telemetry_window(mut self, window: Duration) -> Self {
        self.telemetry_window = window;
        self
    }

    /// Where each cycle's spans go. Default: nowhere.
    #[must_use]
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// The engine.
    ///
    /// # Errors
    /// [`RuntimeError::Incomplete`] without a source or a state directory.
    pub fn build(self) -> Result<Engine, RuntimeError> {
        let source = self.source.ok_or(RuntimeError::Incomplete("a source"))?;
        let state_dir = self.state_dir.ok_or(RuntimeError::Incomplete("a state directory"))?;
        let policy = self.policy.unwrap_or_else(|| policy::builtin(self.cfg.auto.policy));
        Ok(Engine {
            owner: self.owner.unwrap_or_else(|| source.target()),
            target: source.target(),
            journal_at: self.journal_at.unwrap_or_else(|| JournalAt::File(state_dir.join(JOURNAL_FILE))),
            state_dir,
            lock_dir: self.lock_dir,
            source,
            policy,
            actuators: Mutex::new(self.actuators),
            fleet: Mutex::new(self.fleet),
            journal: Mutex::new(None),
            cycle_gate: Mutex::new(()),
            ingested: Mutex::new(VecDeque::new()),
            telemetry_window_ms: i64::try_from(self.telemetry_window.as_millis()).unwrap_or(i64::MAX),
            exporter: self.exporter,
            last_score: Mutex::new(None),
            journal_settings: self.journal_settings,
            last_prune: Mutex::new(None),
            desk: self.desk,
            pending_audit: Mutex::new((None, Vec::new())),
            leadership: self.leadership,
            cfg: self.cfg,
        })
    }
}

/// A panic elsewhere cannot leave these half-updated in a way that matters
/// more than stopping would: keep going.
pub(crate) fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Starts building an engine on the pure part of the config.
    pub fn builder(cfg: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            cfg,
            source: None,
            policy: None,
            actuators: Vec::new(),
            fleet: FleetSlot::Built(Fleet::None),
            state_dir: None,
            journal_at: None,
            lock_dir: None,
            owner: None,
            telemetry_window: Duration::from_secs(900),
            exporter: None,
            journal_settings: JournalSettings::default(),
            desk: Desk::default(),
            leadership: None,
        }
    }

    /// The incident desk (the daemon adds its component watch to it).
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// Open incidents by severity 1, 2, 3 as of the last cycle that acted.
    pub fn open_incidents(&self) -> [u64; 3] {
        self.desk.open_counts()
    }

    /// The lease this replica competes for, if it runs with others (HA).
    pub fn leadership(&self) -> Option<&Leadership> {
        self.leadership.as_ref()
    }

    /// The engine's config (health, guards, policy sizing, prediction).
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// What the source reads, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where the journal lives.
    pub fn journal_at(&self) -> &JournalAt {
        &self.journal_at
    }

    /// The journal's file, for a SQLite journal.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal_at.file()
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Counts telemetry records received from outside (OTLP) into the
    /// telemetry volume of the cycles within the telemetry window.
    pub fn ingest(&self, records: u64) {
        lock_ignoring_poison(&self.ingested).push_back((now_ms(), records));
    }

    /// The one place snapshots are taken: the source, plus telemetry
    /// received within the window.
    pub(crate) fn snapshot(&self, now: UnixMs) -> Result<Snapshot, RuntimeError> {
        let mut snapshot = self.source.snapshot(now)?;
        snapshot.telemetry_volume += self.ingested_since(now.saturating_sub(self.telemetry_window_ms));
        Ok(snapshot)
    }

    fn ingested_since(&self, since: UnixMs) -> u64 {
        let mut q = lock_ignoring_poison(&self.ingested);
        while q.front().is_some_and(|(t, _)| *t < since) {
            q.pop_front();
        }
        q.iter().map(|(_, n)| n).sum()
    }

    /// Sends the spans still queued (at exit), for at most a few seconds.
    pub fn flush_telemetry(&self) {
        if let Some(e) = &self.exporter {
            e.flush();
        }
    }

    /// Queues for the audit trail, to be appended when this engine next
    /// acts under the target lock (never when the lock is refused): the
    /// effective config (recorded when it changed) and the command that
    /// asked for it, by `actor`.
    pub fn audit_when_acting(&self, config: Option<serde_json::Value>, command: Option<(&str, &str, serde_json::Value)>) {
        let mut p = lock_ignoring_poison(&self.pending_audit);
        if config.is_some() {
            p.0 = config;
        }
        if let Some((actor, name, detail)) = command {
            let mut payload = serde_json::json!({"command": name, "target": self.target});
            if let (Some(o), serde_json::Value::Object(d)) = (payload.as_object_mut(), detail) {
                o.extend(d);
            }
            p.1.push(NewRecord { actor: Some(actor.to_owned()), kind: "command".into(), payload });
        }
    }

    /// Appends what [`Engine::audit_when_acting`] queued (under the lock).
    pub(crate) fn flush_pending_audit(&self, journal: &Journal) -> Result<(), RuntimeError> {
        let (config, commands) = std::mem::take(&mut *lock_ignoring_poison(&self.pending_audit));
        let now = now_ms();
        if let Some(c) = config {
            if journal.audit_config(now, &c).map_err(RuntimeError::journal("recording the config in the audit trail"))? {
                tracing::info!("The configuration changed since the last one recorded: recorded in the audit trail.");
            }
        }
        journal.audit(now, &commands).map_err(RuntimeError::journal("recording the command in the audit trail"))
    }

    /// Appends a `command` record to the audit chain now: what a person (or
    /// an HTTP client) asked for, with `actor` saying who, before it runs.
    /// Call it under the target lock (the daemon holds it).
    ///
    /// # Errors
    /// The journal cannot be opened or written (then do not run it).
    pub fn audit_command(&self, actor: &str, command: &str, detail: serde_json::Value) -> Result<(), RuntimeError> {
        self.audit_when_acting(None, Some((actor, command, detail)));
        let guard = self.journal()?;
        let Some(j) = guard.as_ref() else { return Ok(()) };
        self.flush_pending_audit(j)
    }

    /// Applies retention (`journal.retain`, `journal.retain_audit`) when it
    /// has not run for an hour.
    fn retain(&self, journal: &Journal, now: UnixMs) {
        let mut last = lock_ignoring_poison(&self.last_prune);
        if last.is_some_and(|t| now - t < PRUNE_EVERY_MS) {
            return;
        }
        *last = Some(now);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match journal.prune_history(now.saturating_sub(ms(self.journal_settings.retain))) {
            Ok(n) if n > 0 => tracing::info!(removed = n, "Journal retention: old cycles, samples and finished tasks removed."),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %error_chain(&e), "Journal retention failed; will retry in an hour."),
        }
        if let Some(keep) = self.journal_settings.retain_audit {
            match journal.prune_audit(now.saturating_sub(ms(keep)), now) {
                Ok(n) if n > 0 => tracing::info!(removed = n, "Audit retention: old records removed, a signed checkpoint kept."),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %error_chain(&e), "Audit retention failed; will retry in an hour."),
            }
        }
    }

    /// The journal, opened (and the state directory created) on first use.
    pub(crate) fn journal(&self) -> Result<MutexGuard<'_, Option<Journal>>, RuntimeError> {
        let mut guard = lock_ignoring_poison(&self.journal);
        if guard.is_none() {
            fs::create_dir_all(&self.state_dir).map_err(RuntimeError::io("creating the state directory", &self.state_dir))?;
            if let Some(parent) = self.journal_at.file().and_then(Path::parent).filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(RuntimeError::io("creating", parent))?;
            }
            let mut journal = Journal::open_at(&self.journal_at).map_err(RuntimeError::journal("opening the journal"))?;
            self.check_owner(&journal)?;
            journal.claim(&self.owner).map_err(RuntimeError::journal("recording the journal's owner"))?;
            if self.journal_settings.audit {
                let recorded = journal.audit_pubkey().map_err(RuntimeError::journal("reading the journal's audit key"))?;
                let (key, created) = AuditKey::load_or_create_for(&self.state_dir, recorded.as_deref())?;
                if created {
                    tracing::info!(public_key = %key.public_hex(), "Audit signing key created (steward audit pubkey prints it).");
                }
                journal
                    .enable_audit(key, self.journal_settings.actor.clone(), Some(self.state_dir.join(audit::HEAD_FILE)))
                    .map_err(RuntimeError::journal("enabling the audit chain"))?;
            }
            *guard = Some(journal);
        }
        Ok(guard)
    }

    /// With a journal replicas share, checks before standing by that this
    /// replica holds the key the journal's chain is signed with, so a
    /// replica without it is refused at start rather than failing the
    /// first cycle it leads. Creates the key when the chain has none yet.
    ///
    /// # Errors
    /// The key is missing or another (the message says what to copy), or
    /// the journal cannot be read.
    pub fn check_audit_key(&self) -> Result<(), RuntimeError> {
        if !self.journal_settings.audit || self.journal_at.file().is_some() {
            return Ok(());
        }
        let journal = Journal::open_at(&self.journal_at).map_err(RuntimeError::journal("opening the journal"))?;
        self.check_owner(&journal)?;
        let recorded = journal.audit_pubkey().map_err(RuntimeError::journal("reading the journal's audit key"))?;
        fs::create_dir_all(&self.state_dir).map_err(RuntimeError::io("creating the state directory", &self.state_dir))?;
        let copy_it = "Replicas sharing a journal sign one chain: copy audit.key from a replica's state directory (mode 0600)";
        let (key, _) = AuditKey::load_or_create_for(&self.state_dir, recorded.as_deref()).map_err(|e| match e {
            audit::AuditError::Key { path, reason } if recorded.is_some() => {
                RuntimeError::Audit(audit::AuditError::Key { path, reason: format!("{reason}. {copy_it}") })
            }
            e => RuntimeError::Audit(e),
        })?;
        // A new chain: this key claims it, unless a replica starting at the
        // same moment claimed it first with its own.
        let ours = key.public_hex();
        let chain = journal.claim_audit_key(&ours).map_err(RuntimeError::journal("recording the journal's audit key"))?;
        match chain {
            Some(theirs) if theirs != ours => Err(RuntimeError::Audit(audit::AuditError::Key {
                path: self.state_dir.join(audit::KEY_FILE),
                reason: format!(
                    "is not the key this journal's chain was signed with (its public half is {ours}, the journal's {theirs}). {copy_it}"
                ),
            })),
            _ => Ok(()),
        }
    }

    /// The journal if one exists, opened without creating anything.
    pub(crate) fn existing_journal(&self) -> Result<Option<Journal>, RuntimeError> {
        let journal = Journal::open_existing_at(&self.journal_at).map_err(RuntimeError::journal("opening the journal"))?;
        if let Some(j) = &journal {
            self.check_owner(j)?;
        }
        Ok(journal)
    }

    /// Refuses a journal that records another owner.
    fn check_owner(&self, journal: &Journal) -> Result<(), RuntimeError> {
        match journal.owner().map_err(RuntimeError::journal("reading the journal's owner"))? {
            Some(owner) if owner != self.owner => {
                Err(RuntimeError::ForeignJournal { journal: self.journal_at.to_string(), owner, target: self.owner.clone() })
            }
            _ => Ok(()),
        }
    }

    /// The most recent decisions with their outcomes, newest first; none
    /// when no journal exists yet.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionEntry>, RuntimeError> {
        match self.existing_journal()? {
            Some(j) => j.recent_decisions(limit).map_err(RuntimeError::journal("reading recent decisions")),
            None => Ok(Vec::new()),
        }
    }

    /// The fleet actuator, built on first use.
    pub(crate) fn fleet(&self) -> Result<MutexGuard<'_, FleetSlot>, RuntimeError> {
        let mut guard = lock_ignoring_poison(&self.fleet);
        if let FleetSlot::Pending(build) = &*guard {
            let fleet = build()?;
            *guard = FleetSlot::Built(fleet);
        }
        Ok(guard)
    }

    /// The supervisor's events since the last call (none for other fleets).
    fn take_fleet_events(fleet: &mut Fleet) -> Vec<FleetEvent> {
        match fleet {
            Fleet::Supervisor(sup) => sup.take_events(),
            _ => Vec::new(),
        }
    }

    /// Writes fleet events to the journal. Called without the fleet lock:
    /// a cycle holds the journal and then takes the fleet, so taking them
    /// the other way round here could deadlock with it.
    fn journal_fleet_events(&self, events: &[FleetEvent]) {
        if events.is_empty() {
            return;
        }
        match self.journal() {
            Ok(guard) => {
                if let Some(j) = guard.as_ref() {
                    for e in events {
                        log_fleet_event(e);
                        if let Err(err) = j.record_event(e.ts, e.kind, &e.agent, &e.message, None) {
                            tracing::warn!(error = %error_chain(&err), "Could not journal a fleet event.");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %error_chain(&err), "Could not journal fleet events."),
        }
    }

    /// Between cycles: lets a supervisor reap, replace crashed workers and
    /// escalate drains. Cheap when there is nothing to do. A fleet built on
    /// first use is built here, so a supervisor adopts its workers as soon
    /// as the loop starts.
    ///
    /// # Errors
    /// The fleet cannot be built.
    pub fn tick(&self) -> Result<(), RuntimeError> {
        let events = {
            let mut guard = self.fleet()?;
            match &mut *guard {
                FleetSlot::Built(fleet) => {
                    if let Fleet::Supervisor(sup) = fleet {
                        sup.tick(now_ms());
                    }
                    Self::take_fleet_events(fleet)
                }
                FleetSlot::Pending(_) => Vec::new(),
            }
        };
        self.journal_fleet_events(&events);
        Ok(())
    }

    /// When the loop stops: a supervisor's workers stop too (SIGTERM,
    /// `drain_timeout`, SIGKILL) unless its config says `detach`. A fleet
    /// that was never built is left alone.
    pub fn shutdown(&self) {
        let events = {
            let mut guard = lock_ignoring_poison(&self.fleet);
            let FleetSlot::Built(fleet) = &mut *guard else { return };
            if let Fleet::Supervisor(sup) = fleet {
                if sup.config().detach {
                    tracing::info!(workers = sup.workers().len(), "Leaving the fleet running (fleet.detach).");
                    return;
                }
                let grace = sup.config().drain_timeout;
                sup.shutdown(grace, &now_ms);
            }
            Self::take_fleet_events(fleet)
        };
        self.journal_fleet_events(&events);
    }

    /// The supervisor's workers (id, pid), for views and tests.
    pub fn fleet_workers(&self) -> Vec<(String, u32)> {
        match &*lock_ignoring_poison(&self.fleet) {
            FleetSlot::Built(Fleet::Supervisor(sup)) => sup.workers(),
            _ => Vec::new(),
        }
    }

    /// History as the policy and guards need it.
    fn history(&self, journal: Option<&Journal>, now: UnixMs) -> Result<History, RuntimeError> {
        let Some(j) = journal else {
            return Ok(History::default());
        };
        let (cycles, window) = steward_core::history::depth(&self.cfg);
        let mut history = j
            .history(now, cycles, i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
            .map_err(RuntimeError::journal("reading the journal's history"))?;
        if self.cfg.predict.act {
            let since = now.saturating_sub(i64::try_from(self.cfg.predict.window.as_millis()).unwrap_or(i64::MAX));
            history.samples = j.samples(since, MAX_SAMPLES).map_err(RuntimeError::journal("reading metric history"))?;
        }
        Ok(history)
    }

    /// Snapshot and analysis, touching nothing. Reads the journal's history
    /// if a journal exists; never creates one.
    ///
    /// # Errors
    /// The source fails, or the journal cannot be read.
    pub fn analyze(&self) -> Result<(Snapshot, Analysis), RuntimeError> {
        let now = now_ms();
        let journal = self.existing_journal()?;
        let history = self.history(journal.as_ref(), now)?;
        let started = Instant::now();
        let snapshot = self.snapshot(now)?;
        tracing::info!(
            dir = %self.target,
            agents = snapshot.agents.len(),
            queue = snapshot.work_queue_size,
            warnings = snapshot.warnings.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Snapshot taken."
        );
        let analysis = steward_core::analyze(&snapshot, &history, &self.cfg, self.policy.as_ref(), &cycle_id(now), now);
        Ok((snapshot, analysis))
    }

    /// Takes the lock on the target: in the lock directory when it exists,
    /// else in the state directory.
    ///
    /// # Errors
    /// [`RuntimeError::LockBusy`] when another process holds it; a wrong
    /// target; I/O errors.
    pub fn lock(&self) -> Result<TargetLock, RuntimeError> {
        self.source.check()?;
        let dir = match &self.lock_dir {
            Some(d) if d.is_dir() => d.as_path(),
            _ => self.state_dir.as_path(),
        };
        TargetLock::acquire(dir, &self.target)
    }

    /// One cycle: analyze, guard, journal, act, journal. Takes the lock
    /// unless dry-run (a dry run touches nothing, not even the lock file).
    ///
    /// # Errors
    /// The lock is busy, the source fails, or the journal cannot be
    /// written (then nothing is executed).
    pub fn execute(&self, opts: &RunOptions) -> Result<CycleReport, RuntimeError> {
        self.source.check()?;
        let dry_run = opts.dry_run || self.cfg.auto.dry_run;
        // With HA too: the lease excludes other replicas, the lock a steward
        // without `ha` (held for this cycle only, so a paused replica can hold
        // it for one cycle at most).
        let lock = if dry_run { None } else { Some(self.lock()?) };
        self.cycle(opts, lock.as_ref())
    }

    /// One cycle under a lock the caller holds for longer (the loop, the
    /// daemon): no other executor can slip in between cycles.
    ///
    /// # Errors
    /// As [`Engine::execute`], less the lock.
    pub fn execute_locked(&self, opts: &RunOptions, lock: &TargetLock) -> Result<CycleReport, RuntimeError> {
        self.source.check()?;
        self.cycle(opts, Some(lock))
    }

    /// Checks the target before anything is created.
    pub(crate) fn check_target(&self) -> Result<(), RuntimeError> {
        Ok(self.source.check()?)
    }

    fn cycle(&self, opts: &RunOptions, lock: Option<&TargetLock>) -> Result<CycleReport, RuntimeError> {
        let _gate = lock_ignoring_poison(&self.cycle_gate);
        let dry_run = opts.dry_run || self.cfg.auto.dry_run;
        if !dry_run {
            match &self.leadership {
                Some(l) if !l.is_leader() => {
                    return Err(RuntimeError::NotLeader(format!("the lease {} is held by another replica", l.name())))
                }
                Some(_) => {}
                None if lock.is_none() => return Err(RuntimeError::Incomplete("the target lock for a cycle that acts")),
                None => {}
            }
        }
        let started = Instant::now();
        let mut journal_guard = self.journal()?;
        let Some(journal) = journal_guard.as_mut() else { return Err(RuntimeError::Incomplete("an open journal")) };
        if !dry_run {
            // Under the lock: who asked, and with which config, before anything acts.
            self.flush_pending_audit(journal)?;
        }
        let now = now_ms();
        let mut history = self.history(Some(journal), now)?;
        let snapshot = self.snapshot(now)?;
        // Agents' readings join the history now (the planner sees them this
        // cycle) and the journal (later cycles see the trend).
        let samples: Vec<Sample> = snapshot
            .agents
            .iter()
            .flat_map(|a| {
                a.metrics.iter().map(|(metric, value)| Sample {
                    ts: a.last_seen.unwrap_or(now),
                    component: a.id.clone(),
                    metric: metric.clone(),
                    value: *value,
                })
            })
            .collect();
        if !dry_run {
            // Under the lock no other cycle runs: decisions still without an
            // outcome belong to a cycle that was killed mid-action.
            let interrupted = journal.mark_interrupted(now).map_err(RuntimeError::journal("marking interrupted decisions"))?;
            if !interrupted.is_empty() {
                tracing::warn!(decisions = ?interrupted, "Decisions of an interrupted cycle marked interrupted.");
            }
            journal.record_samples(&samples).map_err(RuntimeError::journal("journaling agent metrics"))?;
        }
        history.samples.extend(samples);
        tracing::info!(
            dir = %self.target,
            agents = snapshot.agents.len(),
            queue = snapshot.work_queue_size,
            claims = snapshot.claims.len(),
            warnings = snapshot.warnings.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Snapshot taken."
        );
        let id = cycle_id(now);
        let analysis = steward_core::analyze(&snapshot, &history, &self.cfg, self.policy.as_ref(), &id, now);

        let mut auto = self.cfg.auto.clone();
        auto.dry_run = dry_run;
        if let Some(n) = opts.max_decisions {
            auto.max_decisions = n;
        }
        if let Some(x) = opts.min_confidence {
            auto.min_confidence = x;
        }
        let cx = GuardContext {
            auto: &auto,
            history: &history,
            now,
            recommended_agents: analysis.recommended_agents,
            force_confidence: opts.force_confidence,
            target_exists: snapshot.target_exists,
        };
        let mut guarded = guard::apply(analysis.decisions.clone(), &cx);
        // Every decision carries the token it was made under.
        if let Some(token) = self.leadership.as_ref().and_then(Fence::token).filter(|_| !dry_run) {
            for g in &mut guarded {
                g.decision.parameters.insert("fencing_token".into(), serde_json::json!(token));
            }
        }
        // A dry run reports the verdict a real run would give: a decision
        // no actuator can carry out would be skipped, not executed.
        for g in &mut guarded {
            if let Verdict::Skip { guard: GuardKind::DryRun, reason } = &mut g.verdict {
                if let Some(why) = self.unactionable(&g.decision.action) {
                    *reason = format!("would be skipped: {why}");
                }
            }
        }

        // Journal first: the cycle, then every decision with its verdict.
        let m = &analysis.assessment.metrics;
        journal
            .record_cycle(&CycleStart {
                id: &id,
                ts: now,
                policy: self.policy.name(),
                dry_run,
                metrics: m,
                recommended_agents: analysis.recommended_agents,
                warnings: snapshot.warnings.len(),
            })
            .map_err(RuntimeError::journal("journaling the cycle"))?;
        // All of them in one transaction: on disk (and signed) before any acts.
        let records: Vec<(&Decision, VerdictRecord<'_>)> = guarded
            .iter()
            .map(|g| {
                let (verdict, guard, reason) = match &g.verdict {
                    Verdict::Execute => ("execute", None, None),
                    Verdict::Skip { guard, reason } => ("skip", Some(guard.as_str()), Some(reason.as_str())),
                };
                (&g.decision, VerdictRecord { verdict, guard, reason, notes: &g.notes })
            })
            .collect();
        journal
            .record_decisions(&id, now, &records)
            .map_err(RuntimeError::journal(format!("journaling the decisions of cycle {id}; nothing was executed")))?;

        let mut report = CycleReport {
            cycle_id: id.clone(),
            timestamp: format_rfc3339(now),
            policy: self.policy.name(),
            dry_run,
            metrics: m.clone(),
            decisions_generated: guarded.len(),
            executed: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            warnings: snapshot.warnings.iter().map(ToString::to_string).collect(),
            target_exists: snapshot.target_exists,
            duration_ms: 0,
            decisions: None,
            workers_left_running: None,
        };
        for g in &guarded {
            let (outcome, events) = self.act(g)?;
            for e in &events {
                log_fleet_event(e);
                journal
                    .record_event(e.ts, e.kind, &e.agent, &e.message, Some(&g.decision.id))
                    .map_err(RuntimeError::journal("journaling a fleet event"))?;
            }
            journal
                .record_outcome(&g.decision.id, now_ms(), &outcome)
                .map_err(RuntimeError::journal(format!("journaling the outcome of {}", g.decision.id)))?;
            let (decision_id, kind) = (g.decision.id.clone(), g.decision.kind.to_string());
            match outcome.result {
                OutcomeResult::Executed => {
                    report.executed.push(Executed { decision_id, kind, result: outcome.reason, duration_ms: outcome.duration_ms })
                }
                OutcomeResult::Failed => report.failed.push(Failed { decision_id, kind, error: outcome.reason }),
                OutcomeResult::Skipped | OutcomeResult::Interrupted => {
                    report.skipped.push(Skipped { decision_id, kind, reason: outcome.reason });
                }
            }
        }
        journal.finish_cycle(&id, now_ms()).map_err(RuntimeError::journal("journaling the end of the cycle"))?;
        if !dry_run {
            // The journal's owner names the target the same way whoever runs the
            // cycle (a relative path from the CLI, an absolute one from `start`).
            self.desk.after_cycle(journal, &self.owner, &report, &guarded, now_ms());
            self.retain(journal, now);
        }
        tracing::info!(
            cycle = %id,
            // Rounded for people; the journal and JSON keep full precision.
            health = (report.metrics.health_score * 1000.0).round() / 1000.0,
            executed = report.executed.len(),
            failed = report.failed.len(),
            skipped = report.skipped.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Cycle done."
        );
        report.decisions = Some(guarded.into_iter().map(|g| g.decision).collect());
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(exporter) = &self.exporter {
            let previous = lock_ignoring_poison(&self.last_score).replace(report.metrics.health_score);
            exporter.export_cycle(&report, now, now_ms(), previous);
        }
        Ok(report)
    }

    /// Why no actuator would carry out this action, if none would (a dry
    /// run says so instead of "would execute"). A fleet not built yet is
    /// asked after it is built; a supervisor handles every fleet action.
    fn unactionable(&self, action: &Action) -> Option<String> {
        if let Action::Advisory { .. } = action {
            return Some("advisory: no actuator changes anything".into());
        }
        if !action.is_fleet() {
            let handled = lock_ignoring_poison(&self.actuators).iter().any(|a| a.handles(action));
            return (!handled).then(|| format!("no actuator handles {} actions", action_kind(action)));
        }
        match &*lock_ignoring_poison(&self.fleet) {
            FleetSlot::Pending(_) | FleetSlot::Built(Fleet::Supervisor(_)) => None,
            FleetSlot::Built(Fleet::Actuator(a)) if a.handles(action) => None,
            FleetSlot::Built(other) => Some(unhandled(other)),
        }
    }

    /// Acts on one guarded decision. Returns the outcome and the fleet
    /// events it caused, which the caller journals with the journal it holds.
    pub(crate) fn act(&self, g: &Guarded) -> Result<(Outcome, Vec<FleetEvent>), RuntimeError> {
        let skipped = |reason: String| Outcome { result: OutcomeResult::Skipped, reason, duration_ms: 0 };
        if let Verdict::Skip { guard, reason } = &g.verdict {
            return Ok((skipped(format!("{}: {reason}", guard.as_str())), Vec::new()));
        }
        let action = &g.decision.action;
        if let Action::Advisory { note } = action {
            return Ok((skipped(format!("advisory: no actuator changes anything for {} ({note})", g.decision.kind)), Vec::new()));
        }
        // Fenced: checked against the lease just before acting. A replica
        // that lost the lease (paused, partitioned) refuses, and says so.
        if let Some(l) = &self.leadership {
            if let Err(why) = l.check() {
                tracing::warn!(decision = %g.decision.id, reason = %why, "Action refused: fenced.");
                return Ok((skipped(format!("fenced: {why}")), Vec::new()));
            }
        }
        if !action.is_fleet() {
            let mut actuators = lock_ignoring_poison(&self.actuators);
            let outcome = match actuators.iter_mut().find(|a| a.handles(action)) {
                Some(a) => apply_with(a.as_mut(), g),
                None => skipped(format!("no actuator handles {} actions", action_kind(action))),
            };
            return Ok((outcome, Vec::new()));
        }
        let mut guard = self.fleet()?;
        let FleetSlot::Built(fleet) = &mut *guard else { return Err(RuntimeError::Incomplete("a built fleet")) };
        let outcome = match &mut *fleet {
            Fleet::Supervisor(sup) => apply_with(sup.as_mut(), g),
            Fleet::Actuator(a) if a.handles(action) => apply_with(a.as_mut(), g),
            other => skipped(unhandled(other)),
        };
        let events = match fleet {
            Fleet::Supervisor(sup) => sup.take_events(),
            _ => Vec::new(),
        };
        Ok((outcome, events))
    }

    /// The fleet's size as the fleet itself knows it.
    ///
    /// # Errors
    /// The fleet cannot be built.
    pub(crate) fn fleet_size(&self, now: UnixMs) -> Result<FleetSize, RuntimeError> {
        let mut guard = self.fleet()?;
        Ok(match &mut *guard {
            FleetSlot::Built(Fleet::Supervisor(sup)) => {
                sup.tick(now);
                FleetSize::Exact(sup.running())
            }
            FleetSlot::Built(Fleet::Actuator(_)) => FleetSize::FromAgentRecords,
            FleetSlot::Built(Fleet::None) | FleetSlot::Pending(_) => FleetSize::NoFleet,
        })
    }

    /// Holds the cycle gate: no cycle runs while the guard lives.
    pub(crate) fn gate(&self) -> MutexGuard<'_, ()> {
        lock_ignoring_poison(&self.cycle_gate)
    }
}

/// What the fleet knows of its own size.
pub(crate) enum FleetSize {
    /// A supervisor's running workers, after a tick.
    Exact(u32),
    /// Only the agent records can tell.
    FromAgentRecords,
    /// There is no fleet actuator.
    NoFleet,
}

/// Logs a fleet event: trouble as a warning, the rest as information.
pub(crate) fn log_fleet_event(e: &FleetEvent) {
    if matches!(e.kind, "crashed" | "crash_loop" | "start_failed" | "killing" | "registry_failed" | "gone") {
        tracing::warn!(agent = %e.agent, kind = e.kind, message = %e.message, "Fleet event.");
    } else {
        tracing::info!(agent = %e.agent, kind = e.kind, message = %e.message, "Fleet event.");
    }
}

/// Applies an action and turns the result into an outcome.
fn apply_with(actuator: &mut dyn Actuator, g: &Guarded) -> Outcome {
    let started = Instant::now();
    let result = actuator.apply(&g.decision.action, now_ms());
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(what) => {
            tracing::info!(decision = %g.decision.id, kind = %g.decision.kind, %what, "Executed.");
            Outcome { result: OutcomeResult::Executed, reason: what, duration_ms }
        }
        Err(e) => {
            let error = error_chain(&e);
            tracing::warn!(decision = %g.decision.id, kind = %g.decision.kind, %error, "Action failed.");
            Outcome { result: OutcomeResult::Failed, reason: error, duration_ms }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use steward_actuators::SupervisorConfig;
    use steward_core::decision::Action;
    use steward_sources::{CoordinationConfig, CoordinationSource};

    use super::*;
    use crate::fleet::{FleetConfig, ItemLimits};

    /// Regression (found moving the loop into this crate): `tick` held the
    /// fleet lock while it waited for the journal, and a cycle holds the
    /// journal while it waits for the fleet, so a tick and an HTTP
    /// `POST /execute` cycle could deadlock. `tick` must let go of the fleet
    /// before it journals the fleet's events.
    #[test]
    fn a_tick_never_holds_the_fleet_while_it_waits_for_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, state) = (tmp.path().join("coordination"), tmp.path().join("state"));
        let cfg = SupervisorConfig {
            command: vec!["sleep".into(), "30".into()],
            drain_timeout: Duration::from_millis(200),
            ..SupervisorConfig::default()
        };
        let items = ItemLimits { max_attempts: 3, max_item_bytes: 1 << 20 };
        let mut fleet = FleetConfig::Supervisor(cfg).build(&dir, &state, items).unwrap();
        let Fleet::Supervisor(sup) = &mut fleet else { unreachable!("a supervisor config builds a supervisor") };
        // A started worker leaves an event for the next tick to journal.
        sup.apply(&Action::Scale { from: 0, to: 1 }, now_ms()).unwrap();
        let engine = Engine::builder(EngineConfig::default())
            .source(CoordinationSource::new(CoordinationConfig { dir, ..CoordinationConfig::default() }))
            .fleet(fleet)
            .state_dir(&state)
            .build()
            .unwrap();
        std::thread::scope(|scope| {
            // As a cycle does: hold the journal.
            let journal = engine.journal().unwrap();
            let ticking = scope.spawn(|| engine.tick());
            std::thread::sleep(Duration::from_millis(300));
            {
                let slot = engine.fleet.try_lock().expect("the fleet must be free while the tick waits for the journal");
                let FleetSlot::Built(Fleet::Supervisor(sup)) = &*slot else { unreachable!("the fleet was built") };
                assert_eq!(sup.running(), 1);
            }
            drop(journal);
            ticking.join().unwrap().unwrap();
        });
        let events = engine.existing_journal().unwrap().unwrap().recent_events(10).unwrap();
        assert!(events.iter().any(|e| e.kind == "started"), "the tick journaled the start: {events:?}");
        engine.shutdown();
        assert!(engine.fleet_workers().is_empty(), "the worker was stopped");
    }
}
