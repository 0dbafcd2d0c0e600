//! The orchestrator: runs collectors for queued tasks and checks they worked.
//!
//! - Tasks run by priority, oldest first inside a priority, up to
//!   `concurrency` at once. A dataset's `min_interval` spaces the starts of
//!   its own collector and never holds up another dataset's tasks.
//! - Each run has `task_timeout`; the whole run `max_runtime`. A collector
//!   still running at the end is killed (with everything it started) and
//!   its task requeued without counting an attempt.
//! - A task is done only when the inventory shows its key present and
//!   valid afterwards: an exit 0 that left the gap open is a failure.
//! - Failures retry after an exponential backoff with jitter; after
//!   `retries` retries the task is dead-lettered.
//! - Collectors run from their argv (no shell), in their own process
//!   group, with a clean environment (`PATH` kept) plus the configured
//!   variables and `STEWARD_TASK_*`; they die with the orchestrator if it
//!   is killed, and their output goes to the log.
//! - A task left running by an orchestrator that was killed is requeued by
//!   the next one, and so is one left by a run of this very process that
//!   stopped on an error; a task verified done is never run again.
//! - A collector's output is read until it ends, or for at most
//!   `OUTPUT_GRACE` after the collector exited: a process it left behind
//!   in a session of its own cannot hold the run.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use steward_actuators::process::{self, Signal};
use steward_core::reconcile::{Dataset, GapKind, OrchestratorConfig};
use steward_core::time::UnixMs;
use steward_store::{Journal, Task, TaskOutcome};

use crate::inventory::Inventory;

/// What went wrong with a run as a whole (a task failing is not an error).
#[derive(Debug, thiserror::Error)]
pub enum OrchestrateError {
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(#[from] steward_store::JournalError),
    /// A thread for a collector could not be started.
    #[error("starting a collector's thread: {0}")]
    Thread(std::io::Error),
}

/// What happened, for progress and logs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A collector started.
    Started {
        /// The task.
        task: Task,
        /// Its argv.
        argv: Vec<String>,
    },
    /// A run ended.
    Finished {
        /// The task, as it was when it started.
        task: Task,
        /// How it ended.
        outcome: TaskOutcome,
        /// What happened, in words.
        note: String,
        /// How long it took.
        secs: f64,
    },
    /// Tasks left running by an orchestrator that stopped were requeued.
    Requeued {
        /// Their ids.
        ids: Vec<i64>,
    },
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Runs started (collectors, or checks that found the key already valid).
    pub started: u64,
    /// Verified done.
    pub done: u64,
    /// Found already valid (no collector ran).
    pub already_valid: u64,
    /// Failed, to be retried.
    pub retried: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Stopped at the end of the run and requeued.
    pub requeued: u64,
    /// Queued tasks left (waiting for a retry, or past the run's end).
    pub remaining: u64,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The longest the run may take (`orchestrator.max_runtime`).
    pub max_runtime: Duration,
    /// Set to stop: no new tasks start, running collectors are killed and requeued.
    pub stop: Arc<AtomicBool>,
}

/// The orchestrator for a set of datasets.
pub struct Orchestrator<'a> {
    cfg: &'a OrchestratorConfig,
    datasets: &'a [Dataset],
    inv: Arc<Inventory>,
    owner: String,
    cwd: Option<std::path::PathBuf>,
}

/// How a collector run ended, before the journal hears of it.
enum RunEnd {
    /// The key was already valid: nothing ran.
    AlreadyValid,
    /// Ran, and the key is now valid.
    Verified,
    /// Ran and failed (or could not start, or left the gap open).
    Failed(String),
    /// Killed because the run ended or was stopped.
    Stopped(String),
}

/// This process as an owner of tasks: `pid:start-ticks`.
pub fn me() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", process::stat(pid).map_or(0, |s| s.start_ticks))
}

/// Whether an owner (`pid:start-ticks`) still runs.
pub fn alive(owner: &str) -> bool {
    let mut parts = owner.split(':');
    match (parts.next().and_then(|p| p.parse().ok()), parts.next().and_then(|t| t.parse().ok())) {
        (Some(pid), Some(ticks)) => process::is_running(pid, ticks),
        _ => false,
    }
}

