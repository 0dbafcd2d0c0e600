//! The driver of one cycle: snapshot → analyze → guard → journal → act.
//!
//! This is where the layers meet. Everything above the actuators is the
//! pure core; this module supplies the clock, the files and the journal,
//! and keeps the order that makes the engine safe: every decision and its
//! verdict is journaled before any action starts, and every outcome after.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use steward_actuators::supervisor::FleetEvent;
use steward_actuators::{Actuator, CommandActuator, CoordinationActuator, Supervisor, SupervisorContext, WebhookActuator};
use steward_core::config::EngineConfig;
use steward_core::decision::{Action, Decision, Outcome, OutcomeResult};
use steward_core::guard::{self, GuardContext, Guarded, Verdict};
use steward_core::history::{History, Sample};
use steward_core::policy::{self, Policy};
use steward_core::snapshot::Snapshot;
use steward_core::time::{format_rfc3339, UnixMs};
use steward_core::Analysis;
use steward_sources::{CoordinationSource, Source};
use steward_store::{CycleStart, Journal, VerdictRecord, JOURNAL_FILE};

use crate::config::{Config, FleetConfig};

/// Most metric readings loaded for failure prediction per cycle.
const MAX_SAMPLES: usize = 200_000;

/// The lock file's name inside the coordination directory.
pub const LOCK_FILE: &str = ".steward.lock";

/// The clock, read here and nowhere below.
pub fn now_ms() -> UnixMs {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A cycle id: time-sortable and unique (`20261123T134400123Z-9f3a`).
pub fn cycle_id(now: UnixMs) -> String {
    use std::hash::{BuildHasher, Hasher};
    let stamp: String = format_rfc3339(now).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    // RandomState is seeded per process: enough to tell apart two cycles in
    // one millisecond (which the lock already prevents on one target).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{stamp}-{:04x}", h.finish() & 0xffff)
}

/// The fleet actuator, as configured.
pub enum Fleet {
    /// No fleet actuator: scale and restart decisions are skipped, saying so.
    None,
    /// Local worker processes.
    Supervisor(Box<Supervisor>),
    /// A command or webhook.
    Other(Box<dyn Actuator>),
}

/// Everything a cycle needs, built once from the config.
pub struct Engine {
    /// The loaded config.
    pub config: Config,
    /// Its pure part.
    pub engine: EngineConfig,
    source: CoordinationSource,
    policy: Box<dyn Policy + Send + Sync>,
    /// Built on first use: `analyze` and `status` never start workers.
    fleet: Mutex<Option<Fleet>>,
    /// Opened on first write, then kept.
    journal: Mutex<Option<Journal>>,
    /// Held for a whole cycle: the loop and `POST /execute` never run two
    /// cycles on one target at once.
    cycle_gate: Mutex<()>,
    /// Telemetry records received over OTLP, with when, for the window.
    ingested: Mutex<std::collections::VecDeque<(UnixMs, u64)>>,
    /// Spans out, when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    exporter: Option<crate::otel::Exporter>,
    /// The last cycle's health score, for `system_improvement`.
    last_score: Mutex<Option<f64>>,
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these half-updated in a way that
    // matters more than stopping would: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One-run overrides from `execute` flags.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--max N`.
    pub max_decisions: Option<u32>,
    /// `--min-confidence X`.
    pub min_confidence: Option<f64>,
    /// `--force-confidence X`.
    pub force_confidence: Option<f64>,
}

/// What one cycle did (the `execute --format json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// The cycle's id.
    pub cycle_id: String,
    /// When it ran.
    pub timestamp: String,
    /// The policy that decided.
    pub policy: &'static str,
    /// Whether it touched nothing.
    pub dry_run: bool,
    /// The cycle's metrics.
    pub metrics: steward_core::assess::Metrics,
    /// How many decisions the policy made.
    pub decisions_generated: usize,
    /// Decisions whose action ran and succeeded.
    pub executed: Vec<Executed>,
    /// Decisions whose action ran and failed.
    pub failed: Vec<Failed>,
    /// Decisions a guard (or a missing actuator) kept from running.
    pub skipped: Vec<Skipped>,
    /// Source warnings.
    pub warnings: Vec<String>,
    /// Whether the coordination directory exists.
    pub target_exists: bool,
    /// How long the cycle took, in milliseconds.
    pub duration_ms: u64,
    /// Every decision in full (with `--verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Decision>>,
}

