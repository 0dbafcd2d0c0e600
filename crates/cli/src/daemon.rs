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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use steward_actuators::process::{self, Signal};
use steward_protocol::{write_atomic, Durability};
use steward_runtime::{drive_with, DriveOptions, Engine, EngineControl, Next};
use steward_server::Metrics;

use crate::config::Config;
use crate::output::{envelope, outln, print_json};

/// Seconds requests in flight get to finish once a stop is asked for.
const HTTP_DRAIN_SECS: u64 = 5;

/// The pidfile's name in the state directory.
pub const PIDFILE: &str = "steward.pid";

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
pub fn serve(cfg: &Config, engine: Engine, dry_run: bool, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    let state_dir = cfg.state_dir();
    fs::create_dir_all(&state_dir).with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    if let Some((pid, listen)) = running_daemon(&state_dir) {
        if pid != std::process::id() {
            anyhow::bail!("a steward daemon already runs for {} (pid {pid}, listening on {listen})", state_dir.display());
        }
    }
    let opts = cfg.server.options()?;
    // Clients must not share the default 1024 descriptors with the loop.
    let fds = steward_server::raise_fd_limit();
    tracing::info!(fds, connections = steward_server::connection_budget(opts.limits.max_connections), "Connection limits set.");
    let dry_run = dry_run || cfg.auto.dry_run;
    // With HA the lease is the exclusion: replicas may share one target on one host.
    let lock = if dry_run || engine.leadership().is_some() { None } else { Some(Arc::new(engine.lock()?)) };
    if !dry_run {
        // A replica that could not sign the shared chain is refused now, not when it first leads.
        engine.check_audit_key()?;
    }
    // The lease is renewed on its own thread, and released when the daemon stops (a handover).
    let lease_stop = Arc::new(AtomicBool::new(false));
    let lease = match engine.leadership() {
        Some(l) if !dry_run => Some(l.spawn(lease_stop.clone()).context("starting the lease thread")?),
        _ => None,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(opts.listen)).with_context(|| {
        format!("cannot listen on {}; choose another address with --listen, server.listen or STEWARD_SERVER_LISTEN", opts.listen)
    })?;
    let local: SocketAddr = listener.local_addr().context("reading the bound address")?;
    let ticks = process::stat(std::process::id()).map_or(0, |s| s.start_ticks);
    let pidfile = state_dir.join(PIDFILE);
    write_atomic(&state_dir, &pidfile, format!("{} {ticks} {local}\n", std::process::id()).as_bytes(), Durability::Flushed)
        .with_context(|| format!("writing {}", pidfile.display()))?;
    tracing::info!(listen = %local, pid = std::process::id(), dir = %engine.target(), dry_run, "Daemon started.");

    let engine = Arc::new(engine);
    let metrics = Arc::new(Metrics::new());
    let interval = cfg.auto.interval;
    let observed = metrics.clone();
    let counted = engine.clone();
    let observer = Box::new(move |r: &steward_runtime::CycleReport| {
        observed.observe_cycle(&r.metrics, &r.decision_results(), r.duration_ms as f64 / 1000.0);
        observed.observe_incidents(counted.open_incidents());
    });
    // With HA, reconciliation and the collectors run on the leader only:
    // `halt` is up while this replica stands by (or stops).
    let halt = engine.leadership().map(|_| Arc::new(AtomicBool::new(true)));
    if let Some(l) = engine.leadership().cloned() {
        // steward_leader follows the lease, cycles or not (a standby runs none).
        let (gauge, stop, halt) = (metrics.clone(), stop.clone(), halt.clone());
        std::thread::Builder::new()
            .name("steward-role".into())
            .spawn(move || loop {
                let leads = steward_runtime::ha::Fence::is_leader(&l);
                let stopping = stop.load(Ordering::SeqCst);
                gauge.observe_leader(leads);
                if let Some(h) = &halt {
                    h.store(stopping || !leads, Ordering::SeqCst);
                }
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            })
            .context("starting the role gauge")?;
    }
    let mut control = EngineControl::new(engine.clone(), lock.clone(), interval, observer);
    let service = if cfg.datasets.is_empty() {
        None
    } else {
        let (service, extras) = start_reconciliation(cfg, &stop, &metrics, halt.clone())?;
        // A failing reconciler, orchestrator or inventory raises an incident.
        let board = Arc::clone(&service.board);
        engine.desk().watch(Box::new(move || board.components()));
        control = control.with_extras(extras);
        Some(service)
    };
    let control = Arc::new(control);
    let router = steward_server::router_until(control.clone(), metrics, &opts, stop.clone());

    let driver = {
        let (engine, stop, control) = (engine.clone(), stop.clone(), control.clone());
        std::thread::Builder::new()
            .name("steward-loop".into())
            .spawn(move || {
                let opts = DriveOptions { interval, max_cycles: 0, dry_run, tick_every: Duration::from_millis(200) };
                drive_with(&engine, &opts, &stop, lock.as_deref(), |result| {
                    control.record(result);
                    Next::Continue
                })
            })
            .context("starting the loop")?
    };
    let served =
        runtime.block_on(steward_server::serve_until(listener, router, stop.clone(), Duration::from_secs(HTTP_DRAIN_SECS), opts.limits));
    if let Ok(steward_server::Stopped::CutOff) = served {
        tracing::warn!(seconds = HTTP_DRAIN_SECS, "HTTP requests still open at the stop deadline; closing them.");
    }
    stop.store(true, Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let looped = driver.join();
    // Hand over at once: the lease is released before the fleet is stopped.
    lease_stop.store(true, Ordering::SeqCst);
    if let Some(handle) = lease {
        steward_runtime::ha::join_for(handle, Duration::from_secs(3));
    }
    if let Some(service) = service {
        service.join();
    }
    engine.shutdown();
    engine.flush_telemetry();
    // Only our own pidfile is removed.
    if running_daemon(&state_dir).is_none_or(|(pid, _)| pid == std::process::id()) {
        let _ = fs::remove_file(&pidfile);
    }
    tracing::info!("Daemon stopped.");
    served.context("serving HTTP")?;
    match looped {
        Ok(r) => Ok(r.map(|_| ExitCode::SUCCESS)?),
        Err(_) => anyhow::bail!("the loop thread panicked"),
    }
}

/// The reconciler and the orchestrator (spec/reconcile.md) next to the
/// loop, reporting through `/health`, `/tasks` and the metrics.
fn start_reconciliation(
    cfg: &Config,
    stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
    halt: Option<Arc<AtomicBool>>,
) -> Result<(steward_reconcile::Service, steward_runtime::Extras)> {
    let journal = cfg.journal();
    let service_cfg = steward_reconcile::ServiceConfig {
        inventory: cfg.inventory.clone(),
        datasets: cfg.datasets.clone(),
        orchestrator: cfg.orchestrator.clone(),
        state_dir: cfg.state_dir(),
        journal: journal.clone(),
        cwd: cfg.base_dir.clone(),
        halt,
    };
    let task_counts = {
        let journal = journal.clone();
        move || -> Option<steward_store::TaskCounts> {
            steward_store::Journal::open_existing_at(&journal).ok().flatten().and_then(|j| j.task_counts(steward_runtime::now_ms()).ok())
        }
    };
    let changed: Arc<dyn Fn(&steward_reconcile::Board) + Send + Sync> = {
        let (metrics, task_counts) = (Arc::clone(metrics), task_counts.clone());
        Arc::new(move |board: &steward_reconcile::Board| {
            metrics.observe_coverage(&board.coverage());
            if let Some(c) = task_counts() {
                metrics.observe_tasks(&c.by_priority.iter().map(|(p, n)| (p.as_str(), *n)).collect::<Vec<_>>());
            }
        })
    };
    let service = steward_reconcile::Service::start(service_cfg, Arc::clone(stop), changed).context("starting reconciliation")?;
    let board = Arc::clone(&service.board);
    let tasks_board = Arc::clone(&service.board);
    let extras = steward_runtime::Extras {
        components: Box::new(move || board.components()),
        tasks: Box::new(move || {
            let counts = task_counts().unwrap_or_default();
            let open = steward_store::Journal::open_existing_at(&journal)
                .ok()
                .flatten()
                .and_then(|j| {
                    j.tasks(&[steward_store::TaskState::Queued, steward_store::TaskState::Running, steward_store::TaskState::Dead], 200)
                        .ok()
                })
                .unwrap_or_default();
            serde_json::json!({
                "tasks": open,
                "by_priority": counts.by_priority.iter().map(|(p, n)| (p.as_str().to_owned(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                "by_state": counts.by_state.iter().map(|(s, n)| (s.as_str().to_owned(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                "ready": counts.ready,
                "coverage": tasks_board.coverage().iter().map(|(d, r, g)| (d.clone(), serde_json::json!({"coverage": r, "gaps": g}))).collect::<serde_json::Map<_, _>>(),
            })
        }),
    };
    Ok((service, extras))
}

/// `steward start`: `serve` in the background, logging to the state
/// directory; returns once it answers /health.
///
/// # Errors
/// A daemon already runs, or the new one did not come up.
pub fn start(cfg: &Config, global: &[String], dry_run: bool, json: bool) -> Result<ExitCode> {
    let state_dir = cfg.state_dir();
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
    let out_path = logs.join("steward.out");
    let _ = fs::remove_file(&out_path);
    let out = steward_protocol::create_new(&out_path).context("opening the daemon's output file")?;
    let err = out.try_clone().context("opening the daemon's output file")?;
    let exe = std::env::current_exe().context("finding the steward executable")?;
    let mut cmd = Command::new(exe);
    // A queue's password reaches the daemon in its environment, never on its command line.
    if let Ok(steward_runtime::SourceKind::Queue { url, .. }) = cfg.source.kind() {
        if let (_, Some((var, secret))) = url.without_password() {
            cmd.env(var, secret);
        }
    }
    cmd.args(global).arg("serve").arg("--listen").arg(&cfg.server.listen).arg("--log-file").arg(&log_path);
    cmd.arg("--log-max-size").arg(cfg.logs.max_size.to_string()).arg("--log-keep").arg(cfg.logs.keep.to_string());
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
            if pid == child.id() && http_get(&listen, "/health", cfg.server.token.as_deref()).is_ok() {
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
pub fn stop(cfg: &Config, timeout: Duration, json: bool) -> Result<ExitCode> {
    let state_dir = cfg.state_dir();
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
pub fn health(cfg: &Config, json: bool) -> Result<ExitCode> {
    let state_dir = cfg.state_dir();
    // Only the daemon this directory's pidfile names: probing the default
    // address would report some other directory's daemon.
    let Some((_, listen)) = running_daemon(&state_dir) else {
        let msg = format!("no steward daemon for {} (no live pidfile in {})", cfg.coordination.dir.display(), state_dir.display());
        if json {
            print_json(&envelope("health", false, Value::Null, vec![msg], vec![]));
        } else {
            outln!("{msg}");
        }
        return Ok(ExitCode::FAILURE);
    };
    match http_get(&listen, "/health", cfg.server.token.as_deref()) {
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
pub fn logs(cfg: &Config, tail: usize, follow: bool, stop: &AtomicBool) -> Result<ExitCode> {
    let path = cfg.state_dir().join("logs").join("steward.log");
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
            *guard = Some(steward_protocol::open_append(&self.path)?);
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
