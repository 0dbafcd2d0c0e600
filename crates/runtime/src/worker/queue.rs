//! The built-in worker on a real queue (`steward worker --queue URL`): a
//! Redis stream or a PostgreSQL job table, through the queue's own
//! transitions ([`steward_queue::WorkQueue`]).
//!
//! It claims a batch, works each item (simulated, or the user's program
//! with the item's JSON on stdin), and records each completion with its
//! acknowledgement in one step. An item whose completion is already
//! recorded (a redelivery) is acknowledged without running again. A
//! heartbeat thread, on its own connection, keeps the worker seen and its
//! claims fresh while an item runs, however long. A lost connection is
//! retried with backoff; the claims it held come back through recovery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use steward_queue::{Fate, Item, QueueError, QueueUrl, WorkQueue};

use super::exec::ItemError;
use super::{validate, Rng, WorkerError, WorkerOptions, WorkerStats};

/// Per-call timeout on the queue's connection.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Completions of quick items wait at most this long to be recorded together.
const FLUSH_AFTER: Duration = Duration::from_millis(50);

fn queue_err(what: &'static str) -> impl Fn(QueueError) -> WorkerError {
    move |e| WorkerError::Queue { what, source: e }
}

/// Runs the worker on the queue at `url` until `stop` is set, `max_items`
/// are done, or it has been idle for `exit_when_idle`.
///
/// # Errors
/// Bad options ([`WorkerError::is_bad_input`]), a queue that refuses the
/// worker (credentials, a list instead of a stream), or a handler that
/// cannot run.
pub fn run_queue(url: &QueueUrl, opts: WorkerOptions, stop: &AtomicBool) -> Result<WorkerStats, WorkerError> {
    validate(&opts)?;
    let mut queue = steward_queue::open(url, CALL_TIMEOUT);
    // The server may not be up yet: wait for it, as for any lost connection.
    let mut backoff = Backoff::default();
    loop {
        match queue.prepare() {
            Ok(()) => break,
            Err(e) if e.is_connection() && !stop.load(Ordering::SeqCst) => backoff.wait(&opts.id, &e, stop),
            Err(e) if e.is_bad_input() => return Err(WorkerError::BadOption(e.to_string())),
            Err(e) => return Err(queue_err("preparing")(e)),
        }
    }
    let current: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let beat = {
        let (url, id, every, current, done) =
            (url.clone(), opts.id.clone(), opts.heartbeat_interval, Arc::clone(&current), Arc::clone(&done));
        std::thread::spawn(move || heartbeats(&url, &id, every, &current, &done))
    };
    let mut w = QueueWorker { rng: Rng::new(super::seed_of(&opts)), opts, stats: WorkerStats::default(), current };
    let result = w.work(queue.as_mut(), stop);
    done.store(true, Ordering::SeqCst);
    let _ = beat.join();
    if let Err(e) = queue.leave(&w.opts.id) {
        tracing::warn!(agent = %w.opts.id, error = %e, "Could not remove the consumer from the queue.");
    }
    result?;
    let s = w.stats;
    tracing::info!(agent = %w.opts.id, processed = s.processed, failures = s.failures, duplicates = s.duplicates, "Worker stopped.");
    Ok(s)
}

