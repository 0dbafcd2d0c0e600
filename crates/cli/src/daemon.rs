//! The daemon: `serve` (loop + HTTP in the foreground), `start`/`stop`/
//! `restart` (the same in the background, with a pidfile), `health` and
//! `logs`.
//!
//! One target lock is taken at start and shared by the loop and the HTTP
//! actions; the engine's cycle gate keeps their cycles from overlapping.
//! First SIGINT/SIGTERM: no new cycles, finish what is in flight, stop the
//! fleet, flush, exit 0. A second one: exit at once.

use std::fs;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use steward_actuators::process::{self, Signal};
use steward_core::time::{format_rfc3339, UnixMs};
use steward_server::{Component, Control, ControlError, Metrics};
use steward_store::Journal;

use crate::driver::{drive_with, DriveOptions, Next};
use crate::engine::{now_ms, CycleReport, Engine, RollbackRefused, RunOptions, TargetLock};
use crate::output::{envelope, print_json};
use crate::UsageError;

/// Seconds requests in flight get to finish once a stop is asked for.
const HTTP_DRAIN_SECS: u64 = 5;

/// The pidfile's name in the state directory.
pub const PIDFILE: &str = "steward.pid";

/// What the daemon knows about its own loop, for /health.
struct LoopState {
    started_at: UnixMs,
    interval: Duration,
    cycles: AtomicU64,
    consecutive_failures: AtomicU64,
    last: Mutex<Option<(UnixMs, Result<Value, String>)>>,
}

struct EngineControl {
    engine: Arc<Engine>,
    lock: Option<Arc<TargetLock>>,
    metrics: Arc<Metrics>,
    state: Arc<LoopState>,
}

impl EngineControl {
    fn record(&self, result: &Result<CycleReport>) {
        let now = now_ms();
        match result {
            Ok(r) => {
                let decisions: Vec<(String, String)> = r
                    .executed
                    .iter()
                    .map(|e| (e.kind.clone(), "executed".to_owned()))
                    .chain(r.failed.iter().map(|e| (e.kind.clone(), "failed".to_owned())))
                    .chain(r.skipped.iter().map(|e| (e.kind.clone(), "skipped".to_owned())))
                    .collect();
                self.metrics.observe_cycle(&r.metrics, &decisions, r.duration_ms as f64 / 1000.0);
                self.state.consecutive_failures.store(0, Ordering::SeqCst);
                let summary = json!({"cycle_id": r.cycle_id, "metrics": r.metrics, "executed": r.executed.len(), "failed": r.failed.len(), "skipped": r.skipped.len(), "target_exists": r.target_exists});
                *self.state.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, Ok(summary)));
            }
            Err(e) => {
                self.state.consecutive_failures.fetch_add(1, Ordering::SeqCst);
                *self.state.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((now, Err(crate::error_chain(e.as_ref()))));
            }
        }
        self.state.cycles.fetch_add(1, Ordering::SeqCst);
    }
}

fn internal(e: &anyhow::Error) -> ControlError {
    ControlError::Internal(crate::error_chain(e.as_ref()))
}