fn now_ms() -> UnixMs {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())).unwrap_or(i64::MAX)
}

/// The delay before retry number `attempt` (1 for the first): `base`
/// doubled each time up to `max`, the upper half of it drawn at random
/// ("equal jitter": retries of many tasks do not arrive together, and
/// none comes sooner than half the delay).
pub fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(31)).unwrap_or(u32::MAX)).min(max);
    exp.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A uniform number in [0, 1) from the clock and a counter (jitter needs no more).
fn jitter(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(u64::try_from(now_ms()).unwrap_or(0)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

impl<'a> Orchestrator<'a> {
    /// An orchestrator over `datasets` reading the lake through `inv`.
    pub fn new(cfg: &'a OrchestratorConfig, datasets: &'a [Dataset], inv: Arc<Inventory>) -> Self {
        Self { cfg, datasets, inv, owner: me(), cwd: None }
    }

    /// Collectors run in `dir` (the config file's directory, so relative
    /// paths in their argv mean what the config's reader expects).
    #[must_use]
    pub fn with_cwd(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.cwd = dir;
        self
    }

    /// What would run, in order (`--dry-run`): every queued task.
    ///
    /// # Errors
    /// The journal could not be read.
    pub fn plan(&self, journal: &Journal) -> Result<Vec<(Task, Vec<String>)>, OrchestrateError> {
        Ok(journal
            .queued_tasks(usize::MAX)?
            .into_iter()
            .map(|t| {
                let argv = self.dataset(&t.dataset).and_then(|d| d.partition_of(&t.key).map(|i| d.argv(i))).unwrap_or_default();
                (t, argv)
            })
            .collect())
    }

    fn dataset(&self, name: &str) -> Option<&'a Dataset> {
        self.datasets.iter().find(|d| d.name() == name)
    }

    /// Runs tasks until none is ready before the run ends, the run's time
    /// is up, or `stop` is set.
    ///
    /// On an error (the journal failed), the collectors still running are
    /// killed and their threads joined, and every task this run took and
    /// did not finish is requeued (if the journal lets it) before the error
    /// is returned: none is left `running` under an owner that is alive.
    ///
    /// # Errors
    /// The journal failed (tasks already finished stay recorded).
    pub fn run(&self, journal: &mut Journal, opts: &RunOptions, on_event: &mut dyn FnMut(&Event)) -> Result<Summary, OrchestrateError> {
        let mut jobs = Jobs::new(journal.task_queue_path());
        let result = self.run_with(journal, opts, on_event, &mut jobs);
        if let Err(e) = &result {
            let ids = jobs.stop();
            let why = format!("the orchestrator's run stopped on an error ({e}) while the task ran; requeued");
            for id in ids {
                match journal.finish_task(id, &TaskOutcome::Requeue { error: why.clone() }, now_ms()) {
                    Ok(()) => jobs.release(id),
                    // Left `running` under this process: the next run requeues it.
                    Err(e2) => tracing::error!(task = id, "A task of a run that failed could not be requeued: {e2}"),
                }
            }
        }
        result
    }

    fn run_with(
        &self,
        journal: &mut Journal,
        opts: &RunOptions,
        on_event: &mut dyn FnMut(&Event),
        jobs: &mut Jobs,
    ) -> Result<Summary, OrchestrateError> {
        let started = Instant::now();
        let end_ms = now_ms().saturating_add(i64::try_from(opts.max_runtime.as_millis()).unwrap_or(i64::MAX));
        let mut summary = Summary::default();
        let mut orphans = journal.requeue_orphans(alive, now_ms())?;
        // Tasks this very process took in a run that stopped on an error (or
        // panicked): their owner is alive, so `requeue_orphans` keeps them.
        orphans.extend(journal.requeue_own(&self.owner, |id| held_in_process(&jobs.queue, id), now_ms())?);
        if !orphans.is_empty() {
            tracing::warn!(tasks = ?orphans, "Tasks left running by an orchestrator that stopped were requeued.");
            on_event(&Event::Requeued { ids: orphans });
        }
        let concurrency = self.cfg.concurrency.max(1) as usize;
        // When each dataset's collector last started, in any run (the daemon
        // starts a run every queue check: min_interval spans runs).
        let mut last_start: HashMap<String, UnixMs> = journal.last_starts()?.into_iter().collect();
        loop {
            let now = now_ms();
            let stopping = opts.stop.load(Ordering::SeqCst) || started.elapsed() >= opts.max_runtime;
            // Datasets still inside their min_interval, and when each may start again.
            let limited: Vec<(&str, UnixMs)> = last_start
                .iter()
                .filter_map(|(name, last)| {
                    let d = self.dataset(name)?;
                    let min = i64::try_from(d.cfg.min_interval.as_millis()).unwrap_or(i64::MAX);
                    let next = last.saturating_add(min);
                    (min > 0 && now < next).then_some((d.name(), next))
                })
                .collect();
            // The earliest a rate-limited dataset with a ready task may start again.
            let mut wake_at: Option<UnixMs> = None;
            if !stopping && jobs.len() < concurrency {
                // A rate-limited dataset's tasks are left out of the query:
                // they cannot start now, and must not fill the batch ahead of
                // another dataset's.
                let exclude: Vec<&str> = limited.iter().map(|(n, _)| *n).collect();
                for t in journal.ready_tasks_excluding(now, 1024, &exclude)? {
                    if jobs.len() >= concurrency {
                        break;
                    }
                    let Some(d) = self.dataset(&t.dataset) else {
                        journal.resolve_tasks(&[t.id], now)?;
                        tracing::warn!(task = t.id, dataset = %t.dataset, "A task of a dataset no longer configured was closed.");
                        continue;
                    };
                    let min = i64::try_from(d.cfg.min_interval.as_millis()).unwrap_or(i64::MAX);
                    if let Some(last) = last_start.get(d.name()) {
                        let next = last.saturating_add(min);
                        if min > 0 && now < next {
                            wake_at = Some(wake_at.map_or(next, |w: UnixMs| w.min(next)));
                            continue;
                        }
                    }
                    if !journal.start_task(t.id, &self.owner, now)? {
                        continue;
                    }
                    jobs.hold(t.id);
                    last_start.insert(d.name().to_owned(), now);
                    summary.started += 1;
                    let argv = d.partition_of(&t.key).map(|i| d.argv(i)).unwrap_or_default();
                    on_event(&Event::Started { task: t.clone(), argv: argv.clone() });
                    let left = opts.max_runtime.saturating_sub(started.elapsed());
                    let deadline = Instant::now() + self.cfg.task_timeout.min(left);
                    let job = Job {
                        task: t.clone(),
                        dataset: d.clone(),
                        argv,
                        inv: Arc::clone(&self.inv),
                        env: self.cfg.env.clone(),
                        cwd: self.cwd.clone(),
                        deadline,
                        ends_run: left < self.cfg.task_timeout,
                        timeout: self.cfg.task_timeout,
                        stop: Arc::clone(&opts.stop),
                        halt: Arc::clone(&jobs.halt),
                    };
                    jobs.spawn(job)?;
                }
            }
            let wait = if jobs.len() == 0 {
                if stopping {
                    break;
                }
                for (name, next) in &limited {
                    if journal.has_ready_task(name, now)? {
                        wake_at = Some(wake_at.map_or(*next, |w: UnixMs| w.min(*next)));
                    }
                }
                match (wake_at, journal.next_ready_at()?) {
                    (None, None) => break,
                    (w, next) => {
                        let next = next.filter(|n| *n > now).into_iter().chain(w).min();
                        match next {
                            // Nothing can run before the run ends.
                            Some(n) if n > end_ms => break,
                            Some(n) => Duration::from_millis(u64::try_from(n - now).unwrap_or(0).clamp(5, 1000)),
                            None => Duration::from_millis(5),
                        }
                    }
                }
            } else {
                Duration::from_millis(50)
            };
            for (task, end, secs) in jobs.results(wait) {
                let (outcome, note) = self.outcome(&task, end, &mut summary);
                journal.finish_task(task.id, &outcome, now_ms())?;
                jobs.release(task.id);
                if let TaskOutcome::Dead { error } = &outcome {
                    let _ = journal.record_event(
                        now_ms(),
                        "task_dead",
                        &format!("{}/{}", task.dataset, task.key),
                        &format!("task {} dead-lettered after {} attempt(s): {error}", task.id, task.attempts + 1),
                        None,
                    );
                    tracing::error!(task = task.id, dataset = %task.dataset, key = %task.key, "Task dead-lettered: {error}");
                }
                on_event(&Event::Finished { task, outcome, note, secs });
            }
        }
        summary.remaining = journal.queued_tasks(usize::MAX)?.len() as u64;
        Ok(summary)
    }

    fn outcome(&self, task: &Task, end: RunEnd, summary: &mut Summary) -> (TaskOutcome, String) {
        match end {
            RunEnd::AlreadyValid => {
                summary.already_valid += 1;
                (TaskOutcome::Done, "already present and valid; nothing ran".into())
            }
            RunEnd::Verified => {
                summary.done += 1;
                (TaskOutcome::Done, "verified in the inventory".into())
            }
            RunEnd::Stopped(why) => {
                summary.requeued += 1;
                (TaskOutcome::Requeue { error: why.clone() }, why)
            }
            RunEnd::Failed(error) => {
                let attempt = task.attempts + 1;
                if attempt > self.cfg.retries {
                    summary.dead += 1;
                    let note = format!("{error}; dead-lettered after {attempt} attempt(s)");
                    (TaskOutcome::Dead { error }, note)
                } else {
                    summary.retried += 1;
                    let delay = backoff(attempt, self.cfg.retry_backoff, self.cfg.retry_backoff_max, jitter(task.id as u64));
                    let not_before = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    let note = format!("{error}; retry {attempt} of {} in {:.1} s", self.cfg.retries, delay.as_secs_f64());
                    (TaskOutcome::Retry { not_before, error }, note)
                }
            }
        }
    }
}

/// Tasks held by the runs of this process, by journal file: a run's start
/// requeues this process's `running` tasks except these (another run in
/// this process may be running them now).
static HELD: Mutex<BTreeSet<(String, i64)>> = Mutex::new(BTreeSet::new());

fn held() -> std::sync::MutexGuard<'static, BTreeSet<(String, i64)>> {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn held_in_process(queue: &str, id: i64) -> bool {
    held().contains(&(queue.to_owned(), id))
}

