//! The supervisor: runs the fleet as local worker processes.
//!
//! It keeps a desired number of workers running. Scale decisions change
//! that number: new workers are started at once; surplus ones get SIGTERM,
//! finish their current item, and are killed only after `drain_timeout`.
//! A worker that dies unasked is a crash: its claims go back to the queue
//! at once (the supervisor knows it is dead, no heartbeat needs to expire),
//! and it is replaced after an exponential backoff; too many crashes in a
//! window is a crash loop, and replacements stop until the window passes.
//!
//! Everything is level-triggered: [`Supervisor::tick`] compares what runs
//! with what should and mends the difference, so it is safe to call as
//! often as wanted. The fleet is recorded in `<state>/fleet.json` after
//! every change, so a steward that restarts adopts live workers (checked by
//! pid and start time, never by pid alone) instead of starting duplicates.

mod config;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::decision::Action;
use steward_core::time::{format_rfc3339, UnixMs};
use steward_protocol::{write_atomic, AgentStatus, CoordinationDir, Durability};

pub use config::{AgentFiles, SupervisorConfig};

use crate::actuator::{Actuator, ActuatorError};
use crate::process::{self, Signal};

/// Shared things the supervisor needs from the process that runs it.
#[derive(Debug, Clone)]
pub struct SupervisorContext {
    /// The coordination directory the workers serve.
    pub coordination_dir: PathBuf,
    /// The state directory (`fleet.json`, `workers/*.log`).
    pub state_dir: PathBuf,
    /// The steward executable, for the built-in worker.
    pub exe: PathBuf,
    /// Attempts before a requeued item is dead-lettered.
    pub max_attempts: u32,
    /// The largest item read (`coordination.max_item_bytes`), also given to
    /// the workers as `STEWARD_COORDINATION_MAX_ITEM_BYTES`.
    pub max_item_bytes: u64,
    /// The workers serve a real queue instead of the directory: they run
    /// `worker --queue URL` (`{queue}` in `fleet.command`).
    pub queue: Option<QueueWorkers>,
}

/// The queue a supervised fleet serves.
#[derive(Clone)]
pub struct QueueWorkers {
    /// The queue's URL without its password.
    pub url: String,
    /// The variable that carries the password to each worker, and its value:
    /// never on a command line, where `ps` would show it.
    pub secret: Option<(&'static str, String)>,
}

impl std::fmt::Debug for QueueWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueueWorkers({}, secret in {:?})", self.url, self.secret.as_ref().map(|(v, _)| *v))
    }
}

/// Something that happened to the fleet, for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetEvent {
    /// When.
    pub ts: UnixMs,
    /// The agent concerned (empty for fleet-wide events).
    pub agent: String,
    /// `started`, `adopted`, `stopping`, `stopped`, `killed`, `crashed`, `gone`, `crash_loop`, `requeued`, `requeue_failed`.
    pub kind: &'static str,
    /// The details, in a sentence.
    pub message: String,
}

/// One worker as the registry records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: String,
    pid: u32,
    start_ticks: u64,
    started_at: UnixMs,
    #[serde(default)]
    stop_requested_at: Option<UnixMs>,
    #[serde(default)]
    killed: bool,
}

/// `<state>/fleet.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    next_id: u64,
    /// Tells this state directory's workers apart from every other agent
    /// (chosen at random when the registry is first written).
    #[serde(default)]
    generation: Option<u16>,
    desired: Option<u32>,
    workers: Vec<Record>,
    crashes: Vec<UnixMs>,
}

struct Worker {
    rec: Record,
    /// Present for workers this process started; adopted ones are not our children.
    child: Option<Child>,
    last_agent_write: UnixMs,
}

/// Runs and supervises local worker processes.
pub struct Supervisor {
    cfg: SupervisorConfig,
    cx: SupervisorContext,
    workers: BTreeMap<String, Worker>,
    next_id: u64,
    generation: u16,
    desired: Option<u32>,
    crashes: Vec<UnixMs>,
    events: Vec<FleetEvent>,
    /// The crash loop was reported (once per loop, not every tick).
    crash_loop_reported: bool,
}