impl Control for EngineControl {
    fn execute(&self) -> Result<Value, ControlError> {
        let result = match &self.lock {
            Some(lock) => self.engine.execute_locked(&RunOptions::default(), lock),
            None => self.engine.execute(&RunOptions { dry_run: true, ..RunOptions::default() }),
        };
        self.record(&result);
        result.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).map_err(|e| internal(&e))
    }

    fn rollback(&self, id: &str) -> Result<Value, ControlError> {
        let Some(lock) = &self.lock else {
            return Err(ControlError::Refused("the daemon runs dry (--dry-run): nothing is changed".into()));
        };
        match self.engine.rollback_locked(id, lock) {
            Ok(r) => Ok(serde_json::to_value(r).unwrap_or(Value::Null)),
            Err(e) if e.is::<UsageError>() => Err(ControlError::NotFound(e.to_string())),
            Err(e) if e.is::<RollbackRefused>() => Err(ControlError::Refused(e.to_string())),
            Err(e) => Err(internal(&e)),
        }
    }

    fn status(&self) -> Value {
        let last = self.state.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
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
                "coordination_dir": self.engine.coordination_dir(),
                "dry_run": self.lock.is_none(),
            },
        })
    }

    fn decisions(&self, limit: usize) -> Result<Value, ControlError> {
        let entries =
            match Journal::open_existing(&self.engine.journal_path()).map_err(|e| ControlError::Internal(crate::error_chain(&e)))? {
                Some(j) => j.recent_decisions(limit).map_err(|e| ControlError::Internal(crate::error_chain(&e)))?,
                None => Vec::new(),
            };
        Ok(json!({"decisions": entries}))
    }

    fn ingest(&self, records: u64) {
        self.engine.ingest(records);
    }

    fn tasks(&self) -> Value {
        // Reconciliation (spec/reconcile.md) is not built yet: the queue is empty.
        json!({"tasks": [], "by_priority": {"critical": 0, "high": 0, "medium": 0, "low": 0}})
    }

    fn health(&self) -> Vec<Component> {
        let c = |name: &str, status: &str, message: String| Component { name: name.into(), status: status.into(), message };
        let now = now_ms();
        let late_after = i64::try_from(self.state.interval.as_millis()).unwrap_or(i64::MAX).saturating_mul(3).saturating_add(30_000);
        let last = self.state.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let failures = self.state.consecutive_failures.load(Ordering::SeqCst);
        let loop_c = match &last {
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
            _ => c("journal", "ok", format!("{}", self.engine.journal_path().display())),
        };
        // A non-empty queue is work, not a failure; a queue that is not
        // there at all (unmounted volume, wrong path) is one.
        let queue_c = match &last {
            Some((_, Ok(s))) if s["target_exists"] == false => {
                c("queue", "failing", format!("the coordination directory {} does not exist", self.engine.coordination_dir().display()))
            }
            Some((_, Ok(s))) => {
                c("queue", "ok", format!("{} pending, {} in flight", s["metrics"]["work_queue_size"], s["metrics"]["in_flight"]))
            }
            _ => c("queue", "ok", "not read yet".into()),
        };
        vec![
            loop_c,
            journal_c,
            queue_c,
            c("reconciler", "idle", "no datasets configured".into()),
            c("orchestrator", "idle", "no tasks queued".into()),
            c("inventory", "idle", "no inventory configured".into()),
        ]
    }
}

/// Who holds the pidfile of a state directory, if that process still runs
/// and is a steward: `(pid, listen address)`.
pub fn running_daemon(state_dir: &Path) -> Option<(u32, String)> {
    let text = fs::read_to_string(state_dir.join(PIDFILE)).ok()?;
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let start_ticks: u64 = parts.next()?.parse().ok()?;
    let listen = parts.next().unwrap_or("").to_owned();
    // A steward daemon: its program is a steward binary and it was asked to serve.
    let is_steward = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        let program = args.first().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
        Path::new(&program).file_name().is_some_and(|n| n.to_string_lossy().starts_with("steward")) && args.iter().any(|a| *a == b"serve")
    });
    (process::is_running(pid, start_ticks) && is_steward).then_some((pid, listen))
}

/// Daemon information for `status`: running, pid, uptime.
pub fn daemon_info(state_dir: &Path) -> Value {
    let pidfile = state_dir.join(PIDFILE);
    match running_daemon(state_dir) {
        Some((pid, listen)) => {
            let uptime = fs::metadata(&pidfile).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).map(|d| d.as_secs());
            json!({"running": true, "pid": pid, "uptime_seconds": uptime, "listen": listen})
        }
        None if pidfile.exists() => json!({"running": false, "pid": null, "uptime_seconds": null, "stale_pidfile": true}),
        None => json!({"running": false, "pid": null, "uptime_seconds": null}),
    }
}