/// What a job sends back: its task, how it ended, how long it took.
type JobResult = (Task, RunEnd, f64);

/// A run's collectors: their threads, and the tasks the run took and has
/// not finished in the journal yet. Dropped (at the end of a run, on an
/// error or a panic), it kills the collectors still running and joins
/// their threads, so no job outlives its run.
struct Jobs {
    /// The journal's file (see [`HELD`]).
    queue: String,
    /// Set to kill every running collector (the run failed).
    halt: Arc<AtomicBool>,
    tx: mpsc::Sender<JobResult>,
    rx: mpsc::Receiver<JobResult>,
    running: HashMap<i64, std::thread::JoinHandle<()>>,
    /// Taken by this run, not finished in the journal yet.
    held: BTreeSet<i64>,
}

impl Jobs {
    fn new(queue: String) -> Self {
        let (tx, rx) = mpsc::channel();
        Self { queue, halt: Arc::new(AtomicBool::new(false)), tx, rx, running: HashMap::new(), held: BTreeSet::new() }
    }

    /// Collectors running.
    fn len(&self) -> usize {
        self.running.len()
    }

    /// The run took task `id`.
    fn hold(&mut self, id: i64) {
        self.held.insert(id);
        held().insert((self.queue.clone(), id));
    }

    /// Task `id` is finished (or requeued) in the journal.
    fn release(&mut self, id: i64) {
        self.held.remove(&id);
        held().remove(&(self.queue.clone(), id));
    }