/// 16 random bits for a new registry's generation.
fn random_generation() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (h.finish() & 0xffff) as u16
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Supervisor {
    /// Builds the supervisor and adopts the live workers recorded in the
    /// state directory. Recorded workers that are gone are handled as
    /// crashes (their claims are requeued).
    ///
    /// # Errors
    /// The state directory cannot be created or the registry is unreadable.
    pub fn new(cfg: SupervisorConfig, cx: SupervisorContext, now: UnixMs) -> Result<Self, ActuatorError> {
        fs::create_dir_all(cx.state_dir.join("workers")).map_err(|source| ActuatorError::Io {
            op: "create",
            path: cx.state_dir.join("workers"),
            source,
        })?;
        let path = cx.state_dir.join("fleet.json");
        let registry: Registry = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ActuatorError::Io {
                op: "parse",
                path: path.clone(),
                source: std::io::Error::other(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::default(),
            Err(source) => return Err(ActuatorError::Io { op: "read", path, source }),
        };
        let mut sup = Self {
            cfg,
            cx,
            workers: BTreeMap::new(),
            next_id: registry.next_id.max(1),
            generation: registry.generation.unwrap_or_else(random_generation),
            desired: registry.desired,
            crashes: registry.crashes,
            events: Vec::new(),
            crash_loop_reported: false,
        };
        for rec in registry.workers {
            if process::is_running(rec.pid, rec.start_ticks) {
                sup.event(now, &rec.id, "adopted", format!("adopted live worker pid {}", rec.pid));
                sup.workers.insert(rec.id.clone(), Worker { rec, child: None, last_agent_write: 0 });
            } else {
                let id = rec.id.clone();
                sup.event(now, &id, "gone", format!("worker pid {} ended while steward was away", rec.pid));
                sup.clean_up_after(&rec, now, true);
            }
        }
        sup.save()?;
        Ok(sup)
    }

    fn event(&mut self, ts: UnixMs, agent: &str, kind: &'static str, message: String) {
        self.events.push(FleetEvent { ts, agent: agent.to_owned(), kind, message });
    }

    /// Its configuration.
    pub fn config(&self) -> &SupervisorConfig {
        &self.cfg
    }

    /// Events since the last call, for the journal.
    pub fn take_events(&mut self) -> Vec<FleetEvent> {
        std::mem::take(&mut self.events)
    }

    /// Workers running and not asked to stop.
    pub fn running(&self) -> u32 {
        u32::try_from(self.workers.values().filter(|w| w.rec.stop_requested_at.is_none()).count()).unwrap_or(u32::MAX)
    }

    /// The worker count the supervisor maintains, once a scale action set one.
    pub fn desired(&self) -> Option<u32> {
        self.desired
    }

    /// Ids and pids of the workers, stopping ones included.
    pub fn workers(&self) -> Vec<(String, u32)> {
        self.workers.values().map(|w| (w.rec.id.clone(), w.rec.pid)).collect()
    }

    /// Whether replacements are paused by a crash loop.
    pub fn crash_loop_open(&self, now: UnixMs) -> bool {
        self.recent_crashes(now) >= self.cfg.crash_loop as usize
    }

    fn recent_crashes(&self, now: UnixMs) -> usize {
        let window = ms(self.cfg.crash_window);
        self.crashes.iter().filter(|&&t| now - t < window).count()
    }

    fn save(&self) -> Result<(), ActuatorError> {
        let registry = Registry {
            next_id: self.next_id,
            generation: Some(self.generation),
            desired: self.desired,
            workers: self.workers.values().map(|w| w.rec.clone()).collect(),
            crashes: self.crashes.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&registry).map_err(|e| ActuatorError::Io {
            op: "encode",
            path: self.cx.state_dir.join("fleet.json"),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.cx.state_dir, &self.cx.state_dir.join("fleet.json"), &bytes, Durability::Flushed).map_err(ActuatorError::from)
    }

    fn argv(&self, id: &str) -> Vec<String> {
        let dir = self.cx.coordination_dir.display().to_string();
        let queue = self.cx.queue.as_ref().map_or("", |q| q.url.as_str());
        if self.cfg.command.is_empty() {
            let mut argv = vec![self.cx.exe.display().to_string()];
            match &self.cx.queue {
                Some(q) => argv.extend(["worker".to_owned(), "--queue".to_owned(), q.url.clone()]),
                None => argv.extend(["--coordination".to_owned(), dir, "worker".to_owned()]),
            }
            argv.extend([
                "--id".into(),
                id.into(),
                "--heartbeat-interval".into(),
                self.cfg.heartbeat_interval.as_secs_f64().to_string(),
                "--max-attempts".into(),
                self.cx.max_attempts.to_string(),
            ]);
            argv.extend(self.cfg.args.iter().cloned());
            argv
        } else {
            self.cfg.command.iter().map(|a| a.replace("{agent_id}", id).replace("{coordination}", &dir).replace("{queue}", queue)).collect()
        }
    }

    /// Starts one worker.
    fn start(&mut self, now: UnixMs) -> Result<String, ActuatorError> {
        // `agent_sw<generation>-<n>`: a name no hand-made agent has, and
        // never one whose record exists: a fleet must not write over an
        // agent record it did not create.
        let id = loop {
            let id = format!("agent_sw{:04x}-{}", self.generation, self.next_id);
            self.next_id += 1;
            let taken = fs::symlink_metadata(self.cx.coordination_dir.join(steward_protocol::agent_file_name(&id))).is_ok();
            if !taken && !self.workers.contains_key(&id) {
                break id;
            }
        };
        let argv = self.argv(&id);
        let log_path = self.cx.state_dir.join("workers").join(format!("{id}.log"));
        let log =
            steward_protocol::open_append(&log_path).map_err(|source| ActuatorError::Io { op: "open", path: log_path.clone(), source })?;
        let log2 = log.try_clone().map_err(|source| ActuatorError::Io { op: "open", path: log_path.clone(), source })?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(&self.cfg.env)
            .env("STEWARD_AGENT_ID", &id)
            .env("STEWARD_COORDINATION", &self.cx.coordination_dir)
            .env("STEWARD_COORDINATION_MAX_ITEM_BYTES", self.cx.max_item_bytes.to_string())
            .envs(self.cx.queue.iter().flat_map(|q| q.secret.iter().map(|(k, v)| (*k, v.as_str()))))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(cwd) = &self.cfg.cwd {
            cmd.current_dir(cwd);
        }
        // Its own process group: a Ctrl-C on steward's terminal does not
        // hit the workers directly; steward stops them in order.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|source| ActuatorError::Io { op: "start worker", path: PathBuf::from(&argv[0]), source })?;
        let pid = child.id();
        let start_ticks = process::stat(pid).map_or(0, |s| s.start_ticks);
        let rec = Record { id: id.clone(), pid, start_ticks, started_at: now, stop_requested_at: None, killed: false };
        self.workers.insert(id.clone(), Worker { rec, child: Some(child), last_agent_write: 0 });
        self.event(now, &id, "started", format!("started pid {pid}: {}", argv.join(" ")));
        if self.cfg.supervisor_writes_agent_files() {
            self.write_agent_file(&id, now, "initialization");
        }
        Ok(id)
    }

    /// Asks a worker to stop after its current item.
    fn stop(&mut self, id: &str, now: UnixMs) {
        let Some(w) = self.workers.get_mut(id) else { return };
        if w.rec.stop_requested_at.is_some() {
            return;
        }
        w.rec.stop_requested_at = Some(now);
        let pid = w.rec.pid;
        let sent = process::kill(pid, Signal::Term);
        let msg = match sent {
            Ok(()) => format!("SIGTERM to pid {pid}; it finishes its current item (drain_timeout {} s)", self.cfg.drain_timeout.as_secs()),
            Err(e) => format!("SIGTERM to pid {pid} failed: {e}"),
        };
        self.event(now, id, "stopping", msg);
    }

    /// Compares what runs with what should and mends the difference: reaps
    /// exited workers, kills drains past their timeout, replaces crashed
    /// workers (with backoff), and writes agent files for workers that keep
    /// none. Returns whether anything changed.
    pub fn tick(&mut self, now: UnixMs) -> bool {
        let mut changed = false;
        // 1. Reap.
        let ids: Vec<String> = self.workers.keys().cloned().collect();
        for id in ids {
            let Some(w) = self.workers.get_mut(&id) else { continue };
            let exit = match &mut w.child {
                Some(child) => match child.try_wait() {
                    Ok(Some(status)) => Some(Some(status)),
                    Ok(None) => None,
                    Err(_) => Some(None),
                },
                None => (!process::is_running(w.rec.pid, w.rec.start_ticks)).then_some(None),
            };
            let Some(status) = exit else { continue };
            changed = true;
            let Some(w) = self.workers.remove(&id) else { continue };
            let asked = w.rec.stop_requested_at.is_some();
            let how = status.map_or_else(|| "ended".to_owned(), |s| s.to_string());
            if asked {
                let kind = if w.rec.killed { "killed" } else { "stopped" };
                self.event(now, &id, kind, format!("pid {} {how} after a stop request", w.rec.pid));
                self.clean_up_after(&w.rec, now, w.rec.killed);
            } else {
                self.crashes.push(now);
                self.event(now, &id, "crashed", format!("pid {} {how} without being asked", w.rec.pid));
                self.clean_up_after(&w.rec, now, true);
            }
        }
        // 2. Drains past their timeout are killed.
        let drain = ms(self.cfg.drain_timeout);
        let overdue: Vec<String> = self
            .workers
            .values()
            .filter(|w| !w.rec.killed && w.rec.stop_requested_at.is_some_and(|t| now - t >= drain))
            .map(|w| w.rec.id.clone())
            .collect();
        for id in overdue {
            if let Some(w) = self.workers.get_mut(&id) {
                w.rec.killed = true;
                let pid = w.rec.pid;
                let _ = process::kill(pid, Signal::Kill);
                self.event(now, &id, "killing", format!("pid {pid} still busy after drain_timeout; SIGKILL"));
                changed = true;
            }
        }
        // 3. Replace what is missing, with backoff after crashes.
        let window = ms(self.cfg.crash_window);
        self.crashes.retain(|&t| now - t < window);
        if let Some(desired) = self.desired {
            let recent = self.recent_crashes(now);
            let last_crash = self.crashes.iter().max().copied();
            while self.running() < desired {
                if recent >= self.cfg.crash_loop as usize {
                    if !self.crash_loop_reported {
                        self.crash_loop_reported = true;
                        let msg = format!(
                            "{recent} crashes within {} s: replacements paused until the window passes",
                            self.cfg.crash_window.as_secs()
                        );
                        self.event(now, "", "crash_loop", msg);
                    }
                    break;
                }
                self.crash_loop_reported = false;
                if let Some(last) = last_crash {
                    let exp = u32::try_from(recent.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
                    let delay = self.cfg.restart_backoff.saturating_mul(1 << exp).min(self.cfg.restart_backoff_max);
                    if now - last < ms(delay) {
                        break;
                    }
                }
                match self.start(now) {
                    Ok(_) => changed = true,
                    Err(e) => {
                        self.crashes.push(now);
                        self.event(now, "", "start_failed", crate::actuator::error_chain(&e));
                        break;
                    }
                }
            }
        }
        // 4. Heartbeats for workers that keep no agent file.
        if self.cfg.supervisor_writes_agent_files() {
            let every = ms(self.cfg.heartbeat_interval);
            let due: Vec<String> = self.workers.values().filter(|w| now - w.last_agent_write >= every).map(|w| w.rec.id.clone()).collect();
            for id in due {
                let phase = if self.workers.get(&id).is_some_and(|w| w.rec.stop_requested_at.is_some()) { "completion" } else { "active" };
                self.write_agent_file(&id, now, phase);
            }
        }
        if changed {
            if let Err(e) = self.save() {
                self.event(now, "", "registry_failed", crate::actuator::error_chain(&e));
            }
        }
        changed
    }

    /// After a worker ended: requeue its claims if it did not finish
    /// cleanly, remove its temp files and its agent file.
    fn clean_up_after(&mut self, rec: &Record, now: UnixMs, requeue: bool) {
        if let Some(q) = self.cx.queue.clone() {
            // A real queue: its claims go back at once, and its consumer name is forgotten.
            let secret = q.secret.clone();
            let env = move |k: &str| secret.as_ref().filter(|(var, _)| *var == k).map(|(_, v)| v.clone());
            let done = steward_queue::QueueUrl::parse_with_env(&q.url, env).map_err(|e| e.to_string()).and_then(|url| {
                let mut queue = steward_queue::open(&url, Duration::from_secs(5));
                if requeue {
                    queue.requeue_consumer(&rec.id, self.cx.max_attempts).map(Some).map_err(|e| crate::actuator::error_chain(&e))
                } else {
                    queue.leave(&rec.id).map(|()| None).map_err(|e| crate::actuator::error_chain(&e))
                }
            });
            match done {
                Ok(Some(r)) if r.requeued + r.dead_lettered > 0 => self.event(now, &rec.id, "requeued", format!("{r} of {}", rec.id)),
                Ok(_) => {}
                // The loop's recovery takes them back once they are stale.
                Err(e) => self.event(now, &rec.id, "requeue_failed", format!("{}'s claims stay for recovery: {e}", rec.id)),
            }
        }
        let dir = self.coordination();
        if requeue {
            let claims = dir.claims_of(&rec.id);
            if !claims.is_empty() {
                let mut n = 0;
                for item in &claims {
                    if dir.requeue(item, &format!("claimant {} died", rec.id), now).is_ok() {
                        n += 1;
                    }
                }
                self.event(now, &rec.id, "requeued", format!("{n} claim(s) of {} requeued", rec.id));
            }
        }
        // A temp file of a dead writer is garbage: nobody will rename it.
        dir.remove_temp_files_of(rec.pid);
        dir.remove_agent(&rec.id);
    }

    /// The coordination directory, as the claim protocol sees it.
    fn coordination(&self) -> CoordinationDir {
        CoordinationDir::new(&self.cx.coordination_dir, self.cx.max_attempts).with_max_item_bytes(self.cx.max_item_bytes)
    }

    fn write_agent_file(&mut self, id: &str, now: UnixMs, phase: &str) {
        let Some(w) = self.workers.get_mut(id) else { return };
        w.last_agent_write = now;
        let body = serde_json::json!({
            "id": id,
            "status": if phase == "completion" { "draining" } else { "active" },
            "heartbeat": format_rfc3339(now),
            "started_at": format_rfc3339(w.rec.started_at),
            "pid": w.rec.pid,
            "lifecycle": phase,
            "managed_by": "steward-supervisor",
        });
        let _ = self.coordination().write_agent(id, &body, Durability::Visible);
    }

    /// Stops every worker: SIGTERM, up to `grace` for them to finish their
    /// items, then SIGKILL. Used when steward stops (unless `detach`).
    pub fn shutdown(&mut self, grace: Duration, clock: &dyn Fn() -> UnixMs) {
        let now = clock();
        self.desired = None;
        let ids: Vec<String> = self.workers.keys().cloned().collect();
        for id in &ids {
            self.stop(id, now);
        }
        let until = now + ms(grace);
        while !self.workers.is_empty() && clock() < until {
            self.tick(clock());
            std::thread::sleep(Duration::from_millis(20));
        }
        for w in self.workers.values_mut() {
            w.rec.killed = true;
            let _ = process::kill(w.rec.pid, Signal::Kill);
        }
        let deadline = clock() + 5000;
        while !self.workers.is_empty() && clock() < deadline {
            self.tick(clock());
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.save();
    }

    /// Picks the workers to stop on a scale-down: idle ones first (by their
    /// agent file), then the newest.
    fn pick_to_stop(&self, n: usize) -> Vec<String> {
        let dir = self.coordination();
        let mut candidates: Vec<(bool, UnixMs, String)> = self
            .workers
            .values()
            .filter(|w| w.rec.stop_requested_at.is_none())
            .map(|w| {
                let busy = dir.agent_status(&w.rec.id) == Some(AgentStatus::Busy);
                (busy, -w.rec.started_at, w.rec.id.clone())
            })
            .collect();
        candidates.sort();
        candidates.into_iter().take(n).map(|(_, _, id)| id).collect()
    }
}

impl Actuator for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::Scale { .. } | Action::Restart { .. })
    }

    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError> {
        // See the world as it is before changing it.
        self.tick(now);
        let result = match action {
            Action::Scale { to, .. } => {
                let to = *to;
                let running = self.running();
                self.desired = Some(to);
                if to > running {
                    if self.crash_loop_open(now) {
                        return Err(ActuatorError::Refused(format!(
                            "workers are in a crash loop ({} crashes within {} s); not starting more",
                            self.recent_crashes(now),
                            self.cfg.crash_window.as_secs()
                        )));
                    }
                    let mut started = Vec::new();
                    for _ in running..to {
                        match self.start(now) {
                            Ok(id) => started.push(id),
                            Err(e) => {
                                let _ = self.save();
                                return Err(ActuatorError::Partial {
                                    failed: (to - running) as usize - started.len(),
                                    total: (to - running) as usize,
                                    first: crate::actuator::error_chain(&e),
                                });
                            }
                        }
                    }
                    // A worker that dies at once (bad command, wrong directory)
                    // is a failed action, not an executed one.
                    std::thread::sleep(Duration::from_millis(150));
                    self.tick(now + 150);
                    let dead: Vec<&String> = started.iter().filter(|id| !self.workers.contains_key(*id)).collect();
                    if !dead.is_empty() {
                        let log = self.cx.state_dir.join("workers").join(format!("{}.log", dead[0]));
                        let last = fs::read_to_string(&log)
                            .ok()
                            .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned))
                            .unwrap_or_default();
                        let msg = format!("{} of {} new worker(s) exited at once ({}: {last})", dead.len(), started.len(), log.display());
                        self.save()?;
                        return Err(ActuatorError::Refused(msg));
                    }
                    Ok(format!("started {} worker(s): {}", started.len(), started.join(", ")))
                } else if to < running {
                    let ids = self.pick_to_stop((running - to) as usize);
                    for id in &ids {
                        self.stop(id, now);
                    }
                    Ok(format!("stopping {} worker(s) after their current item: {}", ids.len(), ids.join(", ")))
                } else {
                    Ok(format!("already {running} worker(s)"))
                }
            }
            Action::Restart { agents } => {
                let mut restarted = Vec::new();
                let mut unknown = Vec::new();
                for id in agents {
                    if self.workers.get(id).is_some_and(|w| w.rec.stop_requested_at.is_none()) {
                        self.stop(id, now);
                        restarted.push(id.clone());
                    } else {
                        unknown.push(id.clone());
                    }
                }
                // The replacements start now; the stopped ones drain.
                if self.desired.is_none() {
                    self.desired = Some(self.running() + u32::try_from(restarted.len()).unwrap_or(0));
                }
                for _ in &restarted {
                    if let Err(e) = self.start(now) {
                        let _ = self.save();
                        return Err(e);
                    }
                }
                if restarted.is_empty() && !unknown.is_empty() {
                    Err(ActuatorError::Refused(format!("not workers of this supervisor (or already replaced): {}", unknown.join(", "))))
                } else if unknown.is_empty() {
                    Ok(format!("restarting {}", restarted.join(", ")))
                } else {
                    Ok(format!("restarting {}; not ours or already replaced: {}", restarted.join(", "), unknown.join(", ")))
                }
            }
            other => Err(ActuatorError::Unsupported { actuator: "supervisor", action: crate::actuator::action_kind(other) }),
        };
        self.save()?;
        result
    }
}