/// `steward serve`: the loop and the HTTP server in the foreground.
///
/// # Errors
/// Another daemon runs for this state directory, the target is locked, or
/// the address cannot be bound.
pub fn serve(engine: Engine, dry_run: bool, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    let state_dir = engine.config.state_dir();
    fs::create_dir_all(&state_dir).with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    if let Some((pid, listen)) = running_daemon(&state_dir) {
        if pid != std::process::id() {
            anyhow::bail!("a steward daemon already runs for {} (pid {pid}, listening on {listen})", state_dir.display());
        }
    }
    let opts = engine.config.server_options();
    let dry_run = dry_run || engine.config.auto.dry_run;
    let lock = if dry_run { None } else { Some(Arc::new(engine.lock()?)) };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(opts.listen))
        .with_context(|| format!("cannot listen on {} (server.listen)", opts.listen))?;
    let local: SocketAddr = listener.local_addr().context("reading the bound address")?;
    let ticks = process::stat(std::process::id()).map_or(0, |s| s.start_ticks);
    let pidfile = state_dir.join(PIDFILE);
    fs::write(&pidfile, format!("{} {ticks} {local}\n", std::process::id())).with_context(|| format!("writing {}", pidfile.display()))?;
    tracing::info!(listen = %local, pid = std::process::id(), dir = %engine.coordination_dir().display(), dry_run, "Daemon started.");

    let engine = Arc::new(engine);
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(LoopState {
        started_at: now_ms(),
        interval: engine.config.auto.interval,
        cycles: AtomicU64::new(0),
        consecutive_failures: AtomicU64::new(0),
        last: Mutex::new(None),
    });
    let control = Arc::new(EngineControl { engine: engine.clone(), lock: lock.clone(), metrics: metrics.clone(), state });
    let router = steward_server::router(control.clone(), metrics, &opts);

    let driver = {
        let (engine, stop, control) = (engine.clone(), stop.clone(), control.clone());
        std::thread::Builder::new()
            .name("steward-loop".into())
            .spawn(move || {
                let opts =
                    DriveOptions { interval: engine.config.auto.interval, max_cycles: 0, dry_run, tick_every: Duration::from_millis(200) };
                drive_with(&engine, &opts, &stop, lock.as_deref(), |result| {
                    control.record(result);
                    Next::Continue
                })
            })
            .context("starting the loop")?
    };
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // A slow or stuck client must not hold the stop past the fleet's drain
    // and systemd's timeout: requests in flight get a few seconds.
    let served = runtime.block_on(async {
        let server = steward_server::serve(listener, router, shutdown);
        tokio::pin!(server);
        let stop_wait = stop.clone();
        tokio::select! {
            r = &mut server => r,
            () = async move {
                while !stop_wait.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_secs(HTTP_DRAIN_SECS)).await;
            } => {
                tracing::warn!(seconds = HTTP_DRAIN_SECS, "HTTP requests still open at the stop deadline; closing them.");
                Ok(())
            }
        }
    });
    stop.store(true, Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let looped = driver.join();
    engine.shutdown();
    engine.flush_telemetry();
    // Only our own pidfile is removed.
    if running_daemon(&state_dir).is_none_or(|(pid, _)| pid == std::process::id()) {
        let _ = fs::remove_file(&pidfile);
    }
    tracing::info!("Daemon stopped.");
    served.context("serving HTTP")?;
    match looped {
        Ok(r) => r.map(|_| ExitCode::SUCCESS),
        Err(_) => anyhow::bail!("the loop thread panicked"),
    }
}

