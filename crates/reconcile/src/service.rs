//! Reconciliation in the daemon: the reconciler (every
//! `reconciliation_interval`, and once at start) and the orchestrator
//! (started when `min_tasks_to_trigger` tasks are ready, checked every
//! `queue_check_interval`), each on its own thread.
//!
//! A component that fails (the lake unreachable, the journal locked) or
//! panics is restarted with an exponential backoff (1 s doubling to 5
//! minutes) and reported `failing` until it works again. The listing of
//! the lake is kept between runs: a full listing at most every
//! `inventory.rescan`, only the open gaps checked in between.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_core::control::Component;
use steward_core::reconcile::{compile_all, DatasetConfig, InventoryConfig, OrchestratorConfig};
use steward_core::time::UnixMs;
use steward_store::Journal;

use crate::inventory::Inventory;
use crate::orchestrate::{Orchestrator, RunOptions};
use crate::scan::{self, Listing};

/// What the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The lake.
    pub inventory: InventoryConfig,
    /// What it should hold (expanded again at each run: `to: today` moves).
    pub datasets: Vec<DatasetConfig>,
    /// How collectors run, and the schedule.
    pub orchestrator: OrchestratorConfig,
    /// The state directory (gaps.json goes in its `inventory/`).
    pub state_dir: PathBuf,
    /// The journal.
    pub journal: steward_store::JournalAt,
    /// Where collectors run.
    pub cwd: Option<PathBuf>,
    /// With HA: up while this replica stands by. Reconciliation and the
    /// collectors then wait (the leader runs them), and a run in progress
    /// stops starting collectors when it goes up.
    pub halt: Option<Arc<AtomicBool>>,
}

/// Whether this replica stands by (HA).
fn halted(cfg: &ServiceConfig) -> bool {
    cfg.halt.as_ref().is_some_and(|h| h.load(std::sync::atomic::Ordering::SeqCst))
}

/// Whether this replica stands by (HA), and says so on the board.
fn standing_by(cfg: &ServiceConfig, board: &Board, component: &str) -> bool {
    let by = halted(cfg);
    if by {
        board.set(component, "ok", "standing by: the leader runs it");
    }
    by
}

/// One component's last word.
#[derive(Debug, Clone)]
struct Status {
    status: &'static str,
    message: String,
}

/// What the service reports: its components, and the last coverage.
#[derive(Debug, Default)]
pub struct Board {
    components: Mutex<Vec<(String, Status)>>,
    coverage: Mutex<Vec<(String, f64, u64)>>,
    /// Set when collectors closed gaps: the reconciler re-checks them
    /// now instead of reporting the old coverage until its next run.
    recheck: AtomicBool,
}

impl Board {
    fn set(&self, name: &str, status: &'static str, message: impl Into<String>) {
        let mut c = self.components.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = Status { status, message: message.into() };
        match c.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = s,
            None => c.push((name.to_owned(), s)),
        }
    }

    /// The components, for `/health`.
    pub fn components(&self) -> Vec<Component> {
        self.components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(n, s)| Component { name: n.clone(), status: s.status.into(), message: s.message.clone() })
            .collect()
    }

    /// Each dataset's coverage and open gaps from the last reconciliation.
    pub fn coverage(&self) -> Vec<(String, f64, u64)> {
        self.coverage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn now_ms() -> UnixMs {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())).unwrap_or(i64::MAX)
}

/// Sleeps up to `d`, waking early when `stop` is set, or `wake` (which
/// is then cleared). Returns whether to go on.
fn nap(stop: &AtomicBool, wake: Option<&AtomicBool>, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        if wake.is_some_and(|w| w.swap(false, Ordering::SeqCst)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())).max(Duration::from_millis(1)));
    }
    !stop.load(Ordering::SeqCst)
}

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Runs `step` forever (until `stop`), `every` apart or sooner when `wake`
/// is set; a failure or a panic restarts it after a backoff, reporting
/// `name` failing meanwhile.
fn supervise(
    name: &'static str,
    board: &Board,
    stop: &AtomicBool,
    wake: Option<&AtomicBool>,
    every: impl Fn() -> Duration,
    mut step: impl FnMut() -> Result<(), String>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(&mut step)).unwrap_or_else(|p| {
            let what =
                p.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(format!("panicked: {what}"))
        });
        let wait = match result {
            Ok(()) => {
                backoff = BACKOFF_START;
                every()
            }
            Err(e) => {
                tracing::error!(component = name, retry_in_secs = backoff.as_secs(), "{e}");
                board.set(name, "failing", format!("{e}; restarting in {} s", backoff.as_secs()));
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                w
            }
        };
        // After a failure, wait out the backoff whatever wakes us.
        if !nap(stop, if backoff == BACKOFF_START { wake } else { None }, wait) {
            return;
        }
    }
}

