//! The built-in worker (`steward worker`): claims items and works them,
//! through the claim protocol's transitions (`steward_protocol`) and
//! nothing else.
//!
//! It claims a pending item, works it (simulated, or by running the
//! user's program with the item on stdin), and completes it, retries it
//! (dead-lettered at `max_attempts`), or releases it untouched when its
//! own handler cannot run. A claim whose completion already exists is
//! adopted, never worked twice. The agent file carries a heartbeat every
//! `heartbeat_interval`, and says at once when the worker turns busy.
//! When `stop` is set, the current item is finished, then the worker exits.

mod exec;
mod queue;

pub use queue::run_queue;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use steward_core::time::format_rfc3339;
use steward_protocol::{Claim, Completion, CoordinationDir, Durability, Finished, ItemOutcome, ProtocolError};

pub use steward_core::sim::{Rng, ServiceTime};

use crate::clock::now_ms;
use exec::{exec_item, ItemError};

/// How the worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This agent's id; its file is `agent_<id>.json` (the id once when it starts with `agent_`).
    pub id: String,
    /// Simulated time per item (when `exec` is not set).
    pub service: ServiceTime,
    /// Fraction of simulated items that fail, 0..1.
    pub fail_rate: f64,
    /// A program to run per item instead of simulating: the item's JSON on stdin, exit 0 = done.
    pub exec: Option<Vec<String>>,
    /// Time allowed per `exec` run before it is killed and the item failed.
    pub exec_timeout: Duration,
    /// Time between heartbeats in the agent file.
    pub heartbeat_interval: Duration,
    /// Attempts before an item is dead-lettered (an item's own `max_attempts` wins).
    pub max_attempts: u32,
    /// Exit after this many items (0 = no limit).
    pub max_items: u64,
    /// Exit after this long without work (`None`: wait for work forever).
    pub exit_when_idle: Option<Duration>,
    /// Seed of the simulation's random numbers (default: from the id and the clock).
    pub seed: Option<u64>,
    /// Append a line here for each item this worker finished but found
    /// already completed (a duplicate execution).
    pub ledger: Option<PathBuf>,
    /// fsync every claim and completion before it becomes visible.
    pub fsync: bool,
    /// The largest item read (`coordination.max_item_bytes`); a larger one
    /// is dead-lettered with the reason.
    pub max_item_bytes: u64,
    /// Items claimed at once from a real queue (`--batch`; the coordination
    /// directory claims one at a time).
    pub batch: usize,
}

impl WorkerOptions {
    /// Options with the defaults of `steward worker`, for an agent id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            service: ServiceTime::Const(0.0),
            fail_rate: 0.0,
            exec: None,
            exec_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(2),
            max_attempts: 3,
            max_items: 0,
            exit_when_idle: None,
            seed: None,
            ledger: None,
            fsync: false,
            max_item_bytes: steward_protocol::DEFAULT_MAX_ITEM_BYTES,
            batch: 16,
        }
    }
}

/// Why the worker did not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The options cannot work (bad input).
    #[error("{0}")]
    BadOption(String),
    /// The coordination directory does not exist (bad input).
    #[error("the coordination directory {0} does not exist")]
    NoDirectory(PathBuf),
    /// The agent file could not be written.
    #[error("writing the agent file of {agent}")]
    AgentFile {
        /// The agent.
        agent: String,
        /// Why.
        #[source]
        source: ProtocolError,
    },
    /// A step of the claim protocol failed.
    #[error("{what} item {item}")]
    Protocol {
        /// What was being done.
        what: &'static str,
        /// The item.
        item: String,
        /// Why.
        #[source]
        source: ProtocolError,
    },
    /// A real queue refused a step (not a lost connection: those are retried).
    #[error("{what} on the queue")]
    Queue {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: steward_queue::QueueError,
    },
    /// The handler cannot run at all; the item was put back untouched.
    #[error("{why}; item {item} was put back untouched")]
    HandlerUnusable {
        /// Why the handler cannot run.
        why: String,
        /// The item put back.
        item: String,
    },
}

impl WorkerError {
    /// Whether the error is in what the user asked for.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::BadOption(_) | Self::NoDirectory(_))
    }
}

/// The ledger line that marks a duplicate execution starts with this word.
const LEDGER_DUPLICATE: &str = "duplicate";

/// Duplicate executions recorded in a ledger (`WorkerOptions::ledger`);
/// 0 when it does not exist.
pub fn ledger_duplicates(ledger: &Path) -> u64 {
    fs::read_to_string(ledger).map_or(0, |t| t.lines().filter(|l| l.split(' ').next() == Some(LEDGER_DUPLICATE)).count() as u64)
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Items completed.
    pub processed: u64,
    /// Items failed (retried or dead-lettered).
    pub failures: u64,
    /// Items finished but found already completed by another agent.
    pub duplicates: u64,
}