    fn spawn(&mut self, job: Job) -> Result<(), OrchestrateError> {
        let id = job.task.id;
        let tx = self.tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("collector-{id}"))
            .spawn(move || {
                let begun = Instant::now();
                let task = job.task.clone();
                // A panic is a failed run, not a task running forever.
                let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()))
                    .unwrap_or_else(|_| RunEnd::Failed("the collector's thread panicked".into()));
                let _ = tx.send((task, end, begun.elapsed().as_secs_f64()));
            })
            .map_err(OrchestrateError::Thread)?;
        self.running.insert(id, handle);
        Ok(())
    }

    /// The runs that ended, waiting up to `wait` for the first.
    fn results(&mut self, wait: Duration) -> Vec<JobResult> {
        let mut out = Vec::new();
        if let Ok(r) = self.rx.recv_timeout(wait) {
            out.push(r);
        }
        out.extend(self.rx.try_iter());
        for (task, _, _) in &out {
            if let Some(h) = self.running.remove(&task.id) {
                let _ = h.join();
            }
        }
        out
    }

    /// Kills the running collectors and joins their threads; returns the
    /// tasks taken and not finished in the journal.
    fn stop(&mut self) -> Vec<i64> {
        self.halt.store(true, Ordering::SeqCst);
        for (_, h) in self.running.drain() {
            let _ = h.join();
        }
        while self.rx.try_recv().is_ok() {}
        self.held.iter().copied().collect()
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.stop();
        let mut all = held();
        for id in std::mem::take(&mut self.held) {
            all.remove(&(self.queue.clone(), id));
        }
    }
}