fn heartbeats(url: &QueueUrl, id: &str, every: Duration, current: &Mutex<Vec<String>>, done: &AtomicBool) {
    let mut q = steward_queue::open(url, CALL_TIMEOUT);
    let mut last = None::<Instant>;
    while !done.load(Ordering::SeqCst) {
        if last.is_none_or(|t| t.elapsed() >= every) {
            last = Some(Instant::now());
            let claims = current.lock().map(|c| c.clone()).unwrap_or_default();
            if let Err(e) = q.heartbeat(id, &claims) {
                tracing::warn!(agent = %id, error = %e, "Heartbeat failed; retrying.");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits between reconnection attempts: 100 ms doubling to 5 s.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self, agent: &str, e: &QueueError, stop: &AtomicBool) {
        let pause = Duration::from_millis(100u64 << self.0.min(6)).min(Duration::from_secs(5));
        self.0 += 1;
        tracing::warn!(agent, error = %steward_actuators::error_chain(e), retry_in_ms = pause.as_millis() as u64, "The queue cannot be reached.");
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs a step, retrying it with backoff while the connection is lost.
/// `None` when `stop` came first: what the step was about stays claimed,
/// and steward's recovery gives it back.
fn persist<T>(
    agent: &str,
    stop: &AtomicBool,
    what: &'static str,
    queue: &mut dyn WorkQueue,
    mut step: impl FnMut(&mut dyn WorkQueue) -> Result<T, QueueError>,
) -> Result<Option<T>, WorkerError> {
    let mut backoff = Backoff::default();
    loop {
        match step(queue) {
            Ok(t) => return Ok(Some(t)),
            Err(e) if e.is_connection() => {
                if stop.load(Ordering::SeqCst) {
                    tracing::warn!(agent, error = %e, "Stopping with the queue unreachable: what this worker held is recovered by steward.");
                    return Ok(None);
                }
                backoff.wait(agent, &e, stop);
            }
            Err(e) => return Err(queue_err(what)(e)),
        }
    }
}

struct QueueWorker {
    opts: WorkerOptions,
    rng: Rng,
    stats: WorkerStats,
    current: Arc<Mutex<Vec<String>>>,
}

impl QueueWorker {
    fn set_current(&self, claims: Vec<String>) {
        if let Ok(mut c) = self.current.lock() {
            *c = claims;
        }
    }

    fn work(&mut self, queue: &mut dyn WorkQueue, stop: &AtomicBool) -> Result<(), WorkerError> {
        let mut idle_since = Instant::now();
        let mut backoff = Backoff::default();
        while !stop.load(Ordering::SeqCst) {
            let wait = self.opts.exit_when_idle.map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1)));
            let items = match queue.claim(&self.opts.id, self.opts.batch.max(1), wait) {
                Ok(items) => items,
                Err(e) if e.is_connection() => {
                    backoff.wait(&self.opts.id, &e, stop);
                    continue;
                }
                Err(e) if e.is_bad_input() => return Err(WorkerError::BadOption(e.to_string())),
                Err(e) => return Err(queue_err("claiming")(e)),
            };
            backoff = Backoff::default();
            if items.is_empty() {
                if self.opts.exit_when_idle.is_some_and(|d| idle_since.elapsed() >= d) {
                    return Ok(());
                }
                continue;
            }
            idle_since = Instant::now();
            self.set_current(items.iter().map(|i| i.claim.clone()).collect());
            let r = self.batch(queue, &items, stop);
            self.set_current(Vec::new());
            r?;
            let s = self.stats;
            if self.opts.max_items != 0 && s.processed + s.failures >= self.opts.max_items {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Works a claimed batch. Items not started when `stop` comes are put back untouched.
    fn batch(&mut self, queue: &mut dyn WorkQueue, items: &[Item], stop: &AtomicBool) -> Result<(), WorkerError> {
        let mut finished: Vec<(&Item, Option<Value>)> = Vec::new();
        let mut first_unflushed: Option<Instant> = None;
        for (n, item) in items.iter().enumerate() {
            let limit_reached =
                self.opts.max_items != 0 && self.stats.processed + self.stats.failures + finished.len() as u64 >= self.opts.max_items;
            if stop.load(Ordering::SeqCst) || limit_reached {
                self.flush(queue, &mut finished, stop)?;
                for rest in &items[n..] {
                    persist(&self.opts.id, stop, "putting back", queue, |q| q.release(&self.opts.id, rest))?;
                }
                return Ok(());
            }
            if item.completed {
                // A redelivery of a completed item: acknowledged, not run.
                finished.push((item, None));
                continue;
            }
            let size = serde_json::to_vec(&item.body).map_or(0, |b| b.len() as u64);
            let outcome = if size > self.opts.max_item_bytes {
                Err(format!("the item is {size} bytes, over max_item_bytes {}", self.opts.max_item_bytes))
            } else {
                match super::run_item(&self.opts, &mut self.rng, &item.body, &mut |_| {}) {
                    Err(ItemError::Fatal(why)) => {
                        self.flush(queue, &mut finished, stop)?;
                        for rest in &items[n..] {
                            let _ = queue.release(&self.opts.id, rest);
                        }
                        return Err(WorkerError::HandlerUnusable { why, item: item.id.clone() });
                    }
                    Err(ItemError::Failed(why)) => Err(why),
                    Ok(r) => Ok(r),
                }
            };
            match outcome {
                Ok(result) => {
                    finished.push((item, result));
                    let first = *first_unflushed.get_or_insert_with(Instant::now);
                    if first.elapsed() >= FLUSH_AFTER {
                        self.flush(queue, &mut finished, stop)?;
                        first_unflushed = None;
                    }
                }
                Err(why) => {
                    self.stats.failures += 1;
                    let limit = if size > self.opts.max_item_bytes { 1 } else { self.opts.max_attempts };
                    match persist(&self.opts.id, stop, "returning failed", queue, |q| q.fail(&self.opts.id, item, &why, limit))? {
                        Some(Fate::DeadLettered) => {
                            tracing::warn!(agent = %self.opts.id, item = %item.id, reason = %why, "Item dead-lettered.")
                        }
                        Some(Fate::Gone) => {
                            tracing::warn!(agent = %self.opts.id, item = %item.id, "The failed item was no longer this worker's claim.")
                        }
                        Some(Fate::Requeued | Fate::AlreadyCompleted) | None => {}
                    }
                }
            }
        }
        self.flush(queue, &mut finished, stop)
    }

    /// Records completions and acknowledgements in one step.
    fn flush(
        &mut self,
        queue: &mut dyn WorkQueue,
        finished: &mut Vec<(&Item, Option<Value>)>,
        stop: &AtomicBool,
    ) -> Result<(), WorkerError> {
        if finished.is_empty() {
            return Ok(());
        }
        let items: Vec<&Item> = finished.iter().map(|(i, _)| *i).collect();
        let results: Vec<Option<Value>> = finished.iter().map(|(_, r)| r.clone()).collect();
        // A retry after a reply lost on the way finds its own record: counted as a duplicate, never recorded twice.
        let Some(recorded) = persist(&self.opts.id, stop, "completing", queue, |q| q.complete(&self.opts.id, &items, &results))? else {
            finished.clear();
            return Ok(());
        };
        for (item, new) in items.iter().zip(recorded) {
            if item.completed {
                continue;
            }
            if new {
                self.stats.processed += 1;
            } else {
                self.stats.duplicates += 1;
                super::record_duplicate(&self.opts, &item.id);
                tracing::warn!(agent = %self.opts.id, item = %item.id, "Item was already completed (or requeued away); kept the first record.");
            }
        }
        finished.clear();
        Ok(())
    }
}