/// Checks the options every worker shares, before anything is claimed.
fn validate(opts: &WorkerOptions) -> Result<(), WorkerError> {
    if !(0.0..=1.0).contains(&opts.fail_rate) {
        return Err(WorkerError::BadOption(format!("--fail-rate {} must be between 0 and 1", opts.fail_rate)));
    }
    // A handler that cannot run would fail every item into the dead letters:
    // refuse before claiming anything.
    if let Some(program) = opts.exec.as_ref().and_then(|a| a.first()) {
        if !steward_actuators::process::runnable(program) {
            return Err(WorkerError::BadOption(format!("--exec: {program:?} is not an executable file or a program on PATH")));
        }
    }
    if opts.id.is_empty() || opts.id.contains('/') || opts.id.contains('\0') {
        return Err(WorkerError::BadOption(format!("--id {:?} must be a plain name", opts.id)));
    }
    Ok(())
}

/// The simulation's seed: given, else from the id, the clock and the pid.
fn seed_of(opts: &WorkerOptions) -> u64 {
    opts.seed.unwrap_or_else(|| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in opts.id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h ^ now_ms().unsigned_abs() ^ u64::from(std::process::id())
    })
}

/// Appends a duplicate execution to the ledger, if there is one.
fn record_duplicate(opts: &WorkerOptions, id: &str) {
    let Some(path) = &opts.ledger else { return };
    let line = format!("{LEDGER_DUPLICATE} {id} {} {}\n", opts.id, format_rfc3339(now_ms()));
    let written = steward_protocol::open_append(path).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "Could not write the ledger.");
    }
}

/// Works one item: `Ok(result)` on success, or why it failed. `beat` is
/// called through long simulated items.
fn run_item(
    opts: &WorkerOptions,
    rng: &mut Rng,
    item: &Map<String, Value>,
    beat: &mut dyn FnMut(Option<&str>),
) -> Result<Option<Value>, ItemError> {
    if let Some(argv) = &opts.exec {
        return exec_item(argv, item, opts.exec_timeout);
    }
    // A heavy-tailed draw can overflow to infinity: no item takes more than a day.
    let secs = opts.service.sample(rng).clamp(0.0, 86_400.0);
    if secs > 0.0 {
        // Keep the heartbeat going through long items.
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(opts.heartbeat_interval));
            beat(item.get("id").and_then(Value::as_str));
        }
    }
    if opts.fail_rate > 0.0 && rng.unit() < opts.fail_rate {
        return Err(ItemError::Failed("simulated failure".into()));
    }
    Ok(None)
}

struct Worker {
    queue: CoordinationDir,
    /// Entries named like items that are not regular files, already warned about.
    refused: std::collections::HashSet<String>,
    /// Shared, so working an item borrows it while the heartbeat writes.
    opts: std::sync::Arc<WorkerOptions>,
    rng: Rng,
    started_at: i64,
    stats: WorkerStats,
    last_beat: Option<Instant>,
    last_status: &'static str,
    phase: &'static str,
}

/// Runs the worker on `dir` until `stop` is set, `max_items` are done, or
/// it has been idle for `exit_when_idle`. Its agent file is removed when it
/// ends, whatever ended it.
///
/// # Errors
/// Bad options or a missing directory ([`WorkerError::is_bad_input`]), an
/// agent file that cannot be written, a protocol step that failed, or a
/// handler that cannot run.
pub fn run(dir: &Path, opts: WorkerOptions, stop: &AtomicBool) -> Result<WorkerStats, WorkerError> {
    validate(&opts)?;
    if !dir.is_dir() {
        return Err(WorkerError::NoDirectory(dir.to_owned()));
    }
    let seed = seed_of(&opts);
    let mut w = Worker {
        queue: CoordinationDir::new(dir, opts.max_attempts).with_max_item_bytes(opts.max_item_bytes),
        refused: std::collections::HashSet::new(),
        rng: Rng::new(seed),
        started_at: now_ms(),
        stats: WorkerStats::default(),
        last_beat: None,
        last_status: "idle",
        phase: "initialization",
        opts: std::sync::Arc::new(opts),
    };
    w.beat("idle", None, true)?;
    w.phase = "active";
    let result = w.work(stop);
    // Whatever happened, leave no agent file claiming life: the agent is gone.
    w.phase = "decommissioning";
    w.queue.remove_agent(&w.opts.id);
    result?;
    let s = w.stats;
    tracing::info!(agent = %w.opts.id, processed = s.processed, failures = s.failures, duplicates = s.duplicates, "Worker stopped.");
    Ok(s)
}

impl Worker {
    fn beat(&mut self, status: &str, current: Option<&str>, force: bool) -> Result<(), WorkerError> {
        if !force && self.last_beat.is_some_and(|t| t.elapsed() < self.opts.heartbeat_interval) {
            return Ok(());
        }
        self.last_beat = Some(Instant::now());
        self.last_status = if status == "busy" { "busy" } else { "idle" };
        let body = json!({
            "id": self.opts.id,
            "status": status,
            "heartbeat": format_rfc3339(now_ms()),
            "started_at": format_rfc3339(self.started_at),
            "pid": std::process::id(),
            "capacity": 1,
            "lifecycle": self.phase,
            "current_work": current,
            "processed": self.stats.processed,
            "failures": self.stats.failures,
            "duplicates": self.stats.duplicates,
            "worker": "steward",
        });
        self.queue
            .write_agent(&self.opts.id, &body, Durability::Visible)
            .map_err(|source| WorkerError::AgentFile { agent: self.opts.id.clone(), source })
    }

