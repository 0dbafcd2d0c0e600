//! The loop's driver: owns scheduling, the target lock, supervisor ticks
//! between cycles, backoff on failures and graceful stop. Policies own
//! none of this (STYLE §4: the driver owns scheduling; always requeue).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{error_chain, RuntimeError};
use crate::ha::Fence;
use crate::lock::TargetLock;
use crate::report::{CycleReport, RunOptions};

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Time between cycles.
    pub interval: Duration,
    /// Stop after this many cycles (0 = until stopped).
    pub max_cycles: u64,
    /// Decide and journal, touch nothing (no lock either).
    pub dry_run: bool,
    /// Time between supervisor ticks (reaping, replacements, drains).
    pub tick_every: Duration,
}

/// What the caller wants after a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep going.
    Continue,
    /// Stop the loop.
    Stop,
}

/// Runs cycles until `stop` is set, `max_cycles` is reached, or `on_cycle`
/// says stop; ticks the fleet in between. Returns the number of cycles.
/// The caller stops the fleet afterwards ([`Engine::shutdown`]).
///
/// The target lock is taken here and held until the loop ends, so nothing
/// else can act on the target meanwhile, not even from this process. To
/// also act from elsewhere in the process (a rollback on request, an HTTP
/// `POST /execute`), take the lock yourself with [`Engine::lock`], share
/// it, and run [`drive_with`], [`Engine::execute_locked`] and
/// [`Engine::rollback_locked`] under it, as the daemon does.
///
/// # Errors
/// Only when the target is of the wrong kind or the lock cannot be taken
/// at the start; a failing cycle is logged and retried with backoff (up to
/// 8 intervals), never fatal.
pub fn drive(
    engine: &Engine,
    opts: &DriveOptions,
    stop: &AtomicBool,
    on_cycle: impl FnMut(&Result<CycleReport, RuntimeError>) -> Next,
) -> Result<u64, RuntimeError> {
    // The loop holds the target for its whole life, so no other executor
    // acts between its cycles (spec/engine.md: one executor per target).
    // With HA the lease is the exclusion: replicas on one host share the target.
    let lock = if opts.dry_run || engine.config().auto.dry_run || engine.leadership().is_some() { None } else { Some(engine.lock()?) };
    // The lease is renewed on its own thread for as long as the loop runs, then released.
    let dry = opts.dry_run || engine.config().auto.dry_run;
    let lease = match engine.leadership().filter(|_| !dry) {
        Some(l) => {
            let stop_lease = std::sync::Arc::new(AtomicBool::new(false));
            let handle = l.spawn(stop_lease.clone()).map_err(RuntimeError::io("starting the lease thread for", engine.state_dir()))?;
            Some((stop_lease, handle))
        }
        None => None,
    };
    let r = drive_with(engine, opts, stop, lock.as_ref(), on_cycle);
    if let Some((stop_lease, handle)) = lease {
        stop_lease.store(true, Ordering::SeqCst);
        crate::ha::join_for(handle, Duration::from_secs(3));
    }
    r
}

/// [`drive`] under a lock the caller holds (the daemon shares it with its
/// HTTP actions), or none for a dry run.
///
/// # Errors
/// None today: failing cycles are retried, never fatal.
pub fn drive_with(
    engine: &Engine,
    opts: &DriveOptions,
    stop: &AtomicBool,
    lock: Option<&TargetLock>,
    mut on_cycle: impl FnMut(&Result<CycleReport, RuntimeError>) -> Next,
) -> Result<u64, RuntimeError> {
    let run = RunOptions { dry_run: opts.dry_run, ..RunOptions::default() };
    let mut cycles = 0u64;
    let mut failures = 0u32;
    let mut next_cycle = Instant::now();
    let mut next_tick = Instant::now();
    let mut was_leader = None;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        // A standby neither ticks a fleet nor runs cycles: it waits for the lease.
        if let Some(l) = engine.leadership().filter(|_| !(opts.dry_run || engine.config().auto.dry_run)) {
            let leads = l.is_leader();
            if was_leader != Some(leads) {
                tracing::info!(role = l.role(), lease = %l.name(), holder = %l.holder(), "Role.");
                was_leader = Some(leads);
                // A new leader starts with a cycle at once.
                next_cycle = now;
            }
            if !leads {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        if now >= next_tick {
            if let Err(e) = engine.tick() {
                tracing::warn!(error = %error_chain(&e), "Fleet tick failed.");
            }
            next_tick = later(now, opts.tick_every);
        }
        if now >= next_cycle {
            let result = match lock {
                Some(lock) => engine.execute_locked(&run, lock),
                None => engine.execute(&run),
            };
            match &result {
                Ok(_) => failures = 0,
                Err(e @ RuntimeError::LockBusy { .. }) => tracing::warn!(error = %e, "Cycle skipped."),
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %error_chain(e), consecutive = failures, "Cycle failed.");
                }
            }
            cycles += 1;
            if on_cycle(&result) == Next::Stop || (opts.max_cycles != 0 && cycles >= opts.max_cycles) {
                break;
            }
            // Back off on repeated failures, up to 8 intervals; always requeue.
            next_cycle = later(now, opts.interval.saturating_mul(1 << failures.min(3)));
        }
        let wake = next_cycle.min(next_tick);
        let nap = wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
        if !nap.is_zero() {
            std::thread::sleep(nap);
        }
    }
    Ok(cycles)
}

/// `now + d`, or a year from now when `d` is beyond what an `Instant` holds.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(Duration::from_secs(365 * 86_400))).unwrap_or(now)
}