/// An executed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the actuator did.
    pub result: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// A failed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it failed.
    pub error: String,
}

/// A skipped decision.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The decision.
    pub decision_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it did not run.
    pub reason: String,
}

/// Another executor holds the lock on this target.
#[derive(Debug, thiserror::Error)]
#[error("another steward{holder} is already executing on {dir}; this one did nothing")]
pub struct LockBusy {
    /// Who holds it, as far as the lock file says.
    pub holder: String,
    /// The target.
    pub dir: String,
}

/// An exclusive lock on a target; released when dropped.
pub struct TargetLock {
    _file: File,
}

impl Engine {
    /// Builds the engine from a validated config.
    pub fn new(config: Config) -> Self {
        let engine = config.engine();
        let source = CoordinationSource::new(config.coordination.clone());
        let policy = policy::builtin(config.auto.policy);
        Self {
            config,
            engine,
            source,
            policy,
            fleet: Mutex::new(None),
            journal: Mutex::new(None),
            cycle_gate: Mutex::new(()),
            ingested: Mutex::new(std::collections::VecDeque::new()),
            exporter: crate::otel::Exporter::from_env(),
            last_score: Mutex::new(None),
        }
    }

    /// Counts telemetry records received over OTLP into the telemetry volume
    /// of the cycles within `coordination.telemetry_window`.
    pub fn ingest(&self, records: u64) {
        lock_ignoring_poison(&self.ingested).push_back((now_ms(), records));
    }

    /// The one place snapshots are taken: the directory, plus telemetry
    /// records received over OTLP within `telemetry_window`.
    fn snapshot(&self, now: UnixMs) -> Result<Snapshot> {
        let mut snapshot = self.source.snapshot(now)?;
        let window = i64::try_from(self.config.coordination.telemetry_window.as_millis()).unwrap_or(i64::MAX);
        snapshot.telemetry_volume += self.ingested_since(now.saturating_sub(window));
        Ok(snapshot)
    }

    fn ingested_since(&self, since: UnixMs) -> u64 {
        let mut q = lock_ignoring_poison(&self.ingested);
        while q.front().is_some_and(|(t, _)| *t < since) {
            q.pop_front();
        }
        q.iter().map(|(_, n)| n).sum()
    }

    /// Sends the spans still queued (at exit).
    pub fn flush_telemetry(&self) {
        if let Some(e) = &self.exporter {
            e.flush();
        }
    }