    /// Ids of pending items, rotated by a random offset so workers that
    /// list at once do not all race for the same first file. Entries that
    /// are not regular files are never claimed, and warned about once.
    fn pending(&mut self) -> Vec<String> {
        let pending = self.queue.pending();
        for (name, kind) in pending.refused {
            if self.refused.insert(name.clone()) {
                tracing::warn!(agent = %self.opts.id, file = %name, kind, "Not a regular file; never claimed.");
            }
        }
        let mut ids = pending.ids;
        if !ids.is_empty() {
            let k = (self.rng.next_u64() % ids.len() as u64) as usize;
            ids.rotate_left(k);
        }
        ids
    }

    fn work(&mut self, stop: &AtomicBool) -> Result<(), WorkerError> {
        let mut idle_since = Instant::now();
        let mut poll = Duration::from_millis(10);
        while !stop.load(Ordering::SeqCst) {
            let ids = self.pending();
            let mut did = false;
            for id in ids {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if self.process(&id)? {
                    did = true;
                    let s = self.stats;
                    if self.opts.max_items != 0 && s.processed + s.failures >= self.opts.max_items {
                        return Ok(());
                    }
                }
                self.beat("busy", None, false)?;
            }
            if did {
                idle_since = Instant::now();
                poll = Duration::from_millis(10);
                continue;
            }
            self.beat("idle", None, false)?;
            if self.opts.exit_when_idle.is_some_and(|d| idle_since.elapsed() >= d) {
                return Ok(());
            }
            // Back off gently while idle: 10 ms up to 250 ms between listings.
            let until = Instant::now() + poll;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5).min(poll));
            }
            poll = (poll * 2).min(Duration::from_millis(250));
        }
        Ok(())
    }

    fn durability(&self) -> Durability {
        if self.opts.fsync {
            Durability::Flushed
        } else {
            Durability::Visible
        }
    }

    /// Claims and works one item; `Ok(false)` when another agent was faster.
    fn process(&mut self, id: &str) -> Result<bool, WorkerError> {
        let protocol = |what: &'static str| move |source| WorkerError::Protocol { what, item: id.to_owned(), source };
        let item = match self.queue.claim(id, &self.opts.id, now_ms(), self.durability()).map_err(protocol("claiming"))? {
            Claim::Lost => return Ok(false),
            Claim::AlreadyCompleted => return Ok(true),
            Claim::Poison(why) => {
                tracing::warn!(agent = %self.opts.id, item = %id, reason = %why, "Item dead-lettered as it was: nobody can work it.");
                self.stats.failures += 1;
                return Ok(true);
            }
            Claim::Won(item) => item,
        };
        // The agent file says what the agent holds as soon as it turns busy.
        let turning_busy = self.last_status != "busy";
        self.beat("busy", Some(id), turning_busy)?;

        let started = Instant::now();
        let outcome = match self.run_item(&item) {
            Err(ItemError::Fatal(why)) => {
                // Not the item's fault: put it back as it was, uncounted, and stop.
                let _ = self.queue.release(id);
                return Err(WorkerError::HandlerUnusable { why, item: id.to_owned() });
            }
            Err(ItemError::Failed(why)) => Err(why),
            Ok(r) => Ok(r),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(result) => {
                let done = Finished { agent: &self.opts.id, at: now_ms(), duration_ms, result };
                match self.queue.complete(id, item, done, self.durability()).map_err(protocol("completing"))? {
                    Completion::Recorded => self.stats.processed += 1,
                    Completion::Duplicate => {
                        self.stats.duplicates += 1;
                        self.record_duplicate(id);
                        tracing::warn!(agent = %self.opts.id, item = %id, "Item was already completed by another agent; kept the first record.");
                    }
                }
            }
            Err(why) => {
                self.stats.failures += 1;
                let outcome = self.queue.retry(id, &why, now_ms()).map_err(protocol("returning failed"))?;
                if let ItemOutcome::Kept(reason) = outcome {
                    tracing::warn!(agent = %self.opts.id, item = %id, %reason, "Failed item kept in place.");
                }
            }
        }
        Ok(true)
    }

    fn record_duplicate(&self, id: &str) {
        record_duplicate(&self.opts, id);
    }

    fn run_item(&mut self, item: &Map<String, Value>) -> Result<Option<Value>, ItemError> {
        let opts = std::sync::Arc::clone(&self.opts);
        let mut rng = std::mem::replace(&mut self.rng, Rng::new(0));
        let r = run_item(&opts, &mut rng, item, &mut |current| {
            let _ = self.beat("busy", current, false);
        });
        self.rng = rng;
        r
    }
}