/// One task's run, on its own thread.
struct Job {
    task: Task,
    dataset: Dataset,
    argv: Vec<String>,
    inv: Arc<Inventory>,
    env: std::collections::BTreeMap<String, String>,
    cwd: Option<std::path::PathBuf>,
    deadline: Instant,
    /// The deadline is the run's end (closer than the task's timeout).
    ends_run: bool,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    /// The run failed: kill the collector.
    halt: Arc<AtomicBool>,
}

/// The most of a collector's output kept for the log, per stream.
const OUTPUT_TAIL: usize = 16 * 1024;

/// How long the collector's output is waited for once it has exited (or
/// was killed). A process it left behind in a session of its own (`setsid
/// cmd &`) keeps the pipes open and is out of reach of the process-group
/// kill: its readers are abandoned after this, and the task goes on.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The last [`OUTPUT_TAIL`] bytes of one stream, filled by a reader thread.
#[derive(Default)]
struct Tail {
    kept: Mutex<Vec<u8>>,
    /// The stream reached its end (or failed).
    done: AtomicBool,
}

impl Tail {
    /// Reads `r` to its end on a thread of its own, keeping the tail. The
    /// thread is detached: nothing ever joins it.
    fn read(mut r: Box<dyn Read + Send>, name: String) -> Arc<Self> {
        let tail = Arc::new(Self::default());
        let t = Arc::clone(&tail);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = t.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > OUTPUT_TAIL {
                    let cut = kept.len() - OUTPUT_TAIL;
                    kept.drain(..cut);
                }
            }
            t.done.store(true, Ordering::SeqCst);
        });
        if spawned.is_err() {
            // No reader: the pipe is closed, and the output lost.
            tail.done.store(true, Ordering::SeqCst);
        }
        tail
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

impl Job {
    /// Checks, runs, verifies.
    fn run(self) -> RunEnd {
        let d = &self.dataset;
        let Some(i) = d.partition_of(&self.task.key) else {
            return RunEnd::Failed(format!("{} is not a key of dataset {} any more", self.task.key, d.name()));
        };
        // Filled since it was queued (another run, a person): nothing to do.
        match self.inv.head(&self.task.key) {
            Ok(file) => {
                if d.classify(i, file.map(|e| (e.size, e.modified)), now_ms()).is_none() {
                    return RunEnd::AlreadyValid;
                }
            }
            Err(e) => return RunEnd::Failed(format!("checking the key first: {e}")),
        }
        if self.argv.is_empty() {
            return RunEnd::Failed("the dataset has no collector".into());
        }
        let started = now_ms();
        match self.spawn_and_wait() {
            Err(end) => end,
            Ok(()) => self.verify(i, started),
        }
    }

    fn verify(&self, i: u64, started: UnixMs) -> RunEnd {
        let d = &self.dataset;
        match self.inv.head(&self.task.key) {
            Err(e) => RunEnd::Failed(format!("the collector exited 0, but the key could not be checked: {e}")),
            Ok(None) => RunEnd::Failed(format!("the collector exited 0 but {} is still missing", self.task.key)),
            Ok(Some(e)) => match d.classify(i, Some((e.size, e.modified)), now_ms()) {
                None if self.task.kind == GapKind::Stale && e.modified < started - 1000 => {
                    RunEnd::Failed(format!("the collector exited 0 but did not rewrite the stale {}", self.task.key))
                }
                None => RunEnd::Verified,
                Some(GapKind::Truncated) => RunEnd::Failed(format!(
                    "the collector exited 0 but {} has {} bytes, fewer than min_bytes {}",
                    self.task.key, e.size, d.cfg.min_bytes
                )),
                Some(k) => RunEnd::Failed(format!("the collector exited 0 but {} is still {}", self.task.key, k.as_str())),
            },
        }
    }