/// `steward start`: `serve` in the background, logging to the state
/// directory; returns once it answers /health.
///
/// # Errors
/// A daemon already runs, or the new one did not come up.
pub fn start(engine: &Engine, global: &[String], dry_run: bool, json: bool) -> Result<ExitCode> {
    let state_dir = engine.config.state_dir();
    if let Some((pid, listen)) = running_daemon(&state_dir) {
        anyhow::bail!("a steward daemon already runs for {} (pid {pid}, listening on {listen}); `steward stop` first", state_dir.display());
    }
    let pidfile = state_dir.join(PIDFILE);
    if pidfile.exists() {
        tracing::warn!(path = %pidfile.display(), "Removing a stale pidfile (its process is gone or is not steward).");
        let _ = fs::remove_file(&pidfile);
    }
    let logs = state_dir.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log_path = logs.join("steward.log");
    // Anything the daemon prints before its log is set up (this run only).
    let out = fs::File::create(logs.join("steward.out")).context("opening the daemon's output file")?;
    let err = out.try_clone().context("opening the daemon's output file")?;
    let exe = std::env::current_exe().context("finding the steward executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(global).arg("serve").arg("--log-file").arg(&log_path);
    cmd.arg("--log-max-size").arg(engine.config.logs.max_size.to_string()).arg("--log-keep").arg(engine.config.logs.keep.to_string());
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting the daemon")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().context("watching the daemon start")? {
            let tail = fs::read_to_string(logs.join("steward.out")).unwrap_or_default();
            let last: Vec<&str> = tail.lines().rev().take(3).collect();
            anyhow::bail!("the daemon exited at start ({status}): {}", last.into_iter().rev().collect::<Vec<_>>().join(" | "));
        }
        if let Some((pid, listen)) = running_daemon(&state_dir) {
            if pid == child.id() && http_get(&listen, "/health", engine.config.server.token.as_deref()).is_ok() {
                if json {
                    print_json(&envelope("start", true, json!({"pid": pid, "listen": listen, "log": log_path}), vec![], vec![]));
                } else {
                    outln!("steward daemon started: pid {pid}, listening on {listen}, log {}", log_path.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
        if Instant::now() >= deadline {
            let _ = process::kill(child.id(), Signal::Kill);
            anyhow::bail!("the daemon did not answer /health within 20 s; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `steward stop`: SIGTERM, up to `timeout` for a graceful stop, then SIGKILL.
///
/// # Errors
/// The process could not be signalled.
pub fn stop(engine: &Engine, timeout: Duration, json: bool) -> Result<ExitCode> {
    let state_dir = engine.config.state_dir();
    let pidfile = state_dir.join(PIDFILE);
    let Some((pid, _)) = running_daemon(&state_dir) else {
        if pidfile.exists() {
            let _ = fs::remove_file(&pidfile);
            outln!("steward daemon not running (removed a stale pidfile)");
        } else {
            outln!("steward daemon not running");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let ticks = process::stat(pid).map_or(0, |s| s.start_ticks);
    process::kill(pid, Signal::Term).with_context(|| format!("signalling pid {pid}"))?;
    let deadline = Instant::now() + timeout;
    let mut forced = false;
    while process::is_running(pid, ticks) {
        if Instant::now() >= deadline && !forced {
            tracing::warn!(pid, "Daemon did not stop in time; SIGKILL.");
            let _ = process::kill(pid, Signal::Kill);
            forced = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(&pidfile);
    if json {
        print_json(&envelope("stop", true, json!({"pid": pid, "forced": forced}), vec![], vec![]));
    } else {
        outln!("steward daemon stopped (pid {pid}{})", if forced { ", killed after the grace period" } else { "" });
    }
    Ok(ExitCode::SUCCESS)
}

/// GET on the daemon's own address, for `health` and `start`: (status, body).
fn http_get(listen: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let url = steward_actuators::http::Url::parse(&format!("http://{listen}{path}")).map_err(std::io::Error::other)?;
    let headers: Vec<(String, String)> = token.map(|t| ("Authorization".to_owned(), format!("Bearer {t}"))).into_iter().collect();
    let answer = steward_actuators::http::request("GET", &url, &headers, None, Duration::from_secs(5))?;
    Ok((answer.status, answer.body))
}

/// `steward health`: each component's status; exit 0 healthy, 1 not.
///
/// # Errors
/// Never for an unhealthy daemon (that is exit 1), only for bad config.
pub fn health(engine: &Engine, json: bool) -> Result<ExitCode> {
    let state_dir = engine.config.state_dir();
    let listen = running_daemon(&state_dir).map(|(_, l)| l).unwrap_or_else(|| engine.config.server.listen.clone());
    match http_get(&listen, "/health", engine.config.server.token.as_deref()) {
        Ok((code, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if json {
                print_json(&envelope("health", code == 200, v.clone(), vec![], vec![]));
            } else {
                outln!("steward daemon at {listen}: {}", if code == 200 { "healthy" } else { "UNHEALTHY" });
                for c in v["components"].as_array().into_iter().flatten() {
                    outln!(
                        "  {:<13} {:<8} {}",
                        c["name"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["message"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(if code == 200 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Err(e) => {
            let msg = format!("no steward daemon answers on {listen} ({e})");
            if json {
                print_json(&envelope("health", false, Value::Null, vec![msg], vec![]));
            } else {
                outln!("{msg}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `steward logs [--tail N] [--follow]`.
///
/// # Errors
/// The log cannot be read.
pub fn logs(engine: &Engine, tail: usize, follow: bool, stop: &AtomicBool) -> Result<ExitCode> {
    let path = engine.config.state_dir().join("logs").join("steward.log");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => String::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            outln!("no daemon log yet ({}); `steward start` writes it", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(tail)..] {
        outln!("{l}");
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    use std::os::unix::fs::MetadataExt;
    let mut pos = text.len() as u64;
    let mut inode = fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    while !stop.load(Ordering::SeqCst) && !crate::output::stdout_closed() {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(mut f) = fs::File::open(&path) else { continue };
        let meta = f.metadata().ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let ino = meta.as_ref().map_or(0, MetadataExt::ino);
        // Rotated (a new file under the name) or truncated: start from its top.
        if ino != inode || len < pos {
            inode = ino;
            pos = 0;
        }
        if len > pos && f.seek(SeekFrom::Start(pos)).is_ok() {
            let reader = std::io::BufReader::new(&mut f);
            for line in reader.lines().map_while(std::result::Result::ok) {
                outln!("{line}");
            }
            pos = len;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A log file that rotates at a size: steward.log → steward.log.1 → ... .N.
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: Mutex<Option<fs::File>>,
}

impl RotatingFile {
    /// Opens (appending) or creates the log.
    pub fn new(path: PathBuf, max_size: u64, keep: u32) -> Self {
        Self { path, max_size, keep, file: Mutex::new(None) }
    }

    fn rotate(&self) {
        for i in (1..self.keep).rev() {
            let _ = fs::rename(self.path.with_extension(format!("log.{i}")), self.path.with_extension(format!("log.{}", i + 1)));
        }
        if self.keep > 0 {
            let _ = fs::rename(&self.path, self.path.with_extension("log.1"));
        } else {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Write for &RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut guard = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let too_big = guard.as_ref().and_then(|f| f.metadata().ok()).is_some_and(|m| m.len() + buf.len() as u64 > self.max_size);
        if too_big {
            *guard = None;
            self.rotate();
        }
        if guard.is_none() {
            *guard = Some(fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        match guard.as_mut() {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("log file not open")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_by_size_keeping_n_generations() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("steward.log");
        let log = RotatingFile::new(path.clone(), 100, 2);
        for i in 0..30 {
            writeln!(&log, "{{\"line\":{i:03}}}").unwrap();
        }
        let names: Vec<String> = {
            let mut v: Vec<String> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names, ["steward.log", "steward.log.1", "steward.log.2"]);
        for n in &names {
            assert!(fs::metadata(tmp.path().join(n)).unwrap().len() <= 100);
        }
        assert!(fs::read_to_string(&path).unwrap().contains("\"line\":029"));
    }
}