/// The running service.
pub struct Service {
    /// What it reports.
    pub board: Arc<Board>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Service {
    /// Starts the reconciler and the orchestrator threads; `changed` is
    /// called after each run (the daemon refreshes its metrics from it).
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn start(cfg: ServiceConfig, stop: Arc<AtomicBool>, changed: Arc<dyn Fn(&Board) + Send + Sync>) -> std::io::Result<Self> {
        let board = Arc::new(Board::default());
        board.set("reconciler", "ok", "starting: the first reconciliation runs now");
        board.set("orchestrator", "ok", "waiting for tasks");
        board.set("inventory", "ok", format!("{} (not read yet)", cfg.inventory.url));
        let cfg = Arc::new(cfg);
        let mut threads = Vec::new();
        {
            let (cfg, board, stop, changed) = (Arc::clone(&cfg), Arc::clone(&board), Arc::clone(&stop), Arc::clone(&changed));
            threads.push(std::thread::Builder::new().name("steward-reconciler".into()).spawn(move || {
                let mut state: Option<(Inventory, Journal, Listing)> = None;
                supervise(
                    "reconciler",
                    &board,
                    &stop,
                    Some(&board.recheck),
                    // A standby looks again each second, so it reconciles as soon as it leads.
                    || {
                        if halted(&cfg) {
                            Duration::from_secs(1).min(cfg.orchestrator.reconciliation_interval)
                        } else {
                            cfg.orchestrator.reconciliation_interval
                        }
                    },
                    || {
                        reconcile_once(&cfg, &board, &mut state)?;
                        changed(&board);
                        Ok(())
                    },
                );
            })?);
        }
        {
            let (cfg, board, stop) = (Arc::clone(&cfg), Arc::clone(&board), Arc::clone(&stop));
            threads.push(std::thread::Builder::new().name("steward-orchestrator".into()).spawn(move || {
                let mut inv: Option<Arc<Inventory>> = None;
                supervise(
                    "orchestrator",
                    &board,
                    &stop,
                    None,
                    || cfg.orchestrator.queue_check_interval,
                    || {
                        let ran = orchestrate_if_ready(&cfg, &board, &stop, &mut inv)?;
                        if ran {
                            changed(&board);
                        }
                        Ok(())
                    },
                );
            })?);
        }
        Ok(Self { board, threads })
    }

    /// Waits for both threads (after `stop` was set).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn reconcile_once(cfg: &ServiceConfig, board: &Board, state: &mut Option<(Inventory, Journal, Listing)>) -> Result<(), String> {
    if standing_by(cfg, board, "reconciler") {
        return Ok(());
    }
    let now = now_ms();
    let datasets = compile_all(&cfg.datasets, now).map_err(|e| e.to_string())?;
    if state.is_none() {
        let inv = Inventory::open(&cfg.inventory.url).map_err(|e| {
            board.set("inventory", "failing", e.to_string());
            e.to_string()
        })?;
        let journal = Journal::open_at(&cfg.journal).map_err(|e| format!("opening the journal: {e}"))?;
        *state = Some((inv, journal, Listing::default()));
    }
    let Some((inv, journal, listing)) = state.as_mut() else { return Ok(()) };
    board.set("reconciler", "ok", "reconciling");
    let started = Instant::now();
    let rescan = i64::try_from(cfg.inventory.rescan.as_millis()).unwrap_or(i64::MAX);
    // A full listing when the last is older than `rescan` (or there is
    // none, or too many gaps to check one by one); else only open gaps.
    let full = listing.at == 0 || now - listing.at >= rescan || listing.open_gaps() > 10_000;
    let listed = if full {
        let (fresh, listed, _) = scan::list(&datasets, inv, now, &mut |_| {}).map_err(|e| {
            board.set("inventory", "failing", e.to_string());
            e.to_string()
        })?;
        *listing = fresh;
        format!("{listed} objects listed")
    } else {
        let checked = listing.refresh(&datasets, inv, now).map_err(|e| {
            board.set("inventory", "failing", e.to_string());
            e.to_string()
        })?;
        format!("{checked} open gap(s) re-checked (full listing every {} s)", cfg.inventory.rescan.as_secs())
    };
    board.set("inventory", "ok", format!("{}: {listed}", inv.url()));
    let report = scan::record(&datasets, listing, journal, &cfg.state_dir, inv.url(), now).map_err(|e| e.to_string())?;
    *board.coverage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        report.datasets.iter().map(|d| (d.name.clone(), d.ratio, d.coverage.expected - d.coverage.valid)).collect();
    board.set(
        "reconciler",
        "ok",
        format!(
            "last run at {} took {:.1} s: {} gap(s), {} queued, {} resolved",
            steward_core::time::format_rfc3339(now),
            started.elapsed().as_secs_f64(),
            report.gaps,
            report.queued,
            report.resolved
        ),
    );
    tracing::info!(gaps = report.gaps, queued = report.queued, resolved = report.resolved, "Reconciled.");
    Ok(())
}

fn orchestrate_if_ready(
    cfg: &ServiceConfig,
    board: &Board,
    stop: &Arc<AtomicBool>,
    inv: &mut Option<Arc<Inventory>>,
) -> Result<bool, String> {
    if standing_by(cfg, board, "orchestrator") {
        return Ok(false);
    }
    let mut journal = match Journal::open_existing_at(&cfg.journal).map_err(|e| e.to_string())? {
        Some(_) => Journal::open_at(&cfg.journal).map_err(|e| format!("opening the journal: {e}"))?,
        None => return Ok(false),
    };
    let counts = journal.task_counts(now_ms()).map_err(|e| e.to_string())?;
    if counts.ready < u64::from(cfg.orchestrator.min_tasks_to_trigger) {
        let open: u64 = counts.by_priority.iter().map(|(_, n)| n).sum();
        board.set(
            "orchestrator",
            "ok",
            format!("idle: {} task(s) ready, {open} open (starts at {})", counts.ready, cfg.orchestrator.min_tasks_to_trigger),
        );
        return Ok(false);
    }
    if inv.is_none() {
        *inv = Some(Arc::new(Inventory::open(&cfg.inventory.url).map_err(|e| e.to_string())?));
    }
    let Some(inv) = inv.as_ref() else { return Ok(false) };
    let datasets = compile_all(&cfg.datasets, now_ms()).map_err(|e| e.to_string())?;
    board.set("orchestrator", "ok", format!("running: {} task(s) ready", counts.ready));
    let orch = Orchestrator::new(&cfg.orchestrator, &datasets, Arc::clone(inv)).with_cwd(cfg.cwd.clone());
    // A replica that stops leading stops starting collectors.
    let opts = RunOptions { max_runtime: cfg.orchestrator.max_runtime, stop: cfg.halt.clone().unwrap_or_else(|| Arc::clone(stop)) };
    let summary = orch.run(&mut journal, &opts, &mut |_| {}).map_err(|e| e.to_string())?;
    board.set(
        "orchestrator",
        "ok",
        format!(
            "last run: {} done, {} already valid, {} to retry, {} dead-lettered, {} requeued; {} queued",
            summary.done, summary.already_valid, summary.retried, summary.dead, summary.requeued, summary.remaining
        ),
    );
    if summary.done + summary.already_valid > 0 {
        board.recheck.store(true, Ordering::SeqCst);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_component_is_reported_and_restarted_with_backoff() {
        let board = Board::default();
        let stop = AtomicBool::new(false);
        let mut runs: Vec<Instant> = Vec::new();
        let mut said: Vec<String> = Vec::new();
        supervise(
            "reconciler",
            &board,
            &stop,
            None,
            || Duration::from_millis(10),
            || {
                runs.push(Instant::now());
                said.extend(board.components().into_iter().filter(|c| c.status == "failing").map(|c| c.message));
                match runs.len() {
                    1 => panic!("the lake exploded"),
                    2 => Err("still broken".into()),
                    3 => Ok(()),
                    _ => {
                        stop.store(true, Ordering::SeqCst);
                        Ok(())
                    }
                }
            },
        );
        assert_eq!(runs.len(), 4, "restarted after a panic and an error, then ran on schedule");
        assert!(said[0].contains("panicked: the lake exploded") && said[0].contains("restarting in 1 s"), "{said:?}");
        assert!(said[1].contains("still broken") && said[1].contains("restarting in 2 s"), "{said:?}");
        let gaps: Vec<Duration> = runs.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= BACKOFF_START, "backoff after the panic: {gaps:?}");
        assert!(gaps[1] >= BACKOFF_START * 2, "doubled after the second failure: {gaps:?}");
        assert!(gaps[2] < BACKOFF_START, "a success runs on its own schedule: {gaps:?}");
    }
}