    /// Runs the collector to its end; `Err` with how it ended otherwise.
    fn spawn_and_wait(&self) -> Result<(), RunEnd> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(&self.env).envs(&self.dataset.cfg.env);
        let t = &self.task;
        cmd.env("STEWARD_TASK_ID", t.id.to_string())
            .env("STEWARD_TASK_DATASET", &t.dataset)
            .env("STEWARD_TASK_KEY", &t.key)
            .env("STEWARD_TASK_PARTITION", &t.partition)
            .env("STEWARD_TASK_KIND", t.kind.as_str())
            .env("STEWARD_TASK_ATTEMPT", (t.attempts + 1).to_string())
            .env("STEWARD_INVENTORY", self.inv.url());
        if let Some(dir) = self.inv.local_dir() {
            cmd.env("STEWARD_LAKE_DIR", dir);
        }
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.process_group(0);
        // SAFETY: prctl(2) with plain integers, async-signal-safe, run in
        // the child between fork and exec: the collector gets SIGKILL when
        // the thread that started it ends, so a killed orchestrator leaves
        // no collector behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| RunEnd::Failed(format!("cannot start {:?}: {e}", self.argv[0])))?;
        let pgid = child.id();
        let id = self.task.id;
        let out = child.stdout.take().map(|o| Tail::read(Box::new(o), format!("collector-{id}-out")));
        let err = child.stderr.take().map(|e| Tail::read(Box::new(e), format!("collector-{id}-err")));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) => {}
                Err(e) => break Err(format!("waiting for the collector: {e}")),
            }
            let stopped = self.stop.load(Ordering::SeqCst) || self.halt.load(Ordering::SeqCst);
            if stopped || Instant::now() >= self.deadline {
                let _ = process::kill_group(pgid, Signal::Kill);
                let _ = child.kill();
                let _ = child.wait();
                let timed_out = !stopped && !self.ends_run;
                self.log_output(out, err);
                return Err(if timed_out {
                    RunEnd::Failed(format!("timed out after {} s (task_timeout) and was killed", self.timeout.as_secs_f64()))
                } else {
                    RunEnd::Stopped("the orchestrator's run ended (max_runtime or a stop) while the collector ran; requeued".into())
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = process::kill_group(pgid, Signal::Kill);
        let stderr_tail = self.log_output(out, err);
        match status {
            Err(e) => Err(RunEnd::Failed(e)),
            Ok(s) if s.success() => Ok(()),
            Ok(s) => {
                let how = s.code().map_or_else(|| "was killed by a signal".to_owned(), |c| format!("exited {c}"));
                let last = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                Err(RunEnd::Failed(if last.is_empty() { format!("the collector {how}") } else { format!("the collector {how}: {last}") }))
            }
        }
    }

    /// Logs what the collector wrote (the last lines of each stream);
    /// returns its stderr. Waits for the streams' ends at most
    /// [`OUTPUT_GRACE`], then takes what was read and leaves the readers.
    fn log_output(&self, out: Option<Arc<Tail>>, err: Option<Arc<Tail>>) -> String {
        let until = Instant::now() + OUTPUT_GRACE;
        let open = || [&out, &err].into_iter().flatten().any(|t| !t.done.load(Ordering::SeqCst));
        while open() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if open() {
            tracing::warn!(
                task = self.task.id,
                dataset = %self.task.dataset,
                "The collector left a process that holds its output open (started in a session of its own?); its output is not waited for."
            );
        }
        let (out, err) = (out.map(|t| t.text()).unwrap_or_default(), err.map(|t| t.text()).unwrap_or_default());
        for (stream, body) in [("stdout", &out), ("stderr", &err)] {
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(task = self.task.id, dataset = %self.task.dataset, stream, "collector: {line}");
            }
        }
        err
    }
}