    /// The journal, opened (and the state directory created) on first use.
    fn journal(&self) -> Result<MutexGuard<'_, Option<Journal>>> {
        let mut guard = lock_ignoring_poison(&self.journal);
        if guard.is_none() {
            let state_dir = self.config.state_dir();
            fs::create_dir_all(&state_dir).with_context(|| format!("creating the state directory {}", state_dir.display()))?;
            *guard = Some(Journal::open(&self.journal_path()).context("opening the journal")?);
        }
        Ok(guard)
    }

    /// The fleet actuator, built on first use. Building a supervisor adopts
    /// the live workers recorded in the state directory.
    fn fleet(&self) -> Result<MutexGuard<'_, Option<Fleet>>> {
        let mut guard = lock_ignoring_poison(&self.fleet);
        if guard.is_none() {
            let fleet = match &self.config.fleet {
                FleetConfig::None => Fleet::None,
                FleetConfig::Supervisor(cfg) => {
                    let dir = self.coordination_dir();
                    fs::create_dir_all(dir).with_context(|| format!("creating the coordination directory {}", dir.display()))?;
                    let state = self.config.state_dir();
                    fs::create_dir_all(&state).with_context(|| format!("creating the state directory {}", state.display()))?;
                    // Workers may run elsewhere (fleet.cwd): give them absolute paths.
                    let absolute = |p: &Path| fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()));
                    let cx = SupervisorContext {
                        coordination_dir: absolute(dir)?,
                        state_dir: absolute(&state)?,
                        exe: std::env::current_exe().context("finding the steward executable for the built-in worker")?,
                        max_attempts: self.config.coordination.max_attempts,
                    };
                    Fleet::Supervisor(Box::new(Supervisor::new(cfg.clone(), cx, now_ms()).context("starting the supervisor")?))
                }
                FleetConfig::Command(cfg) => Fleet::Other(Box::new(CommandActuator::new(cfg.clone()))),
                FleetConfig::Webhook(cfg) => Fleet::Other(Box::new(WebhookActuator::new(cfg.clone()))),
            };
            *guard = Some(fleet);
        }
        Ok(guard)
    }

    /// Writes the supervisor's events to the journal.
    fn journal_fleet_events(&self, fleet: &mut Fleet, decision_id: Option<&str>) {
        let Fleet::Supervisor(sup) = fleet else { return };
        let events = sup.take_events();
        if events.is_empty() {
            return;
        }
        match self.journal() {
            Ok(guard) => {
                if let Some(j) = guard.as_ref() {
                    for e in &events {
                        log_fleet_event(e);
                        if let Err(err) = j.record_event(e.ts, e.kind, &e.agent, &e.message, decision_id) {
                            tracing::warn!(error = %crate::error_chain(&err), "Could not journal a fleet event.");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %crate::error_chain(err.as_ref()), "Could not journal fleet events."),
        }
    }

    /// Between cycles: lets the supervisor reap, replace crashed workers
    /// and escalate drains. Cheap when there is nothing to do.
    ///
    /// # Errors
    /// The fleet cannot be built.
    pub fn tick(&self) -> Result<()> {
        if !matches!(self.config.fleet, FleetConfig::Supervisor(_)) {
            return Ok(());
        }
        let mut guard = self.fleet()?;
        if let Some(fleet) = guard.as_mut() {
            if let Fleet::Supervisor(sup) = fleet {
                sup.tick(now_ms());
            }
            self.journal_fleet_events(fleet, None);
        }
        Ok(())
    }

    /// When steward stops: the supervisor's workers stop too (SIGTERM,
    /// `drain_timeout`, SIGKILL) unless `fleet.detach` is set.
    pub fn shutdown(&self) {
        let FleetConfig::Supervisor(cfg) = &self.config.fleet else { return };
        let mut guard = lock_ignoring_poison(&self.fleet);
        if let Some(fleet) = guard.as_mut() {
            if let Fleet::Supervisor(sup) = fleet {
                if cfg.detach {
                    tracing::info!(workers = sup.workers().len(), "Leaving the fleet running (fleet.detach).");
                    return;
                }
                sup.shutdown(cfg.drain_timeout, &now_ms);
            }
            self.journal_fleet_events(fleet, None);
        }
    }

    /// The supervisor's workers (id, pid), for views and tests.
    pub fn fleet_workers(&self) -> Vec<(String, u32)> {
        match lock_ignoring_poison(&self.fleet).as_ref() {
            Some(Fleet::Supervisor(sup)) => sup.workers(),
            _ => Vec::new(),
        }
    }

    /// The coordination directory.
    pub fn coordination_dir(&self) -> &Path {
        self.source.dir()
    }

    /// The journal's path.
    pub fn journal_path(&self) -> PathBuf {
        self.config.state_dir().join(JOURNAL_FILE)
    }

    /// History as the policy and guards need it.
    fn history(&self, journal: Option<&Journal>, now: UnixMs) -> Result<History> {
        let Some(j) = journal else {
            return Ok(History::default());
        };
        let a = &self.engine.auto;
        let window = a.scale_down_window.max(a.breaker_cooldown).max(a.scale_up_cooldown);
        let cycles = (self.engine.adaptive.rate_window as usize + 1).max(64);
        let mut history =
            j.history(now, cycles, i64::try_from(window.as_millis()).unwrap_or(i64::MAX)).context("reading the journal's history")?;
        if self.engine.predict.act {
            let since = now.saturating_sub(i64::try_from(self.engine.predict.window.as_millis()).unwrap_or(i64::MAX));
            history.samples = j.samples(since, MAX_SAMPLES).context("reading metric history")?;
        }
        Ok(history)
    }

    /// Snapshot and analysis, touching nothing. Reads the journal's history
    /// if a journal exists; never creates one.
    ///
    /// # Errors
    /// The directory cannot be listed, or the journal cannot be read.
    pub fn analyze(&self) -> Result<(Snapshot, Analysis)> {
        let now = now_ms();
        let journal = Journal::open_existing(&self.journal_path()).context("opening the journal")?;
        let history = self.history(journal.as_ref(), now)?;
        let started = Instant::now();
        let snapshot = self.snapshot(now)?;
        tracing::info!(
            dir = %self.coordination_dir().display(),
            agents = snapshot.agents.len(),
            queue = snapshot.work_queue_size,
            warnings = snapshot.warnings.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Snapshot taken."
        );
        let analysis = steward_core::analyze(&snapshot, &history, &self.engine, self.policy.as_ref(), &cycle_id(now), now);
        Ok((snapshot, analysis))
    }

    /// Takes the lock on the target: a file lock in the coordination
    /// directory (or the state directory while the coordination directory
    /// does not exist).
    ///
    /// # Errors
    /// [`LockBusy`] when another process holds it; I/O errors otherwise.
    pub fn lock(&self) -> Result<TargetLock> {
        self.check_target()?;
        let dir = if self.coordination_dir().is_dir() { self.coordination_dir().to_owned() } else { self.config.state_dir() };
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                let holder = who.split_whitespace().next().map(|pid| format!(" (pid {pid})")).unwrap_or_default();
                return Err(LockBusy { holder, dir: self.coordination_dir().display().to_string() }.into());
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        // Say who holds it, for the message the next one prints.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{} {}", std::process::id(), format_rfc3339(now_ms()));
        Ok(TargetLock { _file: file })
    }

    /// One cycle: analyze, guard, journal, act, journal. Takes the lock
    /// unless dry-run (a dry run touches nothing, not even the lock file).
    ///
    /// # Errors
    /// The lock is busy, the directory cannot be listed, or the journal
    /// cannot be written (then nothing is executed).
    pub fn execute(&self, opts: &RunOptions) -> Result<CycleReport> {
        self.check_target()?;
        let dry_run = opts.dry_run || self.engine.auto.dry_run;
        let lock = if dry_run { None } else { Some(self.lock()?) };
        self.cycle(opts, lock.as_ref())
    }

    /// A path that exists but is not a directory is bad input, found before
    /// anything (lock, state directory, journal) is created.
    fn check_target(&self) -> Result<()> {
        let dir = self.coordination_dir();
        if dir.exists() && !dir.is_dir() {
            return Err(steward_sources::SourceError::NotADirectory { path: dir.to_owned() }.into());
        }
        Ok(())
    }

    /// One cycle under a lock the caller holds for longer (`loop`, the
    /// daemon): another executor cannot slip in between cycles.
    ///
    /// # Errors
    /// As [`Engine::execute`], less the lock.
    pub fn execute_locked(&self, opts: &RunOptions, lock: &TargetLock) -> Result<CycleReport> {
        self.check_target()?;
        self.cycle(opts, Some(lock))
    }

    fn cycle(&self, opts: &RunOptions, lock: Option<&TargetLock>) -> Result<CycleReport> {
        let _gate = lock_ignoring_poison(&self.cycle_gate);
        let dry_run = opts.dry_run || self.engine.auto.dry_run;
        if !dry_run && lock.is_none() {
            anyhow::bail!("internal: a cycle that acts needs the target lock");
        }
        let started = Instant::now();
        let mut journal_guard = self.journal()?;
        let Some(journal) = journal_guard.as_mut() else { anyhow::bail!("internal: the journal is not open") };
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
            journal.record_samples(&samples).context("journaling agent metrics")?;
        }
        history.samples.extend(samples);
        tracing::info!(
            dir = %self.coordination_dir().display(),
            agents = snapshot.agents.len(),
            queue = snapshot.work_queue_size,
            claims = snapshot.claims.len(),
            warnings = snapshot.warnings.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Snapshot taken."
        );
        let id = cycle_id(now);
        let analysis = steward_core::analyze(&snapshot, &history, &self.engine, self.policy.as_ref(), &id, now);

        let mut auto = self.engine.auto.clone();
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
        };
        let guarded = guard::apply(analysis.decisions.clone(), &cx);

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
            .context("journaling the cycle")?;
        for g in &guarded {
            let (verdict, guard, reason) = match &g.verdict {
                Verdict::Execute => ("execute", None, None),
                Verdict::Skip { guard, reason } => ("skip", Some(guard.as_str()), Some(reason.as_str())),
            };
            journal
                .record_decision(&id, now, &g.decision, &VerdictRecord { verdict, guard, reason, notes: &g.notes })
                .with_context(|| format!("journaling decision {}; nothing was executed", g.decision.id))?;
        }

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
        };
        let mut coordination = CoordinationActuator::new(self.coordination_dir(), self.config.coordination.max_attempts);
        for g in &guarded {
            let (outcome, events) = self.act(g, &mut coordination)?;
            for e in &events {
                log_fleet_event(e);
                journal.record_event(e.ts, e.kind, &e.agent, &e.message, Some(&g.decision.id)).context("journaling a fleet event")?;
            }
            journal
                .record_outcome(&g.decision.id, now_ms(), &outcome)
                .with_context(|| format!("journaling the outcome of {}", g.decision.id))?;
            let (decision_id, kind) = (g.decision.id.clone(), g.decision.kind.to_string());
            match outcome.result {
                OutcomeResult::Executed => {
                    report.executed.push(Executed { decision_id, kind, result: outcome.reason, duration_ms: outcome.duration_ms })
                }
                OutcomeResult::Failed => report.failed.push(Failed { decision_id, kind, error: outcome.reason }),
                OutcomeResult::Skipped => report.skipped.push(Skipped { decision_id, kind, reason: outcome.reason }),
            }
        }
        journal.finish_cycle(&id, now_ms()).context("journaling the end of the cycle")?;
        tracing::info!(
            cycle = %id,
            health = report.metrics.health_score,
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

    /// Acts on one guarded decision. Returns the outcome and the fleet
    /// events it caused, which the caller journals with the journal it holds.
    fn act(&self, g: &Guarded, coordination: &mut CoordinationActuator) -> Result<(Outcome, Vec<FleetEvent>)> {
        let skipped = |reason: String| Outcome { result: OutcomeResult::Skipped, reason, duration_ms: 0 };
        if let Verdict::Skip { guard, reason } = &g.verdict {
            return Ok((skipped(format!("{}: {reason}", guard.as_str())), Vec::new()));
        }
        let action = &g.decision.action;
        if let Action::Advisory { note } = action {
            return Ok((skipped(format!("advisory: no actuator changes anything for {} ({note})", g.decision.kind)), Vec::new()));
        }
        if !action.is_fleet() {
            return Ok((apply_with(coordination, g), Vec::new()));
        }
        let mut guard = self.fleet()?;
        let outcome = match guard.as_mut() {
            None | Some(Fleet::None) => skipped("no fleet actuator configured".into()),
            Some(Fleet::Supervisor(sup)) => apply_with(sup.as_mut(), g),
            Some(Fleet::Other(a)) if a.handles(action) => apply_with(a.as_mut(), g),
            Some(Fleet::Other(a)) => skipped(format!("the {} actuator has nothing configured for this action", a.name())),
        };
        let events = match guard.as_mut() {
            Some(Fleet::Supervisor(sup)) => sup.take_events(),
            _ => Vec::new(),
        };
        Ok((outcome, events))
    }
}

/// Logs a fleet event: trouble as a warning, the rest as information.
fn log_fleet_event(e: &FleetEvent) {
    if matches!(e.kind, "crashed" | "crash_loop" | "start_failed" | "killing" | "registry_failed" | "gone") {
        tracing::warn!(agent = %e.agent, kind = e.kind, message = %e.message, "Fleet event.");
    } else {
        tracing::info!(agent = %e.agent, kind = e.kind, message = %e.message, "Fleet event.");
    }
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The new decision, linked to the original by `parameters.rollback_of`.
    pub decision: Decision,
    /// The decision rolled back.
    pub original: String,
    /// What the actuator did.
    pub result: String,
}

/// A rollback that must not happen, and why.
#[derive(Debug, thiserror::Error)]
#[error("refusing to roll back {id}: {why}")]
pub struct RollbackRefused {
    /// The decision.
    pub id: String,
    /// Why not.
    pub why: String,
}

impl Engine {
    /// Applies the recorded inverse of a decision, journaled as its own
    /// decision linked to the original.
    ///
    /// # Errors
    /// An unknown id (bad input), [`RollbackRefused`] when the inverse is
    /// missing or unsafe, a held lock, or a failed action.
    pub fn rollback(&self, id: &str) -> Result<RollbackReport> {
        self.rollback_under(id, None)
    }

    /// [`Engine::rollback`] under a lock the caller already holds (the daemon).
    ///
    /// # Errors
    /// As [`Engine::rollback`].
    pub fn rollback_locked(&self, id: &str, lock: &TargetLock) -> Result<RollbackReport> {
        self.rollback_under(id, Some(lock))
    }

    fn rollback_under(&self, id: &str, held: Option<&TargetLock>) -> Result<RollbackReport> {
        self.check_target()?;
        // An unknown id is bad input whether or not another steward holds the lock.
        let known = match Journal::open_existing(&self.journal_path()).context("opening the journal")? {
            Some(j) => j.decision(id).context("reading the journal")?.is_some(),
            None => false,
        };
        if !known {
            return Err(crate::UsageError(format!("no decision {id:?} in the journal {}", self.journal_path().display())).into());
        }
        let _own_lock = if held.is_none() { Some(self.lock()?) } else { None };
        let _gate = lock_ignoring_poison(&self.cycle_gate);
        let refuse = |why: String| anyhow::Error::new(RollbackRefused { id: id.to_owned(), why });
        let (original, already) = {
            let guard = self.journal()?;
            let Some(journal) = guard.as_ref() else { anyhow::bail!("internal: the journal is not open") };
            let entry = journal
                .decision(id)
                .context("reading the journal")?
                .ok_or_else(|| crate::UsageError(format!("no decision {id:?} in the journal {}", self.journal_path().display())))?;
            let already = journal
                .recent_events(10_000)
                .context("reading the journal")?
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
        let assessment = steward_core::assess::assess(&snapshot, &self.engine, now);
        // The supervisor knows its fleet exactly; other fleets are seen through agent files.
        let current = {
            let mut guard = self.fleet()?;
            match guard.as_mut() {
                None | Some(Fleet::None) => return Err(refuse("no fleet actuator configured (fleet.kind is none)".into())),
                Some(Fleet::Supervisor(sup)) => {
                    sup.tick(now);
                    sup.running()
                }
                Some(Fleet::Other(_)) => u32::try_from(assessment.metrics.active_agents).unwrap_or(u32::MAX),
            }
        };
        if current != left {
            return Err(refuse(format!(
                "the fleet has changed since: {current} agent(s) now, the decision left {left}; going to {back} from here would undo changes made after it"
            )));
        }
        let auto = &self.engine.auto;
        if back < auto.min_agents || back > auto.max_agents {
            return Err(refuse(format!("{back} agents is outside min_agents {} and max_agents {}", auto.min_agents, auto.max_agents)));
        }
        let kind =
            if back > left { steward_core::decision::DecisionType::ScaleUp } else { steward_core::decision::DecisionType::ScaleDown };
        let cycle = cycle_id(now);
        let decision = steward_core::decision::Proposal::scale(
            kind,
            100,
            1.0,
            left,
            back,
            format!("An operator rolled back {id}, restoring {back} agent(s)."),
        )
        .param("rollback_of", id)
        .into_decision(format!("{cycle}-01"));
        let guard = self.journal()?;
        let Some(journal) = guard.as_ref() else { anyhow::bail!("internal: the journal is not open") };
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
            .context("journaling the rollback")?;
        let notes = [format!("manual rollback of {id}")];
        journal
            .record_decision(&cycle, now, &decision, &VerdictRecord { verdict: "execute", guard: None, reason: None, notes: &notes })
            .context("journaling the rollback")?;
        let g = Guarded { decision: decision.clone(), verdict: Verdict::Execute, notes: notes.to_vec() };
        let mut coordination = CoordinationActuator::new(self.coordination_dir(), self.config.coordination.max_attempts);
        drop(guard);
        let (outcome, events) = self.act(&g, &mut coordination)?;
        let guard = self.journal()?;
        let Some(journal) = guard.as_ref() else { anyhow::bail!("internal: the journal is not open") };
        for e in &events {
            journal.record_event(e.ts, e.kind, &e.agent, &e.message, Some(&decision.id)).context("journaling a fleet event")?;
        }
        journal.record_outcome(&decision.id, now_ms(), &outcome).context("journaling the rollback's outcome")?;
        if outcome.result == OutcomeResult::Executed {
            journal
                .record_event(now_ms(), "rollback", id, &format!("rolled back by {}", decision.id), Some(&decision.id))
                .context("journaling the rollback")?;
        }
        journal.finish_cycle(&cycle, now_ms()).context("journaling the rollback")?;
        match outcome.result {
            OutcomeResult::Executed => Ok(RollbackReport { decision, original: id.to_owned(), result: outcome.reason }),
            _ => anyhow::bail!("rollback of {id} did not take effect: {}", outcome.reason),
        }
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
            let error = crate::error_chain(&e);
            tracing::warn!(decision = %g.decision.id, kind = %g.decision.kind, %error, "Action failed.");
            Outcome { result: OutcomeResult::Failed, reason: error, duration_ms }
        }
    }
}
